"""serkit.load_model: paths, lists, arrays, errors, thread safety. Uses a tiny model trained here on tones."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import serkit
from conftest import tone
from serkit.audio import AudioConfig
from serkit.audio.config import prepare_signal
from serkit.errors import AudioError, ConfigError
from serkit.features import SpectralFrontendConfig
from serkit.features.adaptation import AdaptationConfig
from serkit.features.extractor import FeatureExtractor
from serkit.features.normalization import FeatureNormalizer
from serkit.inference import load_model
from serkit.inference.api import default_model_path, to_mono
from serkit.models import create_model
from serkit.models.bundle import ModelBundle

#: The tiny model's classes and the tone (Hz) that stands for each.
TONE_LABELS = {"neutral": 200.0, "angry": 450.0, "sad": 1000.0, "happy": 2200.0}
SR = 16000


def build_tiny_bundle(path: str | Path, *, card: dict | None = None) -> Path:
    """Train the mountzouris2023 SDNN on time-averaged MFCCs of tones (one frequency per class), save a bundle."""
    torch.manual_seed(0)
    audio = AudioConfig(sample_rate=SR, duration=1.0)
    frontend = SpectralFrontendConfig(name="mfcc", n_mfcc=20, n_fft=512, hop_length=160, n_mels=40)
    extractor = FeatureExtractor(audio, frontend, pooling="mean")
    labels = list(TONE_LABELS)
    signals, y = [], []
    for k, freq in enumerate(TONE_LABELS.values()):
        for i in range(12):  # lengths, levels and detuning vary so windows of any length are recognised
            sig = tone(0.3 + 0.15 * i, SR, freq * (1 + 0.02 * (i - 6) / 6), amp=0.1 + 0.05 * i, seed=i)
            signals.append(prepare_signal(sig, SR, audio))
            y.append(k)
    X = extractor.pool(extractor.from_signals(signals))
    norm = FeatureNormalizer("global").fit(X).fit_class_means(X, [labels[k] for k in y])
    Xn = torch.as_tensor(norm.transform(X))
    target = torch.as_tensor(y)
    model = create_model("mountzouris2023_sdnn", num_classes=len(labels), input_shape=X.shape[1:])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 14k-parameter model: thread hand-offs would cost more than the maths
    try:
        for _ in range(120):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(Xn), target)
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    recipe = {"name": "tiny_tones", "audio": audio.model_dump(mode="json"),
              "frontend": frontend.model_dump(mode="json"), "pooling": "mean",
              "model": {"name": "mountzouris2023_sdnn"}}
    info = {"model_card": card} if card else {}
    return ModelBundle(recipe, labels, tuple(X.shape[1:]), model, norm.state_dict(), info).save(path)


def tiny_model_file(tmp_path_factory) -> Path:
    """The tiny model's bundle, built once per test session (test_stream and test_analyze use it too)."""
    path = tmp_path_factory.getbasetemp() / "tiny_tones_model.pt"
    return path if path.is_file() else build_tiny_bundle(path)




def _write(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, y, sr)
    return path


def test_predicts_paths_lists_and_arrays(tiny_model, tmp_path):
    files = {lab: _write(tmp_path / f"{lab}.wav", tone(0.8, SR, f, amp=0.3)) for lab, f in TONE_LABELS.items()}
    assert tiny_model.predict(files["sad"]) == "sad"
    assert tiny_model.predict(str(files["angry"])) == "angry"
    proba = tiny_model.predict_proba(list(files.values()))
    assert proba.shape == (4, 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert [tiny_model.labels[i] for i in proba.argmax(1)] == list(TONE_LABELS)
    # an array with its rate gives what its file gives
    single = tiny_model.predict_proba(tone(0.8, SR, TONE_LABELS["happy"], amp=0.3), sample_rate=SR)
    np.testing.assert_allclose(single, proba[3], atol=1e-5)
    assert tiny_model.predict([tone(0.8, SR, 200.0, amp=0.3), tone(0.8, SR, 1000.0, amp=0.3)],
                              sample_rate=SR) == ["neutral", "sad"]


def test_stereo_48k_array_and_file(tiny_model, tmp_path):
    import soxr

    mono = tone(0.8, 48000, TONE_LABELS["angry"], amp=0.3)
    stereo = np.stack([mono, 0.5 * mono], axis=1)  # (n, channels), as soundfile gives it
    assert tiny_model.predict(stereo, sample_rate=48000) == "angry"
    assert tiny_model.predict(stereo.T, sample_rate=48000) == "angry"  # (channels, n), as librosa gives it
    assert tiny_model.predict(_write(tmp_path / "s.wav", stereo, 48000)) == "angry"
    pcm = (soxr.resample(mono, 48000, SR) * 32767).astype(np.int16)
    assert tiny_model.predict(pcm, sample_rate=SR) == "angry"


def test_bad_inputs_give_clear_errors(tiny_model, tmp_path):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("hello")
    with pytest.raises(AudioError, match="notes.wav: not an audio file"):
        tiny_model.predict(not_audio)
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        tiny_model.predict(tmp_path / "missing.wav")
    with pytest.raises(ConfigError, match="sample_rate: required"):
        tiny_model.predict(tone())
    with pytest.raises(AudioError, match=r"<array 0>: silent"):
        tiny_model.predict(np.zeros(16000, np.float32), sample_rate=SR)
    with pytest.raises(AudioError, match="NaN"):
        tiny_model.predict(np.full(100, np.nan, np.float32), sample_rate=SR)
    with pytest.raises(AudioError, match="cannot tell channels"):
        to_mono(np.zeros((20, 20), np.float32), "x")
    # a list: every failure is named, after trying all
    good = _write(tmp_path / "good.wav", tone(0.5, SR, 200.0))
    with pytest.raises(AudioError, match="2 of 3 inputs failed.*notes.wav.*missing.wav"):
        tiny_model.predict_proba([good, not_audio, tmp_path / "missing.wav"])
    # predict_batch goes on and reports
    result = tiny_model.predict_batch([good, not_audio, tone(0.5, SR, 1000.0)], sample_rate=SR)
    assert result.paths == [str(good), "<array 2>"] and result.predicted == ["neutral", "sad"]
    assert [p for p, _ in result.failures] == [str(not_audio)]


def test_thread_safe(tiny_model):
    inputs = [tone(0.5 + 0.1 * i, SR, f, amp=0.3, seed=i) for i, f in enumerate(list(TONE_LABELS.values()) * 2)]
    expected = tiny_model.predict_proba(inputs, sample_rate=SR)
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        results[k] = tiny_model.predict_proba(inputs, sample_rate=SR)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    for got in results.values():
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_default_model_and_model_card(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "default.pt"
    monkeypatch.setattr("serkit.inference.api.default_model_path", lambda: missing)
    with pytest.raises(ConfigError, match="default model is not installed"):
        serkit.load_model()
    with pytest.raises(ConfigError, match="default model is not installed"):
        load_model("default")
    card = {"summary": "tones", "accuracy": [{"corpus": "tones", "protocol": "SI", "metric": "UA", "value": 1.0}],
            "limits": ["tones only"]}
    path = build_tiny_bundle(tmp_path / "default.pt", card=card)
    monkeypatch.setattr("serkit.inference.api.default_model_path", lambda: path)
    model = serkit.load_model()
    assert model.card == card and model.source == "default"
    assert model.window_seconds == 1.0 and model.sample_rate == SR
    assert default_model_path().name == "default.pt"
    with pytest.raises(ConfigError, match="no such model file"):
        load_model(tmp_path / "nope.pt")


def test_backend_argument(tiny_model, tiny_model_path):
    with pytest.raises(ConfigError, match="backend"):
        load_model(tiny_model_path, backend="tensorflow")
    try:
        import onnxruntime  # noqa: F401

        import serkit.inference.export  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="backend 'onnx' is not available"):
            load_model(tiny_model_path, backend="onnx")
        return
    inputs = [tone(0.8, SR, f, amp=0.3) for f in TONE_LABELS.values()]
    onnx_model = load_model(tiny_model_path, backend="onnx")
    np.testing.assert_allclose(onnx_model.predict_proba(inputs, sample_rate=SR),
                               tiny_model.predict_proba(inputs, sample_rate=SR), atol=1e-5)


def test_long_input_is_judged_whole_not_by_its_first_clip(tiny_model, tmp_path):
    """Issue 15.1: 0.9 s of "neutral" then 8 s of "angry" (the model's clip is 1 s) is angry, with its windows."""
    first = tone(0.9, SR, TONE_LABELS["neutral"], amp=0.3)
    y = np.concatenate([first, tone(8.0, SR, TONE_LABELS["angry"], amp=0.3, seed=1)])
    path = _write(tmp_path / "long.wav", y)
    result = tiny_model.predict_batch([path, _write(tmp_path / "first.wav", first)])
    assert result.predicted == ["angry", "neutral"]
    windows = result.windows[str(path)]
    assert len(windows) >= 8 and windows[-1]["end"] == pytest.approx(len(y) / SR, abs=0.1)
    assert str(tmp_path / "first.wav") not in result.windows  # one clip: no windows
    # an array is judged the same way as its file
    np.testing.assert_allclose(tiny_model.predict_proba(y, sample_rate=SR), result.proba[0], atol=1e-5)


def test_too_short_is_a_failure_not_a_label(tiny_model, tmp_path):
    """Issue 15.5: 0.2 s gets "too short: 0.2 s, needs 0.5 s", for a file and for an array; a long silence with
    a 0.2 s blip gets "too little speech"."""
    from serkit.inference.api import MIN_SPEECH_SECONDS, speech_shortfall

    short = _write(tmp_path / "short.wav", tone(0.2, SR, TONE_LABELS["happy"], amp=0.3))
    result = tiny_model.predict_batch([short, tone(0.2, SR, 450.0, amp=0.3)], sample_rate=SR)
    assert result.paths == []
    assert result.failures == [(str(short), "too short: 0.2 s, needs 0.5 s"),
                               ("<array 1>", "too short: 0.2 s, needs 0.5 s")]
    with pytest.raises(AudioError, match=r"short.wav: too short: 0.2 s, needs 0.5 s"):
        tiny_model.predict(short)
    blip = np.zeros(3 * SR, np.float32)
    blip[SR : SR + SR // 5] = tone(0.2, SR, 450.0, amp=0.3)
    with pytest.raises(AudioError, match=r"<array 0>: too little speech: 0(\.\d+)? s detected, needs 0.5 s"):
        tiny_model.predict(blip, sample_rate=SR)
    assert MIN_SPEECH_SECONDS == 0.5 and speech_shortfall(0.49) == "too short: 0.49 s, needs 0.5 s"
    assert speech_shortfall(0.5, 0.5) is None


def test_adapt_standardises_with_the_enrolment_statistics_and_warns_when_it_should(tiny_model_path):
    model = load_model(tiny_model_path, vad="energy")
    strict = load_model(tiny_model_path, vad="energy")
    rng = np.random.default_rng(0)
    # a "person" whose voice is shifted: every tone 8 % higher, all four emotions, 4 recordings of 24 s
    recordings = [np.concatenate([tone(3.0, SR, TONE_LABELS[lab] * 1.08, amp=0.3, seed=int(rng.integers(1e6)))
                                  for lab in TONE_LABELS for _ in range(2)]) for _ in range(4)]
    assert model.adapt(recordings, sample_rate=SR, config=AdaptationConfig(method="standardise")) is model
    a = model.adaptation
    assert a.inputs == 4 and a.pieces == 32 and a.seconds == pytest.approx(96.0) and a.warnings == []
    assert "adapted to 4 recording(s)" in model.source
    # the adapted normaliser's statistics are those of the enrolment pieces' features
    member = model.pipeline.members[0]
    pieces = [p for r in recordings for p in np.split(r, 8)]
    feats = member_features = strict.pipeline.extractor.pool(strict.pipeline.extractor.from_signals(
        [prepare_signal(p, SR, strict.audio) for p in pieces]))
    np.testing.assert_allclose(member.normalizer.mean.reshape(-1), feats.mean(0), rtol=1e-4, atol=1e-4)
    assert member_features.shape[0] == 32
    # the strict model is untouched, and predictions differ only through the statistics
    assert strict.adaptation is None and strict.pipeline.members[0].normalizer is not member.normalizer
    clip = recordings[0][: 3 * SR]
    adapted_p, strict_p = model.predict_proba(clip, sample_rate=SR), strict.predict_proba(clip, sample_rate=SR)
    assert np.abs(np.log(adapted_p) - np.log(strict_p)).max() > 1.0  # compared as log-probabilities
    # serkit's default adaptation shrinks toward the training statistics by the amount of material: 32 pieces
    # against 20 of prior weight move the mean 32/52 of the way
    shrunk = strict.adapted(recordings, sample_rate=SR)
    train = strict.pipeline.members[0].normalizer.mean.reshape(-1)
    np.testing.assert_allclose(shrunk.pipeline.members[0].normalizer.mean.reshape(-1),
                               train + 32 / 52 * (feats.mean(0) - train), rtol=1e-4, atol=1e-4)
    assert shrunk.adaptation.fits[0].weight == pytest.approx(32 / 52, abs=1e-4)


def test_adapt_warns_on_a_small_or_uniform_set(tiny_model_path):
    model = load_model(tiny_model_path, vad="energy")
    sad_only = [tone(6.0, SR, TONE_LABELS["sad"], amp=0.3, seed=i) for i in range(2)]  # 4 pieces, 12 s, all sad
    unshrunk = AdaptationConfig(method="standardise")  # the classic per-speaker standardisation
    warnings = model.adapted(sad_only, sample_rate=SR, config=unshrunk).adaptation.warnings
    assert any(w.startswith("too small to trust: 4 pieces, 12 s") for w in warnings)
    assert any("too uniform to trust: 100% of it sounds sad" in w for w in warnings)
    # the default method was measured to survive lopsided material: only the size is warned about
    warnings = model.adapted(sad_only, sample_rate=SR).adaptation.warnings
    assert len(warnings) == 1 and warnings[0].startswith("too small to trust")
    # a calm reading needs less: 4 pieces and 12 s are enough
    assert model.adapted(sad_only, sample_rate=SR, neutral=True).adaptation.warnings == []
    with pytest.raises(AudioError, match="no usable audio"):
        load_model(tiny_model_path).adapt([np.zeros(100, np.float32)], sample_rate=SR)


def test_the_model_lock_is_taken_in_turn_and_large_batches_in_chunks(tiny_model_path, monkeypatch):
    """A large request's clips are classified a chunk at a time, the same probabilities as at once, and a request
    that waits for the lock gets it before the large one's next chunk."""
    import time

    from serkit.inference import api

    model = load_model(tiny_model_path)
    clips = [prepare_signal(tone(440.0 + 40 * k, 1.0), 16000, model.audio) for k in range(8)]
    whole = model.pipeline.predict_prepared(clips)
    monkeypatch.setattr(api, "LOCKED_SECONDS", 2.5)
    calls, order = [], []
    real = model.pipeline.predict_prepared

    def slow(chunk):
        calls.append(len(chunk))
        order.append("small" if len(chunk) == 1 and len(calls) > 1 and chunk[0] is small[0] else "large")
        time.sleep(0.2)
        return real(chunk)

    monkeypatch.setattr(model.pipeline, "predict_prepared", slow)
    small = [clips[0]]
    large = threading.Thread(target=lambda: np.testing.assert_allclose(model.proba_of_prepared(clips), whole,
                                                                       atol=1e-6))
    large.start()
    time.sleep(0.05)  # the large request holds the lock for its first chunk
    model.proba_of_prepared(small)
    large.join()
    assert calls[0] == 2 and sum(c for c in calls) == len(clips) + 1
    assert order.index("small") == 1  # served right after the large request's first chunk, not after its last


def test_fair_lock_grants_in_the_order_asked():
    import time

    from serkit.inference.api import FairLock

    lock, got = FairLock(), []
    lock.__enter__()
    threads = []
    for k in range(5):
        t = threading.Thread(target=lambda k=k: (lock.__enter__(), got.append(k), lock.__exit__()))
        t.start()
        threads.append(t)
        time.sleep(0.05)  # each asks after the previous one
    lock.__exit__()
    for t in threads:
        t.join()
    assert got == [0, 1, 2, 3, 4]
