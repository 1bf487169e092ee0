"""Waveform augmentations and the training-set augmenter.

All functions take and return float32 1-D numpy waveforms and never modify their input.
Randomness comes from an explicit :class:`numpy.random.Generator`, so results are reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from serkit.audio.processing import trim_silence
from serkit.augment.config import (
    AugmentConfig,
    AwgnConfig,
    BabbleConfig,
    BalanceConfig,
    CodecConfig,
    CropConfig,
    GainConfig,
    NoiseConfig,
    ReverbConfig,
    SpeedConfig,
    TelephoneConfig,
    TimeShiftConfig,
    TrimConfig,
)
from serkit.augment.robustness import (
    _signal,
    apply_gain,
    babble_noise,
    codec_round_trip,
    coloured_noise,
    mix_at_snr,
    reverberate,
    room_impulse_response,
    telephone_band,
)
from serkit.errors import ConfigError

__all__ = [
    "AugmentedSet",
    "add_noise",
    "augment_training_set",
    "change_speed",
    "time_shift",
    "time_stretch",
]


def add_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise at exactly ``snr_db`` relative to the signal's mean power.

    The drawn noise is rescaled by its own measured power, so the SNR of the result is exact
    (up to float32 rounding), not only in expectation.

    Parameters
    ----------
    y : 1-D waveform.
    snr_db : signal-to-noise ratio in dB, ``10 log10(mean(y**2) / mean(noise**2))``.
    rng : source of the noise.

    Returns
    -------
    float32 array of the same length.
    """
    y = _signal(y)
    return mix_at_snr(y, rng.standard_normal(y.size), snr_db)


def time_shift(y: np.ndarray, shift_samples: int, mode: Literal["roll", "zero"] = "roll") -> np.ndarray:
    """Shift a waveform in time, keeping its length.

    A positive ``shift_samples`` delays the signal (moves it right); a negative one advances it
    (moves it left, ha2024's direction). ``mode="roll"`` wraps the samples pushed out around to
    the other end (a roll by a multiple of the length gives the clip back); ``mode="zero"``
    fills the gap with zeros.
    """
    y = _signal(y)
    shift = int(shift_samples)
    if mode == "roll":
        return np.roll(y, shift)
    if mode != "zero":
        raise ConfigError(f"time_shift mode: expected 'roll' or 'zero', got {mode!r}")
    out = np.zeros_like(y)
    if abs(shift) >= y.size:
        return out
    if shift >= 0:
        out[shift:] = y[: y.size - shift]
    else:
        out[:shift] = y[-shift:]
    return out


def change_speed(y: np.ndarray, rate: float, sr: int) -> np.ndarray:
    """Play a waveform ``rate`` times faster by resampling (pitch moves with the speed).

    The signal is resampled with soxr from ``sr`` to ``sr / rate`` and read back at ``sr``:
    the result has about ``len(y) / rate`` samples. This is speed perturbation (sox ``speed``),
    the "time warping" this project uses for ha2024 by default.
    """
    import soxr

    y = _signal(y)
    if rate <= 0:
        raise ConfigError(f"speed rate must be > 0, got {rate}")
    if sr <= 0:
        raise ConfigError(f"sample_rate must be > 0, got {sr}")
    if rate == 1.0:
        return y.copy()
    return np.asarray(soxr.resample(y, float(sr), float(sr) / rate), dtype=np.float32)


def time_stretch(y: np.ndarray, rate: float) -> np.ndarray:
    """Play a waveform ``rate`` times faster keeping its pitch (``librosa.effects.time_stretch``)."""
    import librosa

    y = _signal(y)
    if rate <= 0:
        raise ConfigError(f"stretch rate must be > 0, got {rate}")
    return np.asarray(librosa.effects.time_stretch(y, rate=rate), dtype=np.float32)


@dataclass
class AugmentedSet:
    """A training set after augmentation.

    Attributes
    ----------
    signals : list of float32 waveforms; the originals first, in their input order.
    labels : the label of every item.
    source : for every item, the position (in the input list) of the original clip it was made
        from; ``source[:n] == arange(n)`` for the ``n`` originals.
    kind : what made every item: ``"original"``, ``"balance"``, ``"awgn"``, ``"time_shift"``,
        ``"speed"``, ``"noise"``, ``"babble"``, ``"reverb"``, ``"telephone"``, ``"codec"`` or ``"gain"``.
    """

    signals: list[np.ndarray]
    labels: np.ndarray
    source: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.signals)


# Each augmentation draws from its own stream, so turning one on or off does not change the others.
_STREAMS = {"balance": 0, "awgn": 1, "time_shift": 2, "speed": 3, "noise": 4, "babble": 5, "reverb": 6,
            "telephone": 7, "codec": 8, "gain": 9, "trim": 10, "crop": 11}


def _stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), _STREAMS[name]])


def _clip_ids(signals: Sequence[np.ndarray]) -> list[tuple[int, int, int]]:
    """Each signal's identity for ``draws: per_clip``: its samples' sha256 (two 32-bit words) and which repeat of
    those samples it is in ``signals`` (0 for the first), so the rebalancing's repeats of a clip differ."""
    seen: dict[bytes, int] = {}
    ids = []
    for signal in signals:
        digest = hashlib.sha256(np.ascontiguousarray(signal, dtype=np.float32).tobytes()).digest()
        repeat = seen.get(digest, 0)
        seen[digest] = repeat + 1
        ids.append((int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little"), repeat))
    return ids


class _Draws:
    """The random generators of a training split's copies, one per item (see ``AugmentConfig.draws``).

    ``per_split``: every item of a kind shares the kind's one stream, consumed in order (the same list element
    repeated, so the draws are exactly those of a loop over the items with one generator). ``per_clip``: a
    generator per item, seeded by the seed, the kind and the item's samples.
    """

    def __init__(self, seed: int, base: Sequence[np.ndarray], per_clip: bool):
        self.seed = int(seed)
        self.ids = _clip_ids(base) if per_clip else None

    def stream(self, kind: str) -> np.random.Generator:
        return _stream(self.seed, kind)

    def items(self, kind: str, positions: Sequence[int],
              stream: np.random.Generator | None = None) -> list[np.random.Generator]:
        """One generator per position: ``stream`` (the kind's own when not given) repeated, or the clips' own."""
        if self.ids is None:
            return [stream if stream is not None else self.stream(kind)] * len(positions)
        return [np.random.default_rng([self.seed, _STREAMS[kind], *self.ids[int(i)]]) for i in positions]

    def pick(self, kind: str, n: int, fraction: float, stream: np.random.Generator
             ) -> tuple[np.ndarray, list[np.random.Generator]]:
        """The positions (of ``n`` items) that get a copy of ``kind``, and their generators."""
        if self.ids is None:
            picked = _pick_fraction(n, fraction, stream)
            return picked, [stream] * picked.size
        rngs = self.items(kind, range(n), stream)
        if fraction >= 1.0:
            return np.arange(n), rngs
        # each item decides by its own draw, so whether a clip gets a copy does not depend on the other clips
        u = np.array([rng.random() for rng in rngs])
        picked = np.flatnonzero(u < fraction)
        if picked.size == 0 and n:  # as _pick_fraction: a small training set keeps at least one copy of a kind
            picked = np.array([int(np.argmin(u))])
        return picked, [rngs[i] for i in picked]


def _balance(
    signals: list[np.ndarray], labels: np.ndarray, cfg: BalanceConfig, sample_rate: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[int]]:
    """ha2024's balancing: shift every clip of a short class by k * shift_s, k = 1, 2, ..."""
    shift = int(round(cfg.shift_s * sample_rate))
    if shift < 1:
        raise ConfigError(f"balance.shift_s: {cfg.shift_s} s is less than one sample at {sample_rate} Hz")
    new_signals: list[np.ndarray] = []
    new_sources: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        missing = cfg.target_count - members.size
        if missing <= 0:
            continue
        # One fixed random order per class decides which clips fill the last, partial round.
        order = rng.permutation(members)
        for j in range(missing):
            position = int(order[j % order.size])
            round_index = j // order.size + 1
            new_signals.append(time_shift(signals[position], -round_index * shift, cfg.mode))
            new_sources.append(position)
    return new_signals, new_sources


def _awgn_copies(base: list[np.ndarray], cfg: AwgnConfig, rngs: list[np.random.Generator]) -> list[np.ndarray]:
    out = []
    for signal, rng in zip(base, rngs, strict=True):
        for _ in range(cfg.copies):
            out.append(add_noise(signal, float(rng.uniform(*cfg.snr_db)), rng))
    return out


def _shift_copies(
    base: list[np.ndarray], cfg: TimeShiftConfig, sample_rate: int, rngs: list[np.random.Generator]
) -> list[np.ndarray]:
    max_shift = int(round(cfg.max_shift_s * sample_rate))
    out = []
    for signal, rng in zip(base, rngs, strict=True):
        for _ in range(cfg.copies):
            out.append(time_shift(signal, int(rng.integers(-max_shift, max_shift + 1)), cfg.mode))
    return out


def _speed_copies(
    base: list[np.ndarray], cfg: SpeedConfig, sample_rate: int, rngs: list[np.random.Generator]
) -> list[np.ndarray]:
    out = []
    for signal, rng in zip(base, rngs, strict=True):
        for _ in range(cfg.copies):
            rate = float(cfg.rates[int(rng.integers(len(cfg.rates)))])
            if cfg.method == "resample":
                out.append(change_speed(signal, rate, sample_rate))
            else:
                out.append(time_stretch(signal, rate))
    return out


def _pick_fraction(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of a seeded random ``fraction`` of ``n`` items (all of them when ``fraction`` is 1)."""
    if fraction >= 1.0:
        return np.arange(n)
    # at least one item: a small training set must not lose a kind of copy to rounding
    return np.sort(rng.choice(n, size=min(n, max(1, int(round(fraction * n)))), replace=False))


def _noise_copies(base: list[np.ndarray], cfg: NoiseConfig, rngs: list[np.random.Generator]) -> list[np.ndarray]:
    out = []
    for signal, rng in zip(base, rngs, strict=True):
        for _ in range(cfg.copies):
            colour = cfg.colours[int(rng.integers(len(cfg.colours)))]
            snr = float(rng.uniform(*cfg.snr_db))
            out.append(mix_at_snr(signal, coloured_noise(signal.size, colour, rng), snr))
    return out


def _babble_copies(base: list[np.ndarray], base_sources: list[int], originals: list[np.ndarray],
                   speakers: np.ndarray | None, cfg: BabbleConfig,
                   rngs: list[np.random.Generator]) -> list[np.ndarray]:
    """Babble from the original training clips of other speakers (never the clip's own speaker)."""
    if speakers is None:
        raise ConfigError("augment.babble needs the speaker of every training item (pass speakers=)")
    out = []
    for signal, source, rng in zip(base, base_sources, rngs, strict=True):
        others = np.flatnonzero(speakers != speakers[source])
        for _ in range(cfg.copies):
            talkers = int(rng.integers(cfg.talkers[0], cfg.talkers[1] + 1))
            if others.size < talkers:
                raise ConfigError(f"augment.babble: {talkers} talkers wanted, but only {others.size} training "
                                  f"clip(s) of other speakers than {speakers[source]!r}")
            picked = rng.choice(others, size=talkers, replace=False)
            noise = babble_noise([originals[int(j)] for j in picked], signal.size, talkers, rng)
            out.append(mix_at_snr(signal, noise, float(rng.uniform(*cfg.snr_db))))
    return out


def _reverb_copies(base: list[np.ndarray], cfg: ReverbConfig, sample_rate: int, bank_rng: np.random.Generator,
                   rngs: list[np.random.Generator]) -> list[np.ndarray]:
    """Each copy through one of a bank of ``cfg.rooms`` simulated rooms (drawn first, from ``bank_rng``)."""
    bank = []
    for _ in range(cfg.rooms):
        dims = [*bank_rng.uniform(*cfg.room_size_m, size=2), bank_rng.uniform(*cfg.height_m)]
        rt60 = float(bank_rng.uniform(*cfg.rt60_s))
        bank.append(room_impulse_response(sample_rate, dims, rt60, bank_rng))
    return [reverberate(signal, bank[int(rng.integers(len(bank)))])
            for signal, rng in zip(base, rngs, strict=True) for _ in range(cfg.copies)]


def _repeated(one: list[np.ndarray], copies: int) -> list[np.ndarray]:
    """Each item ``copies`` times in a row: the copies of a deterministic kind (further copies would be identical)."""
    return [copy for copy in one for _ in range(copies)]


def _telephone_copies(base: list[np.ndarray], cfg: TelephoneConfig, sample_rate: int) -> list[np.ndarray]:
    return _repeated([telephone_band(signal, sample_rate, low_hz=cfg.low_hz, high_hz=cfg.high_hz, rate=cfg.rate)
                      for signal in base], cfg.copies)


def _codec_copies(base: list[np.ndarray], cfg: CodecConfig, sample_rate: int,
                  rngs: list[np.random.Generator]) -> list[np.ndarray]:
    out = []
    for signal, rng in zip(base, rngs, strict=True):
        for _ in range(cfg.copies):
            codec = cfg.codecs[int(rng.integers(len(cfg.codecs)))]
            out.append(codec_round_trip(signal, sample_rate, codec, float(rng.uniform(*cfg.compression_level))))
    return out


def _trim_copies(base: list[np.ndarray], cfg: TrimConfig, sample_rate: int) -> list[np.ndarray]:
    return _repeated([trim_silence(signal, sample_rate, top_db=cfg.top_db)[0] for signal in base], cfg.copies)


#: a crop whose peak is this far (dB) below its clip's holds no speech (a pause, a digital dropout): it is drawn again
CROP_SILENT_DB = 30.0
CROP_TRIES = 10


def _crop_copies(base: list[np.ndarray], cfg: CropConfig, sample_rate: int,
                 rngs: list[np.random.Generator]) -> list[np.ndarray]:
    out = []
    for signal, rng in zip(base, rngs, strict=True):
        speech = signal if cfg.top_db is None else trim_silence(signal, sample_rate, top_db=cfg.top_db)[0]
        floor = float(np.max(np.abs(speech))) * 10 ** (-CROP_SILENT_DB / 20)
        for _ in range(cfg.copies):
            n = max(1, round(float(rng.uniform(*cfg.seconds)) * sample_rate))
            if speech.size <= n:
                out.append(speech.copy())
                continue
            for _try in range(CROP_TRIES):
                start = int(rng.integers(0, speech.size - n + 1))
                if np.max(np.abs(speech[start : start + n])) > floor:
                    break
            else:  # pauses everywhere the draws fell: the stretch around the loudest sample
                start = int(np.clip(np.argmax(np.abs(speech)) - n // 2, 0, speech.size - n))
            out.append(speech[start : start + n].copy())
    return out


def _gain_copies(base: list[np.ndarray], cfg: GainConfig, rngs: list[np.random.Generator]) -> list[np.ndarray]:
    return [apply_gain(signal, float(rng.uniform(*cfg.gain_db)))
            for signal, rng in zip(base, rngs, strict=True) for _ in range(cfg.copies)]


def augment_training_set(
    signals: list[np.ndarray],
    labels: np.ndarray,
    cfg: AugmentConfig,
    sample_rate: int,
    seed: int,
    speakers: np.ndarray | None = None,
) -> AugmentedSet:
    """Augment a training split: class balancing, then AWGN, time-shift and speed copies.

    Call it on the training split only, after the data have been split: augmented copies of a
    clip must never reach validation or test. ``source`` records which original every output
    item was made from, so this can be checked.

    Order: the originals; then the balancing copies (``cfg.balance``, counted on the originals);
    then, for every item of that balanced set, ``awgn.copies`` noisy copies, ``time_shift.copies``
    shifted copies and ``speed.copies`` time-warped copies (each type made from the balanced set,
    never from another type's copies), so balanced classes stay balanced; then, the same way, the robustness
    copies: ``noise``, ``babble`` (made of original clips of other speakers of this training set), ``reverb``,
    ``telephone``, ``codec``, ``gain``, ``trim`` and ``crop``. Speed, trim and crop copies change length; fix
    lengths afterwards.
    ``cfg.specaugment`` is not applied here (it acts on features), nor ``cfg.rebalance`` (it picks the rows
    passed in).

    Parameters
    ----------
    signals : list of 1-D waveforms.
    labels : one label per signal.
    cfg : which augmentations to apply.
    sample_rate : rate of the signals (Hz), to turn seconds into samples.
    seed : same seed, same output. With ``cfg.draws`` ``per_clip`` a clip's copies depend only on the seed and its
        samples (and which repeat of them it is), not on the rest of the split; babble's voices excepted.
    speakers : one speaker per signal; needed by ``babble``.

    Returns
    -------
    AugmentedSet
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size != len(signals):
        raise ConfigError(f"labels: expected one label per signal ({len(signals)}), got shape {labels.shape}")
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be > 0, got {sample_rate}")
    originals = [_signal(signal, f"training signal {i}") for i, signal in enumerate(signals)]

    n = len(originals)
    base = list(originals)
    base_sources = list(range(n))
    kinds = ["original"] * n
    if cfg.balance is not None:
        extra, extra_sources = _balance(originals, labels, cfg.balance, sample_rate, _stream(seed, "balance"))
        base += extra
        base_sources += extra_sources
        kinds += ["balance"] * len(extra)

    out_signals = list(base)
    out_sources = list(base_sources)
    draws = _Draws(seed, base, per_clip=cfg.draws == "per_clip")
    everything = range(len(base))
    # (kind, copies per item, the copies, the sources of the items they were made from)
    copies_per_item = []
    if cfg.awgn is not None:
        made = _awgn_copies(base, cfg.awgn, draws.items("awgn", everything))
        copies_per_item.append(("awgn", cfg.awgn.copies, made, base_sources))
    if cfg.time_shift is not None:
        made = _shift_copies(base, cfg.time_shift, sample_rate, draws.items("time_shift", everything))
        copies_per_item.append(("time_shift", cfg.time_shift.copies, made, base_sources))
    if cfg.speed is not None:
        made = _speed_copies(base, cfg.speed, sample_rate, draws.items("speed", everything))
        copies_per_item.append(("speed", cfg.speed.copies, made, base_sources))
    if speakers is not None:
        # unknown speakers (None/NaN) count as one and the same speaker: babble never risks the clip's own voice
        speakers = np.asarray(["<unknown>" if pd.isna(s) else str(s) for s in speakers], dtype=object)
        if speakers.shape != (n,):
            raise ConfigError(f"speakers: expected one speaker per signal ({n}), got shape {speakers.shape}")
    # each maker: (items, their sources, the kind's config, the kind's stream, one generator per item)
    robustness = [
        ("noise", cfg.noise, lambda items, srcs, c, s, rs: _noise_copies(items, c, rs)),
        ("babble", cfg.babble, lambda items, srcs, c, s, rs: _babble_copies(items, srcs, originals, speakers, c, rs)),
        ("reverb", cfg.reverb, lambda items, srcs, c, s, rs: _reverb_copies(items, c, sample_rate, s, rs)),
        ("telephone", cfg.telephone, lambda items, srcs, c, s, rs: _telephone_copies(items, c, sample_rate)),
        ("codec", cfg.codec, lambda items, srcs, c, s, rs: _codec_copies(items, c, sample_rate, rs)),
        ("gain", cfg.gain, lambda items, srcs, c, s, rs: _gain_copies(items, c, rs)),
        ("trim", cfg.trim, lambda items, srcs, c, s, rs: _trim_copies(items, c, sample_rate)),
        ("crop", cfg.crop, lambda items, srcs, c, s, rs: _crop_copies(items, c, sample_rate, rs)),
    ]
    for kind, kind_cfg, make in robustness:
        if kind_cfg is not None:
            stream = draws.stream(kind)
            picked, rngs = draws.pick(kind, len(base), kind_cfg.fraction, stream)
            srcs = [base_sources[i] for i in picked]
            made = make([base[i] for i in picked], srcs, kind_cfg, stream, rngs)
            copies_per_item.append((kind, kind_cfg.copies, made, srcs))
    for kind, copies, made, srcs in copies_per_item:
        out_signals += made
        out_sources += list(np.repeat(srcs, copies))
        kinds += [kind] * len(made)

    source = np.asarray(out_sources, dtype=np.int64)
    return AugmentedSet(
        signals=out_signals,
        labels=labels[source],
        source=source,
        kind=np.asarray(kinds),
    )
