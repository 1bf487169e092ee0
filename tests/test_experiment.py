"""End to end on a tiny synthetic corpus: recipe -> features -> LOSO folds -> results, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml
from typer.testing import CliRunner

from serkit.cli import app
from serkit.errors import ConfigError
from serkit.recipe import FusionRecipe, Recipe, load_recipe
from serkit.training.experiment import run_experiment

FREQS = {"angry": 300.0, "sad": 700.0, "happy": 1500.0}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """3 speakers x 3 emotions x 4 clips; the emotion sets the pitch, the speaker a small detune."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    rows = []
    for s, speaker in enumerate(["s1", "s2", "s3"]):
        for label, freq in FREQS.items():
            for k in range(4):
                t = np.arange(8000) / 8000
                f = freq * (1 + 0.02 * s) * (1 + 0.01 * k)
                amp = rng.uniform(0.15, 0.45)  # loudness varies within a speaker, so it is no speaker cue
                y = amp * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(t.size)
                name = f"{speaker}_{label}_{k}.wav"
                sf.write(root / name, y.astype(np.float32), 8000)
                rows.append({"path": name, "label": label, "speaker": speaker})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def cnn_recipe(root: Path, **extra) -> dict:
    recipe = {
        "name": "tiny_cnn_atn",
        "corpus": {"name": "csv", "root": str(root / "manifest.csv")},
        "audio": {"sample_rate": 8000, "duration": 1.0},
        "frontend": {"name": "mfcc", "n_mfcc": 20, "n_fft": 256, "hop_length": 128, "n_mels": 40},
        "model": {"name": "mountzouris2023_cnn_atn", "channels": [16, 16, 16, 16, 16],
                  "kernel_sizes": [3, 3, 3, 3, 3], "attention_units": 16, "dropout": 0.1},
        "protocol": {"name": "loso", "n_val_speakers": 1, "seeds": [0]},
        "training": {"max_epochs": 15, "batch_size": 8, "lr": 0.01, "early_stopping_patience": None},
    }
    recipe.update(extra)
    return recipe


def test_loso_run_writes_everything_and_resumes(tiny_corpus, tmp_path):
    recipe = Recipe.from_dict(cnn_recipe(tiny_corpus))
    out = tmp_path / "run"
    res = run_experiment(recipe, out, progress=False, cache_dir=tmp_path / "cache")
    assert res.protocol_tag == "SI"
    assert len(res.per_fold) == 3
    assert sorted(res.per_fold["test_speakers"]) == ["s1", "s2", "s3"] or all(
        t.endswith(("s1", "s2", "s3")) for t in res.per_fold["test_speakers"])
    assert res.overall["mean"]["ua"] > 0.6  # pitch separates the classes; chance is 1/3
    for name in ["recipe.yaml", "results.csv", "results.md", "summary.json", "confusion.png", "predictions.csv",
                 "splits.csv", "corpus_problems.csv"]:
        assert (out / name).exists(), name
    md = (out / "results.md").read_text()
    assert "SI" in md and "ua" in md.lower()
    folds = sorted((out / "folds").iterdir())
    assert len(folds) == 3
    for fold in folds:
        for name in ["result.json", "predictions.csv", "confusion.png", "curves.png", "log.csv", "model.pt"]:
            assert (fold / name).exists(), (fold, name)
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 36 and preds["utterance_id"].is_unique  # every clip tested exactly once

    # Resume: finished folds are read back, not retrained.
    stamps = {f: (f / "result.json").stat().st_mtime_ns for f in folds}
    again = run_experiment(recipe, out, progress=False, cache_dir=tmp_path / "cache")
    assert {f: (f / "result.json").stat().st_mtime_ns for f in folds} == stamps
    pd.testing.assert_frame_equal(again.per_fold, res.per_fold)

    # A different recipe in the same folder is refused rather than mixed in.
    other = recipe.with_overrides(**{"training.lr": 0.02})
    with pytest.raises(ConfigError, match="different recipe"):
        run_experiment(other, out, progress=False, cache_dir=tmp_path / "cache")


def test_broken_files_are_reported_and_the_run_goes_on(tiny_corpus, tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    manifest = pd.read_csv(tiny_corpus / "manifest.csv")
    manifest["path"] = [str(tiny_corpus / p) for p in manifest["path"]]
    (root / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (root / "empty.wav").write_bytes(b"")
    extra = pd.DataFrame([{"path": str(root / "broken.wav"), "label": "sad", "speaker": "s1"},
                          {"path": str(root / "empty.wav"), "label": "angry", "speaker": "s2"}])
    pd.concat([manifest, extra]).to_csv(root / "manifest.csv", index=False)
    recipe = Recipe.from_dict(cnn_recipe(root, training={"max_epochs": 1, "batch_size": 8}))
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    problems = pd.read_csv(tmp_path / "run" / "corpus_problems.csv")
    assert set(Path(p).name for p in problems["path"]) == {"broken.wav", "empty.wav"}
    assert problems["reason"].str.len().min() > 5
    assert res.per_fold["n_test"].sum() == 36


def test_augmented_copies_only_in_training(tiny_corpus, tmp_path):
    recipe = Recipe.from_dict(cnn_recipe(
        tiny_corpus, augment={"awgn": {"copies": 2, "snr_db": [10, 20]}},
        training={"max_epochs": 1, "batch_size": 8}))
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    for row in res.per_fold.itertuples():
        assert row.n_augmented == 2 * row.n_train
        assert row.n_test == 12  # one speaker's 12 clips, no copies
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert len(preds) == 36


def test_speed_copies_fit_a_fixed_duration_recipe(tiny_corpus, tmp_path):
    # Speed copies are shorter or longer than the originals; a fixed-duration recipe pads/crops them too.
    recipe = Recipe.from_dict(cnn_recipe(
        tiny_corpus, augment={"speed": {"copies": 2, "rates": [0.8, 1.25]}},
        training={"max_epochs": 2, "batch_size": 8, "mixup_alpha": 0.4}))
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    assert (res.per_fold["n_augmented"] == 2 * res.per_fold["n_train"]).all()
    assert res.per_fold["n_test"].tolist() == [12, 12, 12]


def test_svm_baseline_and_cli(tiny_corpus, tmp_path):
    recipe = {
        "name": "tiny_svm", "corpus": {"name": "csv", "root": str(tiny_corpus / "manifest.csv")},
        "audio": {"sample_rate": 8000}, "frontend": {"name": "egemaps"},
        "model": {"name": "svm", "C": [1.0, 10.0]}, "protocol": {"name": "loso"},
    }
    path = tmp_path / "svm.yaml"
    path.write_text(yaml.safe_dump(recipe))
    runner = CliRunner()
    env = {"SERKIT_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", str(path), "--out", str(out), "--quiet"], env=env)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol_tag"] == "SI" and summary["folds"] == 3
    assert summary["mean"]["ua"] > 0.6

    r = runner.invoke(app, ["evaluate", str(out)], env=env)
    assert r.exit_code == 0, r.output
    assert "UA" in r.output

    bad = tmp_path / "notaudio.wav"
    bad.write_text("hello")
    clip = tiny_corpus / "s1_sad_0.wav"
    r = runner.invoke(app, ["predict", "--model", str(out), str(clip), str(bad), "--json"],
                      env=env)
    assert r.exit_code == 1
    payload = json.loads(r.stdout[r.stdout.index("{"):r.stdout.rindex("}") + 1])
    assert payload["predictions"][0]["label"] in FREQS
    assert payload["failures"][0]["path"].endswith("notaudio.wav")

    # Protocol override from the command line, and a bad recipe field named in the error.
    r = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "kf"), "--protocol", "kfold", "-q"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "kf" / "summary.json").read_text())["protocol_tag"] == "SD"
    # Any field can be overridden with --set; the run records the recipe it actually used.
    r = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "ps"), "-q", "--set", "normalization=per_speaker",
                            "--set", "model.C=[1.0]"], env=env)
    assert r.exit_code == 0, r.output
    used = Recipe.from_yaml(tmp_path / "ps" / "recipe.yaml")
    assert used.normalization == "per_speaker" and used.model.options["C"] == [1.0]
    r = runner.invoke(app, ["train", str(path), "--set", "normalisation"], env=env)
    assert r.exit_code == 2 and "FIELD=VALUE" in r.output
    recipe["training"] = {"max_epohcs": 3}
    path.write_text(yaml.safe_dump(recipe))
    r = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "x")], env=env)
    assert r.exit_code == 2 and "training.max_epohcs" in r.output


def test_shipped_recipes_validate_and_build():
    """Every recipe parses, and its model accepts what its audio config and frontend(s) produce; a fusion
    recipe's members exist and test the same utterances the same way."""
    from serkit.features import create_frontend
    from serkit.models import create_model, model_spec
    from serkit.recipe import check_recipe_streams

    recipes = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        recipe = load_recipe(path)
        if isinstance(recipe, FusionRecipe):
            assert len(recipe.member_recipes(recipe_file=path)) == len(recipe.members), path
            continue
        spec = model_spec(recipe.model.name)
        assert all(fc.output_kind(recipe.pooling) in spec.inputs for fc in recipe.frontend_configs.values()), path
        if spec.kind != "torch":
            continue
        # Segmented recipes feed segments of segments.length seconds; the others clips of audio.duration.
        seconds = (recipe.segments.length if recipe.segments is not None else recipe.audio.duration) or 3.0
        num_samples = round(seconds * recipe.audio.sample_rate)
        shapes = {name: create_frontend(fc, recipe.audio.sample_rate).output_shape(num_samples)
                  for name, fc in recipe.frontend_configs.items()}
        streams = check_recipe_streams(recipe)
        if streams:
            model = create_model(recipe.model.name, num_classes=8, input_shape=shapes, **recipe.model.options)
            out = model(*[torch.zeros(2, *shapes[name]) for name in streams])
        else:
            shape = shapes["features"]
            if recipe.pooling != "none":
                shape = shape[:-1] if recipe.pooling == "mean" else (*shape[:-2], 2 * shape[-2])
            model = create_model(recipe.model.name, num_classes=8, input_shape=shape, **recipe.model.options)
            out = model(torch.zeros(2, *shape))
        assert out.shape == (2, 8), path


def test_cross_corpus_run(tiny_corpus, tmp_path):
    """Train on one corpus (validation on its held-out speaker), test on another over the shared labels."""
    other = tmp_path / "other"
    other.mkdir()
    manifest = pd.read_csv(tiny_corpus / "manifest.csv")
    manifest = manifest[manifest["label"] != "happy"].assign(path=lambda d: [str(tiny_corpus / p) for p in d["path"]])
    manifest.to_csv(other / "manifest.csv", index=False)
    recipe = Recipe.from_dict(cnn_recipe(
        tiny_corpus,
        corpus=[{"name": "csv", "root": str(tiny_corpus / "manifest.csv"), "options": {"name": "train_set"}},
                {"name": "csv", "root": str(other / "manifest.csv"), "options": {"name": "test_set"}}],
        protocol={"name": "cross_corpus", "train_corpus": "train_set", "test_corpus": "test_set"},
        training={"max_epochs": 2, "batch_size": 8}))
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    assert res.protocol_tag == "SI"
    row = res.per_fold.iloc[0]
    assert row["n_test"] == len(manifest)
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert set(preds["true"]) == {"angry", "sad"}
    assert [c for c in preds.columns if c.startswith("p_")] == ["p_angry", "p_sad"]  # happy is not shared


def test_specaugment_and_per_speaker_normalisation_are_reported(tiny_corpus, tmp_path):
    recipe = Recipe.from_dict(cnn_recipe(
        tiny_corpus, normalization="per_speaker",
        augment={"specaugment": {"freq_masks": 1, "freq_width": 4, "time_masks": 1, "time_width": 5}},
        training={"max_epochs": 2, "batch_size": 8}))
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    assert len(res.per_fold) == 3
    assert "own unlabelled audio" in (tmp_path / "run" / "results.md").read_text()


def test_temperature_calibration_is_fitted_on_validation_and_travels_with_the_model(tiny_corpus, tmp_path):
    from serkit.inference.pipeline import EmotionPipeline
    from serkit.models.bundle import ModelBundle
    from serkit.models.calibration import apply_temperature, expected_calibration_error, fit_temperature

    base = {
        "name": "tiny_logreg", "corpus": {"name": "csv", "root": str(tiny_corpus / "manifest.csv")},
        "audio": {"sample_rate": 8000}, "frontend": {"name": "egemaps"},
        "model": {"name": "logreg", "C": [0.1, 1.0]}, "protocol": {"name": "loso", "n_val_speakers": 1},
    }
    run_experiment(Recipe.from_dict(base), tmp_path / "plain", progress=False, cache_dir=tmp_path / "c")
    res = run_experiment(Recipe.from_dict({**base, "calibration": "temperature"}), tmp_path / "cal",
                         progress=False, cache_dir=tmp_path / "c")
    fold = res.per_fold.iloc[0]
    assert fold["temperature"] > 0 and 0 <= fold["ece_after"] <= 1 and 0 <= fold["ece_before"] <= 1
    # the argmax is unchanged: the same predictions, other probabilities
    raw = pd.read_csv(tmp_path / "plain" / "predictions.csv")
    cal = pd.read_csv(tmp_path / "cal" / "predictions.csv")
    assert (raw["pred"] == cal["pred"]).all()
    cols = [c for c in raw.columns if c.startswith("p_")]
    first = raw["fold"] == fold["fold"]
    np.testing.assert_allclose(cal.loc[first, cols].to_numpy(),
                               apply_temperature(raw.loc[first, cols].to_numpy(), fold["temperature"],
                                                 probabilities=True), atol=1e-6)
    labels = sorted(FREQS)
    y_te = raw.loc[first, "true"].map(labels.index).to_numpy()
    assert fold["ece_before"] == pytest.approx(expected_calibration_error(raw.loc[first, cols].to_numpy(), y_te))
    # the temperature is the one that fits the validation speaker's clips as the chosen C's model saw them
    model_file = tmp_path / "cal" / "folds" / fold["fold"] / "model.pt"
    bundle = ModelBundle.load(model_file)
    assert bundle.info["temperature"] == pytest.approx(fold["temperature"])
    from serkit.corpora import load_corpus

    val = pd.read_csv(tmp_path / "cal" / "splits.csv").set_index("name").loc[fold["fold"], "val_speakers"]
    table = load_corpus("csv", tiny_corpus / "manifest.csv").utterances.reset_index(drop=True)
    y_val = table.loc[table["speaker"] == val, "label"].map(labels.index).to_numpy()
    assert len(bundle.model.validation_proba) == len(y_val) == 12
    assert fit_temperature(bundle.model.validation_proba, y_val, probabilities=True) == pytest.approx(
        fold["temperature"], rel=1e-3)
    # predictions from the model file are calibrated the same way
    clips = [str(tiny_corpus / p) for p in ("s1_sad_0.wav", "s1_angry_1.wav")]
    calibrated = EmotionPipeline.load(model_file).predict_files(clips).proba
    raw_model = ModelBundle.load(tmp_path / "plain" / "folds" / fold["fold"] / "model.pt")
    assert "temperature" not in raw_model.info
    plain_file = tmp_path / "plain" / "folds" / fold["fold"] / "model.pt"
    uncalibrated = EmotionPipeline.load(plain_file).predict_files(clips).proba
    np.testing.assert_allclose(calibrated, apply_temperature(uncalibrated, fold["temperature"], probabilities=True),
                               atol=1e-4)


def test_cross_fitted_temperature_uses_out_of_fold_predictions_of_every_training_speaker(tiny_corpus, tmp_path,
                                                                                           monkeypatch):
    from sklearn.model_selection import GroupKFold

    from serkit.training import experiment
    from serkit.corpora import load_corpus
    from serkit.features import FeatureCache
    from serkit.features.extractor import FeatureExtractor
    from serkit.features.normalization import FeatureNormalizer
    from serkit.models.classical import LogisticRegressionClassifier
    from serkit.training.protocols import make_splits

    recipe = Recipe.from_dict({
        "name": "tiny_logreg", "corpus": {"name": "csv", "root": str(tiny_corpus / "manifest.csv")},
        "audio": {"sample_rate": 8000}, "frontend": {"name": "egemaps"},
        "model": {"name": "logreg", "C": [0.1, 1.0]},
        "protocol": {"name": "holdout", "test_size": 0.25, "val_size": 0.2},  # all 3 speakers train
        "calibration": {"method": "temperature", "fit_on": "cross_fit", "folds": 3},
    })
    fitted_on = {}
    real_fit = experiment.fit_temperature

    def spy(proba, y, **kwargs):
        fitted_on.update(proba=np.asarray(proba), y=np.asarray(y))
        return real_fit(proba, y, **kwargs)

    monkeypatch.setattr(experiment, "fit_temperature", spy)
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "c")
    fold = res.per_fold.iloc[0]
    table = load_corpus("csv", tiny_corpus / "manifest.csv").utterances.reset_index(drop=True)
    split = make_splits(table, recipe.protocol)[0]
    # every training utterance once (out of fold), after the validation speakers' clips
    assert fold["calibration_items"] == len(split.train)
    assert len(fitted_on["y"]) == len(split.val) + len(split.train)
    assert fold["temperature"] == pytest.approx(real_fit(fitted_on["proba"], fitted_on["y"], probabilities=True))

    # the same out-of-fold probabilities from scratch: 3 speaker groups, a head with the chosen C trained on the
    # other groups, features normalised with the training split's statistics
    labels = sorted(FREQS)
    y = table["label"].map(labels.index).to_numpy()
    X = FeatureExtractor(recipe.audio, recipe.frontend, cache=FeatureCache(tmp_path / "c")).from_paths(
        table["path"].tolist()).X
    Z = FeatureNormalizer(scope="global").fit(X[split.train]).transform(X)
    speakers = table["speaker"].astype(str).to_numpy()
    groups = np.unique(speakers[split.train])
    expected, order = [], []
    for _, held in GroupKFold(n_splits=3).split(groups, groups=groups):
        fit_rows = split.train[~np.isin(speakers[split.train], groups[held])]
        rows = split.train[np.isin(speakers[split.train], groups[held])]
        head = LogisticRegressionClassifier(len(labels), C=fold["chosen_C"]).fit(Z[fit_rows], y[fit_rows])
        expected.append(head.predict_proba(Z[rows]))
        order.append(rows)
    np.testing.assert_allclose(fitted_on["proba"][len(split.val):], np.concatenate(expected), atol=1e-6)
    np.testing.assert_array_equal(fitted_on["y"][len(split.val):], y[np.concatenate(order)])
    assert not set(np.concatenate(order)) & set(split.test)  # the test clips never calibrate


def test_cross_fit_covers_rebalanced_augmented_training_and_a_default_grid(tiny_corpus, tmp_path, monkeypatch):
    from serkit.models.classical import LogisticRegressionClassifier
    from serkit.training import experiment

    fits = []
    real_fit = LogisticRegressionClassifier.fit

    def spy(self, X, y, X_val=None, y_val=None):
        fits.append((list(self.grid), len(X)))
        return real_fit(self, X, y, X_val, y_val)

    monkeypatch.setattr(LogisticRegressionClassifier, "fit", spy)
    recipe = Recipe.from_dict({
        "name": "tiny_logreg", "corpus": {"name": "csv", "root": str(tiny_corpus / "manifest.csv")},
        "audio": {"sample_rate": 8000}, "frontend": {"name": "egemaps"},
        "model": {"name": "logreg"},  # the default C grid
        "protocol": {"name": "holdout", "test_size": 0.25, "val_size": 0.2},
        "calibration": {"method": "temperature", "fit_on": "cross_fit", "folds": 3},
        "augment": {"rebalance": {"by": ["label"]}, "gain": {"fraction": 0.5}},
    })
    res = experiment.run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "c")
    fold = res.per_fold.iloc[0]
    assert fold["calibration_items"] == fold["n_train"]  # each original training clip once, not its repeats/copies
    assert fold["n_augmented"] == round(0.5 * fold["n_train"])
    (main_grid, n_main), *copies = fits
    assert len(main_grid) > 1 and len(copies) == 3
    # the copies keep the C the fold's model chose, and each trains on the other speakers' items only
    assert all(grid == [fold["chosen_C"]] for grid, _ in copies)
    assert sum(n for _, n in copies) == 2 * n_main  # every item left out by exactly one of the three groups
    assert np.isfinite(fold["temperature"]) and 0 <= fold["ece_after"] <= 1


def test_calibration_config_reads_the_short_forms_and_checks_its_fields():
    from pydantic import ValidationError

    from serkit.models.calibration import CalibrationConfig

    assert CalibrationConfig.model_validate("temperature") == CalibrationConfig(method="temperature")
    assert not CalibrationConfig.model_validate("none").enabled
    with pytest.raises(ValidationError):
        CalibrationConfig.model_validate({"method": "temperature", "fit_on": "test"})
    with pytest.raises(ValidationError):
        CalibrationConfig.model_validate({"method": "temperature", "fit_on": "cross_fit", "folds": 1})


def test_temperature_calibration_needs_validation_speakers(tiny_corpus, tmp_path):
    base = {"name": "tiny_logreg", "corpus": {"name": "csv", "root": str(tiny_corpus / "manifest.csv")},
            "audio": {"sample_rate": 8000}, "frontend": {"name": "egemaps"}, "model": {"name": "logreg"},
            "calibration": "temperature"}
    for protocol in ({"name": "loso", "n_val_speakers": 0}, {"name": "kfold"}, {"name": "final"}):
        with pytest.raises(ConfigError, match="calibration: temperature is fitted on validation speakers"):
            Recipe.from_dict({**base, "protocol": protocol})  # refused before any training
    Recipe.from_dict({**base, "protocol": {"name": "kfold", "val_size": 0.2}})
