"""The default model shipped in the package, and the example clips the README's demo predicts with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import serkit
from serkit.inference.api import default_model_path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_default_model_ships_with_its_card():
    path = default_model_path()
    assert path.is_file() and path.stat().st_size < 5 * 2**20  # "small: a few MB"
    model = serkit.load_model()
    assert model.labels == ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    card = model.card
    assert card is not None and card["limits"]
    measured = {(a["corpus"], a["metric"]) for a in card["accuracy"]}
    assert {("emodb", "ua"), ("ravdess", "ua"), ("all", "ua")} <= measured
    assert all("SI" in a["protocol"] for a in card["accuracy"])


def test_default_model_on_the_example_clips():
    clips = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".wav", ".flac"))
    assert len(clips) == 8
    model = serkit.load_model()
    proba = model.predict_proba([str(p) for p in clips])
    assert proba.shape == (8, 6)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    # The clips' speakers were held out of the shipped model's training; it got 6 of 8 when shipped. A drop
    # below 5 means the model file or the audio/feature pipeline changed under it.
    expected = [next(lab for lab in model.labels if lab in p.name) for p in clips]
    predicted = [model.labels[i] for i in proba.argmax(1)]
    assert sum(e == p for e, p in zip(expected, predicted)) >= 5, list(zip(expected, predicted))


def test_a_clip_whose_trimmed_audio_fits_is_one_clip_as_in_training():
    """Issue 15.1: a RAVDESS example of 4.1 s holds under 4 s of audio after the recipe's silence trim, so predict
    prepares it as training prepared its first 4 s (one clip, no windows); a longer recording is windowed."""
    import soundfile as sf

    model = serkit.load_model()
    clip = EXAMPLES / "ravdess-02-disgust-strong.flac"
    y, sr = sf.read(clip, dtype="float32")
    assert len(y) / sr > model.window_seconds
    result = model.predict_batch([clip])
    assert result.windows == {}
    first = model.predict_proba(y[: round(model.window_seconds * sr)], sample_rate=sr)
    np.testing.assert_allclose(result.proba[0], first, atol=1e-4)
    joined = np.concatenate([y, y, y])
    assert len(model.predict_batch([joined], sample_rate=sr).windows["<array 0>"]) >= 2
