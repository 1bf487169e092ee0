"""Waveform augmentations, SpecAugment, the training-set augmenter, and a no-leak check with LOSO."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from conftest import tone
from serkit.augment import (
    AugmentConfig,
    AwgnConfig,
    BalanceConfig,
    SpecAugment,
    SpecAugmentConfig,
    SpeedConfig,
    TimeShiftConfig,
    add_noise,
    augment_training_set,
    change_speed,
    spec_augment,
    time_shift,
    time_stretch,
)
from serkit.errors import AudioError, ConfigError
from serkit.training.protocols import ProtocolConfig, make_splits

SR = 16000


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean.astype(np.float64)
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))


# ------------------------------------------------------------------------------------- AWGN


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0, 35.0])
def test_add_noise_hits_the_requested_snr(snr):
    y = tone(1.0, amp=0.3)
    noisy = add_noise(y, snr, np.random.default_rng(1))
    assert noisy.dtype == np.float32 and noisy.shape == y.shape
    assert abs(_snr_db(y, noisy) - snr) < 0.1


def test_add_noise_is_white_gaussian_and_seeded():
    y = tone(1.0)
    a = add_noise(y, 10.0, np.random.default_rng(7))
    b = add_noise(y, 10.0, np.random.default_rng(7))
    c = add_noise(y, 10.0, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    noise = a.astype(np.float64) - y
    assert abs(noise.mean()) < 0.05 * noise.std()
    # White: neighbouring samples uncorrelated.
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.05


def test_add_noise_rejects_silence_and_does_not_modify_input():
    with pytest.raises(AudioError, match="silent"):
        add_noise(np.zeros(100, np.float32), 10.0, np.random.default_rng(0))
    y = tone(0.1)
    before = y.copy()
    add_noise(y, 5.0, np.random.default_rng(0))
    np.testing.assert_array_equal(y, before)


# ------------------------------------------------------------------------------ shift / speed


def test_time_shift_roll_and_zero():
    y = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(time_shift(y, 3), np.roll(y, 3))
    np.testing.assert_array_equal(time_shift(y, -3, "roll"), np.r_[y[3:], y[:3]])
    np.testing.assert_array_equal(time_shift(y, 3, "zero"), np.r_[np.zeros(3), y[:7]])
    np.testing.assert_array_equal(time_shift(y, -3, "zero"), np.r_[y[3:], np.zeros(3)])
    np.testing.assert_array_equal(time_shift(y, 0, "zero"), y)
    np.testing.assert_array_equal(time_shift(y, 12, "zero"), np.zeros(10))
    assert time_shift(tone(0.5), 800).shape == (8000,)
    with pytest.raises(ConfigError, match="mode"):
        time_shift(y, 1, "wrap")  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0.8, 0.9, 1.1, 1.25])
def test_change_speed_length_and_pitch(rate):
    y = tone(1.0, freq=440.0, amp=0.5)
    out = change_speed(y, rate, SR)
    assert out.dtype == np.float32
    assert abs(out.size - y.size / rate) <= 2
    # Resampling moves the pitch with the speed: the tone's peak moves to 440 * rate.
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    peak_hz = np.argmax(spectrum) * SR / out.size
    assert abs(peak_hz - 440.0 * rate) < 3.0


def test_time_stretch_keeps_pitch():
    y = tone(1.0, freq=440.0)
    out = time_stretch(y, 1.25)
    assert abs(out.size - y.size / 1.25) < 0.02 * y.size
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    assert abs(np.argmax(spectrum) * SR / out.size - 440.0) < 10.0


def test_speed_rejects_bad_rate():
    with pytest.raises(ConfigError, match="rate"):
        change_speed(tone(0.1), 0.0, SR)


# ------------------------------------------------------------------------------- SpecAugment


def test_spec_augment_masks_bands_with_the_item_mean():
    x = torch.randn(4, 40, 100) + torch.arange(4.0)[:, None, None] * 10
    out = spec_augment(x, freq_masks=2, freq_width=8, time_masks=2, time_width=20,
                       generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    changed = out != x
    for b in range(4):
        mean = x[b].mean()
        assert torch.allclose(out[b][changed[b]], mean.expand(int(changed[b].sum())))
        # Masked cells form whole rows (frequency bands) and whole columns (time spans).
        rows = changed[b].all(dim=1)
        cols = changed[b].all(dim=0)
        assert torch.equal(changed[b], rows[:, None] | cols[None, :])
        assert rows.sum() <= 16 and cols.sum() <= 40
    # Masks differ between items.
    assert not all(torch.equal(changed[0], changed[b]) for b in range(1, 4))


def test_spec_augment_determinism_4d_and_eval_noop():
    x = torch.randn(3, 3, 40, 50)
    a = spec_augment(x, generator=torch.Generator().manual_seed(5))
    b = spec_augment(x, generator=torch.Generator().manual_seed(5))
    c = spec_augment(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Channels of an item share the mask.
    changed = a != x
    assert torch.equal(changed[:, 0], changed[:, 1]) and torch.equal(changed[:, 0], changed[:, 2])
    assert torch.equal(x, spec_augment(x, training=False))
    module = SpecAugment(SpecAugmentConfig(), generator=torch.Generator().manual_seed(5))
    assert torch.equal(module(x), a)
    module.eval()
    assert module(x) is x
    # Zero masks: unchanged.
    assert torch.equal(spec_augment(x, freq_masks=0, time_masks=0), x)
    with pytest.raises(ConfigError, match="shape"):
        spec_augment(torch.randn(40, 50))


# ------------------------------------------------------------------------------------ configs


def test_configs_reject_unknown_and_bad_fields():
    with pytest.raises(ValidationError, match="awgnn"):
        AugmentConfig(awgnn={"copies": 1})
    with pytest.raises(ValidationError, match="snr_db"):
        AwgnConfig(snr_db=(30, 10))
    with pytest.raises(ValidationError, match="rates"):
        SpeedConfig(rates=[0.9, -1.0])
    cfg = AugmentConfig.model_validate({"balance": {"target_count": 7}})
    assert cfg.balance.shift_s == 0.1 and cfg.awgn is None and cfg.any_waveform
    assert not AugmentConfig().any_waveform


# ------------------------------------------------------------------------ augment_training_set


def _toy_signals(n: int, seconds: float = 0.5) -> list[np.ndarray]:
    return [tone(seconds, freq=150 + 20 * i, seed=i) for i in range(n)]


def test_balance_reaches_target_exactly_and_shifts_by_multiples():
    labels = np.array(["a"] * 3 + ["b"] * 7 + ["c"] * 12)
    signals = _toy_signals(labels.size)
    cfg = AugmentConfig(balance=BalanceConfig(target_count=10, shift_s=0.01))
    out = augment_training_set(signals, labels, cfg, SR, seed=0)
    counts = pd.Series(out.labels).value_counts()
    assert counts["a"] == 10 and counts["b"] == 10 and counts["c"] == 12  # c already above: untouched
    np.testing.assert_array_equal(out.source[: labels.size], np.arange(labels.size))
    assert (out.kind[: labels.size] == "original").all()
    step = int(0.01 * SR)
    # Class a: 7 copies of 3 clips = rounds of 1, 2 and (partly) 3 shifts of 0.01 s to the left.
    seen_rounds = []
    for signal, src, kind in zip(out.signals, out.source, out.kind):
        if kind != "balance" or labels[src] != "a":
            continue
        k = next(k for k in range(1, 5) if np.array_equal(signal, np.roll(signals[src], -k * step)))
        seen_rounds.append(k)
    assert sorted(seen_rounds) == [1, 1, 1, 2, 2, 2, 3]


def test_augment_training_set_provenance_and_counts():
    labels = np.array(["x", "y", "x", "y", "z"])
    signals = _toy_signals(5)
    cfg = AugmentConfig(
        awgn=AwgnConfig(copies=2, snr_db=(10, 20)),
        time_shift=TimeShiftConfig(copies=1, max_shift_s=0.05),
        speed=SpeedConfig(copies=1, rates=[0.9, 1.1]),
    )
    out = augment_training_set(signals, labels, cfg, SR, seed=3)
    assert len(out) == 5 * (1 + 2 + 1 + 1)
    np.testing.assert_array_equal(out.source[:5], np.arange(5))
    np.testing.assert_array_equal(out.labels, labels[out.source])
    for signal, src, kind in zip(out.signals, out.source, out.kind):
        original = signals[src]
        if kind == "original":
            np.testing.assert_array_equal(signal, original)
        elif kind == "awgn":
            assert 9.9 < _snr_db(original, signal) < 20.1
        elif kind == "time_shift":
            assert any(np.array_equal(signal, np.roll(original, s)) for s in range(-800, 801))
        else:
            assert kind == "speed"
            assert min(abs(signal.size - original.size / r) for r in (0.9, 1.1)) <= 2
    assert pd.Series(out.kind).value_counts().to_dict() == {"original": 5, "awgn": 10, "time_shift": 5, "speed": 5}


def test_augment_training_set_is_deterministic_and_streams_independent():
    labels = np.array(["x", "y", "x", "y"])
    signals = _toy_signals(4)
    cfg = AugmentConfig(awgn=AwgnConfig(copies=1), balance=BalanceConfig(target_count=3))
    a = augment_training_set(signals, labels, cfg, SR, seed=11)
    b = augment_training_set(signals, labels, cfg, SR, seed=11)
    c = augment_training_set(signals, labels, cfg, SR, seed=12)
    assert len(a) == len(b)
    assert all(np.array_equal(p, q) for p, q in zip(a.signals, b.signals))
    np.testing.assert_array_equal(a.source, b.source)
    assert not all(np.array_equal(p, q) for p, q in zip(a.signals, c.signals))
    # Balanced classes stay balanced after the AWGN copies: 3 per class, then doubled.
    assert pd.Series(a.labels).value_counts().to_dict() == {"x": 6, "y": 6}
    # Turning on another augmentation does not change the noise drawn for AWGN copies.
    cfg_more = AugmentConfig(awgn=AwgnConfig(copies=1), balance=BalanceConfig(target_count=3),
                             time_shift=TimeShiftConfig())
    d = augment_training_set(signals, labels, cfg_more, SR, seed=11)
    for kind in ("balance", "awgn"):
        assert all(np.array_equal(p, q) for p, q in zip(
            [s for s, k in zip(a.signals, a.kind) if k == kind], [s for s, k in zip(d.signals, d.kind) if k == kind]))


def test_augment_training_set_no_augmentation_and_errors():
    signals = _toy_signals(3)
    out = augment_training_set(signals, np.array(["a", "b", "a"]), AugmentConfig(), SR, seed=0)
    assert len(out) == 3 and (out.kind == "original").all()
    with pytest.raises(ConfigError, match="labels"):
        augment_training_set(signals, np.array(["a", "b"]), AugmentConfig(), SR, seed=0)
    with pytest.raises(AudioError, match="training signal 1"):
        augment_training_set([signals[0], np.zeros(0, np.float32)], np.array(["a", "b"]), AugmentConfig(), SR, 0)


def test_no_augmented_copy_crosses_a_loso_split():
    """Leak test: augmentation after LOSO splitting never touches validation or test rows."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(4):
        for i in range(6):
            rows.append({"path": f"s{s}_{i}.wav", "label": ["ang", "sad", "neu"][i % 3], "speaker": f"spk{s}",
                         "corpus": "toy", "utterance_id": f"s{s}_{i}"})
    table = pd.DataFrame(rows)
    signals = [tone(0.25, freq=100 + 10 * i, seed=i) for i in range(len(table))]
    cfg = AugmentConfig(awgn=AwgnConfig(copies=2), balance=BalanceConfig(target_count=5, shift_s=0.01),
                        time_shift=TimeShiftConfig(max_shift_s=0.01))
    splits = make_splits(table, ProtocolConfig(name="loso", n_val_speakers=1))
    assert len(splits) == 4
    for split in splits:
        train_signals = [signals[i] for i in split.train]
        out = augment_training_set(train_signals, table["label"].to_numpy()[split.train], cfg, SR,
                                   seed=int(rng.integers(100)))
        table_rows = split.train[out.source]  # provenance back to rows of the table
        held_out = set(split.val) | set(split.test)
        assert not set(table_rows) & held_out
        assert set(table["speaker"].to_numpy()[table_rows]) <= set(split.train_speakers)
        # No validation or test waveform (nor a shifted/noisy version of one) is in the set.
        for i in held_out:
            assert not any(np.array_equal(signals[i], s) for s in out.signals)
            assert not any(np.array_equal(np.roll(signals[i], -160), s) for s in out.signals)
