"""A training pool over several corpora: seven unified classes, class/corpus rebalancing, leave-one-corpus-out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serkit.augment import RebalanceConfig, balance_weights, rebalance_rows, systematic_resample
from serkit.errors import ConfigError
from serkit.models.bundle import ModelBundle
from serkit.recipe import Recipe
from serkit.training.experiment import load_recipe_corpus, run_experiment
from serkit.training.protocols import ProtocolConfig, make_splits

SEVEN = ["angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]


def test_balance_weights_single_grouping_is_inverse_frequency():
    labels = ["a"] * 6 + ["b"] * 3 + ["c"]
    w = balance_weights({"label": labels})
    # hand computation: class weights 1/6, 1/3, 1 scaled to mean 1 over 10 items (sum 3 -> x 10/3)
    np.testing.assert_allclose(w, [10 / 18] * 6 + [10 / 9] * 3 + [10 / 3])
    np.testing.assert_allclose(balance_weights({"label": labels}, strength=0.0), np.ones(10))
    half = balance_weights({"label": labels}, strength=0.5)
    assert half[0] < 1 < half[-1] < w[-1]  # in between
    with pytest.raises(ConfigError, match="different lengths"):
        balance_weights({"label": labels, "corpus": ["x"]})


def test_balance_weights_two_margins_with_a_missing_cell():
    rng = np.random.default_rng(0)
    corpus = np.repeat(["big", "mid", "small"], [400, 150, 50])
    label = rng.choice(["x", "y", "z"], corpus.size, p=[0.6, 0.3, 0.1])
    label[(corpus == "small") & (label == "z")] = "x"  # the small corpus lacks class z
    w = balance_weights({"corpus": corpus, "label": label})
    by_corpus = pd.Series(w).groupby(corpus).sum()
    by_label = pd.Series(w).groupby(label).sum()
    np.testing.assert_allclose(by_corpus, corpus.size / 3, rtol=1e-6)
    np.testing.assert_allclose(by_label, corpus.size / 3, rtol=1e-6)
    assert w[(corpus == "small") & (label == "z")].size == 0


def test_systematic_resample_counts_are_floor_or_ceil_and_seeded():
    w = np.array([0.1, 2.5, 1.0, 0.4])
    draws = [systematic_resample(w, 40, np.random.default_rng(s)) for s in range(5)]
    expected = 40 * w / w.sum()
    for d in draws:
        counts = np.bincount(d, minlength=4)
        assert counts.sum() == 40
        assert np.all((counts == np.floor(expected)) | (counts == np.ceil(expected)))
    np.testing.assert_array_equal(systematic_resample(w, 40, np.random.default_rng(3)), draws[3])


def test_rebalance_rows_uses_only_the_training_rows():
    table = pd.DataFrame({
        "label": ["a"] * 30 + ["b"] * 10 + ["a"] * 5 + ["b"] * 15,
        "corpus": ["c1"] * 40 + ["c2"] * 20,
    })
    train = np.arange(40)  # c2 is held out
    rows = rebalance_rows(train, table, RebalanceConfig(by=["label"]), seed=0)
    assert set(rows) <= set(train) and rows.size == 40
    assert (table["label"].iloc[rows].value_counts() == 20).all()
    again = rebalance_rows(train, table, RebalanceConfig(by=["label"]), seed=0)
    np.testing.assert_array_equal(rows, again)
    assert rebalance_rows(train, table, RebalanceConfig(by=["label"], size=10), seed=0).size == 10
    with pytest.raises(ConfigError, match="rebalance.by"):
        rebalance_rows(train, table, RebalanceConfig(by=["gender"]), seed=0)


def _pool_table() -> pd.DataFrame:
    rows = []
    layout = {"emodb": (4, SEVEN[:6]), "ravdess": (6, SEVEN), "nemo": (3, [c for c in SEVEN if c != "disgust"]),
              "emovo": (3, SEVEN)}
    for corpus, (n_speakers, labels) in layout.items():
        for s in range(n_speakers):
            for label in labels:
                for k in range(2):
                    rows.append({"corpus": corpus, "speaker": f"{corpus}-{s}", "label": label})
    return pd.DataFrame(rows)


def test_leave_one_corpus_out_folds():
    table = _pool_table()
    splits = make_splits(table, ProtocolConfig(name="leave_one_corpus_out", val_size=0.3, seeds=[0, 1]))
    assert len(splits) == 8
    corpus = table["corpus"].to_numpy()
    tested = []
    for split in splits:
        held = set(corpus[split.test])
        assert len(held) == 1
        tested.append(held.pop())
        # no corpus and no speaker crosses parts; the held-out corpus is tested whole
        assert not (set(corpus[split.train]) | set(corpus[split.val])) & set(corpus[split.test])
        assert not set(split.train_speakers) & set(split.val_speakers)
        assert split.tag == "SI" and split.test.size == (corpus == tested[-1]).sum()
        # every training corpus gives validation speakers: round(0.3 * speakers), at least one
        val_per_corpus = pd.Series(split.val_speakers).str.split("-").str[0].value_counts().to_dict()
        expected = {"emodb": 1, "ravdess": 2, "nemo": 1, "emovo": 1}
        assert val_per_corpus == {c: n for c, n in expected.items() if c != tested[-1]}
    assert sorted(tested[:4]) == sorted(set(corpus)) and tested[:4] == tested[4:]
    # a corpus validates with the same speakers in every fold it trains in
    ravdess_val = {tuple(s for s in split.val_speakers if s.startswith("ravdess")) for split in splits[:4]
                   if "ravdess" not in split.name}
    assert len(ravdess_val) == 1
    assert not make_splits(table, ProtocolConfig(name="leave_one_corpus_out"))[0].val.size  # val_size 0: none


def test_leave_one_corpus_out_errors():
    table = _pool_table()
    with pytest.raises(ConfigError, match="at least two corpora"):
        make_splits(table[table["corpus"] == "emodb"], ProtocolConfig(name="leave_one_corpus_out"))
    with pytest.raises(ConfigError, match="leaves none"):
        make_splits(table, ProtocolConfig(name="leave_one_corpus_out", val_size=0.9))
    with pytest.raises(ConfigError, match="corpus"):
        make_splits(table.drop(columns="corpus"), ProtocolConfig(name="leave_one_corpus_out"))


@pytest.fixture(scope="module")
def tone_pool(tmp_path_factory) -> list[Path]:
    """Three tiny CSV corpora (2 speakers each) of tones whose pitch is the emotion, with unequal sizes and a
    class ('calm') outside the seven that the pool drops."""
    base = tmp_path_factory.mktemp("pool")
    freqs = {"angry": 300.0, "sad": 700.0, "happy": 1500.0, "calm": 1000.0}
    rng = np.random.default_rng(0)
    manifests = []
    for c, (name, clips) in enumerate([("alpha", 4), ("beta", 2), ("gamma", 1)]):
        root = base / name
        root.mkdir()
        rows = []
        for s in range(2):
            for label, freq in freqs.items():
                for k in range(clips + (2 if label == "angry" else 0)):
                    t = np.arange(4000) / 8000
                    y = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.01 * (s + c + k)) * t) + 0.02 * rng.standard_normal(
                        t.size)
                    file = f"s{s}_{label}_{k}.wav"
                    sf.write(root / file, y.astype(np.float32), 8000)
                    rows.append({"path": file, "label": label, "speaker": f"s{s}"})
        pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
        manifests.append(root / "manifest.csv")
    return manifests


def _tiny_loco_recipe(tone_pool, name: str, model: dict, augment: dict | None = None, **fields) -> Recipe:
    """Leave one corpus out over the tone pool: eGeMAPS, rebalanced by corpus and label, half the speakers validate."""
    return Recipe.from_dict({
        "name": name,
        "corpus": [{"name": "csv", "root": str(m), "labels": SEVEN, "options": {"name": m.parent.name}}
                   for m in tone_pool],
        "audio": {"sample_rate": 8000},
        "frontend": {"name": "egemaps"},
        "model": model,
        "protocol": {"name": "leave_one_corpus_out", "val_size": 0.5},
        "augment": {"rebalance": {"by": ["corpus", "label"]}, **(augment or {})},
        **fields,
    })


def test_pool_recipe_loco_with_rebalancing_runs(tone_pool, tmp_path):
    recipe = _tiny_loco_recipe(tone_pool, "tiny_pool_loco", {"name": "svm", "C": [1.0]})
    corpus = load_recipe_corpus(recipe)
    assert corpus.labels == ["angry", "happy", "sad"]  # calm is not one of the seven
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    assert res.protocol_tag == "SI" and len(res.per_fold) == 3
    assert sorted(res.per_fold["fold"].str.split("=").str[1]) == ["alpha", "beta", "gamma"]
    assert (res.per_fold["n_rebalanced"] == res.per_fold["n_train"]).all()
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert len(preds) == len(corpus)  # every clip tested once, in its corpus's fold


def test_repeated_rows_repeat_their_segments():
    from serkit.training.experiment import _segment_items

    owner = np.array([0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(_segment_items(np.array([0, 2, 2]), owner), [0, 1, 3, 4, 5, 3, 4, 5])
    np.testing.assert_array_equal(_segment_items(np.array([0, 2]), owner), [0, 1, 3, 4, 5])


def test_pool_recipe_chooses_C_by_leaving_training_corpora_out(tone_pool, tmp_path):
    recipe = _tiny_loco_recipe(
        tone_pool, "tiny_pool_loco_groups",
        {"name": "logreg", "C": [0.001, 0.1], "select_on": "groups", "refit": False},
        augment={"noise": {"fraction": 1.0}},
        calibration={"method": "temperature", "fit_on": "cross_fit", "folds": 2})
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    assert (res.per_fold["selected_on"] == "groups").all()
    assert set(res.per_fold["chosen_C"]) <= {0.001, 0.1}
    assert not res.per_fold["refit_on_val"].any()
    assert (res.per_fold["n_augmented"] > 0).all() and (res.per_fold["calibration_items"] > 0).all()
    for fold in res.per_fold["fold"]:
        # the groups left out are exactly the fold's training corpora (degraded copies included): never the test one
        test_corpus = fold.split("=")[1]
        model = ModelBundle.load(tmp_path / "run" / "folds" / fold / "model.pt").model
        for entry in model.selection:
            assert set(entry["per_group"]) == {"alpha", "beta", "gamma"} - {test_corpus}


def test_pool_recipe_projects_out_the_training_corpora_direction(tone_pool, tmp_path):
    # nuisance_dims needs every training item's corpus: in the fold's fit and in each cross-fitted calibration fit
    recipe = _tiny_loco_recipe(
        tone_pool, "tiny_pool_loco_nap", {"name": "logreg", "C": [0.1], "nuisance_dims": 1, "refit": False},
        calibration={"method": "temperature", "fit_on": "cross_fit", "folds": 2})
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    assert (res.per_fold["nuisance_dims"] == 1).all() and (res.per_fold["calibration_items"] > 0).all()
    for fold in res.per_fold["fold"]:
        bundle = ModelBundle.load(tmp_path / "run" / "folds" / fold / "model.pt")
        directions = bundle.model.nuisance_directions
        assert directions.shape == (1, bundle.input_shape[0])
        np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
