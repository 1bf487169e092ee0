"""The training loop for torch models: seeded, resumable, with early stopping on a validation split.

Data lives in memory as feature arrays (serkit caches features on disk, so an epoch never recomputes them).
Batches are drawn from a permutation seeded by (seed, epoch), so a run resumed from its last checkpoint visits
the same batches as an uninterrupted one; together with the saved RNG state this makes ``resume`` reproduce
the uninterrupted result.

Data parallel (``serkit.training.distributed``): in a process group of W ranks the model is wrapped in
``DistributedDataParallel``. ``batch_size`` is the *global* batch: each rank takes every W-th item of each
global batch of the same (seed, epoch) permutation, and the loss is scaled so that DDP's gradient average
equals the gradient of the global batch's mean loss, hence the same optimisation steps as one process (up to
float rounding, dropout masks and BatchNorm statistics, which are per rank; ``sync_batchnorm`` fixes the
latter on GPUs). Predictions are sharded over ranks and gathered before any metric; the validation row is
rank 0's on every rank, so early stopping agrees everywhere; only rank 0 writes. A checkpoint holds no
process-count-specific state, so a run resumes under another process count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from serkit.errors import ConfigError
from serkit.metrics import unweighted_average_recall
from serkit.models.learner import predict_proba
from serkit.multi_input import map_streams, num_items, take_items, to_tensors, transform_feature_maps
from serkit.training import distributed as dist
from serkit.utils import atomic_torch_save, atomic_write_text

log = logging.getLogger(__name__)

# Called as transform(batch, generator=seeded_generator) on training batches only.
BatchTransform = Callable[..., torch.Tensor]


class TrainingConfig(BaseModel):
    """Optimiser, schedule and stopping rule of a torch model's training."""

    model_config = ConfigDict(extra="forbid")

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    batch_size: int = Field(32, ge=1, description="global batch: split evenly over data-parallel processes")
    max_epochs: int = Field(100, ge=1)
    lr_milestones: list[int] = Field(default_factory=list, description="epochs (1-based) after which lr *= lr_gamma")
    lr_gamma: float = Field(0.1, gt=0)
    early_stopping_patience: int | None = Field(20, ge=1)
    monitor: Literal["val_ua", "val_wa", "val_macro_f1", "val_loss"] = "val_ua"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mixup_alpha: float = Field(0.0, ge=0, description="mixup (Zhang et al. 2018): each training batch is mixed "
                               "with a shuffled copy of itself, weight lam ~ Beta(alpha, alpha); 0 = off")
    class_weighted_loss: bool = False
    grad_clip_norm: float | None = Field(None, gt=0)
    num_threads: int | None = Field(None, ge=1, description="torch threads; None = all cores")
    device: str = "cpu"
    eval_batch_size: int = Field(256, ge=1)
    sync_batchnorm: bool = Field(False, description="data parallel on GPUs: BatchNorm statistics over the global "
                                 "batch (SyncBatchNorm) instead of each process's share")


@dataclass
class FitResult:
    history: pd.DataFrame
    best_epoch: int
    best_score: float | None
    epochs_run: int
    train_seconds: float
    resumed_from: int | None = None
    extra: dict = field(default_factory=dict)


def _state_fingerprint(model: nn.Module, cfg: TrainingConfig, n_train: int, seed: int) -> str:
    shapes = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    blob = json.dumps([cfg.model_dump(mode="json"), shapes, n_train, seed], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Trainer:
    """Fits a torch classifier on in-memory features.

    Parameters
    ----------
    cfg : TrainingConfig
    workdir : folder for ``last.pt`` (every epoch), ``best.pt``, ``log.csv``; None keeps nothing on disk.
    seed : seeds initialisation-independent randomness (batch order, dropout, batch transforms).
    batch_transform : applied to each training batch only (e.g. SpecAugment), with a seeded generator.
    progress : show a progress bar.
    """

    def __init__(
        self,
        cfg: TrainingConfig | None = None,
        *,
        workdir: str | Path | None = None,
        seed: int = 0,
        batch_transform: BatchTransform | None = None,
        progress: bool = True,
    ):
        self.cfg = cfg or TrainingConfig()
        self.workdir = Path(workdir) if workdir is not None else None
        self.seed = int(seed)
        self.batch_transform = batch_transform
        self.progress = progress
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = self._resolve_device(self.cfg.device)
        if self.device.type == "cuda" and self.device.index is None and self.world_size > 1:
            self.device = torch.device("cuda", dist.get_local_rank())
        if self.cfg.batch_size % self.world_size:
            raise ConfigError(f"training.batch_size {self.cfg.batch_size} is the global batch: it must be divisible "
                              f"by the number of processes ({self.world_size})")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def _resolve_device(name: str) -> torch.device:
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"training.device: {name!r} asked for but CUDA is not available")
        return device

    # -- batch order ----------------------------------------------------------------------------------
    def epoch_batches(self, epoch: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The training batches of ``epoch`` (1-based) as (global batch, this process's share) index pairs.

        Global batches are consecutive ``batch_size`` blocks of a permutation seeded by (seed, epoch), the same
        for any process count; a rank's share is every W-th item of the block from position ``rank``. A block
        with fewer than 2 items per process is left out (a batch of one breaks BatchNorm's statistics).
        """
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        batches = []
        for start in range(0, n, self.cfg.batch_size):
            block = order[start : start + self.cfg.batch_size]
            if len(block) < 2 * self.world_size and n > 1:
                continue
            batches.append((block, block[self.rank :: self.world_size]))
        return batches

    # -- public API ------------------------------------------------------------------------------------
    def fit(
        self,
        model: nn.Module,
        X_train: np.ndarray,
        y_train: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        *,
        resume: bool = True,
    ) -> FitResult:
        cfg = self.cfg
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if num_items(X_train) != len(y_train):
            raise ValueError(f"X_train has {num_items(X_train)} items but y_train has {len(y_train)}")
        if num_items(X_train) == 0:
            raise ValueError("the training split is empty")
        has_val = X_val is not None and y_val is not None and num_items(X_val) > 0
        model.to(self.device)
        train_model = self._data_parallel(model)
        optimizer = self._optimizer(model)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.lr_milestones, gamma=cfg.lr_gamma)
        loss_fn = self._loss(y_train, model)
        fingerprint = _state_fingerprint(model, cfg, num_items(X_train), self.seed)

        # Rank r > 0 draws its own dropout masks; rank 0 (and a single process) keeps the seed itself.
        torch.manual_seed(self.seed + 1_000_003 * self.rank)
        start_epoch, history, best = 1, [], {"score": None, "epoch": 0, "bad_epochs": 0}
        resumed_from = None
        state = self._load_checkpoint(fingerprint) if (resume and self.workdir) else None
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            self._restore_rng(state)
            history, best = state["history"], state["best"]
            start_epoch = resumed_from = state["epoch"] + 1
            if state.get("finished"):
                start_epoch = cfg.max_epochs + 1
            log.info("resuming %s at epoch %d", self.workdir, start_epoch)
        best_state = self._load_best(model) if state is not None else None

        X_train_t = map_streams(lambda _, a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32), X_train)
        y_train_t = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
        t0 = time.perf_counter()
        spent = float(state["train_seconds"]) if state is not None else 0.0
        finished = start_epoch > cfg.max_epochs
        with self._progress_bar(cfg.max_epochs, start_epoch - 1) as advance:
            for epoch in range(start_epoch, cfg.max_epochs + 1):
                train_loss = self._train_epoch(train_model, optimizer, loss_fn, X_train_t, y_train_t, epoch,
                                               streams=getattr(model, "input_streams", None))
                scheduler.step()
                row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss}
                if has_val:
                    row.update(self._validate(model, loss_fn, X_val, y_val))
                row = dist.broadcast_object(row)  # rank 0's scores decide early stopping on every rank
                history.append(row)
                improved = self._update_best(best, row, epoch, has_val)
                if improved:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                stop = (
                    has_val
                    and cfg.early_stopping_patience is not None
                    and best["bad_epochs"] >= cfg.early_stopping_patience
                )
                finished = stop or epoch == cfg.max_epochs
                self._save_checkpoint(model, optimizer, scheduler, epoch, history, best, fingerprint,
                                      spent + time.perf_counter() - t0, improved, finished)
                advance(epoch, row)
                if stop:
                    log.info("early stop at epoch %d (best %d)", epoch, best["epoch"])
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        frame = pd.DataFrame(history)
        return FitResult(
            history=frame,
            best_epoch=int(best["epoch"]),
            best_score=best["score"],
            epochs_run=int(frame["epoch"].max()) if len(frame) else 0,
            train_seconds=spent + time.perf_counter() - t0,
            resumed_from=resumed_from,
        )

    def predict_proba(self, model: nn.Module, X: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) in eval mode, in batches of ``eval_batch_size``.

        Data parallel: each rank predicts its contiguous shard and every rank gets all rows, in order.
        """
        if self.world_size == 1:
            return predict_proba(model, X, batch_size=self.cfg.eval_batch_size, device=self.device)
        start, stop = dist.shard_bounds(num_items(X), self.rank, self.world_size)
        part = predict_proba(model, take_items(X, slice(start, stop)), batch_size=self.cfg.eval_batch_size,
                             device=self.device)
        return dist.gather_rows(part)

    # -- internals ---------------------------------------------------------------------------------
    def _data_parallel(self, model: nn.Module) -> nn.Module:
        """The module to train: ``model`` itself, or a DDP wrapper sharing its parameters."""
        if self.world_size == 1:
            return model
        if self.cfg.sync_batchnorm:
            if self.device.type != "cuda":
                raise ConfigError("training.sync_batchnorm needs CUDA devices (torch's SyncBatchNorm does not run "
                                  "on CPU); leave it off to keep per-process BatchNorm statistics")
            nn.SyncBatchNorm.convert_sync_batchnorm(model)  # swaps BatchNorm layers in place, same parameters
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def _restore_rng(self, state: dict) -> None:
        """The torch RNG of the checkpoint's epoch: this rank's own when the process count is unchanged."""
        per_rank = state.get("torch_rng_ranks")
        if per_rank is not None and len(per_rank) == self.world_size:
            torch.set_rng_state(per_rank[self.rank])
        elif self.rank == 0:
            torch.set_rng_state(state["torch_rng"])
        else:  # a new process count: a fresh stream for this rank, fixed by (seed, epoch, rank)
            torch.manual_seed(self.seed + 1_000_003 * self.rank + 7919 * int(state["epoch"]))

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def _loss(self, y_train: np.ndarray, model: nn.Module) -> nn.Module:
        """Summed cross-entropy; :meth:`_train_epoch` divides by the global batch's weight (its mean loss)."""
        weight = None
        if self.cfg.class_weighted_loss:
            counts = np.bincount(np.asarray(y_train), minlength=int(np.max(y_train)) + 1).astype(np.float64)
            weight = torch.tensor(len(y_train) / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
            weight = weight.to(self.device)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=self.cfg.label_smoothing, reduction="sum")

    def _train_epoch(self, model, optimizer, loss_fn, X, y: torch.Tensor, epoch: int, *,
                     streams: tuple[str, ...] | None = None) -> float:
        model.train()
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 1_000_003 * self.rank)
        weight = loss_fn.weight.cpu() if loss_fn.weight is not None else None
        total, count = 0.0, 0
        for block, idx in self.epoch_batches(epoch, num_items(X)):
            # The mean loss of the global batch is sum(w_i * loss_i) / sum(w_i) over all its items; every rank
            # knows the block, so the denominator needs no communication. DDP averages gradients over the
            # ranks, hence the factor world_size.
            denom = float(weight[y[block]].sum()) if weight is not None else float(len(block))
            idx_t = torch.as_tensor(idx)
            xb, yb = take_items(X, idx_t), y[idx_t]
            if self.batch_transform is not None:
                xb = transform_feature_maps(self.batch_transform, xb, generator=gen)
            xb, yb = to_tensors(xb, streams=streams, device=self.device), yb.to(self.device)
            optimizer.zero_grad(set_to_none=True)
            if self.cfg.mixup_alpha > 0:
                loss_sum = self._mixup_loss(model, loss_fn, xb, yb, gen)
            else:
                loss_sum = loss_fn(model(*xb), yb)
            if not torch.isfinite(loss_sum):
                raise FloatingPointError(f"training loss became {loss_sum.item()} at epoch {epoch}; lower training.lr")
            (loss_sum * (self.world_size / denom)).backward()
            if self.cfg.grad_clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip_norm)
            optimizer.step()
            total += loss_sum.item() / denom * len(block)  # this rank's part of the global batch's mean loss
            count += len(block)
        return dist.all_reduce_sum(total) / max(count, 1)

    def _mixup_loss(self, model, loss_fn, xb: list[torch.Tensor], yb: torch.Tensor,
                    gen: torch.Generator) -> torch.Tensor:
        """Summed loss of a mixup batch: every input stream is mixed with the same partner and weight.

        The loss mixes the two targets' losses with the same weight, which equals the loss against the mixed
        one-hot (smoothed) target. lam is drawn from the batch generator, so a seed gives the same mixes.
        """
        # numpy draws the Beta sample (torch's Beta sampler takes no generator), seeded from the batch generator.
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        lam = float(np.random.default_rng(seed).beta(self.cfg.mixup_alpha, self.cfg.mixup_alpha))
        perm = torch.randperm(len(yb), generator=gen).to(yb.device)
        mixed = [lam * x + (1.0 - lam) * x[perm] for x in xb]
        out = model(*mixed)
        return lam * loss_fn(out, yb) + (1.0 - lam) * loss_fn(out, yb[perm])

    def _validate(self, model, loss_fn, X_val, y_val) -> dict:
        proba = self.predict_proba(model, X_val)
        y_val = np.asarray(y_val)
        with torch.no_grad():
            logp = torch.log(torch.as_tensor(proba).clamp_min(1e-12))
            val_loss = nn.functional.nll_loss(logp, torch.as_tensor(y_val, dtype=torch.long)).item()
        pred = proba.argmax(1)
        return {
            "val_loss": val_loss,
            "val_wa": accuracy_score(y_val, pred),
            "val_ua": unweighted_average_recall(y_val, pred),
            "val_macro_f1": f1_score(y_val, pred, average="macro", zero_division=0),
        }

    def _update_best(self, best: dict, row: dict, epoch: int, has_val: bool) -> bool:
        if not has_val:
            best.update(score=None, epoch=epoch, bad_epochs=0)
            return True
        score = row[self.cfg.monitor]
        lower_is_better = self.cfg.monitor == "val_loss"
        better = best["score"] is None or (score < best["score"] if lower_is_better else score > best["score"])
        if better:
            best.update(score=float(score), epoch=epoch, bad_epochs=0)
        else:
            best["bad_epochs"] += 1
        return better

    def _save_checkpoint(self, model, optimizer, scheduler, epoch, history, best, fingerprint, seconds,
                         improved, finished) -> None:
        if self.workdir is None:
            return
        # Every rank's RNG (a collective, so before the rank check): an unchanged process count resumes exactly.
        rng_ranks = dist.all_gather_objects(torch.get_rng_state()) if self.world_size > 1 else None
        if not self.is_main:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if improved:
            atomic_torch_save(model.state_dict(), self.workdir / "best.pt")
        atomic_torch_save(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "torch_rng_ranks": rng_ranks,
                "history": history,
                "best": dict(best),
                "fingerprint": fingerprint,
                "train_seconds": seconds,
                "finished": finished,
            },
            self.workdir / "last.pt",
        )
        atomic_write_text(self.workdir / "log.csv", pd.DataFrame(history).to_csv(index=False))

    def _load_checkpoint(self, fingerprint: str) -> dict | None:
        path = self.workdir / "last.pt"
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:  # a checkpoint we cannot read is not silently replaced
            raise RuntimeError(f"{path}: cannot read checkpoint ({exc}); delete it to start over") from exc
        if state.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"{path}: checkpoint was made with another model, config, data size or seed; "
                "use another output folder or start without resume"
            )
        return state

    def _load_best(self, model: nn.Module) -> dict | None:
        path = self.workdir / "best.pt"
        if not path.exists():
            return None
        return torch.load(path, map_location=self.device, weights_only=True)

    def _progress_bar(self, total: int, done: int):
        from contextlib import contextmanager

        @contextmanager
        def bar():
            if not (self.progress and self.is_main):
                yield lambda epoch, row: None
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TextColumn("{task.fields[info]}"), transient=True) as progress:
                task = progress.add_task("epochs", total=total, completed=done, info="")

                def advance(epoch: int, row: dict) -> None:
                    info = f"loss {row['train_loss']:.3f}"
                    if "val_ua" in row:
                        info += f"  val UA {row['val_ua']:.3f}"
                    progress.update(task, completed=epoch, info=info)

                yield advance

        return bar()
