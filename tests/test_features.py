"""serkit.features: librosa parity of the torch frontends, shapes, configs, the cache, eGeMAPS."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from pydantic import ValidationError

from conftest import tone
from serkit.errors import AudioError, ConfigError, SerkitError
from serkit.features import (
    FRONTENDS,
    MFCC,
    EGeMAPS,
    FeatureCache,
    LogMel,
    LogMelDeltas,
    LogSTFT,
    OpenSmileFunctionals,
    Raw,
    SpectralFrontendConfig,
    compute_deltas,
    create_frontend,
    linear_pooling_matrix,
    parse_frontend_config,
    power_to_db,
)

SR = 16000
# Max abs difference allowed against librosa, in dB (log mels, log STFT) or MFCC units (dB-scaled
# DCT coefficients spanning hundreds). Observed: <= 3.5e-3 over all 535 EmoDB files; it comes from
# float32 rounding in two FFT implementations, largest near the top_db floor.
ATOL_DB = 1e-2
EMODB_CLIPS = ("03a01Fa.wav", "03a01Nc.wav", "16b10Wb.wav")


def noise(seconds: float = 1.0, sr: int = SR, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal(int(seconds * sr))).astype(np.float32)


# -- librosa references (numpy, one clip at a time) -----------------------------------------------
def ref_logmel(y, sr, n_mels=40, win_length=0.025, hop_length=0.010, n_fft=None, window="hamming",
               center=True, top_db=80.0):
    win, hop = round(win_length * sr), round(hop_length * sr)
    n_fft = n_fft or 1 << (win - 1).bit_length()
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, win_length=win,
                                         window=window, center=center, n_mels=n_mels)
    return librosa.power_to_db(mel, top_db=top_db)


def ref_logmel_deltas(y, sr, delta_n=2, **kw):
    static = ref_logmel(y, sr, **kw)
    width = 2 * delta_n + 1
    delta = librosa.feature.delta(static, width=width, mode="nearest")
    return np.stack([static, delta, librosa.feature.delta(delta, width=width, mode="nearest")])


def ref_log_stft(y, sr, n_fft=2048, hop_length=512, n_bands=128, pooling="linear", top_db=80.0):
    magnitude = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))
    if pooling == "linear":  # independent of linear_pooling_matrix: array_split + mean
        magnitude = np.stack([group.mean(axis=0) for group in np.array_split(magnitude, n_bands, axis=0)])
    return librosa.amplitude_to_db(magnitude, top_db=top_db)


def ref_mfcc(y, sr, **kw):
    return librosa.feature.mfcc(y=y, sr=sr, **kw)  # power_to_db with its default top_db=80


# (frontend class, its kwargs, librosa reference, reference kwargs)
PARITY_CASES = {
    "mfcc-40": (MFCC, {"n_mfcc": 40}, ref_mfcc, {"n_mfcc": 40}),
    "mfcc-128-ha2024": (MFCC, {"n_mfcc": 128}, ref_mfcc, {"n_mfcc": 128}),
    "mfcc-uncentred-band": (
        MFCC,
        {"n_mfcc": 20, "n_fft": 1024, "hop_length": 256, "n_mels": 64, "fmin": 50.0, "fmax": 7000.0, "center": False},
        ref_mfcc,
        {"n_mfcc": 20, "n_fft": 1024, "hop_length": 256, "n_mels": 64, "fmin": 50.0, "fmax": 7000.0, "center": False},
    ),
    "logmel": (LogMel, {}, ref_logmel, {}),
    "logmel-no-floor": (LogMel, {"top_db": None}, ref_logmel, {"top_db": None}),
    "logmel_deltas": (LogMelDeltas, {}, ref_logmel_deltas, {}),
    "logmel_deltas-n3": (LogMelDeltas, {"delta_n": 3, "n_mels": 64}, ref_logmel_deltas, {"delta_n": 3, "n_mels": 64}),
    "stft-128": (LogSTFT, {}, ref_log_stft, {}),
    "stft-100-bands": (LogSTFT, {"n_fft": 512, "hop_length": 128, "n_bands": 100}, ref_log_stft,
                       {"n_fft": 512, "hop_length": 128, "n_bands": 100}),
    "stft-no-pooling": (LogSTFT, {"pooling": "none"}, ref_log_stft, {"pooling": "none"}),
}


def assert_matches_librosa(case: str, y: np.ndarray, sr: int = SR) -> None:
    cls, kwargs, ref, ref_kwargs = PARITY_CASES[case]
    ours = cls(sr, **kwargs)(torch.from_numpy(y)).numpy()
    theirs = ref(y, sr, **ref_kwargs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=ATOL_DB)


@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_parity_with_librosa_on_noise(case):
    # noise with a silent stretch: exercises the amin / top_db floor too
    y = np.concatenate([noise(0.7), np.zeros(2000, np.float32), noise(0.3, seed=1, amp=0.01)])
    assert_matches_librosa(case, y)


@pytest.mark.corpus
@pytest.mark.parametrize("case", ["mfcc-40", "mfcc-128-ha2024", "logmel", "logmel_deltas", "stft-128"])
def test_parity_with_librosa_on_emodb(emodb_root, case):
    for name in EMODB_CLIPS:
        y, sr = sf.read(emodb_root / "wav" / name, dtype="float32")
        assert sr == SR
        assert_matches_librosa(case, y, sr)


@pytest.mark.parametrize("sr", [8000, 48000])
def test_logmel_window_in_seconds_at_other_rates(sr):
    frontend = LogMel(sr)
    assert frontend.win_length == round(0.025 * sr) and frontend.hop_length == round(0.010 * sr)
    assert frontend.n_fft == {8000: 256, 48000: 2048}[sr]
    y = noise(0.5, sr=sr)
    np.testing.assert_allclose(frontend(torch.from_numpy(y)).numpy(), ref_logmel(y, sr), rtol=0, atol=ATOL_DB)


def test_deltas_equal_librosa_nearest_not_order2():
    x = np.random.default_rng(3).standard_normal((5, 40)).astype(np.float32)
    ours = compute_deltas(torch.from_numpy(x), n=2).numpy()
    np.testing.assert_allclose(ours, librosa.feature.delta(x, width=5, mode="nearest"), atol=1e-5)
    # the paper's formula (2) by hand at an interior frame
    t = 10
    by_hand = (1 * (x[:, t + 1] - x[:, t - 1]) + 2 * (x[:, t + 2] - x[:, t - 2])) / 10
    np.testing.assert_allclose(ours[:, t], by_hand, atol=1e-6)
    # delta-deltas are deltas of deltas (formula 3), not librosa's order=2 parabola fit
    twice = compute_deltas(torch.from_numpy(ours), n=2).numpy()
    assert not np.allclose(twice, librosa.feature.delta(x, width=5, order=2, mode="nearest"), atol=1e-3)
    # time axis elsewhere
    np.testing.assert_allclose(compute_deltas(torch.from_numpy(x.T.copy()), n=2, dim=0).numpy().T, ours, atol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("frames", [2, 5, 40])
def test_deltas_along_the_middle_axis_of_a_batch_equal_librosa(n, frames):
    # (clips, frames, mels): the layout LogMelDeltas uses; short clips exercise the replicated edges
    x = np.random.default_rng(n).standard_normal((3, frames, 7)).astype(np.float32)
    ours = compute_deltas(torch.from_numpy(x), n=n, dim=1).numpy()
    theirs = librosa.feature.delta(x, width=2 * n + 1, axis=1, mode="nearest")
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    assert not np.shares_memory(ours, x)  # a new tensor; the input is left alone
    with pytest.raises(ConfigError, match="delta_n"):
        compute_deltas(torch.from_numpy(x), n=0)


@pytest.mark.parametrize("top_db", [80.0, None])
def test_power_to_db_per_item_and_in_place_equal_librosa(top_db):
    # items 60 dB apart: the floor must follow each item's own maximum
    scales = np.array([1.0, 1e-6, 0.0], dtype=np.float32)[:, None, None]
    power = np.random.default_rng(4).random((3, 12, 9)).astype(np.float32) * scales
    expected = np.stack([librosa.power_to_db(item, top_db=top_db) for item in power])
    tensor = torch.from_numpy(power.copy())
    np.testing.assert_allclose(power_to_db(tensor, top_db=top_db).numpy(), expected, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(tensor.numpy(), power)  # left alone by default
    result = power_to_db(tensor, top_db=top_db, inplace=True)
    assert result.data_ptr() == tensor.data_ptr()
    np.testing.assert_allclose(result.numpy(), expected, rtol=0, atol=1e-4)
    with pytest.raises(ConfigError, match="top_db"):
        power_to_db(tensor, top_db=-1.0)


def test_linear_pooling_matrix_partitions_bins():
    matrix = linear_pooling_matrix(1025, 128)
    assert matrix.shape == (128, 1025)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-6)
    assert ((matrix > 0).sum(axis=0) == 1).all()  # every bin in exactly one band
    assert (matrix[0] > 0).sum() == 9 and (matrix[1:] > 0).sum(axis=1).tolist() == [8] * 127
    assert np.flatnonzero(matrix[1]).tolist() == list(range(9, 17))
    with pytest.raises(ConfigError, match="n_bands"):
        linear_pooling_matrix(10, 11)


ALL_DEFAULT_FRONTENDS = [Raw(SR), MFCC(SR), LogSTFT(SR), LogMel(SR), LogMelDeltas(SR)]


@pytest.mark.parametrize("frontend", ALL_DEFAULT_FRONTENDS, ids=lambda f: f.name)
@pytest.mark.parametrize("num_samples", [1, 159, 160, 511, 2048, 16001, 80000])
def test_num_frames_and_output_shape_match_output(frontend, num_samples):
    out = frontend(torch.zeros(2, num_samples))
    assert tuple(out.shape) == (2, *frontend.output_shape(num_samples))
    assert out.shape[-1] == frontend.num_frames(num_samples)
    assert out.dtype == torch.float32


def test_spec_shapes():
    five_s = torch.zeros(1, 5 * SR)
    assert MFCC(SR, n_mfcc=128)(five_s).shape == (1, 128, 157)  # ha2024: 128 x 157 for 5 s
    assert LogSTFT(SR)(five_s).shape == (1, 128, 157)
    assert LogMelDeltas(SR)(torch.zeros(4, 3 * SR)).shape == (4, 3, 40, 301)  # akalya2022 3 s segments
    assert Raw()(torch.zeros(3, 100)).shape == (3, 1, 100)
    assert MFCC(48000)(torch.zeros(1, 3 * 48000)).shape == (1, 40, 282)  # an2021 40 x 282


def test_uncentred_frames_and_too_short_signal():
    frontend = MFCC(SR, center=False)
    assert frontend.num_frames(2048) == 1 and frontend.num_frames(2048 + 512) == 2
    with pytest.raises(AudioError, match="too short"):
        frontend(torch.zeros(1, 2047))
    with pytest.raises(AudioError, match="shorter than one frame"):
        frontend.num_frames(100)


@pytest.mark.parametrize("frontend", ALL_DEFAULT_FRONTENDS, ids=lambda f: f.name)
def test_batch_equals_single_items(frontend):
    # a loud and a very quiet clip: the top_db floor must be per clip, not per batch
    clips = [tone(0.5, freq=300.0), 1e-3 * noise(0.5, seed=2), tone(0.5, freq=1234.0, seed=5)]
    batch_out = frontend(torch.from_numpy(np.stack(clips)))
    for i, clip in enumerate(clips):
        single = frontend(torch.from_numpy(clip))  # (T,) in -> no batch dimension out
        assert single.shape == batch_out.shape[1:]
        torch.testing.assert_close(batch_out[i], single, rtol=0, atol=1e-4)


def test_float64_input_is_computed_in_float32():
    y = noise(0.5)
    frontend = LogMel(SR)
    out64 = frontend(torch.from_numpy(y.astype(np.float64)))
    assert out64.dtype == torch.float32
    torch.testing.assert_close(out64, frontend(torch.from_numpy(y)))
    # numpy input is accepted too
    torch.testing.assert_close(frontend(y), frontend(torch.from_numpy(y)))


@pytest.mark.parametrize(
    ("waveform", "message"),
    [
        (torch.zeros(100, dtype=torch.int16), "floating-point"),
        (torch.zeros(2, 2, 100), "shape"),
        (torch.zeros(0, 100), "empty batch"),
        (torch.zeros(2, 0), "too short"),
        ([0.0, 1.0], "torch.Tensor"),
    ],
)
def test_bad_input_gives_clear_error(waveform, message):
    with pytest.raises(AudioError, match=message):
        MFCC(SR)(waveform)


def test_non_finite_input_names_the_item():
    batch = torch.zeros(3, 4000)
    batch[1, 7] = float("nan")
    with pytest.raises(AudioError, match=r"item\(s\) \[1\]"):
        LogSTFT(SR)(batch)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: MFCC(SR, n_mfcc=129), "n_mfcc"),
        (lambda: MFCC(SR, window="no-such-window"), "window"),
        (lambda: MFCC(SR, fmax=9000.0), "fmax"),
        (lambda: MFCC(SR, hop_length=0), "hop_length"),
        (lambda: LogMel(SR, win_length=400), "win_length"),
        (lambda: LogMel(SR, n_fft=256), "win_length"),
        (lambda: LogSTFT(SR, pooling="mel"), "pooling"),
        (lambda: LogSTFT(SR, n_bands=2000), "n_bands"),
        (lambda: LogSTFT(SR, n_bands=64, pooling="none"), "n_bands"),
        (lambda: LogMelDeltas(SR, delta_n=0), "delta_n"),
    ],
)
def test_invalid_frontend_parameters_name_the_field(build, field):
    with pytest.raises(ConfigError, match=field):
        build()


def test_config_is_json_and_identifies_the_features():
    configs = [f.config for f in ALL_DEFAULT_FRONTENDS]
    for config in configs:
        assert json.loads(json.dumps(config)) == config
        assert config["sample_rate"] == SR
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs)
    assert MFCC(SR).config != MFCC(SR, n_mfcc=20).config != MFCC(22050).config
    assert LogMel(SR).config["hop_length"] == 0.010 and LogMel(SR).config["hop_samples"] == 160


@pytest.mark.parametrize("cls", [MFCC, LogSTFT, LogMelDeltas])
def test_chunking_and_work_buffers_do_not_change_results(cls, monkeypatch):
    from serkit.features import frontends

    batch = torch.from_numpy(np.stack([noise(0.5, seed=s, amp=0.1 * (s + 1)) for s in range(3)]))
    frontend = cls(SR)
    reference = frontend(batch)
    monkeypatch.setattr(frontends, "_CPU_CHUNK_SAMPLES", 1)  # one clip per chunk
    torch.testing.assert_close(frontend(batch), reference, rtol=0, atol=1e-4)
    monkeypatch.setattr(frontends, "_MAX_WORK_SAMPLES", 0)  # no reused buffers (as for long clips)
    torch.testing.assert_close(frontend(batch), reference, rtol=0, atol=1e-4)


def test_autograd_path_equals_buffered_cpu_path():
    # input that requires grad takes the plain (allocating) path used on GPU too
    batch = torch.from_numpy(np.stack([noise(0.5, seed=s) for s in range(2)]))
    for frontend in (MFCC(SR), LogSTFT(SR), LogMelDeltas(SR)):
        fast = frontend(batch)
        leaf = batch.clone().requires_grad_(True)
        differentiable = frontend(leaf)
        torch.testing.assert_close(differentiable.detach(), fast, rtol=0, atol=1e-4)
        differentiable.sum().backward()
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cls", [MFCC, LogSTFT, LogMelDeltas])
def test_cuda_matches_cpu(cls):
    batch = torch.from_numpy(np.stack([noise(1.0, seed=s) for s in range(4)]))
    frontend = cls(SR)
    on_cpu = frontend(batch)
    on_gpu = frontend.to("cuda")(batch.to("cuda"))
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=ATOL_DB)


# -- FrontendConfig / create_frontend -------------------------------------------------------------
def test_create_frontend_defaults_follow_the_spec():
    mfcc = create_frontend("mfcc", SR)
    assert isinstance(mfcc, MFCC)
    assert (mfcc.n_mfcc, mfcc.n_fft, mfcc.hop_length, mfcc.n_mels) == (40, 2048, 512, 128)
    stft = create_frontend({"name": "stft"}, SR)
    assert isinstance(stft, LogSTFT) and (stft.n_bands, stft.pooling) == (128, "linear")
    logmel = create_frontend(SpectralFrontendConfig(name="logmel"), SR)
    assert (logmel.n_mels, logmel.win_length, logmel.hop_length, logmel.n_fft, logmel.window) == (
        40, 400, 160, 512, "hamming")
    deltas = create_frontend({"name": "logmel_deltas", "hop_length": 0.02}, SR)
    assert isinstance(deltas, LogMelDeltas) and deltas.hop_length == 320 and deltas.delta_n == 2
    assert isinstance(create_frontend("raw", SR), Raw)
    assert create_frontend({"name": "stft", "pooling": "none"}, SR).n_bands == 1025
    assert set(FRONTENDS) == {"raw", "mfcc", "stft", "logmel", "logmel_deltas"}


def test_create_frontend_passes_parameters():
    frontend = create_frontend({"name": "mfcc", "n_mfcc": 128, "top_db": False, "hop_length": 256}, 8000)
    assert frontend.config == {
        "name": "mfcc", "sample_rate": 8000, "n_fft": 2048, "hop_length": 256, "window": "hann",
        "center": True, "n_mels": 128, "fmin": 0.0, "fmax": None, "top_db": None, "n_mfcc": 128,
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "stft", "n_mfcc": 40}, "n_mfcc"),
        ({"name": "raw", "n_fft": 512}, "n_fft"),
        ({"name": "logmel", "n_bands": 64}, "n_bands"),
        ({"name": "mfcc", "delta_n": 2}, "delta_n"),
        ({"name": "mfcc", "win_length": 0.025}, "win_length"),
        ({"name": "mfcc", "nmfcc": 40}, "nmfcc"),  # typo: extra field
        ({"name": "logmel", "hop_length": 160}, "hop_length"),  # samples where seconds are meant
        ({"name": "mfcc", "hop_length": 0.01}, "hop_length"),  # seconds where samples are meant
        ({"name": "mfcc", "top_db": True}, "top_db"),
        ({"name": "mfcc", "top_db": -3}, "top_db"),
        ({"name": "mfcc", "n_mfcc": 0}, "n_mfcc"),
        ({"name": "spectrogram"}, "name"),
    ],
)
def test_frontend_config_rejects_bad_fields_naming_them(fields, field):
    with pytest.raises(ValidationError, match=field):
        SpectralFrontendConfig(**fields)
    with pytest.raises(ConfigError, match=field):
        create_frontend(fields, SR)


def test_frontend_config_round_trips_through_dump():
    cfg = SpectralFrontendConfig(name="stft", n_bands=64, top_db=False)
    again = parse_frontend_config(cfg.model_dump())
    assert again == cfg
    assert create_frontend(again, SR).config == create_frontend(cfg, SR).config
    assert create_frontend(again, SR).top_db is None


@pytest.mark.parametrize("name", ["egemaps", "compare"])
def test_opensmile_sets_are_not_torch_frontends(name):
    SpectralFrontendConfig(name=name)  # a valid recipe value
    with pytest.raises(ConfigError, match="OpenSmileFunctionals"):
        create_frontend(name, SR)


# -- FeatureCache -------------------------------------------------------------------------------
@pytest.fixture
def cache(tmp_path) -> FeatureCache:
    return FeatureCache(tmp_path / "cache")


@pytest.fixture
def audio_file(tmp_path) -> Path:
    path = tmp_path / "clip.wav"
    sf.write(path, tone(0.2), SR)
    return path


def test_cache_round_trip(cache, audio_file):
    key = cache.key(audio_file, MFCC(SR).config)
    assert cache.get(key) is None and key not in cache
    array = np.random.default_rng(0).standard_normal((40, 7)).astype(np.float32)
    path = cache.put(key, array)
    assert path == cache.root / key[:2] / f"{key}.npz"  # sharded by key prefix
    loaded = cache.get(key)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, array)
    assert key in cache and len(cache) == 1
    assert not list(cache.root.rglob("*.tmp"))  # atomic put leaves no temporary files


def test_cache_key_depends_on_content_and_config(cache, audio_file, tmp_path):
    config = MFCC(SR).config
    key = cache.key(audio_file, config)
    assert len(key) == 64
    assert cache.key(audio_file, dict(reversed(list(config.items())))) == key  # canonical JSON
    assert cache.key(audio_file.read_bytes(), config) == key  # bytes or path: same content
    assert cache.key(audio_file, MFCC(SR, n_mfcc=20).config) != key
    other = tmp_path / "other.wav"
    sf.write(other, tone(0.2, freq=500.0), SR)
    assert cache.key(other, config) != key
    # rewriting the file (new size/mtime) re-hashes it instead of using the memo
    sf.write(audio_file, tone(0.3), SR)
    assert cache.key(audio_file, config) != key


def test_cache_get_or_compute_computes_once(cache, audio_file):
    key = cache.key(audio_file, {"name": "test"})
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6.0).reshape(2, 3)

    first = cache.get_or_compute(key, compute)
    second = cache.get_or_compute(key, compute)
    assert len(calls) == 1 and np.array_equal(first, second)


def _entry(cache: FeatureCache, audio_file: Path) -> tuple[str, Path]:
    key = cache.key(audio_file, {"name": "test"})
    return key, cache.put(key, np.linspace(0, 1, 4000, dtype=np.float32))


@pytest.mark.parametrize("where", [0.0, 0.3, 0.5, 0.9, 0.995])
def test_cache_detects_a_flipped_byte(cache, audio_file, caplog, where):
    key, path = _entry(cache, audio_file)
    data = bytearray(path.read_bytes())
    data[min(int(len(data) * where), len(data) - 1)] ^= 0x10
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="serkit.features.cache"):
        assert cache.get(key) is None
    assert "dropping entry" in caplog.text
    assert not path.exists()  # removed: the next put rewrites it


def test_cache_detects_a_truncated_entry(cache, audio_file, caplog):
    key, path = _entry(cache, audio_file)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="serkit.features.cache"):
        assert cache.get(key) is None
    assert "unreadable" in caplog.text and not path.exists()


def test_cache_detects_changed_data_behind_a_valid_file_checksum(cache, audio_file, caplog):
    # well-formed npz + a matching file trailer, but the array differs from the recorded checksum
    import hashlib
    import io

    key, path = _entry(cache, audio_file)
    raw = path.read_bytes()
    with np.load(io.BytesIO(raw[:-42])) as npz:
        meta = str(npz["meta"])
    assert raw[-42:-32] == b"SERKIT-FC1"
    buffer = io.BytesIO()
    np.savez(buffer, data=np.zeros(4000, np.float32), meta=np.array(meta))
    payload = buffer.getvalue()
    path.write_bytes(payload + b"SERKIT-FC1" + hashlib.sha256(payload).digest())
    with caplog.at_level(logging.WARNING, logger="serkit.features.cache"):
        assert cache.get(key) is None
    assert "data checksum" in caplog.text


def test_cache_format_version_mismatch_is_a_miss(cache, audio_file, caplog):
    key, path = _entry(cache, audio_file)
    newer = FeatureCache(cache.root, format_version=cache.format_version + 1)
    assert newer.key(audio_file, {"name": "test"}) != key  # new version, new key: a miss
    with caplog.at_level(logging.WARNING, logger="serkit.features.cache"):
        assert newer.get(key) is None  # an entry of the old version found under its key: stale
    assert "stale" in caplog.text and not path.exists()


def test_cache_entry_moved_to_another_key_is_stale(cache, audio_file, tmp_path):
    _key, path = _entry(cache, audio_file)
    other_key = cache.key(b"other bytes", {"name": "test"})
    target = cache.path_for(other_key)
    target.parent.mkdir(parents=True, exist_ok=True)
    path.rename(target)
    assert cache.get(other_key) is None


def test_cache_rejects_bad_keys_and_unhashable_configs(cache, tmp_path):
    with pytest.raises(SerkitError, match="invalid cache key"):
        cache.get("../../etc/passwd")
    with pytest.raises(SerkitError, match="JSON"):
        cache.key(b"x", {"name": object()})
    with pytest.raises(SerkitError, match="missing.wav"):
        cache.key(tmp_path / "missing.wav", {})


# -- eGeMAPS ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def egemaps() -> EGeMAPS:
    return EGeMAPS(SR)


@pytest.mark.corpus
def test_egemaps_equals_opensmile(emodb_root, egemaps):
    import opensmile

    y, sr = sf.read(emodb_root / "wav" / EMODB_CLIPS[0], dtype="float32")
    values = egemaps(y)
    assert values.shape == (88,) and np.isfinite(values).all()
    assert len(egemaps.feature_names) == 88 and egemaps.feature_names[0].startswith("F0semitone")
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    direct = smile.process_signal(y, sr)
    assert list(direct.columns) == egemaps.feature_names
    np.testing.assert_array_equal(values, direct.to_numpy()[0])
    both = egemaps.batch([y, y[: sr]])
    assert both.shape == (2, 88)
    np.testing.assert_array_equal(both[0], values)


def test_egemaps_bad_signals(egemaps):
    with pytest.raises(AudioError, match="too short"):
        egemaps(np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="shape"):
        egemaps(np.zeros((2, 1000), np.float32))
    with pytest.raises(AudioError, match="NaN"):
        egemaps(np.full(SR, np.nan, np.float32))
    good = tone(0.5)
    with pytest.raises(SerkitError, match=r"1 of 2 signals: signal 1: empty"):
        egemaps.batch([good, np.zeros(0, np.float32)])
    rows = egemaps.batch([good, np.zeros(0, np.float32)], on_error="nan")
    assert np.isfinite(rows[0]).all() and np.isnan(rows[1]).all()
    assert egemaps.config == {"name": "egemaps", "sample_rate": SR, "feature_set": "eGeMAPSv02"}


@pytest.mark.corpus
def test_compare_equals_opensmile(emodb_root):
    import opensmile

    compare = OpenSmileFunctionals(SR, "compare")
    y, sr = sf.read(emodb_root / "wav" / EMODB_CLIPS[0], dtype="float32")
    values = compare(y)
    assert values.shape == (6373,) == (compare.num_features,) and np.isfinite(values).all()
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                            feature_level=opensmile.FeatureLevel.Functionals)
    direct = smile.process_signal(y, sr)
    assert list(direct.columns) == compare.feature_names
    np.testing.assert_array_equal(values, direct.to_numpy()[0])
    assert compare.config == {"name": "compare", "sample_rate": SR, "feature_set": "ComParE_2016"}
    with pytest.raises(AudioError, match="empty"):
        compare(np.zeros(0, np.float32))


def test_opensmile_functionals_names_its_sets():
    with pytest.raises(ValueError, match="compare"):
        OpenSmileFunctionals(SR, "gemaps")
