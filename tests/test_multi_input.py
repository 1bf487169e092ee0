"""The multi-input pipeline: containers, recipe streams, extraction, normalisation, trainer, run, predictor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import tone
from serkit.errors import ConfigError
from serkit.features.normalization import FeatureNormalizer, StreamNormalizer, normalizer_from_state
from serkit.models.init import read_state_dict
from serkit.multi_input import (
    concat_items,
    item_shape,
    num_items,
    take_items,
    to_tensors,
    transform_feature_maps,
)
from serkit.recipe import Recipe, check_recipe_streams

STREAMS = {"raw": {"name": "raw"},
           "mfcc": {"name": "mfcc", "n_mfcc": 32, "n_fft": 256, "hop_length": 128, "n_mels": 40},
           "stft": {"name": "stft", "n_fft": 256, "hop_length": 128, "n_bands": 32}}


def tiny_model(**extra):
    return {"name": "ha2024_proposed", "channels": [8, 8, 16, 16], "lstm_1d": 16, "lstm_2d": 16, "width": 16,
            "dropout": 0.0, **extra}


def recipe_dict(root, **extra) -> dict:
    recipe = {"name": "tiny_ha2024", "corpus": {"name": "csv", "root": str(root / "manifest.csv")},
              "audio": {"sample_rate": 8000, "duration": 0.5, "pad_mode": "mirror"},
              "frontends": STREAMS, "model": tiny_model(),
              "protocol": {"name": "loso", "n_val_speakers": 1, "seeds": [0]},
              "training": {"max_epochs": 6, "batch_size": 8, "lr": 0.01, "early_stopping_patience": None}}
    recipe.update(extra)
    return recipe


def test_container_helpers():
    X = {"raw": np.arange(12, dtype=np.float32).reshape(3, 1, 4), "mfcc": np.ones((3, 2, 5), np.float32)}
    assert num_items(X) == 3 and num_items(X["raw"]) == 3
    assert item_shape(X) == {"raw": (1, 4), "mfcc": (2, 5)}
    part = take_items(X, np.array([2, 0]))
    np.testing.assert_array_equal(part["raw"][:, 0, 0], [8, 0])
    both = concat_items([X, part])
    assert num_items(both) == 5
    tensors = to_tensors(X, [1], streams=["mfcc", "raw"])
    assert [t.shape for t in tensors] == [(1, 2, 5), (1, 1, 4)]  # the model's order, not the dict's
    with pytest.raises(ConfigError, match="differ in their number of items"):
        num_items({"raw": X["raw"], "mfcc": X["mfcc"][:2]})
    with pytest.raises(ConfigError, match=r"stream\(s\) \['stft'\] missing"):
        to_tensors(X, streams=["stft"])
    single = np.zeros((4, 3, 5), np.float32)
    assert num_items(single) == 4 and item_shape(single) == (3, 5) and to_tensors(single)[0].shape == (4, 3, 5)


def test_spec_augment_touches_only_feature_map_streams():
    batch = {"raw": torch.ones(2, 1, 50), "mfcc": torch.ones(2, 8, 10)}
    out = transform_feature_maps(lambda x, **_: x * 0, batch, generator=None)
    assert torch.equal(out["raw"], batch["raw"]) and not out["mfcc"].any()
    assert not transform_feature_maps(lambda x, **_: x * 0, torch.ones(2, 1, 5)).any()  # one input: as before


def test_recipe_streams_are_checked_against_the_model(tmp_path):
    recipe = Recipe.from_dict(recipe_dict(tmp_path))
    assert check_recipe_streams(recipe) == ("raw", "mfcc", "stft")
    with pytest.raises(ConfigError, match="either 'frontend'"):
        Recipe.from_dict({**recipe_dict(tmp_path), "frontend": {"name": "mfcc"}})
    with pytest.raises(ConfigError, match="frontends.mfcc: .*'n_bands' does not apply"):
        Recipe.from_dict(recipe_dict(tmp_path, frontends={**STREAMS, "mfcc": {"name": "mfcc", "n_bands": 3}}))
    short = Recipe.from_dict(recipe_dict(tmp_path, frontends={"raw": STREAMS["raw"], "mfcc": STREAMS["mfcc"]}))
    with pytest.raises(ConfigError, match=r"frontends: model 'ha2024_proposed' takes the streams"):
        check_recipe_streams(short)
    # models declare input kinds, not frontend names: another time-frequency frontend fits the stream, a vector not
    check_recipe_streams(Recipe.from_dict(recipe_dict(tmp_path, frontends={**STREAMS, "mfcc": {"name": "logmel"}})))
    wrong = Recipe.from_dict(recipe_dict(tmp_path, frontends={**STREAMS, "mfcc": {"name": "egemaps"}}))
    with pytest.raises(ConfigError, match="frontends.mfcc.name: .* takes waveform or time_frequency .* gives vector"):
        check_recipe_streams(wrong)
    single = {k: v for k, v in recipe_dict(tmp_path).items() if k != "frontends"}
    with pytest.raises(ConfigError, match="frontends: model 'ha2024_proposed' takes the streams"):
        check_recipe_streams(Recipe.from_dict({**single, "frontend": {"name": "mfcc"}}))
    with pytest.raises(ConfigError, match="takes one input"):
        check_recipe_streams(Recipe.from_dict({**recipe_dict(tmp_path), "model": {"name": "serkit_cnn"}}))


def test_stream_normalizer_leaves_raw_alone_and_round_trips():
    rng = np.random.default_rng(0)
    train = {"raw": rng.normal(0, 0.1, (6, 1, 40)).astype(np.float32), "mfcc": rng.normal(5, 3, (6, 4, 7))}
    test = {"raw": rng.normal(0, 0.1, (2, 1, 40)).astype(np.float32), "mfcc": rng.normal(5, 3, (2, 4, 7))}
    norm = StreamNormalizer("global").fit(train)
    out = norm.transform(test)
    np.testing.assert_allclose(out["raw"], test["raw"])
    expected = FeatureNormalizer("global").fit(train["mfcc"]).transform(test["mfcc"])
    np.testing.assert_allclose(out["mfcc"], expected, rtol=1e-6)
    again = normalizer_from_state(norm.state_dict())
    assert isinstance(again, StreamNormalizer)
    np.testing.assert_allclose(again.transform(test)["mfcc"], out["mfcc"])
    with pytest.raises(ConfigError, match=r"stream\(s\) \['stft'\] were not fitted"):
        norm.transform({**test, "stft": test["mfcc"]})


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """3 speakers x 2 emotions x 4 clips at 8 kHz; the emotion sets the pitch."""
    root = tmp_path_factory.mktemp("multi")
    rows = []
    for s, speaker in enumerate(["s1", "s2", "s3"]):
        for label, freq in {"angry": 300.0, "sad": 900.0}.items():
            for k in range(4):
                name = f"{speaker}_{label}_{k}.wav"
                sf.write(root / name, tone(0.3 + 0.05 * k, 8000, freq * (1 + 0.02 * s), seed=k + 10 * s), 8000)
                rows.append({"path": name, "label": label, "speaker": speaker})
    (root / "broken.wav").write_bytes(b"RIFF not audio")
    rows.append({"path": "broken.wav", "label": "sad", "speaker": "s1"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def test_multi_feature_extractor_caches_each_stream(tiny_corpus, tmp_path):
    from serkit.features import FeatureCache, parse_frontend_config
    from serkit.features.extractor import MultiFeatureExtractor
    recipe = Recipe.from_dict(recipe_dict(tiny_corpus))
    cache = FeatureCache(tmp_path / "cache")
    frontends = {k: parse_frontend_config(v) for k, v in STREAMS.items()}
    extractor = MultiFeatureExtractor(recipe.audio, frontends, cache=cache)
    paths = [str(tiny_corpus / "s1_angry_0.wav"), str(tiny_corpus / "broken.wav"), str(tiny_corpus / "s2_sad_1.wav")]
    feats = extractor.from_paths(paths)
    assert feats.rows.tolist() == [0, 2]
    assert [p for p, _ in feats.failures] == [paths[1]]
    assert item_shape(feats.X) == {"raw": (1, 4000), "mfcc": (32, 32), "stft": (32, 32)}
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 4  # mfcc and stft per file; raw is not cached
    again = extractor.from_paths(paths)
    for name in STREAMS:
        np.testing.assert_array_equal(again.X[name], feats.X[name])


@pytest.mark.slow
def test_multi_input_run_with_balancing_then_predictor(tiny_corpus, tmp_path):
    from serkit.inference import EmotionPipeline
    from serkit.training.experiment import run_experiment
    recipe = Recipe.from_dict(recipe_dict(
        tiny_corpus, augment={"balance": {"target_count": 6, "shift_s": 0.05}, "specaugment": {"freq_width": 2,
                                                                                                  "time_width": 2}}))
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    assert res.protocol_tag == "SI" and len(res.per_fold) == 3
    assert (res.per_fold["n_augmented"] > 0).all()
    assert res.overall["mean"]["ua"] > 0.5
    problems = pd.read_csv(tmp_path / "run" / "corpus_problems.csv")
    assert problems["path"].str.endswith("broken.wav").tolist() == [True]

    # A pre-trained start: fine-tune from the first fold's model, one stream only.
    first = min((tmp_path / "run" / "folds").glob("*/model.pt"))
    tuned = Recipe.from_dict(recipe_dict(tiny_corpus, model=tiny_model(init_from=str(first),
                                                                        init_prefixes=["streams.mfcc."]),
                                         training={"max_epochs": 1, "batch_size": 8}))
    tuned_res = run_experiment(tuned, tmp_path / "tuned", progress=False, cache_dir=tmp_path / "cache")
    n_mfcc_tensors = sum(k.startswith("streams.mfcc.") for k in read_state_dict(first))
    assert (tuned_res.per_fold["init_tensors"] == n_mfcc_tensors).all() and n_mfcc_tensors > 0

    preds = EmotionPipeline.load(tmp_path / "run").predict_files([tiny_corpus / "s3_sad_2.wav", tiny_corpus / "broken.wav"])
    assert preds.proba.shape == (1, 2) and np.isclose(preds.proba.sum(), 1.0)
    assert len(preds.failures) == 1
