"""The default model shipped in the package, and the example clips the README's demo predicts with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import serkit
from serkit.inference.api import default_model_path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_default_model_ships_with_its_card():
    path = default_model_path()
    assert path.is_file() and path.stat().st_size < 5 * 2**20  # "small: a few MB" (the encoder is a package)
    model = serkit.load_model()
    assert model.labels == ["angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]
    bundle = model.pipeline.bundles[0]
    assert bundle.recipe["frontend"]["name"] == "whisper" and bundle.info["temperature"] > 0
    card = model.card
    assert card is not None and card["limits"]
    measured = {(a["corpus"], a["metric"]) for a in card["accuracy"]}
    assert {(c, "ua") for c in ("all", "emodb", "ravdess", "nemo", "emovo")} <= measured
    assert all("SI" in a["protocol"] for a in card["accuracy"])
    assert {r["corpus"] for r in card["loco"]} == {"emodb", "ravdess", "nemo", "emovo"}
    assert card["calibration"]["ece_after"][0] < card["calibration"]["ece_before"][0]
    # the examples' speakers chose C and the temperature only; the robustness card evaluates on them
    assert {"emodb-03", "ravdess-01", "ravdess-02"} <= set(card["held_out_speakers"])


def test_default_model_on_the_example_clips():
    clips = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".wav", ".flac"))
    assert len(clips) == 8
    model = serkit.load_model()
    proba = model.predict_proba([str(p) for p in clips])
    assert proba.shape == (8, 7)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    # The clips' speakers were held out of the shipped model's training; it got 7 of 8 when shipped (the CNN
    # before it: 6). A drop below 6 means the model file or the audio/feature pipeline changed under it.
    expected = [next(lab for lab in model.labels if lab in p.name) for p in clips]
    predicted = [model.labels[i] for i in proba.argmax(1)]
    assert sum(e == p for e, p in zip(expected, predicted)) >= 6, list(zip(expected, predicted))


def test_default_model_judges_a_clip_whole_and_a_recording_by_windows():
    """The encoder takes any length: a clip (here 6.6 s) is judged whole; an input over WHOLE_INPUT_SECONDS is a
    recording, judged by windows over its speech that --json lists (issue 15.1)."""
    import soundfile as sf

    from serkit.inference.api import WHOLE_INPUT_SECONDS

    model = serkit.load_model(vad="energy")
    y, sr = sf.read(EXAMPLES / "emodb-03a01Wa-angry.wav", dtype="float32")
    pause = np.zeros(sr, np.float32)
    joined = np.concatenate([y, pause, y, y])
    result = model.predict_batch([joined], sample_rate=sr)
    assert result.windows == {} and result.predicted == ["angry"]
    recording = np.concatenate([y, pause] * (int(WHOLE_INPUT_SECONDS / (len(y) / sr + 1)) + 2))
    long = model.predict_batch([recording], sample_rate=sr)
    windows = long.windows["<array 0>"]
    assert len(windows) >= 10 and long.predicted == ["angry"]
    assert windows[-1]["end"] > WHOLE_INPUT_SECONDS


def test_the_cnn_model_ships_beside_it():
    cnn = serkit.load_model("cnn")
    assert cnn.labels == ["angry", "disgust", "fearful", "happy", "neutral", "sad"] and cnn.source == "cnn"
    assert cnn.card["card"] == "docs/model_card_cnn.md"


def test_a_clip_whose_trimmed_audio_fits_is_one_clip_as_in_training():
    """Issue 15.1: a RAVDESS example of 4.1 s holds under 4 s of audio after the recipe's silence trim, so predict
    prepares it as training prepared its first 4 s (one clip, no windows); a longer recording is windowed."""
    import soundfile as sf

    model = serkit.load_model("cnn")  # a model with a fixed clip length
    clip = EXAMPLES / "ravdess-02-disgust-strong.flac"
    y, sr = sf.read(clip, dtype="float32")
    assert len(y) / sr > model.window_seconds
    result = model.predict_batch([clip])
    assert result.windows == {}
    first = model.predict_proba(y[: round(model.window_seconds * sr)], sample_rate=sr)
    np.testing.assert_allclose(result.proba[0], first, atol=1e-4)
    joined = np.concatenate([y, y, y])
    assert len(model.predict_batch([joined], sample_rate=sr).windows["<array 0>"]) >= 2
