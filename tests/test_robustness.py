"""Robustness augmentation: coloured noise, babble of other speakers, simulated rooms, telephone band, codecs,
gain; their wiring into augment_training_set and a recipe run."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import signal as sps

from conftest import write_tone_corpus
from serkit.augment import (
    AugmentConfig,
    apply_gain,
    augment_training_set,
    babble_noise,
    codec_round_trip,
    coloured_noise,
    mix_at_snr,
    reverberate,
    room_impulse_response,
    telephone_band,
)
from serkit.errors import ConfigError

SR = 16000


def _snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    clean = clean.astype(np.float64)
    return 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))


def _voice(f0: float, seconds: float = 1.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A harmonic 'voice' with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
    return (0.2 * y + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize(("colour", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colours_have_their_spectral_slope(colour, slope):
    noise = coloured_noise(2**16, colour, np.random.default_rng(0))
    assert noise.dtype == np.float32 and abs(np.mean(noise.astype(np.float64) ** 2) - 1) < 1e-4
    freqs, psd = sps.welch(noise, fs=SR, nperseg=4096)
    band = (freqs > 50) & (freqs < 5000)
    fitted = np.polyfit(np.log10(freqs[band]), np.log10(psd[band]), 1)[0]
    assert abs(fitted - slope) < 0.15, (colour, fitted)
    with pytest.raises(ConfigError, match="colour"):
        coloured_noise(100, "purple", np.random.default_rng(0))


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0, -3.0])
def test_mixing_hits_the_asked_snr(snr_db):
    y = _voice(150.0)
    for colour in ("white", "pink", "brown"):
        out = mix_at_snr(y, coloured_noise(y.size, colour, np.random.default_rng(1)), snr_db)
        assert out.shape == y.shape and abs(_snr(y, out) - snr_db) < 0.01


def test_babble_is_made_of_other_speakers_only():
    # Three speakers with distinct pitches; a babble copy of speaker a's clip must carry b's and c's pitch,
    # never a's (beyond the clip itself).
    pitches = {"a": 500.0, "b": 1100.0, "c": 1700.0}
    signals, speakers = [], []
    for s, f0 in pitches.items():
        for k in range(3):
            signals.append((0.3 * np.sin(2 * np.pi * f0 * np.arange(SR) / SR)).astype(np.float32))
            speakers.append(s)
    cfg = AugmentConfig(babble={"copies": 1, "talkers": [2, 2], "snr_db": [10, 10]})
    aug = augment_training_set(signals, np.zeros(9, dtype=int), cfg, SR, seed=0, speakers=np.array(speakers))
    assert list(aug.kind).count("babble") == 9
    for item in np.flatnonzero(aug.kind == "babble"):
        source = int(aug.source[item])
        residual = aug.signals[item] - signals[source]
        assert abs(_snr(signals[source], aug.signals[item]) - 10) < 0.01
        spectrum = np.abs(np.fft.rfft(residual))
        own = spectrum[int(pitches[speakers[source]])]
        others = [spectrum[int(f)] for s, f in pitches.items() if s != speakers[source]]
        assert own < 1e-3 * max(others)
    with pytest.raises(ConfigError, match="speaker"):
        augment_training_set(signals, np.zeros(9, dtype=int), cfg, SR, seed=0)
    with pytest.raises(ConfigError, match="2 talker"):
        babble_noise(signals[:1], SR, 2, np.random.default_rng(0))


def test_room_impulse_responses_and_reverberation():
    import pyroomacoustics as pra

    rng = np.random.default_rng(0)
    for dims, rt60 in (((4.0, 3.5, 2.6), 0.3), ((9.0, 7.0, 3.5), 0.8)):
        rir = room_impulse_response(SR, dims, rt60, rng)
        measured = pra.experimental.measure_rt60(rir, fs=SR)
        assert abs(measured - rt60) < 0.35 * rt60, (dims, rt60, measured)
    y = np.random.default_rng(1).standard_normal(2 * SR).astype(np.float32) * 0.1  # aperiodic: one xcorr peak
    wet = reverberate(y, rir)
    assert wet.shape == y.shape and abs(np.mean(wet.astype(np.float64) ** 2) / np.mean(y.astype(np.float64) ** 2)
                                        - 1) < 1e-3
    # aligned on the direct path, yet changed by the room
    lag = np.argmax(sps.correlate(wet, y, mode="full", method="fft")) - (y.size - 1)
    assert lag == 0
    assert np.corrcoef(wet, y)[0, 1] < 0.95
    with pytest.raises(ConfigError, match="room_dim"):
        room_impulse_response(SR, (1.0, 2.0), 0.3, rng)


def test_telephone_band_removes_what_a_phone_line_cannot_carry():
    rng = np.random.default_rng(0)
    white = rng.standard_normal(2 * SR).astype(np.float32) * 0.1
    out = telephone_band(white, SR)
    assert out.shape == white.shape
    freqs, p_in = sps.welch(white, fs=SR, nperseg=1024)
    _, p_out = sps.welch(out, fs=SR, nperseg=1024)
    above, inside, below = freqs > 3700, (freqs > 500) & (freqs < 3000), freqs < 150
    assert p_out[above].sum() < 1e-3 * p_in[above].sum()
    assert p_out[below].sum() < 1e-2 * p_in[below].sum()
    assert 0.8 < p_out[inside].sum() / p_in[inside].sum() < 1.1
    with pytest.raises(ConfigError, match="telephone band"):
        telephone_band(white, 6000)


@pytest.mark.parametrize("codec", ["mp3", "opus"])
@pytest.mark.parametrize("sample_rate", [16000, 22050])
def test_codec_round_trip_keeps_length_and_degrades_with_level(codec, sample_rate):
    y = _voice(180.0, 1.5, sr=sample_rate)
    mild = codec_round_trip(y, sample_rate, codec, 0.5)
    harsh = codec_round_trip(y, sample_rate, codec, 0.99)
    assert mild.shape == y.shape == harsh.shape and mild.dtype == np.float32
    assert _snr(y, mild) > 10  # the speech survives, aligned (no encoder delay left in)
    assert _snr(y, harsh) < _snr(y, mild)
    with pytest.raises(ConfigError, match="compression_level"):
        codec_round_trip(y, sample_rate, codec, 1.0)


def test_gain():
    y = _voice(100.0)
    np.testing.assert_allclose(apply_gain(y, 20 * np.log10(2)), 2 * y, rtol=1e-6)
    np.testing.assert_allclose(apply_gain(y, 0.0), y)


def _everything() -> AugmentConfig:
    return AugmentConfig(
        noise={"copies": 2, "snr_db": [5, 20]},
        babble={"talkers": [1, 2]},
        reverb={"rooms": 3},
        telephone={},
        codec={},
        gain={},
    )


def test_augment_training_set_robustness_is_seeded_and_per_kind():
    signals = [_voice(120.0 + 40 * i, 0.5, seed=i) for i in range(4)]
    labels = np.array([0, 1, 0, 1])
    speakers = np.array(["s1", "s1", "s2", "s2"])
    one = augment_training_set(signals, labels, _everything(), SR, seed=3, speakers=speakers)
    kinds = {k: int(n) for k, n in zip(*np.unique(one.kind, return_counts=True))}
    assert kinds == {"original": 4, "noise": 8, "babble": 4, "reverb": 4, "telephone": 4, "codec": 4, "gain": 4}
    assert all(s.shape == signals[int(src)].shape for s, src in zip(one.signals, one.source))
    np.testing.assert_array_equal(one.labels, labels[one.source])
    two = augment_training_set(signals, labels, _everything(), SR, seed=3, speakers=speakers)
    for a, b in zip(one.signals, two.signals):
        np.testing.assert_array_equal(a, b)
    other = augment_training_set(signals, labels, _everything(), SR, seed=4, speakers=speakers)
    assert not np.allclose(one.signals[4], other.signals[4])
    # each kind draws from its own stream: turning the others off leaves the noise copies as they were
    alone = augment_training_set(signals, labels, AugmentConfig(noise={"copies": 2, "snr_db": [5, 20]}), SR, seed=3)
    for a, b in zip(alone.signals[4:], [s for s, k in zip(one.signals, one.kind) if k == "noise"]):
        np.testing.assert_array_equal(a, b)


def test_a_fraction_of_the_items_gets_each_kind_of_copy():
    signals = [_voice(120.0 + 20 * i, 0.4, seed=i) for i in range(10)]
    labels = np.arange(10) % 2
    speakers = np.array(["s1", "s2"] * 5)
    cfg = AugmentConfig(noise={"fraction": 0.3, "copies": 2}, babble={"fraction": 0.5, "talkers": [1, 1]},
                        telephone={"fraction": 0.1})
    aug = augment_training_set(signals, labels, cfg, SR, seed=0, speakers=speakers)
    kinds = {k: int(n) for k, n in zip(*np.unique(aug.kind, return_counts=True))}
    assert kinds == {"original": 10, "noise": 6, "babble": 5, "telephone": 1}
    np.testing.assert_array_equal(aug.labels, labels[aug.source])
    for kind in ("noise", "babble", "telephone"):  # each copy is of the clip it says, at its length
        for item in np.flatnonzero(aug.kind == kind):
            assert aug.signals[item].shape == signals[aug.source[item]].shape
    noisy = aug.source[aug.kind == "noise"]
    assert len(set(noisy)) == 3 and (np.diff(noisy) >= 0).all()  # 3 clips, 2 copies each
    # babble copies of a subset still use other speakers only; the subsets are seeded
    again = augment_training_set(signals, labels, cfg, SR, seed=0, speakers=speakers)
    np.testing.assert_array_equal(again.source, aug.source)
    other = augment_training_set(signals, labels, cfg, SR, seed=1, speakers=speakers)
    assert set(other.source[other.kind == "babble"]) != set(aug.source[aug.kind == "babble"])
    # fraction 1 (the default) copies every item, as before fractions existed
    full = augment_training_set(signals, labels, AugmentConfig(noise={}), SR, seed=0)
    assert list(full.kind).count("noise") == 10
    # rounding never drops a kind: a small set still gets one copy
    small = augment_training_set(signals[:3], labels[:3], AugmentConfig(telephone={"fraction": 0.1}), SR, seed=0)
    assert list(small.kind).count("telephone") == 1
    with pytest.raises(ValidationError):
        AugmentConfig(noise={"fraction": 0})
    with pytest.raises(ValidationError):
        AugmentConfig(reverb={"fraction": 1.5})


def test_per_clip_draws_give_a_clip_the_same_copies_in_every_split():
    """``draws: per_clip``: a clip's random copies depend on the clip and the seed, not on the other clips of the
    split or their order, so an encoder's cached features of the copies serve every fold."""
    signals = [_voice(110.0 + 25 * i, 0.6, seed=i) for i in range(8)]
    labels = np.arange(8) % 2
    speakers = np.array(["s1", "s2", "s3", "s4"] * 2)
    kinds = dict(awgn={"snr_db": [10, 20]}, time_shift={}, speed={}, noise={"fraction": 0.5, "snr_db": [5, 20]},
                 reverb={"fraction": 0.5, "rooms": 2}, codec={"fraction": 0.5}, gain={"fraction": 0.5},
                 crop={"seconds": [0.2, 0.4]})

    def copies(rows, draws, seed=3):
        aug = augment_training_set([signals[i] for i in rows], labels[rows], AugmentConfig(draws=draws, **kinds),
                                   SR, seed=seed, speakers=speakers[rows])
        out: dict[tuple[str, int], list[np.ndarray]] = {}
        for signal, source, kind in zip(aug.signals, aug.source, aug.kind):
            if kind != "original":
                out.setdefault((str(kind), int(rows[source])), []).append(signal)
        return out

    fold_a, fold_b = np.arange(0, 6), np.arange(7, 1, -1)  # clips 2-5 in both, in another order and company
    a, b = copies(fold_a, "per_clip"), copies(fold_b, "per_clip")
    shared = {key for key in a if key[1] in (2, 3, 4, 5)}
    assert shared == {key for key in b if key[1] in (2, 3, 4, 5)}  # the same clips get each kind of copy
    assert {kind for kind, _ in shared} == set(kinds)
    for key in shared:
        assert len(a[key]) == len(b[key])
        for x, y in zip(a[key], b[key]):
            np.testing.assert_array_equal(x, y)
    # per_split (the default): the copies follow the split's order, so the two folds differ
    a_split, b_split = copies(fold_a, "per_split"), copies(fold_b, "per_split")
    assert any(key in b_split and not np.array_equal(a_split[key][0], b_split[key][0])
               for key in a_split if key[1] in (2, 3, 4, 5))
    # another seed, other copies
    other = copies(fold_a, "per_clip", seed=4)
    assert any(key in other and not np.array_equal(a[key][0], other[key][0]) for key in a)
    # a clip that the rebalancing repeats gets other copies on its second appearance, its usual ones on the first
    twice = copies(np.array([0, 1, 2, 2]), "per_clip")
    once = copies(np.array([0, 1, 2]), "per_clip")
    assert len(twice[("awgn", 2)]) == 2 and not np.array_equal(*twice[("awgn", 2)])
    np.testing.assert_array_equal(twice[("awgn", 2)][0], once[("awgn", 2)][0])


def test_per_clip_draws_give_each_kind_to_about_its_fraction_of_the_clips():
    signals = [_voice(100.0 + i, 0.05, seed=i) for i in range(400)]
    labels = np.arange(400) % 2
    aug = augment_training_set(signals, labels, AugmentConfig(draws="per_clip", gain={"fraction": 0.25}), SR, seed=0)
    assert 70 <= list(aug.kind).count("gain") <= 130  # binomial(400, 0.25): mean 100, sd 8.7
    small = augment_training_set(signals[:3], labels[:3], AugmentConfig(draws="per_clip", telephone={"fraction": 0.1}),
                                 SR, seed=0)
    assert list(small.kind).count("telephone") == 1  # as per_split: a small set keeps one copy of a kind
    with pytest.raises(ValidationError):
        AugmentConfig(draws="per_fold")


def test_robustness_config_is_checked():
    with pytest.raises(ValidationError):
        AugmentConfig(noise={"snr_db": [20, 5]})
    with pytest.raises(ValidationError):
        AugmentConfig(codec={"compression_level": [0.5, 1.0]})
    with pytest.raises(ValidationError):
        AugmentConfig(noise={"colours": ["purple"]})
    with pytest.raises(ValidationError):
        AugmentConfig(babble={"talkers": [0, 2]})
    assert AugmentConfig(gain={}).any_waveform and not AugmentConfig().any_waveform


def test_recipe_with_robustness_augments_the_training_split_only(tmp_path):
    from serkit.recipe import Recipe
    from serkit.training.experiment import run_experiment

    write_tone_corpus(tmp_path, clips_per_label=2)
    recipe = Recipe.from_dict({
        "name": "tiny_robust", "corpus": {"name": "csv", "root": str(tmp_path / "manifest.csv")},
        "audio": {"sample_rate": 8000}, "frontend": {"name": "egemaps"},
        "model": {"name": "svm", "C": [1.0]}, "protocol": {"name": "loso", "n_val_speakers": 0},
        "augment": {"noise": {"colours": ["pink"]}, "babble": {"talkers": [2, 3]}, "telephone": {}},
    })
    res = run_experiment(recipe, tmp_path / "run", progress=False, cache_dir=tmp_path / "cache")
    assert (res.per_fold["n_augmented"] == 3 * res.per_fold["n_train"]).all()
    assert (res.per_fold["n_test"] == 6).all() and (res.per_fold["n_train"] == 12).all()


def test_short_clips_and_odd_rates_and_unknown_speakers():
    short = _voice(300.0, 0.002)  # 32 samples: shorter than the band-pass's default padding
    assert telephone_band(short, SR).shape == short.shape
    y = _voice(180.0, 0.5, sr=20000)  # a rate neither encoder takes: through 48 kHz and back
    for codec in ("mp3", "opus"):
        assert codec_round_trip(y, 20000, codec, 0.5).shape == y.shape
    signals = [_voice(150.0 + 50 * i, 0.3, seed=i) for i in range(4)]
    cfg = AugmentConfig(babble={"talkers": [1, 1]})
    aug = augment_training_set(signals, np.zeros(4, dtype=int), cfg, SR, seed=0,
                               speakers=np.array(["a", None, float("nan"), "b"], dtype=object))
    assert list(aug.kind).count("babble") == 4
    with pytest.raises(ConfigError, match="other speakers"):  # unknown speakers are not 'other' to each other
        augment_training_set(signals[1:3], np.zeros(2, dtype=int), cfg, SR, seed=0,
                             speakers=np.array([None, None], dtype=object))


def test_augmented_copies_are_level_normalised_like_the_clips(tmp_path, monkeypatch):
    # With audio.normalize, a user's noisy recording is normalised as a whole (noise included): the training copies
    # must be too, or training sees louder noisy clips than prediction ever does.
    from serkit.features.extractor import FeatureExtractor
    from serkit.recipe import Recipe
    from serkit.training.experiment import run_experiment

    peaks: list[float] = []
    original = FeatureExtractor.from_signals_cached

    def recording(self, signals, **kwargs):
        peaks.extend(float(np.max(np.abs(s))) for s in signals)
        return original(self, signals, **kwargs)

    monkeypatch.setattr(FeatureExtractor, "from_signals_cached", recording)
    write_tone_corpus(tmp_path, clips_per_label=2)
    for normalize in ("peak", "none"):
        peaks.clear()
        recipe = Recipe.from_dict({
            "name": f"tiny_level_{normalize}", "corpus": {"name": "csv", "root": str(tmp_path / "manifest.csv")},
            "audio": {"sample_rate": 8000, "normalize": normalize}, "frontend": {"name": "egemaps"},
            "model": {"name": "svm", "C": [1.0]}, "protocol": {"name": "loso", "n_val_speakers": 0},
            "augment": {"noise": {"colours": ["white"], "snr_db": [0, 0]}},
        })
        run_experiment(recipe, tmp_path / f"run_{normalize}", progress=False, cache_dir=tmp_path / "cache")
        assert peaks, "no augmented copy reached the feature extractor"
        if normalize == "peak":
            np.testing.assert_allclose(peaks, 1.0, rtol=1e-6)
        else:  # without normalisation the copies keep the level the noise gave them
            assert max(abs(p - 1.0) for p in peaks) > 0.05


def test_trim_copies_are_the_clips_without_their_leading_and_trailing_silence():
    import librosa

    rng = np.random.default_rng(0)

    def quiet(n: int) -> np.ndarray:  # a noise floor about 65 dB below the voice
        return (1e-4 * rng.standard_normal(n)).astype(np.float32)

    speech = [_voice(150.0 + 30 * i, 0.5, seed=i) for i in range(3)]
    lead, tail = [SR, SR // 4, 0], [SR // 2, 0, SR // 8]  # RAVDESS-like padding, one side only, the other side
    signals = [np.concatenate([quiet(a), s, quiet(b)]) for s, a, b in zip(speech, lead, tail)]
    labels = np.array(["a", "b", "a"])
    aug = augment_training_set(signals, labels, AugmentConfig(trim={"copies": 2}), SR, seed=0)
    assert list(aug.kind) == ["original"] * 3 + ["trim"] * 6
    np.testing.assert_array_equal(aug.source, [0, 1, 2, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(aug.labels, labels[aug.source])
    for item in np.flatnonzero(aug.kind == "trim"):
        original = signals[aug.source[item]]
        reference, _ = librosa.effects.trim(original, top_db=30.0, frame_length=2048, hop_length=512)
        np.testing.assert_array_equal(aug.signals[item], reference)  # librosa's trim, its frame grid
        # what is left is the speech: within a frame (2048 samples) of its true extent
        assert abs(len(aug.signals[item]) - len(speech[aug.source[item]])) <= 2048
    assert len(aug.signals[3]) < len(signals[0]) - SR  # a second of leading silence is gone
    # deterministic (no seed in it), and a stricter top_db keeps more
    again = augment_training_set(signals, labels, AugmentConfig(trim={"copies": 2}), SR, seed=7)
    for a, b in zip(aug.signals, again.signals):
        np.testing.assert_array_equal(a, b)
    loose = augment_training_set(signals, labels, AugmentConfig(trim={"top_db": 80.0}), SR, seed=0)
    assert len(loose.signals[3]) > len(aug.signals[3])
    with pytest.raises(ValidationError):
        AugmentConfig(trim={"top_db": 0})
    assert AugmentConfig(trim={}).any_waveform


def test_crop_copies_are_seeded_stretches_of_the_clips_speech():
    import librosa

    rng = np.random.default_rng(1)

    def quiet(n: int) -> np.ndarray:  # a noise floor about 65 dB below the voice
        return (1e-4 * rng.standard_normal(n)).astype(np.float32)

    speech = [_voice(150.0 + 30 * i, seconds, seed=i) for i, seconds in enumerate((3.0, 2.5, 0.6))]
    signals = [np.concatenate([quiet(SR), s, quiet(SR // 2)]) for s in speech]  # the last: less than a second
    labels = np.array(["a", "b", "a"])
    cfg = AugmentConfig(crop={"copies": 3, "seconds": (1.0, 2.0)})
    aug = augment_training_set(signals, labels, cfg, SR, seed=0)
    assert list(aug.kind) == ["original"] * 3 + ["crop"] * 9
    np.testing.assert_array_equal(aug.source, [0, 1, 2] + [0] * 3 + [1] * 3 + [2] * 3)
    lengths = []
    for item in np.flatnonzero(aug.kind == "crop"):
        trimmed, _ = librosa.effects.trim(signals[aug.source[item]], top_db=30.0, frame_length=2048, hop_length=512)
        copy = aug.signals[item]
        if aug.source[item] == 2:  # shorter than any stretch asked for: its whole speech
            np.testing.assert_array_equal(copy, trimmed)
            continue
        assert SR <= len(copy) <= 2 * SR
        lengths.append(len(copy))
        # a contiguous stretch of the trimmed clip (of its speech, never of the silence around it)
        windows = np.lib.stride_tricks.sliding_window_view(trimmed, len(copy))
        assert np.any(np.all(windows == copy, axis=1))
    assert len(set(lengths)) == len(lengths)  # lengths drawn, not fixed
    # seeded: the same seed gives the same copies, another seed others
    again = augment_training_set(signals, labels, cfg, SR, seed=0)
    other = augment_training_set(signals, labels, cfg, SR, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(aug.signals, again.signals))
    assert not all(np.array_equal(a, b) for a, b in zip(aug.signals[3:], other.signals[3:]))
    # without trimming, a stretch may hold the silence around the speech, and comes from the clip as it is
    raw = augment_training_set(signals, labels, AugmentConfig(crop={"top_db": None, "seconds": (1.5, 1.5)}), SR,
                               seed=0)
    for item in np.flatnonzero(raw.kind == "crop"):
        assert len(raw.signals[item]) == int(1.5 * SR)
        windows = np.lib.stride_tricks.sliding_window_view(signals[raw.source[item]], int(1.5 * SR))
        assert np.any(np.all(windows == raw.signals[item], axis=1))
    for bad in ({"seconds": (2.0, 1.0)}, {"seconds": (0.0, 1.0)}, {"top_db": 0}):
        with pytest.raises(ValidationError):
            AugmentConfig(crop=bad)
    assert AugmentConfig(crop={}).any_waveform


def test_crop_copies_never_keep_a_silent_stretch():
    # a dropout of digital silence inside the speech: trimming keeps it (speech on both sides), a draw may land in it
    voice = _voice(180.0, 0.4, seed=3)
    signal = np.concatenate([voice, np.zeros(4 * SR, np.float32), voice])
    aug = augment_training_set([signal], np.array(["a"]), AugmentConfig(crop={"copies": 40, "seconds": (1.0, 1.0)}),
                               SR, seed=0)
    crops = [aug.signals[i] for i in np.flatnonzero(aug.kind == "crop")]
    assert len(crops) == 40 and all(len(c) == SR for c in crops)
    peak = np.abs(voice).max()
    assert all(np.abs(c).max() > peak * 10 ** (-30 / 20) for c in crops)
    # one loud sample in a minute of quiet: the draws (about 1 % each) miss it, so the stretch around it is kept
    lone = np.full(60 * SR, 1e-4, np.float32)
    lone[40 * SR] = 1.0
    only = augment_training_set([lone], np.array(["a"]), AugmentConfig(crop={"top_db": None, "seconds": (0.5, 0.5)}),
                                SR, seed=0)
    assert np.abs(only.signals[-1]).max() == 1.0
