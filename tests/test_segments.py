"""Utterances cut into fixed-length segments (akalya2022): counts, caching, leak-free splits, averaging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serkit.audio import AudioConfig
from serkit.corpora import load_corpus
from serkit.errors import ConfigError
from serkit.features import FeatureCache, SpectralFrontendConfig
from serkit.features.extractor import FeatureExtractor
from serkit.features.normalization import FeatureNormalizer
from serkit.features.segments import SegmentConfig, average_segments, segment_signal
from serkit.inference import EmotionPipeline
from serkit.models.bundle import ModelBundle
from serkit.models.learner import predict_proba
from serkit.recipe import Recipe
from serkit.training import make_splits
from serkit.training.experiment import _segment_items, run_experiment

SR = 8000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    "seconds,cfg,expected",
    [
        (2.0, {}, 1),  # shorter than a segment: one zero-padded segment
        (3.0, {}, 1),
        (6.5, {}, 2),  # the 0.5 s remainder is under min_length (1 s): dropped
        (7.0, {}, 3),  # the 1 s remainder is kept, zero-padded
        (0.2, {}, 1),  # a whole utterance under min_length still gives one segment
        (6.5, {"min_length": 0.0}, 3),
        (6.0, {"hop": 1.5}, 3),  # starts 0, 1.5, 3.0; the last one ends with the audio
        (7.0, {"hop": 1.5}, 4),  # starts 0, 1.5, 3.0, 4.5 (2.5 s left)
    ],
)
def test_segment_counts_for_known_durations(seconds, cfg, expected):
    y = np.ones(round(seconds * SR), dtype=np.float32)
    segs = segment_signal(y, SR, SegmentConfig(**cfg))
    assert segs.shape == (expected, 3 * SR)
    assert segs.dtype == np.float32


def test_last_segment_is_zero_padded_and_audio_kept_in_order():
    y = np.arange(round(4.5 * SR), dtype=np.float32) + 1
    segs = segment_signal(y, SR, SegmentConfig(length=3.0))
    np.testing.assert_array_equal(segs[0], y[: 3 * SR])
    np.testing.assert_array_equal(segs[1, : round(1.5 * SR)], y[3 * SR :])
    assert not segs[1, round(1.5 * SR) :].any()


def test_segment_config_rejects_inconsistent_values():
    with pytest.raises(ValueError, match="hop"):
        SegmentConfig(length=3.0, hop=4.0)
    with pytest.raises(ValueError, match="min_length"):
        SegmentConfig(length=1.0, min_length=2.0)
    with pytest.raises(ValueError, match="extra"):
        SegmentConfig(lenght=3.0)


def test_average_segments_is_the_mean_per_utterance():
    proba = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
    out = average_segments(proba, np.array([0, 0, 1, 2]), 3)
    np.testing.assert_allclose(out, [[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    with pytest.raises(ValueError, match="at least one segment"):
        average_segments(proba, np.array([0, 0, 2, 2]), 3)


def test_segment_items_keep_utterances_whole():
    owner = np.array([0, 0, 1, 2, 2, 2, 3])
    np.testing.assert_array_equal(_segment_items(np.array([0, 2]), owner), [0, 1, 3, 4, 5])
    np.testing.assert_array_equal(_segment_items(np.array([1, 3]), owner), [2, 6])
    np.testing.assert_array_equal(_segment_items(np.array([1, 3]), None), [1, 3])


FRONTEND = {"name": "logmel_deltas", "n_mels": 20}
SEGMENTS = {"length": 0.5, "min_length": 0.2}
DURATIONS = (0.4, 0.9, 1.3)  # 1, 2 and 3 segments of 0.5 s (remainders 0.4 and 0.3 s are kept)


def _write(path: Path, seconds: float, freq: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32), SR)
    return path


def test_extractor_caches_a_files_segments_together(tmp_path):
    paths = [_write(tmp_path / f"c{i}.wav", d, 440.0, i) for i, d in enumerate(DURATIONS)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    cache = FeatureCache(tmp_path / "cache")
    ex = FeatureExtractor(AudioConfig(sample_rate=SR), SpectralFrontendConfig(**FRONTEND), cache=cache,
                          segments=SegmentConfig(**SEGMENTS))
    feats = ex.from_paths([str(paths[0]), str(bad), str(paths[1]), str(paths[2])])
    np.testing.assert_array_equal(feats.rows, [0, 2, 3])
    assert [p for p, _ in feats.failures] == [str(bad)]
    np.testing.assert_array_equal(feats.segment_owner, [0, 1, 1, 2, 2, 2])
    assert feats.X.shape == (6, 3, 20, 51)  # 0.5 s at a 10 ms hop: 51 frames
    assert len(cache) == 3  # one entry per file, holding all its segments
    again = ex.from_paths([str(p) for p in paths])
    np.testing.assert_array_equal(again.X, feats.X)
    # Unsegmented extraction of the same files keys the cache differently.
    plain = FeatureExtractor(AudioConfig(sample_rate=SR, duration=0.5), SpectralFrontendConfig(**FRONTEND), cache=cache)
    assert plain.from_paths([str(paths[2])]).X.shape == (1, 3, 20, 51)
    assert len(cache) == 4
    with pytest.raises(ConfigError, match="audio.duration"):
        FeatureExtractor(AudioConfig(sample_rate=SR), SpectralFrontendConfig(**FRONTEND))


@pytest.fixture(scope="module")
def segment_corpus(tmp_path_factory) -> Path:
    """4 speakers x 2 emotions x 3 clips of 0.4, 0.9 and 1.3 s; the emotion sets the pitch."""
    root = tmp_path_factory.mktemp("segcorpus")
    rows = []
    for s, speaker in enumerate(["s1", "s2", "s3", "s4"]):
        for label, freq in (("angry", 400.0), ("sad", 1600.0)):
            for k, seconds in enumerate(DURATIONS):
                name = f"{speaker}_{label}_{k}.wav"
                _write(root / name, seconds, freq * (1 + 0.02 * s), seed=100 * s + k)
                rows.append({"path": name, "label": label, "speaker": speaker})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def _segment_recipe(root: Path) -> Recipe:
    return Recipe.from_dict({
        "name": "tiny_acrnn_segments",
        "corpus": {"name": "csv", "root": str(root / "manifest.csv")},
        "audio": {"sample_rate": SR, "normalize": "z"},
        "frontend": FRONTEND,
        "segments": SEGMENTS,
        "model": {"name": "akalya2022_acrnn", "channels": [4, 8], "linear_units": 16, "rnn_units": 8,
                  "head_units": 8},
        "protocol": {"name": "speaker_folds", "n_val_speakers": 1, "seeds": [0]},
        "augment": {"awgn": {"copies": 1}},  # noisy copies of training utterances are segmented too
        "training": {"max_epochs": 3, "batch_size": 8, "lr": 0.01, "early_stopping_patience": None},
    })


@pytest.mark.slow
def test_experiment_trains_on_segments_and_scores_utterances(segment_corpus, tmp_path, monkeypatch):
    from serkit.training import experiment

    seen: list[tuple[int, int]] = []

    class RecordingTrainer(experiment.Trainer):
        def fit(self, model, X_train, y_train, X_val=None, y_val=None, **kw):
            seen.append((len(X_train), len(X_val)))
            return super().fit(model, X_train, y_train, X_val, y_val, **kw)

    monkeypatch.setattr(experiment, "Trainer", RecordingTrainer)
    recipe = _segment_recipe(segment_corpus)
    out = tmp_path / "run"
    res = run_experiment(recipe, out, progress=False, cache_dir=tmp_path / "cache")
    assert res.protocol_tag == "SI" and len(res.per_fold) == 4

    # Training and validation items are exactly the segments of their utterances (6 per speaker and
    # emotion: 1 + 2 + 3; training has them twice, with the noisy copies), so no segment of a test
    # utterance was trained or validated on.
    table = load_corpus("csv", segment_corpus / "manifest.csv").utterances.reset_index(drop=True)
    n_segments = table["path"].map(lambda p: 1 + DURATIONS.index(sf.info(p).duration)).to_numpy()
    splits = make_splits(table, recipe.protocol)
    assert seen == [(2 * int(n_segments[s.train].sum()), int(n_segments[s.val].sum())) for s in splits]
    assert (res.per_fold["n_train_segments"] == [n // 2 for n, _ in seen]).all()

    # One prediction per test utterance; its probabilities are the mean of its segments'.
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == len(table) and preds["utterance_id"].is_unique
    fold_dir = min((out / "folds").iterdir())
    fold_preds = pd.read_csv(fold_dir / "predictions.csv")
    bundle = ModelBundle.load(fold_dir / "model.pt")
    ex = FeatureExtractor(AudioConfig(sample_rate=SR, normalize="z"), SpectralFrontendConfig(**FRONTEND),
                          segments=SegmentConfig(**SEGMENTS))
    feats = ex.from_paths(fold_preds["path"].tolist())
    X = FeatureNormalizer().load_state_dict(bundle.normalizer).transform(feats.X)
    seg_proba = predict_proba(bundle.model, X)
    cols = [f"p_{lab}" for lab in bundle.labels]
    for i, row in fold_preds.iterrows():
        np.testing.assert_allclose(row[cols].to_numpy(float), seg_proba[feats.segment_owner == i].mean(0),
                                   rtol=1e-5, atol=1e-6)

    # The pipeline averages a long file's segments the same way.
    predicted = EmotionPipeline.load(fold_dir / "model.pt").predict_files(fold_preds["path"].tolist())
    np.testing.assert_allclose(predicted.proba, fold_preds[cols].to_numpy(float), rtol=1e-5, atol=1e-6)
