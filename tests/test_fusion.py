"""Late fusion of finished runs (serkit.training.fusion and `serkit fuse`), on run folders written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score
from typer.testing import CliRunner

from serkit.cli import app
from serkit.errors import ConfigError
from serkit.recipe import Recipe
from serkit.training.fusion import fuse_runs

LABELS = ["angry", "happy", "sad"]
SPEAKERS = ["s1", "s2", "s3"]
UTTERANCES = [f"{spk}-{i}" for spk in SPEAKERS for i in range(6)]
TRUTH = [LABELS[i % 3] for i in range(len(UTTERANCES))]


def _recipe(name: str, seeds: list[int], *, protocol: str = "loso") -> Recipe:
    return Recipe.model_validate({
        "name": name, "corpus": {"name": "folder", "root": "unused"}, "audio": {"sample_rate": 16000},
        "frontend": {"name": "egemaps"}, "model": {"name": "svm"},
        "protocol": {"name": protocol, "seeds": seeds},
    })


def write_run(run: Path, probs: dict[int, np.ndarray], *, name: str = "sys", folds_of=None,
              utterances=UTTERANCES, labels=LABELS, finished: bool = True, protocol: str = "loso",
              truth=TRUTH) -> Path:
    """A run folder as serkit train leaves it: recipe, splits, one folder per fold (and seed) with its results.

    ``probs`` maps a seed to (utterances, labels) probabilities; folds are one test speaker each.
    """
    folds_of = folds_of or (lambda utt: utt.split("-")[0])
    _recipe(name, sorted(probs), protocol=protocol).save(run / "recipe.yaml")
    split_rows = []
    for seed, p in probs.items():
        frame = pd.DataFrame({"utterance_id": utterances, "path": [f"/a/{u}.wav" for u in utterances],
                              "speaker": [u.split("-")[0] for u in utterances], "true": truth[: len(utterances)]})
        frame["pred"] = np.asarray(labels)[p.argmax(axis=1)]
        for j, label in enumerate(labels):
            frame[f"p_{label}"] = p[:, j]
        frame["group"] = [folds_of(u) for u in utterances]
        for group, part in frame.groupby("group"):
            fold = f"fold-{group}" + (f"-seed{seed}" if len(probs) > 1 else "")
            split_rows.append({"name": fold, "seed": seed, "tag": "SI"})
            fold_dir = run / "folds" / fold
            fold_dir.mkdir(parents=True)
            if not finished and group == "s3":
                continue
            part.drop(columns="group").assign(fold=fold, seed=seed).to_csv(fold_dir / "predictions.csv", index=False)
            (fold_dir / "result.json").write_text(json.dumps({
                "fold": fold, "seed": seed, "tag": "SI", "test_speakers": group, "wa": 0.5, "ua": 0.5,
                "macro_f1": 0.5, "train_seconds": 10.0}))
    pd.DataFrame(split_rows).to_csv(run / "splits.csv", index=False)
    return run


def _probs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(len(LABELS)), size=len(UTTERANCES))


def test_fusion_averages_seeds_then_runs_with_the_weights(tmp_path):
    a = write_run(tmp_path / "a", {0: _probs(0), 1: _probs(1)}, name="cnn")
    b = write_run(tmp_path / "b", {0: _probs(2)}, name="svm")
    result = fuse_runs([a, b], tmp_path / "fused", weights=[3, 1])

    expected = 0.75 * (_probs(0) + _probs(1)) / 2 + 0.25 * _probs(2)
    fused = pd.read_csv(tmp_path / "fused" / "predictions.csv").set_index("utterance_id").loc[UTTERANCES]
    np.testing.assert_allclose(fused[[f"p_{c}" for c in LABELS]].to_numpy(), expected, atol=1e-6)
    assert (fused["pred"].to_numpy() == np.asarray(LABELS)[expected.argmax(axis=1)]).all()

    # per-fold UA is recomputed from the fused predictions, one fold per test speaker (seeds merged)
    per_fold = result.per_fold.set_index("fold")
    assert sorted(per_fold.index) == ["fold-s1", "fold-s2", "fold-s3"]
    for spk in SPEAKERS:
        part = fused[fused["speaker"] == spk]
        assert per_fold.loc[f"fold-{spk}", "ua"] == pytest.approx(
            recall_score(part["true"], part["pred"], average="macro"))
    assert per_fold["train_seconds"].tolist() == [30.0, 30.0, 30.0]  # 2 seeds of a + 1 of b, per fold
    summary = json.loads((tmp_path / "fused" / "summary.json").read_text())
    assert summary["recipe"] == "cnn+svm" and summary["protocol_tag"] == "SI" and summary["seeds"] == [0, 1]
    assert [m["weight"] for m in summary["fusion"]] == [0.75, 0.25]
    assert "Late fusion of" in (tmp_path / "fused" / "results.md").read_text()
    assert (tmp_path / "fused" / "confusion.png").stat().st_size > 0
    assert not (a / "results.md").exists() and not (b / "summary.json").exists()  # members are read, not written


def test_fusion_of_one_run_is_its_seed_ensemble(tmp_path):
    a = write_run(tmp_path / "a", {0: _probs(0), 1: _probs(1), 2: _probs(5)})
    fuse_runs([a], tmp_path / "ens", name="ensemble")
    fused = pd.read_csv(tmp_path / "ens" / "predictions.csv").set_index("utterance_id").loc[UTTERANCES]
    np.testing.assert_allclose(fused[[f"p_{c}" for c in LABELS]].to_numpy(),
                               (_probs(0) + _probs(1) + _probs(5)) / 3, atol=1e-6)
    assert json.loads((tmp_path / "ens" / "summary.json").read_text())["recipe"] == "ensemble"


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"utterances": UTTERANCES[:-1]}, "other utterances"),
        ({"folds_of": lambda u: "s1" if u.startswith(("s1", "s2")) else "s3"}, "group the utterances differently"),
        ({"labels": ["angry", "happy", "neutral"]}, "labels"),
        ({"finished": False}, "did not finish"),
        ({"protocol": "speaker_folds"}, "protocol"),
        ({"truth": TRUTH[1:] + TRUTH[:1]}, "other true labels"),
    ],
)
def test_fusion_refuses_runs_that_do_not_match(tmp_path, other, message):
    a = write_run(tmp_path / "a", {0: _probs(0)})
    n = len(other.get("utterances", UTTERANCES))
    b = write_run(tmp_path / "b", {0: _probs(1)[:n]}, **other)
    with pytest.raises(ConfigError, match=message):
        fuse_runs([a, b], tmp_path / "fused")
    assert not (tmp_path / "fused" / "results.md").exists()


def test_fusion_checks_weights_and_folders(tmp_path):
    a = write_run(tmp_path / "a", {0: _probs(0)})
    for weights in ([1.0, 2.0], [-1.0], [0.0], [float("nan")]):
        with pytest.raises(ConfigError, match="weights"):
            fuse_runs([a], tmp_path / "f", weights=weights)
    with pytest.raises(ConfigError, match="not a serkit run folder"):
        fuse_runs([a, tmp_path], tmp_path / "f")


def test_cli_fuse(tmp_path):
    a = write_run(tmp_path / "a", {0: _probs(0)}, name="cnn")
    b = write_run(tmp_path / "b", {0: _probs(1)}, name="svm")
    runner = CliRunner()
    ok = runner.invoke(app, ["fuse", str(a), str(b), "--out", str(tmp_path / "f"), "--weights", "1,1"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "f" / "results.md").exists()
    bad = runner.invoke(app, ["fuse", str(a), str(b), "--out", str(tmp_path / "g"), "--weights", "1,x"])
    assert bad.exit_code == 2 and "--weights" in bad.output
