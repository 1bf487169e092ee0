"""Streaming analysis: same windows as the offline analysis, bounded latency and memory, VADs."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import tone
from serkit.audio.vad import VAD_SAMPLE_RATE, EnergyVad, SpeechGate, create_vad, silero_available
from serkit.errors import AudioError, ConfigError
from serkit.inference.analysis import analyze_recording, analyze_signal
from serkit.inference.stream import AnalysisConfig, StreamAnalyzer, stream_windows
from test_api import SR, TONE_LABELS

ENERGY = AnalysisConfig(vad="energy", window=1.0, hop=0.5, smoothing=1)




def joined_tones(plan, sr: int = SR, gap: float = 1.2, lead: float = 0.7) -> tuple[np.ndarray, list]:
    """Tones (label, seconds) separated by silences; returns the signal and (start, end, label) truth."""
    parts, truth, t = [np.zeros(round(lead * sr), np.float32)], [], lead
    for i, (label, seconds) in enumerate(plan):
        parts.append(tone(seconds, sr, TONE_LABELS[label], amp=0.3, seed=i))
        truth.append((t, t + seconds, label))
        t += seconds
        parts.append(np.zeros(round(gap * sr), np.float32))
        t += gap
    return np.concatenate(parts), truth


PLAN = [("sad", 3.3), ("angry", 1.4), ("happy", 0.6), ("neutral", 2.05)]


def _chunks(y: np.ndarray, sizes) -> list[np.ndarray]:
    out, i = [], 0
    for size in sizes:
        if i >= len(y):
            break
        out.append(y[i : i + size])
        i += size
    if i < len(y):
        out.append(y[i:])
    return out


def test_stream_equals_offline_and_reference(tiny_model):
    y, _ = joined_tones(PLAN)
    offline = analyze_signal(y, SR, tiny_model, ENERGY)
    assert len(offline.windows) >= 8
    rng = np.random.default_rng(0)
    for sizes in ([1600] * 1000, rng.integers(1, 9000, size=1000), [len(y)]):  # 100 ms, random, all at once
        streamed = list(stream_windows(_chunks(y, sizes), tiny_model, SR, config=ENERGY))
        assert [(w.start, w.end, w.region) for w in streamed] == [(w.start, w.end, w.region) for w in offline.windows]
        np.testing.assert_allclose(np.stack([w.proba for w in streamed]),
                                   np.stack([w.proba for w in offline.windows]), atol=1e-6)
    # independent reference: each window's probabilities are those of its slice of the whole signal
    slices = [y[round(w.start * SR) : round(w.end * SR)] for w in offline.windows]
    np.testing.assert_allclose(tiny_model.proba_of_signals(slices, SR),
                               np.stack([w.proba for w in offline.windows]), atol=1e-6)
    # window layout: inside regions, hop apart, never across a silence
    for w in offline.windows:
        start, end = offline.regions[w.region]
        assert start - 1e-9 <= w.start < w.end <= end + 1e-9
        assert w.end - w.start <= 1.0 + 1e-9


def test_stream_of_stereo_48k_matches_file_analysis(tiny_model, tmp_path):
    y, _ = joined_tones(PLAN, sr=48000)
    stereo = np.stack([y, 0.8 * y], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 48000, subtype="FLOAT")
    offline = analyze_recording(path, tiny_model, ENERGY, block_seconds=1.3)
    stream = StreamAnalyzer(tiny_model, 48000, channels=2, config=ENERGY)
    results = []
    for chunk in _chunks(stereo, [4800] * 10_000):  # 100 ms
        results += stream.push(chunk)
    results += stream.finish()
    assert [(w.start, w.end) for w in results] == [(w.start, w.end) for w in offline.windows]
    np.testing.assert_allclose(np.stack([w.proba for w in results]), np.stack([w.proba for w in offline.windows]),
                               atol=1e-5)
    assert stream.finish() == []


def test_latency_and_memory_are_bounded(tiny_model):
    # 40 s of continuous tone, then a pause, then tones: windows must come out while the tone goes on
    y = np.concatenate([tone(40.0, SR, TONE_LABELS["sad"], amp=0.3), np.zeros(SR, np.float32),
                        joined_tones(PLAN)[0]])
    stream = StreamAnalyzer(tiny_model, SR, config=ENERGY)
    fed, max_buffer, delays = 0, 0.0, []
    for chunk in _chunks(y, [1600] * 100_000):
        fed += len(chunk)
        for r in stream.push(chunk):
            delays.append(fed / SR - r.start)
        max_buffer = max(max_buffer, stream.windower.buffered_seconds)
    stream.finish()
    assert len(delays) > 70
    assert max(delays) <= stream.max_latency_seconds
    assert max_buffer <= ENERGY.window + ENERGY.min_silence + 2.5  # seconds held, whatever the length


def test_stream_input_errors(tiny_model):
    stream = StreamAnalyzer(tiny_model, SR, config=ENERGY)
    with pytest.raises(AudioError, match=r"expected shape \(n,\)"):
        stream.push(np.zeros((100, 2), np.float32))
    with pytest.raises(AudioError, match="NaN"):
        stream.push(np.full(100, np.nan, np.float32))
    with pytest.raises(AudioError, match="float samples"):
        stream.push(np.zeros(100, np.int16))
    stream.finish()
    with pytest.raises(ConfigError, match="push after finish"):
        stream.push(np.zeros(100, np.float32))
    with pytest.raises(ConfigError, match="sample_rate"):
        StreamAnalyzer(tiny_model, 0)
    with pytest.raises(ConfigError, match="hop"):
        StreamAnalyzer(tiny_model, SR, config=AnalysisConfig(hop=2.0, vad="energy"))  # model window is 1 s
    with pytest.raises(ValueError, match="speech_pad"):
        AnalysisConfig(speech_pad=0.3, min_silence=0.3)


def test_energy_vad_and_gate_find_bursts_in_any_chunking():
    y, truth = joined_tones(PLAN, gap=0.8)
    y = np.concatenate([y, tone(0.15, SR, 500.0, amp=0.3)])  # a burst shorter than min_speech at the end

    def regions(chunk: int) -> list[tuple[int, int]]:
        vad = EnergyVad()
        gate = SpeechGate(vad.frame_length, min_speech=0.25)
        frames = y[: len(y) // vad.frame_length * vad.frame_length].reshape(-1, vad.frame_length)
        out = []
        for i in range(0, len(frames), chunk):
            out += [(r.start, r.end) for r in gate.update(vad.speech_probability(frames[i : i + chunk]))]
        out += [(r.start, r.end) for r in gate.finish(len(y))]
        return out

    found = regions(1)
    assert found == regions(7) == regions(10_000)
    assert len(found) == len(truth)  # the short burst is dropped
    for (start, end), (t0, t1, _) in zip(found, truth):
        assert abs(start / SR - (t0 - 0.05)) <= 0.021 and abs(end / SR - (t1 + 0.05)) <= 0.021


def test_create_vad_names():
    assert create_vad("energy").name == "energy"
    assert create_vad("none").speech_probability(np.zeros((3, 320))).tolist() == [1.0, 1.0, 1.0]
    assert create_vad("auto").name == ("silero" if silero_available() else "energy")
    with pytest.raises(ConfigError, match="vad"):
        create_vad("webrtc")


@pytest.mark.slow
@pytest.mark.corpus
def test_silero_finds_speech_in_joined_emodb_clips(emodb_root):
    if not silero_available():
        pytest.skip("silero-vad not installed")
    clips = sorted((emodb_root / "wav").glob("03a0*.wav"))[:5]
    parts, truth, t = [np.zeros(VAD_SAMPLE_RATE, np.float32)], [], 1.0
    for clip in clips:
        x, sr = sf.read(clip, dtype="float32")
        x = soxr.resample(x, sr, VAD_SAMPLE_RATE) if sr != VAD_SAMPLE_RATE else x
        parts += [x, np.zeros(2 * VAD_SAMPLE_RATE, np.float32)]
        truth.append((t, t + len(x) / VAD_SAMPLE_RATE))
        t += len(x) / VAD_SAMPLE_RATE + 2.0
    y = np.concatenate(parts)
    vad = create_vad("silero")
    gate = SpeechGate(vad.frame_length)
    frames = y[: len(y) // 512 * 512].reshape(-1, 512)
    found = gate.update(vad.speech_probability(frames)) + gate.finish(len(y))
    assert len(found) == len(clips)
    for region, (t0, t1) in zip(found, truth):  # speech lies inside each clip (clips have silent margins)
        assert t0 - 0.1 <= region.start / VAD_SAMPLE_RATE and region.end / VAD_SAMPLE_RATE <= t1 + 0.1
        assert (region.end - region.start) / VAD_SAMPLE_RATE >= 0.5 * (t1 - t0)
