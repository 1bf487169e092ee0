"""Fold fan-out: fold selection, workers sharing a run folder, a killed worker retried or reported, the table."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import write_tone_corpus
from serkit.cli import app
from serkit.errors import ConfigError
from serkit.recipe import Recipe
from serkit.training.experiment import run_experiment, select_folds
from serkit.training.fanout import collect_run, list_folds, run_fanout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """3 speakers x 3 emotions x 3 half-second clips; the emotion sets the pitch."""
    root = tmp_path_factory.mktemp("fanout_corpus")
    return write_tone_corpus(root)


def recipe_for(manifest: Path, epochs: int = 3) -> Recipe:
    return Recipe.from_dict({
        "name": "tiny_fanout",
        "corpus": {"name": "csv", "root": str(manifest)},
        "audio": {"sample_rate": 8000, "duration": 0.5},
        "frontend": {"name": "mfcc", "n_mfcc": 12, "n_fft": 256, "hop_length": 128, "n_mels": 32},
        "pooling": "mean",
        "model": {"name": "mountzouris2023_sdnn", "hidden": [8, 4], "dropout": 0.0},
        "protocol": {"name": "loso", "n_val_speakers": 1, "seeds": [0]},
        "training": {"max_epochs": epochs, "batch_size": 8, "lr": 0.01, "early_stopping_patience": None,
                     "num_threads": 1},
    })


def test_select_folds_by_number_and_name():
    names = ["fold01-a", "fold02-b", "fold03-c"]
    assert select_folds(names, None) == names
    assert select_folds(names, ["3", "fold01-a", "1"]) == ["fold03-c", "fold01-a"]
    with pytest.raises(ConfigError, match="folds 1..3"):
        select_folds(names, ["4"])
    with pytest.raises(ConfigError, match="no such fold.*fold01-a"):
        select_folds(names, ["fold9"])


def test_folds_run_separately_then_the_last_writes_the_table(corpus, tmp_path):
    recipe = recipe_for(corpus)
    cache = tmp_path / "cache"
    folds = list_folds(recipe)["name"].tolist()
    assert len(folds) == 3
    out = tmp_path / "run"
    first = run_experiment(recipe, out, progress=False, cache_dir=cache, folds=["1"])
    assert first.pending == folds[1:] and len(first.per_fold) == 1
    assert not (out / "results.csv").exists()  # no table from one fold of three
    # A "second machine" runs the rest into the same folder; its last fold writes the table of all three.
    rest = run_experiment(recipe, out, progress=False, cache_dir=cache, folds=folds[1:])
    assert rest.pending == [] and len(rest.per_fold) == 3
    assert rest.overall["folds"] == 3 and "missing_folds" not in rest.overall
    assert len(pd.read_csv(out / "results.csv")) == 3

    # collect: a fold without result.json is named as missing; the table holds the others.
    (out / "folds" / folds[1] / "result.json").unlink()
    result, missing = collect_run(out)
    assert missing == [folds[1]]
    assert len(result.per_fold) == 2 and result.overall["missing_folds"] == [folds[1]]
    assert "INCOMPLETE" in (out / "results.md").read_text() and folds[1] in (out / "results.md").read_text()
    cli = CliRunner().invoke(app, ["collect", str(out)])
    assert cli.exit_code == 1 and folds[1] in cli.output


def test_cli_lists_folds(corpus, tmp_path):
    path = tmp_path / "recipe.yaml"
    recipe_for(corpus).save(path)
    result = CliRunner().invoke(app, ["train", str(path), "--list-folds"])
    assert result.exit_code == 0, result.output
    for name in list_folds(recipe_for(corpus))["name"]:
        assert name in result.output
    bad = CliRunner().invoke(app, ["train", str(path), "--folds", "7", "--out", str(tmp_path / "run")])
    assert bad.exit_code == 2 and "folds 1..3" in bad.output


def _kill_worker(out: Path, fold_box: list, kills: list, max_kills: int, stop: threading.Event) -> None:
    """SIGKILL the worker of the first fold: once mid-training (after a checkpoint), then at once on retry."""
    while not stop.is_set() and len(kills) < max_kills:
        if not fold_box and (out / "splits.csv").exists():
            fold_box.append(pd.read_csv(out / "splits.csv")["name"].iloc[0])
        pid_file = out / "fanout" / f"{fold_box[0]}.pid" if fold_box else None
        if pid_file is not None and pid_file.exists():
            try:
                pid = int(pid_file.read_text())
            except ValueError:
                pid = None
            if pid is not None and pid not in kills:
                checkpoint = out / "folds" / fold_box[0] / "last.pt"
                while not kills and not checkpoint.exists() and _alive(pid) and not stop.is_set():
                    time.sleep(0.01)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                kills.append(pid)
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_killed_worker_is_retried_reported_and_resumed(corpus, tmp_path):
    recipe = recipe_for(corpus, epochs=60)  # the watcher kills within ~10 ms of the first checkpoint
    out, cache = tmp_path / "run", tmp_path / "cache"
    fold_box: list = []
    kills: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_worker, args=(out, fold_box, kills, 2, stop), daemon=True)
    watcher.start()
    try:
        report = run_fanout(recipe, out, jobs=2, retries=1, cache_dir=cache, progress=False)
    finally:
        stop.set()
        watcher.join(10)
    fold = fold_box[0]
    assert len(kills) == 2
    jobs = {j.fold: j for j in report.jobs}
    assert jobs[fold].status == "failed" and jobs[fold].attempts == 2 and jobs[fold].returncode == -signal.SIGKILL
    assert report.failed == [fold] and report.missing == [fold]
    others = [f for f in jobs if f != fold]
    assert all(jobs[f].status == "finished" and jobs[f].attempts == 1 for f in others)
    # The table was built from what finished and says what is missing; the failure is on record.
    assert report.result is not None and len(report.result.per_fold) == 2
    assert "INCOMPLETE" in (out / "results.md").read_text()
    recorded = pd.read_csv(out / "fanout" / "jobs.csv").set_index("fold")
    assert recorded.loc[fold, "status"] == "failed" and recorded.loc[fold, "attempts"] == 2
    assert (out / "folds" / fold / "last.pt").exists()  # killed after its first checkpoint

    # Run again: only the failed fold runs, resuming from its checkpoint, and the table is complete.
    again = run_fanout(recipe, out, jobs=2, cache_dir=cache, progress=False)
    assert [j.fold for j in again.jobs] == [fold] and again.failed == [] and again.missing == []
    assert len(again.result.per_fold) == 3 and "INCOMPLETE" not in (out / "results.md").read_text()
    result = json.loads((out / "folds" / fold / "result.json").read_text())
    assert result["epochs_run"] == 60
    assert len(pd.read_csv(out / "folds" / fold / "log.csv")) == 60  # one history, no epoch lost or repeated
