"""Streaming analysis: audio chunks in as they arrive, per-window emotion probabilities out.

This is also the core of the offline analysis (``serkit.inference.analysis`` feeds a file through it block by
block), so both give the same windows by construction. The pipeline, all causal and chunk-size independent:

chunk -> downmix -> streaming resampler (soxr) to 16 kHz -> VAD frames on a fixed grid -> ``SpeechGate`` regions
-> windows of ``window`` seconds every ``hop`` seconds inside each speech region -> the model.

Windows never cross a silence. Inside a region of speech, window k starts at ``region.start + k * hop``; a
window is scored as soon as the region is known to extend past its end. When the region ends, a last window
ending at the region's end covers any remainder; a region shorter than a window gives one shorter window (the
model pads it as it pads short training clips).

Latency: a window's result comes at most ``window + min_silence + 2 VAD frames`` seconds after its start has
been pushed, plus the resampler's delay (a few ms). Memory: the buffered audio is bounded by the same span.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import soxr
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serkit.audio.vad import VAD_SAMPLE_RATE, FrameVad, SpeechGate, SpeechRegion, create_vad
from serkit.errors import AudioError, ConfigError


class WindowModel(Protocol):
    """What the windowing needs of a model (:class:`serkit.inference.api.EmotionModel` is one); a protocol, since
    the API builds on this module (it windows long inputs here)."""

    labels: list[str]
    window_seconds: float

    def proba_of_signals(self, signals: Sequence[np.ndarray], sample_rate: int) -> np.ndarray: ...


class AnalysisConfig(BaseModel):
    """How recordings are cut into windows and how window results are smoothed and merged.

    Attributes
    ----------
    window : seconds per window; None = the model's clip (or segment) length.
    hop : seconds between window starts inside a speech region.
    vad : "auto" (silero-vad when installed, else energy), "silero", "energy" or "none" (all audio is speech).
    vad_threshold : speech probability at which a region opens (silero; the energy detector gives 0 or 1).
    min_silence : a pause at least this long ends a speech region; shorter pauses stay inside it.
    min_speech : regions with less detected speech than this are dropped.
    speech_pad : seconds added before and after each region (at most half of ``min_silence``).
    smoothing : windows in the centred moving average applied within a region (1 = none); offline only.
    merge_gap : neighbouring segments with the same label are merged across a silence shorter than this.
    min_confidence : a window whose top (calibrated) probability is below this counts as uncertain in summaries and
        reports (its label is still drawn, hatched as uncertain in the service's timeline).
    """

    model_config = ConfigDict(extra="forbid")

    window: float | None = Field(None, gt=0.0, le=60.0, allow_inf_nan=False)
    hop: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    vad: Literal["auto", "silero", "energy", "none"] = "auto"
    vad_threshold: float = Field(0.5, gt=0.0, le=1.0)
    min_silence: float = Field(0.3, ge=0.0, allow_inf_nan=False)
    min_speech: float = Field(0.25, ge=0.0, allow_inf_nan=False)
    speech_pad: float = Field(0.05, ge=0.0, allow_inf_nan=False)
    smoothing: int = Field(3, ge=1, le=101)
    merge_gap: float = Field(0.5, ge=0.0, allow_inf_nan=False)
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisConfig:
        if self.window is not None and self.hop > self.window:
            raise ValueError(f"hop ({self.hop} s) must not exceed window ({self.window} s): speech would be skipped")
        if 2 * self.speech_pad > self.min_silence:
            raise ValueError(f"speech_pad ({self.speech_pad} s) must be at most half of min_silence "
                             f"({self.min_silence} s)")
        return self

    def window_seconds(self, model: WindowModel) -> float:
        window = self.window if self.window is not None else model.window_seconds
        if self.hop > window:
            raise ConfigError(f"hop ({self.hop} s) must not exceed the window ({window} s, the model's clip length)")
        return window


@dataclass
class Window:
    """Audio of one window at 16 kHz; ``start``/``end`` in samples from the start of the stream."""

    start: int
    end: int
    region: int
    samples: np.ndarray


@dataclass
class WindowResult:
    """One window's class probabilities; times in seconds from the start of the stream."""

    start: float
    end: float
    region: int
    proba: np.ndarray
    features: np.ndarray | None = None  # the window's pooled features (StreamAnalyzer keep_features)

    def label(self, labels: list[str]) -> str:
        return labels[int(np.argmax(self.proba))]


class SpeechWindower:
    """16 kHz mono audio in, windows over speech out (no model): the shared windowing core."""

    def __init__(self, vad: FrameVad, gate: SpeechGate, window: int, hop: int):
        if hop <= 0 or window <= 0 or hop > window:
            raise ConfigError(f"window ({window}) and hop ({hop}) samples: need 0 < hop <= window")
        self.vad, self.gate, self.window, self.hop = vad, gate, int(window), int(hop)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # stream position of buffer[0]
        self.total = 0  # samples received
        self.regions: list[tuple[int, int]] = []  # closed regions not yet taken by the caller
        self._region_index = 0
        self._next_start = 0  # start of the next regular window of the open region
        self._emitted_end = -1  # end of the last window emitted in the open region (-1: none yet)
        self._open: SpeechRegion | None = None

    def push(self, y: np.ndarray) -> list[Window]:
        """Feed 16 kHz mono float32 samples; returns the windows completed by them."""
        y = np.asarray(y, dtype=np.float32)
        self.buffer = np.concatenate([self.buffer, y]) if len(self.buffer) else y.copy()
        self.total += len(y)
        out: list[Window] = []
        frame = self.gate.frame_length
        n_frames = (self.total - self.gate.position) // frame
        if n_frames:
            first = self.gate.position - self.buffer_start
            frames = self.buffer[first : first + n_frames * frame].reshape(n_frames, frame)
            for p in self.vad.speech_probability(frames):
                for region in self.gate.update(np.array([p])):
                    out += self._close(region)
                if self.gate.current is None:
                    self._open = None  # closed above, or dropped as too short (it never emitted windows)
                elif self.gate.current is not self._open:
                    self._start(self.gate.current)
                out += self._regular_windows()
        self._trim()
        return out

    def finish(self) -> list[Window]:
        """End of stream: closes the open region and returns its last windows (a partial VAD frame is ignored)."""
        out: list[Window] = []
        for region in self.gate.finish(self.total):
            out += self._close(region)
        self._open = None
        return out

    def take_regions(self) -> list[tuple[int, int]]:
        """Speech regions (start, end samples) closed since the last call."""
        regions, self.regions = self.regions, []
        return regions

    # -- internals -----------------------------------------------------------------------------------
    def _start(self, region: SpeechRegion) -> None:
        self._open, self._next_start, self._emitted_end = region, region.start, -1

    def _known_end(self) -> int:
        """The open region extends at least to here (its end can only grow)."""
        assert self._open is not None
        return min(self._open.last_speech + self.gate.pad, self.total)

    def _regular_windows(self) -> list[Window]:
        region = self._open
        if region is None or not self.gate.speech_long_enough(region):
            return []
        out = []
        while self._next_start + self.window <= self._known_end():
            out.append(self._cut(self._next_start, self._next_start + self.window))
            self._next_start += self.hop
        return out

    def _close(self, region: SpeechRegion) -> list[Window]:
        if region is not self._open:  # cannot happen: the gate closes only the region it opened
            raise AssertionError("SpeechWindower: closed region was never opened")
        assert region.end is not None
        out = []
        while self._next_start + self.window <= region.end:
            out.append(self._cut(self._next_start, self._next_start + self.window))
            self._next_start += self.hop
        if self._emitted_end < region.end:  # the remainder, or the whole region when shorter than a window
            out.append(self._cut(max(region.start, region.end - self.window), region.end))
        self.regions.append((region.start, region.end))
        self._region_index += 1
        self._open = None
        return out

    def _cut(self, start: int, end: int) -> Window:
        self._emitted_end = end
        a = start - self.buffer_start
        if a < 0 or end - self.buffer_start > len(self.buffer):
            raise AssertionError(f"SpeechWindower: window [{start}, {end}) is outside the buffer")
        return Window(start, end, self._region_index, self.buffer[a : end - self.buffer_start].copy())

    def _trim(self) -> None:
        keep = self.gate.position - self.gate.pad  # a future region may start this early
        if self._open is not None:
            keep = max(self._open.start, min(self._next_start, self._known_end() - self.window, keep))
        keep = max(keep, self.buffer_start)
        if keep - self.buffer_start > VAD_SAMPLE_RATE:  # trim in steps of >= 1 s, not on every push
            self.buffer = self.buffer[keep - self.buffer_start :].copy()
            self.buffer_start = keep

    @property
    def buffered_seconds(self) -> float:
        return len(self.buffer) / VAD_SAMPLE_RATE


@dataclass
class StreamAnalyzer:
    """Push audio chunks of any size as they arrive; get window results as soon as they are ready.

    Parameters
    ----------
    model : the model that scores windows.
    sample_rate : rate of the pushed audio (any; resampled to 16 kHz as a stream).
    channels : channels of the pushed audio; chunks are (n,) for mono or (n, channels), time first as
        ``soundfile`` reads them. They are averaged to mono.
    config : windowing (``smoothing`` and ``merge_gap`` apply to the offline timeline only).
    keep_features : keep each window's pooled features in its result (``WindowResult.features``), so that the
        windows can be scored again by an adapted model without running the encoder twice; the model must have
        ``features_of_signals`` and ``proba_of_features`` (an adaptable :class:`~serkit.inference.api.EmotionModel`).

    Examples
    --------
    >>> stream = StreamAnalyzer(load_model(), sample_rate=48000, channels=2)
    >>> for chunk in microphone_chunks():          # e.g. 100 ms each
    ...     for result in stream.push(chunk):
    ...         print(result.start, result.label(stream.labels))
    >>> stream.finish()
    """

    model: WindowModel
    sample_rate: int
    channels: int = 1
    config: AnalysisConfig = field(default_factory=AnalysisConfig)
    keep_features: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, np.integer)) \
                or self.sample_rate <= 0:
            raise ConfigError(f"sample_rate: expected a positive integer (Hz), got {self.sample_rate!r}")
        if isinstance(self.channels, bool) or not isinstance(self.channels, (int, np.integer)) or self.channels < 1:
            raise ConfigError(f"channels: expected a positive integer, got {self.channels!r}")
        cfg = self.config
        self.labels = self.model.labels
        self.window_seconds = cfg.window_seconds(self.model)
        vad = create_vad(cfg.vad)
        self.vad_name = vad.name
        gate = SpeechGate(vad.frame_length, threshold=cfg.vad_threshold, min_silence=cfg.min_silence,
                          min_speech=cfg.min_speech, pad=cfg.speech_pad)
        self.windower = SpeechWindower(vad, gate, round(self.window_seconds * VAD_SAMPLE_RATE),
                                       round(cfg.hop * VAD_SAMPLE_RATE))
        self._resampler = None if self.sample_rate == VAD_SAMPLE_RATE else soxr.ResampleStream(
            self.sample_rate, VAD_SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self.samples_in = 0
        self.peak = 0.0
        self.finished = False

    @property
    def max_latency_seconds(self) -> float:
        """Upper bound on the delay from pushing a window's first sample to getting its result (excluding the
        time the model takes)."""
        frame = self.windower.gate.frame_length / VAD_SAMPLE_RATE
        return self.window_seconds + self.config.min_silence + self.config.speech_pad + 2 * frame + 0.01

    @property
    def seconds_in(self) -> float:
        return self.samples_in / self.sample_rate

    def push(self, chunk: np.ndarray) -> list[WindowResult]:
        """Feed the next chunk; returns the results of the windows it completed (often none)."""
        if self.finished:
            raise ConfigError("StreamAnalyzer: push after finish; start a new analyzer for a new stream")
        y = self._mono(chunk)
        self.samples_in += len(y)
        if len(y):
            self.peak = max(self.peak, float(np.max(np.abs(y))))
        if self._resampler is not None:
            y = self._resampler.resample_chunk(y, last=False)
        return self._score(self.windower.push(y))

    def finish(self) -> list[WindowResult]:
        """End of the stream: flushes the resampler and returns the last windows."""
        if self.finished:
            return []
        self.finished = True
        windows = []
        if self._resampler is not None:
            windows += self.windower.push(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        windows += self.windower.finish()
        return self._score(windows)

    def take_regions(self) -> list[tuple[float, float]]:
        """Speech regions (start, end seconds) that closed since the last call."""
        return [(s / VAD_SAMPLE_RATE, e / VAD_SAMPLE_RATE) for s, e in self.windower.take_regions()]

    def _mono(self, chunk: np.ndarray) -> np.ndarray:
        y = np.asarray(chunk)
        if y.dtype.kind != "f":
            raise AudioError(None, f"stream chunk: expected float samples, got dtype {y.dtype}")
        if self.channels == 1 and y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if self.channels == 1 and y.ndim != 1:
            raise AudioError(None, f"stream chunk: expected shape (n,) for mono audio, got {y.shape}")
        if self.channels > 1:
            if y.ndim != 2 or y.shape[1] != self.channels:
                raise AudioError(None, f"stream chunk: expected shape (n, {self.channels}), got {y.shape}")
            y = y.mean(axis=1)
        if not np.all(np.isfinite(y)):
            raise AudioError(None, f"stream chunk: {int(np.sum(~np.isfinite(y)))} samples are NaN or infinite")
        return np.ascontiguousarray(y, dtype=np.float32)

    def _score(self, windows: list[Window]) -> list[WindowResult]:
        if not windows:
            return []
        signals = [w.samples for w in windows]
        if self.keep_features:
            features = self.model.features_of_signals(signals, VAD_SAMPLE_RATE)
            proba = self.model.proba_of_features(features)
        else:
            features, proba = [None] * len(windows), self.model.proba_of_signals(signals, VAD_SAMPLE_RATE)
        return [WindowResult(w.start / VAD_SAMPLE_RATE, w.end / VAD_SAMPLE_RATE, w.region, p, x)
                for w, p, x in zip(windows, proba, features)]


def window_cells(results: list[WindowResult], regions: list[tuple[float, float]]) -> np.ndarray:
    """The part of its region each window stands for: boundaries halfway between neighbouring window centres,
    the region's own edges at its ends. The cells of a region partition it."""
    cells = np.zeros((len(results), 2))
    by_region: dict[int, list[int]] = {}
    for i, r in enumerate(results):
        by_region.setdefault(r.region, []).append(i)
    for region, idx in by_region.items():
        start, end = regions[region] if region < len(regions) else (results[idx[0]].start, results[idx[-1]].end)
        centres = [(results[i].start + results[i].end) / 2 for i in idx]
        bounds = [start] + [(a + b) / 2 for a, b in itertools.pairwise(centres)] + [end]
        for k, i in enumerate(idx):
            cells[i] = (bounds[k], bounds[k + 1])
    return cells


def stream_windows(chunks: Iterable[np.ndarray], model: WindowModel, sample_rate: int, *, channels: int = 1,
                   config: AnalysisConfig | None = None) -> Iterator[WindowResult]:
    """Generator form of :class:`StreamAnalyzer`: window results as the chunks come in, then the last ones."""
    analyzer = StreamAnalyzer(model, sample_rate, channels, config or AnalysisConfig())
    for chunk in chunks:
        yield from analyzer.push(chunk)
    yield from analyzer.finish()
