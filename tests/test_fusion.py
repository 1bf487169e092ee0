"""Late fusion of finished runs (serkit.training.fusion and `serkit fuse`), on run folders written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import recall_score
from typer.testing import CliRunner

from serkit.cli import app
from serkit.errors import ConfigError
from serkit.recipe import FusionRecipe, Recipe
from serkit.training.fusion import fuse_runs, run_fusion

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


# -- fusion recipes: `serkit train FUSION.yaml` trains the members, then fuses them --------------------------------

def _member_recipe(manifest: Path, name: str, *, hidden=(8, 4), protocol: str = "loso") -> dict:
    return {
        "name": name,
        "corpus": {"name": "csv", "root": str(manifest)},
        "audio": {"sample_rate": 8000, "duration": 0.5},
        "frontend": {"name": "mfcc", "n_mfcc": 12, "n_fft": 256, "hop_length": 128, "n_mels": 32},
        "pooling": "mean",
        "model": {"name": "mountzouris2023_sdnn", "hidden": list(hidden), "dropout": 0.0},
        "protocol": {"name": protocol, "n_val_speakers": 1, "seeds": [0]},
        "training": {"max_epochs": 2, "batch_size": 8, "lr": 0.01, "early_stopping_patience": None,
                     "num_threads": 1},
    }


@pytest.fixture(scope="module")
def tone_manifest(tmp_path_factory) -> Path:
    from conftest import write_tone_corpus

    return write_tone_corpus(tmp_path_factory.mktemp("fusion_corpus"))


def _write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _fusion_files(folder: Path, manifest: Path, **second) -> Path:
    """A fusion recipe of two small networks (the first with 2 seeds), member files beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_yaml(folder / "wide.yaml", _member_recipe(manifest, "wide", hidden=(16, 8)))
    _write_yaml(folder / "narrow.yaml", _member_recipe(manifest, "narrow", **second))
    return _write_yaml(folder / "fusion.yaml", {
        "name": "tiny_fusion", "description": "two networks",
        "members": [{"recipe": "wide.yaml", "seeds": [0, 1], "weight": 3},
                    {"recipe": "narrow.yaml", "weight": 1, "set": {"training.lr": 0.02}}],
    })


def _fused_probs(run: Path) -> pd.DataFrame:
    preds = pd.read_csv(run / "predictions.csv")
    return preds.groupby("utterance_id")[[c for c in preds.columns if c.startswith("p_")]].mean().sort_index()


def test_fusion_recipe_trains_the_members_then_fuses_them(tmp_path, tone_manifest, one_torch_thread):
    fusion = _fusion_files(tmp_path / "recipes", tone_manifest)
    out = tmp_path / "run"
    runner = CliRunner()
    done = runner.invoke(app, ["train", str(fusion), "--out", str(out), "--quiet", "--set", "training.max_epochs=3"])
    assert done.exit_code == 0, done.output

    wide, narrow = out / "members" / "wide", out / "members" / "narrow"
    assert sorted(pd.read_csv(wide / "results.csv")["seed"].unique()) == [0, 1]
    # every member got its own fields, then the command line's
    assert Recipe.from_yaml(narrow / "recipe.yaml").training.lr == 0.02
    assert Recipe.from_yaml(wide / "recipe.yaml").training.lr == 0.01
    assert {Recipe.from_yaml(m / "recipe.yaml").training.max_epochs for m in (wide, narrow)} == {3}
    # the fused probabilities: each member's seed mean, then 3:1
    expected = 0.75 * _fused_probs(wide) + 0.25 * _fused_probs(narrow)
    np.testing.assert_allclose(_fused_probs(out).to_numpy(), expected.to_numpy(), atol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"] == "tiny_fusion" and summary["protocol_tag"] == "SI" and summary["folds"] == 3
    assert [m["weight"] for m in summary["fusion"]] == [0.75, 0.25]

    # a second call reads the finished members again instead of training them
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("members/*/folds/*/result.json")}
    again = runner.invoke(app, ["train", str(fusion), "--out", str(out), "--quiet", "--set", "training.max_epochs=3"])
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in out.glob("members/*/folds/*/result.json")} == stamps
    np.testing.assert_allclose(_fused_probs(out).to_numpy(), expected.to_numpy(), atol=1e-6)
    # ...and a changed fusion is not mixed into that folder
    other = runner.invoke(app, ["train", str(fusion), "--out", str(out), "--quiet"])
    assert other.exit_code == 2 and "different recipe" in other.output


def test_fusion_recipe_checks_its_members_before_training(tmp_path, tone_manifest):
    runner = CliRunner()
    mismatched = _fusion_files(tmp_path / "a", tone_manifest, protocol="holdout")
    result = runner.invoke(app, ["train", str(mismatched), "--out", str(tmp_path / "run_a"), "--quiet"])
    assert result.exit_code == 2 and "narrow's protocol" in result.output
    assert not (tmp_path / "run_a" / "members").exists()

    missing = _write_yaml(tmp_path / "b.yaml", {"name": "f", "members": [{"recipe": "nowhere.yaml"}]})
    result = runner.invoke(app, ["train", str(missing), "--out", str(tmp_path / "run_b"), "--quiet"])
    assert result.exit_code == 2 and "member 1 (nowhere.yaml)" in result.output and "not found" in result.output

    same_name = _write_yaml(tmp_path / "a" / "twice.yaml", {
        "name": "f", "members": [{"recipe": "wide.yaml"}, {"recipe": "wide.yaml", "weight": 2}]})
    result = runner.invoke(app, ["train", str(same_name), "--out", str(tmp_path / "run_c"), "--quiet"])
    assert result.exit_code == 2 and "share a folder name" in result.output

    bad_field = _write_yaml(tmp_path / "a" / "bad.yaml", {"name": "f", "members": [{"recipe": "wide.yaml", "weight": -1}]})
    result = runner.invoke(app, ["train", str(bad_field), "--out", str(tmp_path / "run_d"), "--quiet"])
    assert result.exit_code == 2 and "members.0.weight" in result.output

    fusion = _fusion_files(tmp_path / "c", tone_manifest)
    for flags, message in ((["--nproc", "2"], "--nproc"), (["--folds", "1"], "--folds")):
        result = runner.invoke(app, ["train", str(fusion), "--out", str(tmp_path / "run_e"), "--quiet", *flags])
        assert result.exit_code == 2 and message in result.output
    listed = runner.invoke(app, ["train", str(fusion), "--list-folds"])
    # the first member's folds: header + 3 LOSO folds x its 2 seeds
    assert listed.exit_code == 0 and len(listed.output.strip().splitlines()) == 1 + 3 * 2


@pytest.mark.slow
def test_fusion_recipe_with_fold_workers_matches_one_process(tmp_path, tone_manifest, one_torch_thread):
    _fusion_files(tmp_path / "recipes", tone_manifest)
    # one member of one seed: 3 fold workers (each a fresh interpreter importing torch)
    fusion = _write_yaml(tmp_path / "recipes" / "one.yaml", {"name": "one", "members": [{"recipe": "narrow.yaml"}]})
    serial = run_fusion(FusionRecipe.from_yaml(fusion), tmp_path / "serial", recipe_file=fusion, progress=False)
    parallel = run_fusion(FusionRecipe.from_yaml(fusion), tmp_path / "parallel", recipe_file=fusion, jobs=2,
                          progress=False)
    assert (tmp_path / "parallel" / "members" / "narrow" / "fanout" / "jobs.csv").exists()
    np.testing.assert_allclose(_fused_probs(tmp_path / "parallel").to_numpy(),
                               _fused_probs(tmp_path / "serial").to_numpy(), atol=1e-5)
    assert parallel.overall["mean"]["ua"] == pytest.approx(serial.overall["mean"]["ua"])
