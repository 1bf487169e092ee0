"""serkit.audio: reading, resampling, fixed length, silence, normalisation, config and batch loading."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pydantic
import pytest
import soundfile as sf

from conftest import tone
from serkit.audio import (
    AudioConfig,
    ClipBatch,
    fix_length,
    load_clip,
    load_clips,
    peak_normalize,
    read_audio,
    remove_silence,
    resample,
    speech_regions,
    trim_silence,
    z_normalize,
)
from serkit.errors import AudioError

SR = 16000


def ramp(n: int) -> np.ndarray:
    """Distinct, exactly representable sample values: position i holds i / 2**16 (well below 1)."""
    return (np.arange(n) / 2.0**16).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = SR, **kwargs) -> Path:
    sf.write(path, y.T if y.ndim == 2 else y, sr, **kwargs)
    return path


def reason_of(excinfo) -> str:
    return excinfo.value.reason


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("fmt", ["FLAC", "AIFF", "OGG"])
def test_format_detected_from_content_not_extension(tmp_path, fmt):
    y = tone(0.5)
    path = write(tmp_path / "actually_not_wav.wav", y, format=fmt)
    assert sf.info(path).format == fmt
    out, sr = read_audio(path)
    assert sr == SR and out.dtype == np.float32 and out.shape == y.shape
    atol = 1e-3 if fmt != "OGG" else 0.1  # OGG Vorbis is lossy
    np.testing.assert_allclose(out, y, atol=atol)


def test_multichannel_downmix_and_keep_channels(tmp_path):
    left, right = tone(0.5, freq=220.0), tone(0.5, freq=330.0, amp=0.2, seed=1)
    path = write(tmp_path / "stereo.wav", np.stack([left, right]), subtype="FLOAT")
    mono, _ = read_audio(path)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    both, _ = read_audio(path, mono=False)
    assert both.shape == (2, left.size) and both.flags.c_contiguous
    np.testing.assert_array_equal(both, np.stack([left, right]))


def test_mono_file_with_mono_false_has_one_channel(tone_wav):
    y, _ = read_audio(tone_wav, mono=False)
    assert y.shape == (1, SR)


def test_offset_and_duration_read_exact_samples(tmp_path):
    y = ramp(SR)  # 1 s
    path = write(tmp_path / "ramp.wav", y, subtype="FLOAT")
    out, _ = read_audio(path, offset=0.5, duration=0.25)
    np.testing.assert_array_equal(out, y[8000:12000])
    out, _ = read_audio(path, offset=0.25)
    np.testing.assert_array_equal(out, y[4000:])
    # a segment running past the end is cut at the end, not padded
    out, _ = read_audio(path, offset=0.9, duration=3.0)
    np.testing.assert_array_equal(out, y[14400:])


def test_offset_duration_apply_at_native_rate_before_resampling(tmp_path):
    y = tone(2.0, sr=48000)
    path = write(tmp_path / "48k.wav", y, sr=48000, subtype="FLOAT")
    out, sr = read_audio(path, sample_rate=SR, offset=0.5, duration=1.0)
    assert sr == SR and out.shape == (SR,)
    np.testing.assert_allclose(out, resample(y[24000:72000], 48000, SR), atol=1e-6)


def test_offset_beyond_end_raises(tone_wav):
    with pytest.raises(AudioError, match="beyond the end") as excinfo:
        read_audio(tone_wav, offset=1.0)
    assert excinfo.value.path == str(tone_wav)


@pytest.mark.parametrize("kwargs", [{"offset": -1.0}, {"duration": 0.0}, {"sample_rate": 0}, {"offset": float("nan")}])
def test_bad_read_arguments_raise_value_error(tone_wav, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        read_audio(tone_wav, **kwargs)


# --------------------------------------------------------------------------- reading: broken files


def test_missing_file(tmp_path):
    with pytest.raises(AudioError) as excinfo:
        read_audio(tmp_path / "nope.wav")
    assert "not found" in reason_of(excinfo) and excinfo.value.path.endswith("nope.wav")


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        read_audio(tmp_path)


def test_text_file_is_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError, match="not an audio file"):
        read_audio(path)


def test_header_only_wav_is_empty(tmp_path):
    path = write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    assert path.stat().st_size == 44  # the RIFF header and nothing else
    with pytest.raises(AudioError, match="empty"):
        read_audio(path)


@pytest.mark.parametrize("cut", [1, 10001, 31000])
def test_truncated_wav(tone_wav, tmp_path, cut):
    data = tone_wav.read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) - cut])
    # libsndfile itself reads the shortened file without complaint: the check is ours
    assert sf.read(path)[0].size < SR
    with pytest.raises(AudioError, match="truncated") as excinfo:
        read_audio(path)
    assert "'data' chunk" in reason_of(excinfo)


def test_wav_cut_to_its_header_is_truncated(tone_wav, tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(tone_wav.read_bytes()[:44])
    with pytest.raises(AudioError, match="truncated"):
        read_audio(path)


def test_truncated_aiff_and_flac(tmp_path):
    y = tone(1.0)
    aiff = write(tmp_path / "a.aiff", y, format="AIFF")
    flac = write(tmp_path / "a.flac", y, format="FLAC")
    for path in (aiff, flac):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(AudioError, match="truncated"):
            read_audio(path)


def test_trailing_bytes_after_data_are_not_truncation(tone_wav):
    with open(tone_wav, "ab") as fh:
        fh.write(b"\0" * 100)
    y, _ = read_audio(tone_wav)
    assert y.shape == (SR,)


def test_silent_files(tmp_path):
    zeros = write(tmp_path / "zeros.wav", np.zeros(SR, dtype=np.float32))
    with pytest.raises(AudioError, match="every sample is zero"):
        read_audio(zeros)
    sine = np.sin(2 * np.pi * 220.0 * np.arange(SR) / SR).astype(np.float32)
    quiet = write(tmp_path / "quiet.wav", 1e-4 * sine, subtype="FLOAT")  # -80 dBFS peak
    with pytest.raises(AudioError, match="below -70 dBFS"):
        read_audio(quiet)
    y, _ = read_audio(quiet, allow_silent=True)
    assert y.shape == (SR,)
    y, _ = read_audio(zeros, allow_silent=True)
    assert not y.any()
    # -60 dBFS is quiet speech, not silence
    read_audio(write(tmp_path / "soft.wav", 1e-3 * sine, subtype="FLOAT"))


def test_silent_segment_names_offset(tmp_path):
    y = np.concatenate([np.zeros(SR, np.float32), tone(1.0)])
    path = write(tmp_path / "late.wav", y)
    with pytest.raises(AudioError, match="segment read"):
        read_audio(path, duration=0.5)
    assert read_audio(path, offset=1.0)[0].shape == (SR,)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_samples(tmp_path, bad):
    y = tone(0.5)
    y[100:103] = bad
    path = write(tmp_path / "nan.wav", y, subtype="FLOAT")
    with pytest.raises(AudioError, match="3 samples are NaN or infinite"):
        read_audio(path)


# --------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("n", [16000, 16001, 12345, 7])
@pytest.mark.parametrize("target", [8000, 22050, 48000])
def test_resample_matches_librosa_soxr_hq(n, target):
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    ours = resample(y, SR, target)
    ref = librosa.resample(y, orig_sr=SR, target_sr=target, res_type="soxr_hq")
    assert ours.shape == ref.shape == (int(np.ceil(n * target / SR)),)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_resample_keeps_frequency_and_removes_aliases():
    def spectrum_peak_hz(y, sr):
        mag = np.abs(np.fft.rfft(y * np.hanning(y.size)))
        return np.fft.rfftfreq(y.size, 1 / sr)[np.argmax(mag)], mag

    low = tone(1.0, freq=1000.0)
    down = resample(low, SR, 8000)
    peak_hz, _ = spectrum_peak_hz(down, 8000)
    assert abs(peak_hz - 1000.0) <= 1.0
    up = resample(low, SR, 44100)
    assert abs(spectrum_peak_hz(up, 44100)[0] - 1000.0) <= 1.0
    # 6 kHz is above the 4 kHz Nyquist of 8 kHz: a band-limited resampler removes it instead of aliasing
    # it to 2 kHz (a naive decimation would keep it at full level)
    high = (0.5 * np.sin(2 * np.pi * 6000.0 * np.arange(SR) / SR)).astype(np.float32)
    alias = resample(high, SR, 8000)
    assert np.sqrt(np.mean(alias[500:-500] ** 2)) < 1e-3 * np.sqrt(np.mean(high**2))


def test_resample_multichannel_equals_per_channel():
    y = np.stack([tone(0.3), tone(0.3, freq=440.0, seed=1)])
    out = resample(y, SR, 22050)
    assert out.shape == (2, int(np.ceil(y.shape[1] * 22050 / SR)))
    for c in range(2):
        np.testing.assert_allclose(out[c], resample(y[c], SR, 22050), atol=1e-6)
    np.testing.assert_array_equal(resample(y, SR, SR), y)


def test_read_audio_resamples(tone_wav):
    y, sr = read_audio(tone_wav, sample_rate=8000)
    assert sr == 8000 and y.shape == (8000,) and y.dtype == np.float32
    native, _ = read_audio(tone_wav)
    np.testing.assert_allclose(y, resample(native, SR, 8000), atol=1e-7)


# --------------------------------------------------------------------------- fix_length


def test_zero_pad_at_end():
    y = ramp(10)
    out = fix_length(y, 25, pad_mode="zero")
    assert out.shape == (25,)
    np.testing.assert_array_equal(out[:10], y)
    assert not out[10:].any()


def test_mirror_pad_signal_three_times_shorter():
    y = ramp(100) + 0.1
    out = fix_length(y, 300, pad_mode="mirror")
    assert out.shape == (300,)
    # back-and-forth reflection about the end samples (edge sample not repeated): period 2 * (n - 1)
    period = 2 * (y.size - 1)
    k = np.arange(300) % period
    np.testing.assert_array_equal(out, y[np.where(k < y.size, k, period - k)])
    np.testing.assert_array_equal(out[100:199], y[-2::-1])  # the reversed signal follows it
    assert out.min() > 0  # no zeros inserted


def test_wrap_pad_repeats():
    y = ramp(7) + 0.1
    out = fix_length(y, 30, pad_mode="wrap")
    np.testing.assert_array_equal(out, y[np.arange(30) % 7])


def test_pad_one_sample_signal_and_empty_signal():
    np.testing.assert_array_equal(fix_length(np.array([0.5], np.float32), 4, pad_mode="mirror"), [0.5] * 4)
    np.testing.assert_array_equal(fix_length(np.zeros(0, np.float32), 3), [0, 0, 0])
    with pytest.raises(AudioError, match="empty"):
        fix_length(np.zeros(0, np.float32), 3, pad_mode="wrap")


def test_crop_start_and_centre():
    y = ramp(100)
    np.testing.assert_array_equal(fix_length(y, 40, crop="start"), y[:40])
    np.testing.assert_array_equal(fix_length(y, 40, crop="centre"), y[30:70])
    np.testing.assert_array_equal(fix_length(y, 41, crop="centre"), y[29:70])  # odd excess: extra from the tail
    np.testing.assert_array_equal(fix_length(y, 100), y)


def window_start(y: np.ndarray, window: np.ndarray) -> int:
    """Where ``window`` was cut from ``y`` (asserting that it is a contiguous piece of it)."""
    starts = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(y, 64) == window[:64], axis=1))
    assert starts.size == 1
    start = int(starts[0])
    np.testing.assert_array_equal(window, y[start : start + window.size])
    return start


def test_head_tail_crop_drops_silent_margins_first():
    margin = lambda s: 1e-3 * tone(s, seed=3)
    speech = tone(2.0, amp=0.5)
    y = np.concatenate([margin(1.0), speech, margin(0.2)])  # 3.2 s, speech in [1.0, 3.0) s
    length = int(2.2 * SR)
    # the window is centred on the speech, [0.9, 3.1) s, up to trim's 512-sample frame hop: all speech kept
    start = window_start(y, fix_length(y, length, crop="head_tail"))
    assert abs(start - 0.9 * SR) <= 512 and start <= SR and start + length >= 3 * SR
    centre = fix_length(y, length, crop="centre")  # [0.5, 2.7) s cuts 0.3 s of speech
    np.testing.assert_array_equal(centre, y[int(0.5 * SR) : int(0.5 * SR) + length])
    # speech longer than the target: about equal parts of the speech go from both ends
    assert abs(window_start(y, fix_length(y, SR, crop="head_tail")) - 1.5 * SR) <= 512
    # the window never leaves the signal
    late = np.concatenate([margin(2.0), speech[:SR]])
    np.testing.assert_array_equal(fix_length(late, int(1.5 * SR), crop="head_tail"), late[-int(1.5 * SR) :])


def test_head_tail_crop_of_even_signal_is_centred():
    y = tone(1.0, amp=0.5)
    np.testing.assert_array_equal(fix_length(y, 12000, crop="head_tail"), fix_length(y, 12000, crop="centre"))


@pytest.mark.parametrize("pad_mode", ["zero", "mirror", "wrap"])
@pytest.mark.parametrize("crop", ["centre", "start", "head_tail"])
def test_fix_length_exact_lengths_multichannel(pad_mode, crop):
    y = np.stack([tone(0.1), tone(0.1, seed=2)])  # 1600 samples
    for length in (1, 999, 1600, 5000):
        out = fix_length(y, length, pad_mode=pad_mode, crop=crop)
        assert out.shape == (2, length) and out.dtype == np.float32
    assert fix_length(y, 0, pad_mode=pad_mode, crop=crop).shape == (2, 0)


def test_fix_length_rejects_bad_arguments():
    y = ramp(10)
    with pytest.raises(ValueError, match="pad_mode"):
        fix_length(y, 20, pad_mode="reflect")
    with pytest.raises(ValueError, match="crop"):
        fix_length(y, 5, crop="middle")
    with pytest.raises(ValueError, match="length"):
        fix_length(y, -1)


# --------------------------------------------------------------------------- silence


def bursts(spec: list[tuple[float, float]], total: float, sr: int = SR) -> np.ndarray:
    """Tone bursts at the given (start_s, end_s) over faint noise (about -66 dB below the bursts)."""
    y = 2e-4 * np.random.default_rng(7).standard_normal(int(total * sr)).astype(np.float32)
    for start, end in spec:
        a, b = int(start * sr), int(end * sr)
        y[a:b] += tone(total, sr=sr, freq=300.0, amp=0.5)[a:b]
    return y


@pytest.mark.parametrize("top_db", [20.0, 30.0, 60.0])
def test_trim_silence_matches_librosa(top_db):
    y = bursts([(0.3, 0.8), (1.1, 1.5)], 2.0)
    out, (start, end) = trim_silence(y, SR, top_db=top_db)
    ref, ref_index = librosa.effects.trim(y, top_db=top_db, frame_length=2048, hop_length=512)
    assert (start, end) == tuple(ref_index)
    np.testing.assert_array_equal(out, y[start:end])
    np.testing.assert_array_equal(out, ref)
    assert 0 < start < 0.3 * SR and 1.5 * SR < end < y.size


def test_speech_regions_recovers_bursts_within_one_hop():
    truth = [(0.2, 0.7), (1.0, 1.3), (1.805, 2.4)]
    y = bursts(truth, 3.0)
    found = speech_regions(y, SR)
    hop_s = 0.010
    assert len(found) == len(truth)
    for (s, e), (ts, te) in zip(found, truth):
        assert abs(s - ts) <= hop_s and abs(e - te) <= hop_s
    # the same with explicit frames at another rate
    y8 = bursts(truth, 3.0, sr=8000)
    found8 = speech_regions(y8, 8000, frame_length=128, hop_length=64)
    for (s, e), (ts, te) in zip(found8, truth):
        assert abs(s - ts) <= 64 / 8000 and abs(e - te) <= 64 / 8000


def test_speech_regions_merges_short_gaps_and_drops_short_bursts():
    y = bursts([(0.2, 0.6), (0.7, 1.0), (1.5, 1.55), (2.0, 2.5)], 3.0)
    found = speech_regions(y, SR, min_silence=0.25, min_speech=0.1)
    # 0.1 s gap merged, 0.05 s burst dropped
    assert len(found) == 2
    assert abs(found[0][0] - 0.2) <= 0.01 and abs(found[0][1] - 1.0) <= 0.01
    assert abs(found[1][0] - 2.0) <= 0.01 and abs(found[1][1] - 2.5) <= 0.01
    assert len(speech_regions(y, SR, min_silence=0.05, min_speech=0.0)) == 4


def test_remove_silence_concatenates_regions():
    y = bursts([(0.2, 0.7), (1.5, 2.0)], 2.5)
    out = remove_silence(y, SR)
    regions = speech_regions(y, SR)
    expected = np.concatenate([y[round(s * SR) : round(e * SR)] for s, e in regions])
    np.testing.assert_array_equal(out, expected)
    assert abs(out.size - SR) <= 4 * 160  # two 0.5 s bursts, each within a hop at both ends


def test_silence_functions_on_all_zero_signal():
    assert speech_regions(np.zeros(SR, np.float32), SR) == []
    with pytest.raises(AudioError, match="no speech"):
        remove_silence(np.zeros(SR, np.float32), SR)


# --------------------------------------------------------------------------- normalisation


def test_peak_normalize():
    y = tone(0.5, amp=0.25)
    out = peak_normalize(y)
    assert out.dtype == np.float32
    assert np.max(np.abs(out)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(out / y, out[0] / y[0], rtol=1e-5)  # a pure gain
    assert np.max(np.abs(peak_normalize(y, peak=0.5))) == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(AudioError, match="all-zero"):
        peak_normalize(np.zeros(100, np.float32))


def test_z_normalize():
    y = tone(0.5, amp=0.3) + 0.2
    out = z_normalize(y)
    assert out.dtype == np.float32
    assert abs(float(out.mean())) < 1e-5 and float(out.std()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(AudioError, match="all-zero"):
        z_normalize(np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="constant"):
        z_normalize(np.full(100, 0.3, np.float32))


# --------------------------------------------------------------------------- config and load_clip(s)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sample_rate", 0),
        ("sample_rate", -8000),
        ("offset", -0.5),
        ("offset", float("inf")),
        ("duration", 0.0),
        ("duration", -3.0),
        ("pad_mode", "reflect"),
        ("crop", "middle"),
        ("trim_silence_db", 0.0),
        ("normalize", "loudness"),
        ("sample_rat", 16000),  # a typo: extra fields are forbidden
    ],
)
def test_audio_config_rejects_bad_fields(field, value):
    with pytest.raises(pydantic.ValidationError) as excinfo:
        AudioConfig(**{field: value})
    assert excinfo.value.errors()[0]["loc"] == (field,)
    assert field in str(excinfo.value)


def test_audio_config_defaults_and_round_trip():
    cfg = AudioConfig()
    assert (cfg.sample_rate, cfg.duration, cfg.pad_mode, cfg.normalize) == (16000, None, "zero", "none")
    assert cfg.num_samples is None
    an2021 = AudioConfig(sample_rate=48000, offset=0.5, duration=3.0)
    assert an2021.num_samples == 144000
    assert AudioConfig.model_validate(an2021.model_dump()) == an2021


def test_load_clip_chain(tmp_path):
    y = np.concatenate([np.zeros(SR // 2, np.float32), tone(1.0, amp=0.25), np.zeros(SR // 2, np.float32)])
    path = write(tmp_path / "clip.wav", y, subtype="FLOAT")
    # an2021-style: 0.5 s offset skips the leading silence, 3 s requested, zero-padded at the end
    out = load_clip(path, AudioConfig(offset=0.5, duration=3.0))
    assert out.shape == (48000,) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:SR], y[SR // 2 : SR // 2 + SR])
    assert not out[int(1.5 * SR) :].any()
    # trim + peak normalisation + mirror padding to 2 s: no zeros after the speech
    out = load_clip(path, AudioConfig(trim_silence_db=30.0, normalize="peak", duration=2.0, pad_mode="mirror"))
    assert out.shape == (32000,)
    assert np.max(np.abs(out)) == pytest.approx(1.0, abs=1e-6)
    trimmed, _ = trim_silence(read_audio(path)[0], SR, top_db=30.0)
    np.testing.assert_array_equal(out, fix_length(peak_normalize(trimmed), 32000, pad_mode="mirror"))
    assert np.mean(out == 0) < 0.15  # only the short margins trim keeps; zero padding: about 40 %
    # variable length, resampled, z-normalised
    out = load_clip(path, AudioConfig(sample_rate=8000, normalize="z"))
    assert out.shape == (16000,) and abs(float(out.mean())) < 1e-5
    # silence removal drops the margins
    out = load_clip(path, AudioConfig(remove_silence=True))
    assert abs(out.size - SR) <= 2 * 160


def test_load_clip_errors_name_the_file(tmp_path):
    click = np.zeros(SR, np.float32)
    click[8000] = 0.5  # audible, but far shorter than min_speech
    path = write(tmp_path / "click.wav", click)
    with pytest.raises(AudioError, match="no speech") as excinfo:
        load_clip(path, AudioConfig(remove_silence=True))
    assert excinfo.value.path == str(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize("num_workers", [1, 2])
def test_load_clips_reports_failures_and_keeps_order(tmp_path, num_workers):
    paths: list[Path] = []
    for i in range(5):
        paths.append(write(tmp_path / f"ok{i}.wav", tone(0.2 + 0.1 * i, seed=i)))
    text = tmp_path / "text.wav"
    text.write_text("hello")
    silent = write(tmp_path / "silent.wav", np.zeros(1000, np.float32))
    paths = [paths[0], text, paths[1], paths[2], tmp_path / "missing.wav", paths[3], silent, paths[4]]
    batch = load_clips(paths, AudioConfig(), num_workers=num_workers)
    assert isinstance(batch, ClipBatch) and len(batch) == 5
    np.testing.assert_array_equal(batch.index, [0, 2, 3, 5, 7])
    assert [s.size for s in batch.signals] == [int((0.2 + 0.1 * i) * SR) for i in range(5)]
    for position, signal in zip(batch.index, batch.signals):
        np.testing.assert_array_equal(signal, read_audio(paths[position])[0])
    assert [p for p, _ in batch.failures] == [str(text), str(tmp_path / "missing.wav"), str(silent)]
    reasons = [r for _, r in batch.failures]
    assert "not an audio file" in reasons[0] and "not found" in reasons[1] and "silent" in reasons[2]


def test_load_clips_fixed_length_with_progress(tmp_path, capsys):
    paths = [write(tmp_path / f"c{i}.wav", tone(0.3 * (i + 1), seed=i)) for i in range(3)]
    batch = load_clips(paths, AudioConfig(duration=0.5, pad_mode="wrap"), progress=True)
    assert [s.shape for s in batch.signals] == [(8000,)] * 3 and batch.failures == []
    empty = load_clips([], AudioConfig())
    assert len(empty) == 0 and empty.index.shape == (0,)


# --------------------------------------------------------------------------- real corpora

RAVDESS_STEREO = "Actor_01/03-01-02-01-01-02-01.flac"


@pytest.mark.corpus
def test_real_emodb_wav(emodb_root, tmp_path):
    path = emodb_root / "wav" / "03a01Fa.wav"
    info = sf.info(path)
    y, sr = read_audio(path)
    assert sr == 16000 and y.shape == (info.frames,) and y.dtype == np.float32
    assert 0.05 < np.max(np.abs(y)) <= 1.0
    y8, _ = read_audio(path, sample_rate=8000)
    assert y8.shape == (int(np.ceil(info.frames / 2)),)
    # a real file cut short is reported as truncated
    cut = tmp_path / "cut.wav"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) - 5000])
    with pytest.raises(AudioError, match="truncated"):
        read_audio(cut)


@pytest.mark.corpus
def test_real_ravdess_stereo_flac(ravdess_root):
    path = ravdess_root / RAVDESS_STEREO
    info = sf.info(path)
    assert info.format == "FLAC" and info.channels == 2
    both, sr = read_audio(path, mono=False)
    assert sr == 16000 and both.shape == (2, info.frames)
    mono, _ = read_audio(path)
    np.testing.assert_allclose(mono, both.mean(axis=0), atol=1e-7)
    clip = load_clip(path, AudioConfig(sample_rate=48000, offset=0.5, duration=3.0))  # an2021's input
    assert clip.shape == (144000,)


def test_truncation_is_judged_only_where_the_header_length_is_exact(tmp_path, monkeypatch, tiny_model_path):
    """Issue 15.4: an MP3 (or Ogg) whose header declares a few more frames than decode is valid; a WAV is not."""
    import serkit.audio.io as audio_io
    from serkit.inference.analysis import analyze_recording
    from serkit.inference.api import load_model
    from serkit.inference.stream import AnalysisConfig

    y = (0.3 * np.sin(2 * np.pi * 450.0 * np.arange(3 * 16000) / 16000)).astype(np.float32)
    sf.write(tmp_path / "a.mp3", y, 16000, format="MP3")
    sf.write(tmp_path / "a.wav", y, 16000)

    class OverstatedLength(sf.SoundFile):
        """What a sox/LAME MP3 looks like to libsndfile: the header counts encoder padding too."""

        @property
        def frames(self):
            return super().frames + 492

    monkeypatch.setattr(audio_io.sf, "SoundFile", OverstatedLength)
    signal, _ = read_audio(tmp_path / "a.mp3")
    assert abs(len(signal) - len(y)) < 2000
    with pytest.raises(AudioError, match="truncated: the header declares"):
        read_audio(tmp_path / "a.wav")
    model = load_model(tiny_model_path, vad="energy")
    analysis = analyze_recording(tmp_path / "a.mp3", model, AnalysisConfig(vad="energy"))
    assert analysis.windows and analysis.duration == pytest.approx(3.0, abs=0.1)
    with pytest.raises(AudioError, match="truncated"):
        analyze_recording(tmp_path / "a.wav", model, AnalysisConfig(vad="energy"))
