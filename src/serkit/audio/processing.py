"""Signal-level operations: resampling, fixed-length pad/crop, silence trimming and removal, normalisation.

Every function takes a float waveform of shape ``(n,)`` or ``(channels, n)`` (time on the last axis) and
returns a new array; none of them reads files. Errors on unusable signals are ``AudioError(None, reason)``;
``load_clip`` re-raises them with the file's path.
"""

from __future__ import annotations

import math
import sys
from typing import Literal

import librosa
import numpy as np
import soxr

from serkit.errors import AudioError
from serkit.utils import positive_int

PadMode = Literal["zero", "mirror", "wrap"]
#: How a multichannel recording becomes one channel: "mean" (downmix), a channel index or "louder".
ChannelChoice = int | Literal["mean", "louder"]
CropMode = Literal["centre", "start", "head_tail"]

PAD_MODES: tuple[str, ...] = ("zero", "mirror", "wrap")
CROP_MODES: tuple[str, ...] = ("centre", "start", "head_tail")

# numpy's names for our pad modes; numpy's "reflect"/"wrap" repeat as often as needed, so a signal much
# shorter than the target is mirrored back and forth (y, reversed y, y, ...) or tiled (y, y, y, ...).
_NUMPY_PAD_MODE = {"zero": "constant", "mirror": "reflect", "wrap": "wrap"}

# head_tail crop: the level below the loudest frame that counts as silent head or tail (trim_silence's default).
_HEAD_TAIL_TOP_DB = 30.0


def _check_signal(y: np.ndarray, name: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (n,) or (channels, n), got shape {y.shape}")
    return y


def _as_float(y: np.ndarray) -> np.ndarray:
    """float32/float64 kept as they are, anything else as float32."""
    return y if y.dtype in (np.float32, np.float64) else y.astype(np.float32)


def _check_positive_int(value: int, name: str) -> int:
    return positive_int(value, name)


def _is_missing(value: object) -> bool:
    """None, a float NaN or pandas' NA, without importing pandas (its import costs most of a second): a value
    can only be pandas' NA when pandas is already loaded."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(float(value))
    pandas = sys.modules.get("pandas")
    return pandas is not None and value is pandas.NA


def parse_channel(value: object) -> ChannelChoice | None:
    """A channel choice from a config or a table cell: None (missing, NaN), a channel index or "mean"/"louder".

    Integral floats (an index column that pandas turned into floats when concatenating tables) and digit
    strings become ints.

    Raises
    ------
    ValueError
        For anything else (a negative index, an unknown word), naming the value.
    """
    if _is_missing(value):
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("mean", "louder"):
            return word  # type: ignore[return-value]
        if word.isdigit():
            return int(word)
    elif isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(value, bool):
        if float(value).is_integer() and value >= 0:
            return int(value)
    raise ValueError(f"channel must be 'mean', 'louder' or a channel index >= 0, got {value!r}")


def select_channel(y: np.ndarray, channel: ChannelChoice | None = "mean") -> np.ndarray:
    """One channel of a ``(channels, n)`` signal (a single-channel signal is returned whatever the choice).

    ``"mean"`` (or None) averages the channels; an int takes that channel; ``"louder"`` takes the channel with
    the highest mean power (ties: the first). Averaging is right for a stereo mix, wrong for two microphones a
    little apart: their sum cancels the frequencies where the delay is half a period (EMOVO: 0.5 ms apart, a
    notch near 1 kHz), so such corpora take one channel.

    Raises
    ------
    ValueError
        For an index the signal does not have or an unknown choice.
    """
    y = _check_signal(y)
    choice = parse_channel(channel)
    if choice is None:
        choice = "mean"
    if y.ndim == 1 or y.shape[0] == 1:  # one channel is every choice (EMOVO holds one mono file among stereo ones)
        return y if y.ndim == 1 else y[0]
    if choice == "mean":
        return y.mean(axis=0)
    if choice == "louder":
        power = np.mean(np.square(y, dtype=np.float64), axis=1)
        return np.ascontiguousarray(y[int(np.argmax(power))])
    if choice >= y.shape[0]:
        raise ValueError(f"channel {choice} requested, but the audio has {y.shape[0]} channel(s) (0 is the first)")
    return np.ascontiguousarray(y[choice])


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling with soxr (HQ), along the last axis.

    Parameters
    ----------
    y : array, shape (n,) or (channels, n)
    orig_sr, target_sr : sample rates in Hz.

    Returns
    -------
    array of ``ceil(n * target_sr / orig_sr)`` samples per channel (librosa's length convention: soxr's
    output, zero-padded by at most one sample), float32 unless ``y`` is float64.
    """
    y = _check_signal(y)
    orig_sr = _check_positive_int(orig_sr, "orig_sr")
    target_sr = _check_positive_int(target_sr, "target_sr")
    y = _as_float(y)
    if orig_sr == target_sr:
        return y.copy()
    # soxr wants time first: (n,) or (n, channels)
    out = soxr.resample(np.ascontiguousarray(y.T), orig_sr, target_sr, quality="HQ").T
    n_out = int(np.ceil(y.shape[-1] * target_sr / orig_sr))
    return np.ascontiguousarray(fix_length(out, n_out, pad_mode="zero", crop="start"))


def _head_tail_start(y: np.ndarray, length: int) -> int:
    """Start of the ``length``-sample window centred on the non-silent span of ``y``."""
    _, (first, stop) = trim_silence(y, 1, top_db=_HEAD_TAIL_TOP_DB)
    return int(np.clip((first + stop - length) // 2, 0, y.shape[-1] - length))


def fix_length(
    y: np.ndarray,
    length: int,
    *,
    pad_mode: PadMode = "zero",
    crop: CropMode = "centre",
) -> np.ndarray:
    """Pad or crop ``y`` along its last axis to exactly ``length`` samples.

    Parameters
    ----------
    y : array, shape (n,) or (channels, n)
    length : target number of samples (>= 0).
    pad_mode : how a short signal is extended, always at the end so the clip keeps its start (librosa's
        ``fix_length`` convention): ``"zero"`` appends zeros; ``"mirror"`` appends the signal reflected
        about its last sample (ha2024's mirror padding; the edge sample is not repeated), bouncing back and
        forth when the signal is much shorter than ``length``; ``"wrap"`` repeats the signal from its start.
    crop : how a long signal is shortened: ``"start"`` keeps the first ``length`` samples; ``"centre"``
        trims equally from head and tail (one sample more from the tail when the excess is odd);
        ``"head_tail"`` also trims head and tail, but splits the excess by content: it keeps the window
        centred on the non-silent span (``trim_silence`` at 30 dB, 2048/512-sample frames), so silent
        margins go before speech does, and speech longer than ``length`` loses equal parts at both ends
        (ha2024 "removes the head and tail portions" of clips over 8 s without saying how much of each;
        on EmoDB those portions are the silent margins). An evenly loud clip is cropped as by ``"centre"``.

    Returns
    -------
    array of shape (..., length), same dtype as ``y``.
    """
    y = _check_signal(y)
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"length must be a non-negative integer, got {length!r}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    length = int(length)
    n = y.shape[-1]
    if n == length:
        return y.copy()
    if n > length:
        if crop == "start":
            start = 0
        elif crop == "centre":
            start = (n - length) // 2
        else:
            start = _head_tail_start(y, length) if length > 0 else 0
        return y[..., start : start + length].copy()
    if n == 0 and pad_mode != "zero":
        raise AudioError(None, f"cannot {pad_mode}-pad an empty signal")
    pad_width = [(0, 0)] * (y.ndim - 1) + [(0, length - n)]
    return np.pad(y, pad_width, mode=_NUMPY_PAD_MODE[pad_mode])


def trim_silence(
    y: np.ndarray,
    sr: int,
    *,
    top_db: float = 30.0,
    frame_length: int = 2048,
    hop_length: int = 512,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Trim leading and trailing silence: frames more than ``top_db`` below the loudest frame.

    This is ``librosa.effects.trim`` (RMS energy per frame relative to the peak frame); ``sr`` is kept for a
    signature uniform with the other silence functions, the frame sizes are in samples.

    Returns
    -------
    (trimmed signal, (start, end)) with ``trimmed == y[..., start:end]``.
    """
    y = _check_signal(y)
    _check_positive_int(sr, "sr")
    if top_db <= 0:
        raise ValueError(f"top_db must be > 0, got {top_db!r}")
    trimmed, interval = librosa.effects.trim(
        y, top_db=top_db, frame_length=frame_length, hop_length=hop_length
    )
    return trimmed, (int(interval[0]), int(interval[1]))


def _speech_intervals(
    y: np.ndarray,
    sr: int,
    *,
    top_db: float,
    frame_length: int | None,
    hop_length: int | None,
    min_silence: float,
    min_speech: float,
) -> list[tuple[int, int]]:
    """Speech regions as sample intervals [start, end); see ``speech_regions``."""
    y = _check_signal(y)
    sr = _check_positive_int(sr, "sr")
    if top_db <= 0:
        raise ValueError(f"top_db must be > 0, got {top_db!r}")
    if min_silence < 0 or min_speech < 0:
        raise ValueError(f"min_silence and min_speech must be >= 0, got {min_silence!r}, {min_speech!r}")
    hop = _check_positive_int(hop_length, "hop_length") if hop_length is not None else max(1, round(0.010 * sr))
    frame = _check_positive_int(frame_length, "frame_length") if frame_length is not None else 2 * hop
    n = y.shape[-1]
    if n == 0 or not np.any(y):
        return []
    # Same energy as librosa.effects.trim/split: per-frame mean power in dB relative to the loudest frame.
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=True)[..., 0, :]
    db = librosa.power_to_db(np.square(rms), ref=np.max, top_db=None)
    if db.ndim > 1:  # multi-channel: a frame is speech if any channel is
        db = db.max(axis=tuple(range(db.ndim - 1)))
    active = np.concatenate([[False], db > -top_db, [False]])
    edges = np.flatnonzero(np.diff(active.astype(np.int8)))
    last_frame = db.shape[-1] - 1
    # Frame t is centred on sample t*hop. An interval runs from the centre of its first active frame to the
    # centre of its last (inclusive), or to the signal's edge when it touches it: with frame = 2*hop the
    # frames that overlap a sharp burst [a, b) have centres in (a - hop, b + hop), so both ends are found
    # within one hop, on the outside (speech is kept rather than clipped).
    intervals = []
    for first, stop in zip(edges[0::2], edges[1::2]):
        start = 0 if first == 0 else min(n, int(first) * hop)
        end = n if stop - 1 == last_frame else min(n, (int(stop) - 1) * hop + 1)
        if end > start:
            intervals.append((start, end))
    merged: list[tuple[int, int]] = []
    min_gap = min_silence * sr
    for start, end in intervals:
        if merged and start - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [(s, e) for s, e in merged if e - s >= min_speech * sr]


def speech_regions(
    y: np.ndarray,
    sr: int,
    *,
    top_db: float = 30.0,
    frame_length: int | None = None,
    hop_length: int | None = None,
    min_silence: float = 0.25,
    min_speech: float = 0.1,
) -> list[tuple[float, float]]:
    """Energy-based voice activity: the (start, end) times in seconds of the non-silent regions.

    A frame is speech when its RMS energy is within ``top_db`` of the loudest frame (librosa's
    ``effects.split`` criterion). Gaps shorter than ``min_silence`` seconds are merged first, then regions
    shorter than ``min_speech`` seconds are dropped.

    Parameters
    ----------
    frame_length, hop_length : in samples; default hop 10 ms and frame two hops, so boundaries of an abrupt
        onset/offset are found within one hop.

    Returns
    -------
    list of (start_s, end_s), sorted, non-overlapping; empty for an all-zero signal.
    """
    intervals = _speech_intervals(
        y, sr, top_db=top_db, frame_length=frame_length, hop_length=hop_length,
        min_silence=min_silence, min_speech=min_speech,
    )
    return [(s / sr, e / sr) for s, e in intervals]


def remove_silence(
    y: np.ndarray,
    sr: int,
    *,
    top_db: float = 30.0,
    frame_length: int | None = None,
    hop_length: int | None = None,
    min_silence: float = 0.25,
    min_speech: float = 0.1,
) -> np.ndarray:
    """Silence removal (islam, ha2024): the speech regions of ``speech_regions`` concatenated.

    Raises
    ------
    AudioError
        when no speech region is found.
    """
    y = _check_signal(y)
    intervals = _speech_intervals(
        y, sr, top_db=top_db, frame_length=frame_length, hop_length=hop_length,
        min_silence=min_silence, min_speech=min_speech,
    )
    if not intervals:
        raise AudioError(None, f"no speech found by silence removal (top_db={top_db:g}, min_speech={min_speech:g} s)")
    return np.concatenate([y[..., s:e] for s, e in intervals], axis=-1)


def peak_normalize(y: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Scale ``y`` so its largest absolute sample equals ``peak``.

    Raises
    ------
    AudioError
        on an all-zero signal.
    """
    y = _as_float(_check_signal(y))
    if not peak > 0:
        raise ValueError(f"peak must be > 0, got {peak!r}")
    current = float(np.max(np.abs(y))) if y.size else 0.0
    if current == 0.0:
        raise AudioError(None, "cannot peak-normalise an all-zero signal")
    return (y * (peak / current)).astype(y.dtype, copy=False)


def z_normalize(y: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole signal (akalya2022's signal normalisation).

    Raises
    ------
    AudioError
        on an all-zero (or constant) signal, whose variance is zero.
    """
    y = _as_float(_check_signal(y))
    if y.size == 0:
        raise AudioError(None, "cannot z-normalise an empty signal")
    std = float(np.std(y, dtype=np.float64))
    if std == 0.0:
        what = "all-zero" if not np.any(y) else "constant"
        raise AudioError(None, f"cannot z-normalise a {what} signal (standard deviation 0)")
    mean = float(np.mean(y, dtype=np.float64))
    return ((y - mean) / std).astype(y.dtype, copy=False)
