"""Recipe-level audio loading: ``AudioConfig`` and the read -> silence -> normalise -> fix-length chain."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from serkit.audio.io import read_audio
from serkit.audio.processing import (
    ChannelChoice,
    fix_length,
    parse_channel,
    peak_normalize,
    remove_silence,
    resample,
    trim_silence,
    z_normalize,
)
from serkit.errors import AudioError

#: top_db of silence removal when ``trim_silence_db`` is not set.
DEFAULT_SILENCE_DB = 30.0


class AudioConfig(BaseModel):
    """How a recipe turns an audio file into a model's input waveform (see ``load_clip`` for the order).

    Attributes
    ----------
    sample_rate : Hz to resample to.
    offset : seconds skipped at the start of each file (an2021/islam: 0.5).
    duration : seconds kept; None keeps whole clips (variable length), otherwise every clip is padded or
        cropped to ``round(duration * sample_rate)`` samples (ha2024: 5 or 8, an2021/islam: 3).
    pad_mode, crop : see ``serkit.audio.fix_length`` (ha2024: mirror).
    trim_silence_db : trim leading/trailing frames this many dB below the peak frame; None: no trim.
    remove_silence : drop every silent region (energy VAD); uses ``trim_silence_db`` as its threshold when
        set, else 30 dB.
    normalize : "peak" (to 1.0), "z" (zero mean, unit variance, akalya2022) or "none".
    """

    model_config = ConfigDict(extra="forbid")

    sample_rate: int = Field(16000, gt=0)
    offset: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    duration: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    pad_mode: Literal["zero", "mirror", "wrap"] = "zero"
    crop: Literal["centre", "start", "head_tail"] = "centre"
    trim_silence_db: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    remove_silence: bool = False
    normalize: Literal["none", "peak", "z"] = "none"

    @property
    def num_samples(self) -> int | None:
        """Samples per clip after ``load_clip``, or None when clips keep their own length."""
        return None if self.duration is None else round(self.duration * self.sample_rate)


def prepare_signal(y: np.ndarray, sample_rate: int, cfg: AudioConfig) -> np.ndarray:
    """A mono waveform at ``sample_rate`` -> the model's input waveform as ``cfg`` describes.

    Order: resample to ``cfg.sample_rate`` -> silence removal, or else leading/trailing trim -> normalisation
    -> pad/crop to ``cfg.num_samples`` when ``duration`` is set. Normalising before padding keeps zero padding
    at zero and statistics free of padding. ``cfg.offset`` is not applied here: it skips the start of a file
    (``load_clip`` applies it while reading).

    Raises
    ------
    AudioError
        (without a path) when silence removal leaves nothing or normalisation meets an all-zero signal.
    """
    y = resample(np.asarray(y, dtype=np.float32), sample_rate, cfg.sample_rate)
    if cfg.remove_silence:
        top_db = cfg.trim_silence_db if cfg.trim_silence_db is not None else DEFAULT_SILENCE_DB
        y = remove_silence(y, cfg.sample_rate, top_db=top_db)
    elif cfg.trim_silence_db is not None:
        y, _ = trim_silence(y, cfg.sample_rate, top_db=cfg.trim_silence_db)
    y = normalize_level(y, cfg)
    if cfg.num_samples is not None:
        y = fix_length(y, cfg.num_samples, pad_mode=cfg.pad_mode, crop=cfg.crop)
    return y.astype(np.float32, copy=False)


def normalize_level(y: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """The level normalisation of :func:`prepare_signal` alone (``cfg.normalize``). Training applies it again to
    augmented copies, because a user's noisy or reverberant recording is normalised as a whole, noise included."""
    if cfg.normalize == "peak":
        return peak_normalize(y)
    if cfg.normalize == "z":
        return z_normalize(y)
    return y


def load_clip(path: str | os.PathLike[str], cfg: AudioConfig, *, channel: ChannelChoice | None = None) -> np.ndarray:
    """Load one file as a mono float32 waveform as ``cfg`` describes.

    Reads (skipping ``offset``, reading ``duration``, taking one channel, resampling), then :func:`prepare_signal`.
    ``channel`` is the file's channel choice (see ``read_audio``; a corpus table's ``channel`` column, e.g.
    EMOVO's); None downmixes by the mean.

    Raises
    ------
    AudioError
        naming ``path`` and the reason (from reading, or a signal that silence removal empties).
    """
    choice = parse_channel(channel)
    y, sr = read_audio(path, sample_rate=cfg.sample_rate, mono=True, offset=cfg.offset, duration=cfg.duration,
                       channel="mean" if choice is None else choice)
    try:
        return prepare_signal(y, sr, cfg)
    except AudioError as exc:
        if exc.path is None:
            raise AudioError(path, exc.reason) from exc
        raise


def check_channels(channels: Sequence[object] | None, n: int) -> list[ChannelChoice | None]:
    """Per-item channel choices parsed with ``parse_channel`` (all None when ``channels`` is None).

    Raises
    ------
    ValueError
        When there is not one choice per item, or a choice is not valid.
    """
    if channels is None:
        return [None] * n
    choices = [parse_channel(c) for c in channels]
    if len(choices) != n:
        raise ValueError(f"channels: expected one choice per path ({n}), got {len(choices)}")
    return choices


@dataclass
class ClipBatch:
    """The result of ``load_clips``.

    Attributes
    ----------
    signals : the waveforms of the files that loaded, in input order.
    index : positions in the input ``paths`` of those files (``signals[i]`` came from ``paths[index[i]]``).
    failures : (path, reason) for each file that did not load, in input order.
    """

    signals: list[np.ndarray] = field(default_factory=list)
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    failures: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.signals)


def load_clips(
    paths: Sequence[str | os.PathLike[str]],
    cfg: AudioConfig,
    *,
    num_workers: int = 2,
    progress: bool = False,
    channels: Sequence[object] | None = None,
) -> ClipBatch:
    """Load many files with ``load_clip`` in a thread pool, going on past files that fail.

    Parameters
    ----------
    channels : one channel choice per path (None/NaN: the mean), e.g. ``table["channel"]`` of a corpus
        that has one (EMOVO); None: every file downmixed by the mean.
    num_workers : threads (libsndfile and soxr release the GIL); <= 1 loads in this thread.
    progress : show a rich progress bar.

    Returns
    -------
    ClipBatch with the loaded signals in input order, their input positions and the failures.
    """
    paths = list(paths)
    choices = check_channels(channels, len(paths))
    results: list[np.ndarray | AudioError | None] = [None] * len(paths)

    def load_one(position: int) -> None:
        try:
            results[position] = load_clip(paths[position], cfg, channel=choices[position])
        except AudioError as exc:
            results[position] = exc

    def run(advance: Callable[[], None]) -> None:
        if num_workers <= 1:
            for position in range(len(paths)):
                load_one(position)
                advance()
            return
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            for future in as_completed([pool.submit(load_one, i) for i in range(len(paths))]):
                future.result()  # re-raises anything that is not an AudioError (a bug, not bad input)
                advance()

    if progress:
        from rich.progress import Progress

        with Progress(transient=False) as bar:
            task = bar.add_task("Loading audio", total=len(paths))
            run(lambda: bar.advance(task))
    else:
        run(lambda: None)

    batch = ClipBatch()
    loaded: list[int] = []
    for position, result in enumerate(results):
        if isinstance(result, AudioError):
            batch.failures.append((str(paths[position]), result.reason))
        else:
            batch.signals.append(result)
            loaded.append(position)
    batch.index = np.asarray(loaded, dtype=np.int64)
    return batch
