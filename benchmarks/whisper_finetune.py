"""Does fine-tuning the Whisper encoder's top blocks beat the frozen probe? An experiment in two stages.

Usage::

    # here, with the corpora: pack the experiments' audio (Ogg Opus), splits and encoder weights
    python benchmarks/whisper_finetune.py pack --experiments emodb ravdess --out .gpu/pack13 --weights
    python benchmarks/whisper_finetune.py pack --experiments loco --out .gpu/pack14
    # on any torch machine (a GPU makes it minutes; it needs torch, numpy, scikit-learn, soundfile, serkit's src)
    python benchmarks/whisper_finetune.py run --pack .gpu/pack13 --weights .gpu/pack13/encoder.pt --out results/
    # here again: the results page
    python benchmarks/whisper_finetune.py report results/finetune.jsonl --out docs/results/whisper_finetune.md

Why two stages: a GPU machine lent for a few minutes has neither the corpora nor the pinned weight packages, and
what travels there is limited, so ``pack`` stores what the run needs in a few tens of MB: each clip as serkit
loads it (16 kHz, mono, EMOVO's first channel) re-encoded as Ogg Opus at about 21 kbit/s (Whisper features of the
Opus and lossless copies agree to a mean cosine similarity of 0.998; the frozen baseline is recomputed from the
same decoded audio, so every row of the comparison sees the same input), the splits exactly as serkit's protocols
make them for ``recipes/whisper_emodb.yaml``, ``whisper_ravdess.yaml`` and ``pool4_loco_whisper.yaml`` (seed 0;
the folds of the three seeds are identical), and the whisper-base encoder truncated after block 4, float16.

The systems compared, per fold (train / validation / test speakers as the protocol gives them):

- ``frozen``: layers 3 and 4 of the frozen encoder, mean-pooled over time, standardised with the training split's
  statistics, multinomial logistic regression (balanced classes; LOCO: every corpus-class cell weighs the same), C
  from {0.01, 0.03, 0.1} chosen on the validation speakers, not refitted. ``frozen_refit`` refits on training +
  validation speakers as the single-corpus recipes do (their published figure).
- ``ft``: the same network with blocks 3 and 4 trainable (blocks 1-2 and the convolutions frozen; their output is
  computed once per clip), started from the frozen system (the head is the logistic regression above, the
  standardisation fixed), trained with AdamW (encoder blocks at ``lr``, head at 10x), balanced cross-entropy,
  cosine schedule, bf16 autocast in the training steps on a GPU (evaluation in float32). Padded batches attend only to each clip's own frames, so every clip gets
  the states it would get alone. The epoch (0 = the frozen start) is chosen on the validation speakers' UA;
  the test UA of every epoch is stored too, but the reported figure is the validation-chosen one.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

RECIPES = {"emodb": "recipes/whisper_emodb.yaml", "ravdess": "recipes/whisper_ravdess.yaml",
           "loco": "recipes/pool4_loco_whisper.yaml"}
OPUS_COMPRESSION = 0.95  # libsndfile's compression level; about 21 kbit/s for 16 kHz speech
LAYERS = (3, 4)
C_GRID = (0.01, 0.03, 0.1)


# ----------------------------------------------------------------------------------------------------------- pack
def pack(experiments: list[str], out: Path, with_weights: bool, exclude: list[Path]) -> None:
    import soundfile as sf

    from serkit.audio import load_clip
    from serkit.recipe import Recipe
    from serkit.training.experiment import load_recipe_corpus
    from serkit.training.protocols import make_splits

    out.mkdir(parents=True, exist_ok=True)
    clips: dict[str, dict] = {}
    blob = bytearray()
    # clips another pack already holds (the run reads every pack's audio) are not stored twice
    elsewhere = {k for p in exclude for k in json.loads((p / "pack.json").read_text())["clips"]}
    meta = {"experiments": {}}
    for name in experiments:
        recipe = Recipe.from_yaml(ROOT / RECIPES[name])
        table = load_recipe_corpus(recipe, recipe_file=ROOT / RECIPES[name]).utterances.reset_index(drop=True)
        splits = make_splits(table, recipe.protocol)
        splits = [s for s in splits if s.seed == splits[0].seed]
        keys = []
        channels = table["channel"].tolist() if "channel" in table.columns else [None] * len(table)
        for i, row in table.iterrows():
            key = f"{row['corpus']}/{Path(row['path']).name}" if "corpus" in table.columns else Path(row["path"]).name
            keys.append(key)
            if key in clips or key in elsewhere:
                continue
            y = load_clip(row["path"], recipe.audio, channel=channels[i])
            buf = io.BytesIO()
            sf.write(buf, y, 16000, format="OGG", subtype="OPUS", compression_level=OPUS_COMPRESSION)
            data = buf.getvalue()
            clips[key] = {"offset": len(blob), "size": len(data), "samples": len(y)}
            blob += data
            if len(clips) % 500 == 0:
                print(f"{len(clips)} clips packed", flush=True)
        table_rows = [{"key": k, "label": str(lab), "speaker": str(spk),
                       "corpus": str(c) if "corpus" in table.columns else name}
                      for k, lab, spk, c in zip(keys, table["label"], table["speaker"],
                                                table["corpus"] if "corpus" in table.columns else [name] * len(table))]
        meta["experiments"][name] = {
            "recipe": RECIPES[name], "protocol": recipe.protocol.name, "rows": table_rows,
            "rebalance_corpus": name == "loco",
            "folds": [{"name": s.name, "train": s.train.tolist(), "val": s.val.tolist(), "test": s.test.tolist(),
                       "tag": s.tag} for s in splits]}
        print(f"{name}: {len(table)} clips, {len(splits)} folds", flush=True)
    meta["clips"] = clips
    (out / "audio.bin").write_bytes(bytes(blob))
    (out / "pack.json").write_text(json.dumps(meta))
    if with_weights:
        from serkit.features import load_whisper_encoder_weights

        weights = load_whisper_encoder_weights("whisper-base", max_layer=max(LAYERS))
        state = {k: v.half() for k, v in weights.state.items()}
        from serkit.features.whisper import _mel_filters

        # the filterbank travels too, so that the run never needs librosa's numba code on a bare machine
        torch.save({"dims": weights.dims.__dict__, "state": state, "sha256": weights.sha256,
                    "mel_filters": torch.from_numpy(_mel_filters(weights.dims.n_mels))}, out / "encoder.pt")
    print(f"packed {len(clips)} clips, {len(blob) / 1e6:.1f} MB of audio", flush=True)


# ------------------------------------------------------------------------------------------------------------ run
class TopBlocks(nn.Module):
    """Blocks 3-4 of the encoder + masked mean pooling of each + fixed standardisation + linear head."""

    def __init__(self, blocks: nn.ModuleList, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray,
                 intercept: np.ndarray):
        super().__init__()
        self.blocks = blocks
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.head = nn.Linear(coef.shape[1], coef.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(coef))
            self.head.bias.copy_(torch.as_tensor(intercept))

    def pooled(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        w = valid.unsqueeze(-1).to(x.dtype)
        outs = []
        for block in self.blocks:
            x = block(x, valid)
            outs.append((x * w).sum(1) / w.sum(1))
        return torch.cat(outs, -1).float()

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head((pooled - self.mean) / self.scale)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.logits(self.pooled(x, valid))


def _pad(frames: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    x = nn.utils.rnn.pad_sequence(frames, batch_first=True)
    lengths = torch.tensor([len(f) for f in frames], device=x.device)
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
    return x, valid


def _batches(idx: np.ndarray, lengths: np.ndarray, batch: int, rng: np.random.Generator | None) -> list:
    # Shuffled, then sorted by length within pools of 8 batches: little padding, still random batches.
    idx = rng.permutation(idx) if rng is not None else idx[np.argsort(lengths[idx])]
    out = []
    pool = 8 * batch
    for s in range(0, len(idx), pool):
        chunk = idx[s:s + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[i:i + batch] for i in range(0, len(chunk), batch)]
    if rng is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


def _ua(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, pred))


def _sample_weights(y: np.ndarray, corpus: np.ndarray | None) -> np.ndarray:
    """Inverse-frequency weights (mean 1) of the classes, or (LOCO) of the corpus-class cells: every cell weighs
    the same. (The recipes' ``rebalance: by: [corpus, label]`` rakes the two margins instead.)"""
    from serkit.augment.rebalance import balance_weights

    cells = y.astype(str) if corpus is None else np.char.add(np.char.add(corpus.astype(str), "|"), y.astype(str))
    return balance_weights({"cell": cells})


def run(packs: list[Path], weights_path: Path, out: Path, experiments: list[str] | None, seeds: list[int],
        lrs: list[float], epochs: int, batch: int, max_minutes: float, limit_folds: int | None = None) -> None:
    import soundfile as sf
    from sklearn.linear_model import LogisticRegression

    from serkit.features import whisper
    from serkit.features.whisper import WhisperEncoder, WhisperLogMel
    from serkit.features.whisper_weights import WhisperDims

    t_start = time.perf_counter()
    warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")  # a validation speaker may lack a class
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    saved = torch.load(weights_path, map_location="cpu")
    encoder = WhisperEncoder(WhisperDims(**saved["dims"]), max(LAYERS))
    missing, unexpected = encoder.load_state_dict({k: v.float() for k, v in saved["state"].items()}, strict=False)
    if unexpected or [m for m in missing if not m.startswith("ln_post")]:  # ln_post follows block 6 only
        raise SystemExit(f"{weights_path}: does not fit the encoder (missing {missing}, unexpected {unexpected})")
    encoder = encoder.to(device).eval()
    if "mel_filters" in saved:
        whisper._mel_filters = lambda n_mels: saved["mel_filters"].numpy()
    log_mel = WhisperLogMel(saved["dims"]["n_mels"]).to(device)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "finetune.jsonl"
    print(f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}), weights sha256 "
          f"{saved['sha256'][:12]}", flush=True)

    metas = [(p, json.loads((p / "pack.json").read_text())) for p in packs]
    frames2: dict[str, torch.Tensor] = {}  # block-2 output per clip (on the device)
    pooled_frozen: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for pack_dir, meta in metas:
        blob = (pack_dir / "audio.bin").read_bytes()
        with torch.no_grad():
            for key, c in meta["clips"].items():
                y, sr = sf.read(io.BytesIO(blob[c["offset"]:c["offset"] + c["size"]]), dtype="float32")
                assert sr == 16000, key
                wave = torch.from_numpy(y[: c["samples"]]).to(device)
                states = encoder(log_mel(wave[None]), [2, *LAYERS])
                frames2[key] = states[2][0]  # float32: epoch 0 of a run must be the frozen system exactly
                pooled_frozen[key] = torch.cat([states[la][0].mean(0) for la in LAYERS]).float().cpu().numpy()
    print(f"{len(frames2)} clips encoded in {time.perf_counter() - t0:.1f} s", flush=True)

    # The frozen systems of every fold first (cheap), then the fine-tuning runs with the seed outermost, so that a
    # run stopped by --max-minutes has whole seeds over every fold rather than some folds with every seed.
    folds = []
    for _, meta in metas:
        for name, exp in meta["experiments"].items():
            if experiments and name not in experiments:
                continue
            rows = exp["rows"]
            labels = sorted({r["label"] for r in rows})
            data = {"y": np.array([labels.index(r["label"]) for r in rows]),
                    "frames": [frames2[r["key"]] for r in rows]}
            data["lengths"] = np.array([len(f) for f in data["frames"]])
            corpus_all = np.array([r["corpus"] for r in rows])
            X_all = np.stack([pooled_frozen[r["key"]] for r in rows])
            y_all = data["y"]
            for fold in exp["folds"][:limit_folds]:
                tr, va, te = (np.array(fold[p]) for p in ("train", "val", "test"))
                present = np.unique(y_all[tr])  # LOCO: a fold's training corpora may lack a class
                sw = _sample_weights(y_all[tr], corpus_all[tr] if exp["rebalance_corpus"] else None)
                mean, scale = X_all[tr].mean(0), X_all[tr].std(0) + 1e-8
                Z = (X_all - mean) / scale
                best = None
                for C in C_GRID:
                    clf = LogisticRegression(C=C, max_iter=2000).fit(Z[tr], y_all[tr], sample_weight=sw)
                    ua_va = _ua(y_all[va], clf.predict(Z[va]))
                    if best is None or ua_va > best[0]:
                        best = (ua_va, C, clf)
                ua_va0, C, clf = best
                frozen_test = _ua(y_all[te], clf.predict(Z[te]))
                refit_test = None
                if not exp["rebalance_corpus"]:  # the single-corpus recipes refit on train + val
                    trva = np.concatenate([tr, va])
                    mean2, scale2 = X_all[trva].mean(0), X_all[trva].std(0) + 1e-8
                    Z2 = (X_all - mean2) / scale2
                    clf2 = LogisticRegression(C=C, max_iter=2000).fit(
                        Z2[trva], y_all[trva], sample_weight=_sample_weights(y_all[trva], None))
                    refit_test = _ua(y_all[te], clf2.predict(Z2[te]))
                coef = np.zeros((len(labels), X_all.shape[1]), np.float32)
                intercept = np.full(len(labels), -30.0, np.float32)  # a class absent from training stays absent
                coef[present], intercept[present] = clf.coef_, clf.intercept_
                base = {"experiment": name, "fold": fold["name"], "tag": fold["tag"], "C": C,
                        "frozen_val_ua": ua_va0, "frozen_test_ua": frozen_test, "frozen_refit_test_ua": refit_test,
                        "n_train": len(tr), "n_val": len(va), "n_test": len(te)}
                with (out / "frozen.jsonl").open("a") as fh:
                    fh.write(json.dumps(base) + "\n")
                print(f"{name} {fold['name']}: frozen {frozen_test:.3f} (refit {refit_test}), C {C}", flush=True)
                folds.append((data, (tr, va, te, sw, mean, scale, coef, intercept), base))

    for seed in seeds:
        for data, (tr, va, te, sw, mean, scale, coef, intercept), base in folds:
            for lr in lrs:
                if (time.perf_counter() - t_start) / 60 > max_minutes:
                    print("time budget spent; stopping", flush=True)
                    return
                pooled, rows, rec = _finetune(encoder, data["frames"], data["lengths"], data["y"], sw, tr, va, te,
                                              mean, scale, coef, intercept, lr=lr, seed=seed, epochs=epochs,
                                              batch=batch, device=device)
                rec.update(base, lr=lr, seed=seed, ft_refit_test_ua=None)
                if base["frozen_refit_test_ua"] is not None:
                    # the single-corpus recipes' last step on the fine-tuned features: the probe refitted on
                    # training + validation speakers with the fold's C (the blocks stay as the chosen epoch left them)
                    y = data["y"]
                    n_trva = len(tr) + len(va)
                    Zr = (pooled - pooled[:n_trva].mean(0)) / (pooled[:n_trva].std(0) + 1e-8)
                    clf = LogisticRegression(C=base["C"], max_iter=2000).fit(
                        Zr[:n_trva], y[rows[:n_trva]], sample_weight=_sample_weights(y[rows[:n_trva]], None))
                    rec["ft_refit_test_ua"] = _ua(y[rows[n_trva:]], clf.predict(Zr[n_trva:]))
                with results_path.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                print(f"{base['experiment']} {base['fold']} lr {lr:g} seed {seed}: frozen "
                      f"{base['frozen_test_ua']:.3f} ft {rec['test_ua']:.3f} @ epoch {rec['epoch']} "
                      f"(val {rec['val_ua']:.3f}; last {rec['test_ua_by_epoch'][-1]:.3f}; refit {rec['ft_refit_test_ua']}) "
                      f"{rec['seconds']:.1f} s  [{(time.perf_counter() - t_start) / 60:.1f} min]", flush=True)


def _predict(model: TopBlocks, frames, lengths, idx: np.ndarray, device: str) -> np.ndarray:
    """Class indices of the rows ``idx``: the head on their pooled states (float32, as the frozen probe)."""
    pooled = torch.from_numpy(_pooled(model, frames, lengths, idx, device)).to(device)
    with torch.no_grad():
        return model.logits(pooled).argmax(-1).cpu().numpy()


def _pooled(model: TopBlocks, frames, lengths, idx: np.ndarray, device: str) -> np.ndarray:
    """The pooled block 3 + 4 states of the rows ``idx``, in that order (float32)."""
    model.eval()
    out = np.empty((len(idx), model.mean.shape[0]), np.float32)
    pos = {v: k for k, v in enumerate(idx)}
    with torch.no_grad():
        for b in _batches(idx, lengths, 64, None):
            x, valid = _pad([frames[i] for i in b])
            out[[pos[i] for i in b]] = model.pooled(x, valid).cpu().numpy()
    return out


def _finetune(encoder, frames, lengths, y_all, sw, tr, va, te, mean, scale, coef, intercept, *, lr, seed, epochs,
              batch, device) -> dict:
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TopBlocks(copy.deepcopy(encoder.blocks[LAYERS[0] - 1:LAYERS[-1]]), mean, scale, coef,
                      intercept).to(device)
    opt = torch.optim.AdamW([{"params": model.blocks.parameters(), "lr": lr},
                             {"params": model.head.parameters(), "lr": 10 * lr}], weight_decay=0.01)
    steps = epochs * math.ceil(len(tr) / batch)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    weight_of = dict(zip(tr.tolist(), sw.tolist()))
    y_t = torch.as_tensor(y_all, device=device)
    val_ua = [_ua(y_all[va], _predict(model, frames, lengths, va, device))]
    test_ua = [_ua(y_all[te], _predict(model, frames, lengths, te, device))]
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for _ in range(epochs):
        model.train()
        for b in _batches(tr, lengths, batch, rng):
            x, valid = _pad([frames[i] for i in b])
            w = torch.tensor([weight_of[i] for i in b], device=device)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                logits = model(x, valid)
            loss = (F.cross_entropy(logits.float(), y_t[b], reduction="none") * w).sum() / w.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        val_ua.append(_ua(y_all[va], _predict(model, frames, lengths, va, device)))
        test_ua.append(_ua(y_all[te], _predict(model, frames, lengths, te, device)))
        if val_ua[-1] > max(val_ua[:-1]):
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    chosen = int(np.argmax(val_ua))  # the first epoch with the best validation UA
    model.load_state_dict(best_state)
    rows = np.concatenate([tr, va, te])
    pooled = _pooled(model, frames, lengths, rows, device)
    return pooled, rows, {"epoch": chosen, "val_ua": val_ua[chosen], "test_ua": test_ua[chosen], "val_ua_by_epoch": val_ua,
            "test_ua_by_epoch": test_ua, "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------------------- report
def report(paths: list[Path], out: Path, command: str) -> None:
    """The results page from the runs' ``finetune.jsonl`` files (their ``frozen.jsonl`` beside them give the folds)."""
    import pandas as pd

    def read(files: list[Path]) -> pd.DataFrame:
        return pd.DataFrame([json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()
                             if line.strip()])

    ft = read(paths)
    frozen = read([p.parent / "frozen.jsonl" for p in paths]).drop_duplicates(["experiment", "fold"])
    ft["last"] = ft["test_ua_by_epoch"].map(lambda e: e[-1])
    ft["oracle"] = ft["test_ua_by_epoch"].map(max)

    def ms(values) -> str:
        v = 100 * np.asarray(values, float)
        return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0:.1f}"

    ft["start"] = ft["test_ua_by_epoch"].map(lambda e: e[0])
    # Whole seeds only where there are some: a seed stopped half-way would compare different folds.
    kept = []
    for (exp, _), g in ft.groupby(["experiment", "lr"], sort=False):
        n_folds = int((frozen["experiment"] == exp).sum())
        per_seed = g.groupby("seed")["fold"].nunique()
        complete = per_seed[per_seed == n_folds].index
        kept.append(g[g["seed"].isin(complete)] if len(complete) else g)
    ft = pd.concat(kept)

    lines = [
        "# Fine-tuning Whisper's blocks 3-4 against the frozen probe (an experiment)", "",
        "Written by `python benchmarks/whisper_finetune.py report` from the runs below; the docstring of",
        "`benchmarks/whisper_finetune.py` describes both systems, the splits and the audio that was packed.",
        "Speaker-independent (SI), strict (statistics of the training split only), UA in %, mean ± std over the",
        "test folds, compared on the same folds. `frozen`: the probe computed in float32; `epoch 0`: the same",
        "network inside the fine-tuning run before its first step (runs made before float32 evaluation evaluated it",
        "in bf16 on float16 states, which moves a fold by up to 0.8 points: compare the fine-tuned figure with this",
        "column); fine-tuned: the epoch chosen on the validation speakers (epoch 0 included); `+ refit`: the probe",
        "refitted on training + validation speakers on the fine-tuned features, as the single-corpus recipes refit",
        "theirs; `last`: the last epoch; `oracle`: the best test UA over the epochs, shown only to say how much the",
        "choice of epoch costs (it is not a result). Only whole seeds are counted where a seed covers every fold.", "",
        f"Runs: {command}", "",
        ("| experiment | lr | seeds | folds | frozen | frozen + refit | epoch 0 | fine-tuned | fine-tuned + refit "
         "| last | oracle |"),
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (exp, lr), g in ft.groupby(["experiment", "lr"], sort=False):
        n_folds = int((frozen["experiment"] == exp).sum())
        whole = g.groupby("seed")["fold"].nunique().eq(n_folds).all()
        seeds = ", ".join(f"{s} ({100 * g[g['seed'] == s]['test_ua'].mean():.1f})" if whole else str(s)
                          for s in sorted(g["seed"].unique())) + ("" if whole else " (partial)")
        by_fold = g.groupby("fold")
        refit = by_fold["frozen_refit_test_ua"].first()
        ft_refit = by_fold["ft_refit_test_ua"].mean()
        lines.append(
            f"| {exp} | {lr:g} | {seeds} | {by_fold.ngroups} of {n_folds} | {ms(by_fold['frozen_test_ua'].first())} "
            f"| {ms(refit) if refit.notna().all() else '—'} | {ms(by_fold['start'].mean())} "
            f"| **{ms(by_fold['test_ua'].mean())}** | {ms(ft_refit) if ft_refit.notna().all() else '—'} "
            f"| {ms(by_fold['last'].mean())} | {ms(by_fold['oracle'].mean())} |")
    lines += ["", "Per fold (mean over the seeds counted above):", "",
              "| experiment | lr | fold | seeds | frozen | epoch 0 | fine-tuned | last | chosen epochs | seconds per run |",
              "|---|---:|---|---:|---:|---:|---:|---:|---|---:|"]
    for (exp, lr, fold), g in ft.groupby(["experiment", "lr", "fold"], sort=False):
        lines.append(f"| {exp} | {lr:g} | {fold} | {len(g)} | {100 * g['frozen_test_ua'].iloc[0]:.1f} | "
                     f"{100 * g['start'].mean():.1f} | {100 * g['test_ua'].mean():.1f} | {100 * g['last'].mean():.1f} | "
                     f"{', '.join(str(e) for e in g['epoch'])} | {g['seconds'].median():.1f} |")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--experiments", nargs="+", choices=sorted(RECIPES), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--weights", action="store_true", help="also store the encoder (blocks 0-4, float16)")
    p.add_argument("--exclude-pack", type=Path, nargs="*", default=[], help="packs whose clips are not stored again")
    r = sub.add_parser("run")
    r.add_argument("--pack", type=Path, nargs="+", required=True)
    r.add_argument("--weights", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--experiments", nargs="*")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--lr", type=float, nargs="+", default=[1e-5, 3e-5])
    r.add_argument("--epochs", type=int, default=10)
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--max-minutes", type=float, default=1e9)
    r.add_argument("--limit-folds", type=int, default=None, help="first N folds only (smoke tests)")
    g = sub.add_parser("report")
    g.add_argument("results", type=Path, nargs="+")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--command", default="")
    args = parser.parse_args()
    if args.cmd == "pack":
        pack(args.experiments, args.out, args.weights, args.exclude_pack)
    elif args.cmd == "run":
        run(args.pack, args.weights, args.out, args.experiments, args.seeds, args.lr, args.epochs, args.batch,
            args.max_minutes, args.limit_folds)
    else:
        report(args.results, args.out, args.command)


if __name__ == "__main__":
    main()
