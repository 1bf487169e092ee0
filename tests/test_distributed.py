"""Data parallelism: batch sharding, loss scaling, 2 CPU processes (gloo) against one, a killed rank, the CLI."""

from __future__ import annotations

import itertools
import json
import runpy
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from conftest import write_tone_corpus
from serkit.cli import app
from serkit.models import create_model
from serkit.training import distributed
from serkit.training.trainer import Trainer, TrainingConfig, _state_fingerprint

SPAWN_TIMEOUT = 180  # seconds: no test may hang CI, whatever happens to its processes

# Shared by the worker script and the in-process reference: a model without BatchNorm or dropout, so that the
# single-process run is the exact reference (up to float summation order in the gradient all-reduce).
SETUP = """
import numpy as np, torch
from serkit.models import create_model
from serkit.training.trainer import TrainingConfig

def data(n, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 12)).astype(np.float32)
    X[np.arange(n), y] += 2.0
    return X, y

def model():
    torch.manual_seed(0)
    return create_model("mountzouris2023_sdnn", num_classes=3, input_shape=(12,), hidden=(8, 4), dropout=0.0)

# 46 items, global batch 8: five full batches and one of 6 (3 per process); class weights and label smoothing
# make the loss denominator non-trivial.
CFG = TrainingConfig(optimizer="sgd", lr=0.05, batch_size=8, max_epochs=4, early_stopping_patience=None,
                     class_weighted_loss=True, label_smoothing=0.1, num_threads=1)
X, Y = data(46, 0)
XV, YV = data(20, 1)
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=SPAWN_TIMEOUT, check=False, **kwargs)


def _setup(folder: Path) -> dict:
    """Write the shared set-up beside the worker scripts (they import it) and load it here."""
    path = folder / "ddp_setup.py"
    path.write_text(SETUP)
    return runpy.run_path(str(path))


def _launch_script(script: Path, nproc: int, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    """Run ``script`` in ``nproc`` processes through serkit's launcher (torchrun's agent), in a subprocess."""
    code = (f"from serkit.training.distributed import launch; "
            f"launch({[str(script), *args]!r}, nproc={nproc}, timeout_s={timeout_s})")
    return _run([sys.executable, "-c", code])


# -- single-process pieces -------------------------------------------------------------------------------
def test_shard_bounds_cover_rows_once():
    for n in (0, 1, 5, 10):
        for world in (1, 2, 3):
            bounds = [distributed.shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_collectives_are_identity_without_a_process_group():
    assert distributed.get_world_size() == 1 and distributed.is_main_process()
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.all_reduce_sum(2.5) == 2.5
    rows = np.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(distributed.gather_rows(rows), rows)


def test_bad_timeout_env_is_reported(monkeypatch):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(distributed.DistributedError, match="SERKIT_DIST_TIMEOUT"):
        distributed.timeout_from_env()


def test_global_batches_do_not_depend_on_the_process_count():
    cfg = TrainingConfig(batch_size=8)
    single = Trainer(cfg, seed=3, progress=False)
    ranks = [Trainer(cfg, seed=3, progress=False) for _ in range(2)]
    for r, trainer in enumerate(ranks):
        trainer.rank, trainer.world_size = r, 2  # what a process group of two would give
    for epoch in (1, 2):
        ref = single.epoch_batches(epoch, 46)
        shares = [t.epoch_batches(epoch, 46) for t in ranks]
        assert len(ref) == len(shares[0]) == len(shares[1]) == 6
        for k, (block, own) in enumerate(ref):
            np.testing.assert_array_equal(own, block)
            np.testing.assert_array_equal(shares[0][k][0], block)
            parts = np.concatenate([shares[0][k][1], shares[1][k][1]])
            assert sorted(parts.tolist()) == sorted(block.tolist())  # each item on exactly one rank
    # A last global batch with fewer than 2 items per process is left out (45 = 5 x 8 + 5: kept; 43: 3 < 4 left out).
    assert len(ranks[0].epoch_batches(1, 45)) == 6 and len(ranks[0].epoch_batches(1, 43)) == 5
    assert len(single.epoch_batches(1, 43)) == 6


def test_scaled_share_gradients_average_to_the_global_batch_gradient(tmp_path):
    """What DDP computes (mean over ranks of each share's scaled loss gradient) is the global-batch gradient."""
    ns = _setup(tmp_path)
    trainer = Trainer(ns["CFG"], seed=0, progress=False)
    X, y = torch.as_tensor(ns["X"]), torch.as_tensor(ns["Y"])
    loss_fn = trainer._loss(ns["Y"], None)
    block = np.arange(0, 11)  # uneven shares: 6 and 5 items

    def grads(idx, scale):
        model = ns["model"]()
        (loss_fn(model(X[idx]), y[idx]) * scale).backward()
        return [p.grad.clone() for p in model.parameters()]

    denom = float(loss_fn.weight[y[block]].sum())
    full = grads(block, 1 / denom)
    shares = [grads(block[r::2], 2 / denom) for r in range(2)]
    for g, g0, g1 in zip(full, *shares):
        torch.testing.assert_close((g0 + g1) / 2, g, rtol=1e-5, atol=1e-7)
    # and the summed loss / weight sum is torch's own weighted, smoothed mean
    model = ns["model"]()
    mean_loss = torch.nn.CrossEntropyLoss(weight=loss_fn.weight, label_smoothing=0.1)(model(X[block]), y[block])
    torch.testing.assert_close(loss_fn(model(X[block]), y[block]) / denom, mean_loss)


def test_global_batch_must_split_evenly(monkeypatch):
    monkeypatch.setattr(distributed, "get_world_size", lambda: 3)
    monkeypatch.setattr(distributed, "get_rank", lambda: 0)
    with pytest.raises(Exception, match="divisible by the number of processes"):
        Trainer(TrainingConfig(batch_size=8), progress=False)


# -- two processes -----------------------------------------------------------------------------------------
WORKER = """
from ddp_setup import *
import json, sys
from pathlib import Path
from serkit.training import distributed
from serkit.training.trainer import Trainer

out, epochs = Path(sys.argv[1]), int(sys.argv[2])
assert distributed.init_distributed("cpu")
cfg = CFG.model_copy(update={"max_epochs": epochs})
m = model()
fit = Trainer(cfg, workdir=out / "ckpt", seed=7, progress=False).fit(m, X, Y, XV, YV)
proba = Trainer(cfg, seed=7, progress=False).predict_proba(m, XV)
rank = distributed.get_rank()
torch.save({k: v.clone() for k, v in m.state_dict().items()}, out / f"weights{rank}.pt")
np.save(out / f"proba{rank}.npy", proba)
fit.history.to_csv(out / f"history{rank}.csv", index=False)
distributed.shutdown()
"""


@pytest.mark.slow
def test_two_processes_match_one_and_resume_with_one(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    _setup(tmp_path)
    t0 = time.perf_counter()
    done = _launch_script(script, 2, str(tmp_path), "2")
    assert done.returncode == 0, done.stderr[-3000:]
    launch_seconds = time.perf_counter() - t0
    ns = _setup(tmp_path)

    # Reference: one process, same global batch, 2 epochs.
    ref_model = ns["model"]()
    cfg2 = ns["CFG"].model_copy(update={"max_epochs": 2})
    ref = Trainer(cfg2, seed=7, progress=False).fit(ref_model, ns["X"], ns["Y"], ns["XV"], ns["YV"])
    w0, w1 = (torch.load(tmp_path / f"weights{r}.pt") for r in range(2))
    for k, v in ref_model.state_dict().items():
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0)  # replicas stay identical
        torch.testing.assert_close(w0[k], v, rtol=1e-5, atol=1e-6)  # and equal the single-process weights
    # Predictions were sharded and gathered: every rank holds all rows, equal to the single-process ones.
    p0, p1 = np.load(tmp_path / "proba0.npy"), np.load(tmp_path / "proba1.npy")
    assert p0.shape == (20, 3)
    np.testing.assert_array_equal(p0, p1)
    np.testing.assert_allclose(p0, Trainer(cfg2, seed=7, progress=False).predict_proba(ref_model, ns["XV"]),
                               atol=1e-5)
    h0, h1 = pd.read_csv(tmp_path / "history0.csv"), pd.read_csv(tmp_path / "history1.csv")
    pd.testing.assert_frame_equal(h0, h1)  # every rank saw the same scores (early stopping agrees)
    pd.testing.assert_frame_equal(h0, ref.history, rtol=1e-4)

    # The checkpoint was written once (rank 0), atomically; resume it with ONE process to 4 epochs.
    ckpt = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == ["best.pt", "last.pt", "log.csv"]
    state = torch.load(ckpt / "last.pt", weights_only=False)
    assert len(state["torch_rng_ranks"]) == 2
    cfg4 = ns["CFG"]
    state["finished"] = False  # as if stopped after epoch 2 of a 4-epoch run
    state["fingerprint"] = _state_fingerprint(ns["model"](), cfg4, len(ns["X"]), 7)
    torch.save(state, ckpt / "last.pt")
    resumed = ns["model"]()
    res = Trainer(cfg4, workdir=ckpt, seed=7, progress=False).fit(resumed, ns["X"], ns["Y"], ns["XV"], ns["YV"])
    assert res.resumed_from == 3
    full = ns["model"]()
    Trainer(cfg4, seed=7, progress=False).fit(full, ns["X"], ns["Y"], ns["XV"], ns["YV"])
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    assert launch_seconds < SPAWN_TIMEOUT


KILLED = """
from ddp_setup import *
import os, signal, sys
from serkit.training import distributed
from serkit.training.trainer import Trainer

distributed.init_distributed("cpu")
calls = []

def die_on_rank1(batch, generator=None):
    calls.append(1)
    if distributed.get_rank() == 1 and len(calls) == 8:  # mid-way through epoch 2
        os.kill(os.getpid(), signal.SIGKILL)
    return batch

Trainer(CFG.model_copy(update={"max_epochs": 1000}), seed=0, progress=False,
        batch_transform=die_on_rank1).fit(model(), X, Y, XV, YV)
"""


@pytest.mark.slow
def test_killed_rank_ends_the_job_with_a_clear_error(tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    _setup(tmp_path)
    t0 = time.perf_counter()
    done = _launch_script(script, 2, timeout_s=30)
    seconds = time.perf_counter() - t0
    assert done.returncode != 0
    assert "distributed job failed: rank 1 of 2" in done.stderr and "SIGKILL" in done.stderr, done.stderr[-3000:]
    assert "the other ranks were stopped" in done.stderr
    assert seconds < 90  # the agent ended the job; nobody waited for a collective's timeout


# -- the command line ------------------------------------------------------------------------------------
def _recipe_file(tmp_path: Path, model: dict, **extra) -> Path:
    import yaml

    recipe = {
        "name": "tiny_ddp",
        "corpus": {"name": "csv", "root": str(write_tone_corpus(tmp_path, clips_per_label=4))},
        "audio": {"sample_rate": 8000, "duration": 0.5},
        "frontend": {"name": "mfcc", "n_mfcc": 12, "n_fft": 256, "hop_length": 128, "n_mels": 32},
        "pooling": "mean",
        "model": model,
        "protocol": {"name": "loso", "n_val_speakers": 1, "seeds": [0]},
        "training": {"max_epochs": 5, "batch_size": 8, "lr": 0.01, "early_stopping_patience": None,
                     "num_threads": 1},
        **extra,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.slow
def test_cli_nproc_2_reproduces_one_process(tmp_path):
    recipe = _recipe_file(tmp_path, {"name": "mountzouris2023_sdnn", "hidden": [8, 4], "dropout": 0.0})
    one = CliRunner().invoke(app, ["train", str(recipe), "--folds", "1", "--quiet", "--cache-dir",
                                   str(tmp_path / "cache"), "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    two = _run([sys.executable, "-m", "serkit.cli", "train", str(recipe), "--folds", "1", "--quiet", "--cache-dir",
                str(tmp_path / "cache"), "--out", str(tmp_path / "two"), "--nproc", "2", "--dist-timeout", "60"])
    assert two.returncode == 0, two.stderr[-2000:]
    fold = next((tmp_path / "one" / "folds").iterdir()).name
    p1 = pd.read_csv(tmp_path / "one" / "folds" / fold / "predictions.csv")
    p2 = pd.read_csv(tmp_path / "two" / "folds" / fold / "predictions.csv")
    probs = [c for c in p1.columns if c.startswith("p_")]
    np.testing.assert_allclose(p2[probs].to_numpy(), p1[probs].to_numpy(), atol=1e-4)
    r1, r2 = (json.loads((tmp_path / d / "folds" / fold / "result.json").read_text()) for d in ("one", "two"))
    assert r1["ua"] == r2["ua"] and r1["epochs_run"] == r2["epochs_run"] == 5
    # rank 0 alone wrote the fold: one model file, no temporary leftovers
    assert not list((tmp_path / "two").rglob("*.tmp"))


def test_cli_nproc_refuses_non_torch_models(tmp_path):
    recipe = _recipe_file(tmp_path, {"name": "svm"}, frontend={"name": "egemaps"}, pooling="none")
    result = CliRunner().invoke(app, ["train", str(recipe), "--nproc", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "not a torch model" in result.output


def test_sync_batchnorm_needs_cuda(monkeypatch):
    monkeypatch.setattr(distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed, "get_rank", lambda: 0)
    trainer = Trainer(TrainingConfig(sync_batchnorm=True), progress=False)
    model = create_model("mountzouris2023_cnn", num_classes=3, input_shape=(8, 30))
    with pytest.raises(Exception, match="sync_batchnorm needs CUDA"):
        trainer._data_parallel(model)


def test_cli_nproc_forwards_every_argument_unchanged(tmp_path, monkeypatch):
    """The copies get a command line that parses back to the very values given, every option of `train`
    included (nothing is rebuilt from a hand list that a new option could miss)."""
    import typer.main

    recipe = _recipe_file(tmp_path, {"name": "mountzouris2023_sdnn", "hidden": [8, 4], "dropout": 0.0})
    launched = {}
    monkeypatch.setattr(distributed, "launch", lambda argv, **kw: launched.update(argv=list(argv), **kw))
    given = ["train", str(recipe), "--nproc", "2", "--dist-timeout", "60", "--folds", "1,2", "--seeds", "0,1",
             "--max-epochs", "3", "--set", "training.lr=0.01", "--set", "normalization=global", "--no-resume",
             "--quiet", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, given)
    assert result.exit_code == 0, result.output
    assert launched["argv"][:2] == ["serkit.cli", "train"] and launched["nproc"] == 2
    command = typer.main.get_command(app).get_command(None, "train")
    params = lambda argv: command.make_context("train", list(argv)).params
    expected = {**params(given[1:]), "nproc": 1, "dist_timeout": None}  # the launch's own options stay with it
    assert params(launched["argv"][2:]) == expected
    # values left at their defaults stay off the line
    assert "--protocol" not in launched["argv"] and "--resume" not in launched["argv"]
