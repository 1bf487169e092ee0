"""Voice activity detection on a stream: silero-vad when it is installed, an adaptive energy detector otherwise.

Every detector here is causal and keeps its state between calls, so feeding a signal in chunks of any size gives
the same per-frame decisions as feeding it at once (the streaming and offline analyses rely on this). Frames lie
on a fixed grid of ``frame_length`` samples at :data:`VAD_SAMPLE_RATE` from the start of the stream.

``SpeechGate`` turns per-frame speech probabilities into speech regions (hysteresis, minimum silence between
regions, minimum speech, padding), again causally: a region is known to have ended ``min_silence`` seconds after
its last speech frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from serkit.errors import ConfigError

#: Rate (Hz) at which every detector here runs (silero-vad's native rate).
VAD_SAMPLE_RATE = 16000

VadName = Literal["auto", "silero", "energy", "none"]


class FrameVad(Protocol):
    """A stateful detector: speech probabilities of consecutive frames of ``frame_length`` samples at 16 kHz."""

    name: str
    frame_length: int

    def speech_probability(self, frames: np.ndarray) -> np.ndarray:
        """(n, frame_length) float32 frames following the previous call's -> (n,) probabilities in [0, 1]."""

    def reset(self) -> None:
        """Forget the stream seen so far."""


def silero_available() -> bool:
    """Whether the ``silero_vad`` package can be imported."""
    try:
        import silero_vad  # noqa: F401
    except ImportError:
        return False
    return True


class SileroVad:
    """silero-vad (its JIT model, shipped inside the package): 512-sample frames (32 ms) at 16 kHz.

    One instance holds the model's recurrent state, so use one per stream (instances are cheap to make).
    """

    name = "silero"
    frame_length = 512

    def __init__(self) -> None:
        threads = torch.get_num_threads()
        try:
            from silero_vad import load_silero_vad
        except ImportError:
            raise ConfigError("vad: 'silero' needs the silero-vad package (pip install silero-vad==6.2.3); "
                              "use --vad energy for the built-in energy detector") from None
        finally:
            # silero_vad's import sets torch to one thread for the whole process; undo that.
            torch.set_num_threads(threads)
        self.model = load_silero_vad()

    @torch.no_grad()
    def speech_probability(self, frames: np.ndarray) -> np.ndarray:
        out = np.empty(len(frames), dtype=np.float32)
        if not len(frames):
            return out
        # One 32 ms frame is far too little work to share between threads: with several, thread hand-offs
        # make each call ~10x slower on a busy machine. Restored afterwards for the emotion model.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for i, frame in enumerate(np.asarray(frames, dtype=np.float32)):
                out[i] = float(self.model(torch.from_numpy(np.ascontiguousarray(frame)), VAD_SAMPLE_RATE))
        finally:
            torch.set_num_threads(threads)
        return out

    def reset(self) -> None:
        self.model.reset_states()


class EnergyVad:
    """Frame energy above an adaptive threshold: the fallback when silero-vad is not installed.

    A frame (20 ms) is speech when its mean power in dBFS exceeds ``noise + snr_db``, where ``noise`` is the
    quietest frame of the last ``noise_window`` seconds (minimum statistics, causal). The threshold is kept
    within [``floor_dbfs``, ``ceiling_dbfs``]: never below the floor (digital silence between clips would
    otherwise make any hiss speech), never above the ceiling (so loud speech counts even when no pause has been
    seen yet, e.g. at the start of a recording).
    """

    name = "energy"

    def __init__(self, *, frame_length: int = 320, snr_db: float = 12.0, floor_dbfs: float = -50.0,
                 ceiling_dbfs: float = -30.0, noise_window: float = 10.0):
        if floor_dbfs > ceiling_dbfs:
            raise ConfigError(f"EnergyVad: floor_dbfs ({floor_dbfs}) must not exceed ceiling_dbfs ({ceiling_dbfs})")
        self.frame_length = int(frame_length)
        self.snr_db, self.floor_dbfs, self.ceiling_dbfs = float(snr_db), float(floor_dbfs), float(ceiling_dbfs)
        self.window_frames = max(1, round(noise_window * VAD_SAMPLE_RATE / self.frame_length))
        self.reset()

    def reset(self) -> None:
        self._index = 0
        self._minima: deque[tuple[int, float]] = deque()  # (frame index, dB), dB increasing: a sliding minimum

    def speech_probability(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.float64)
        db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
        out = np.empty(len(frames), dtype=np.float32)
        for i, level in enumerate(db):
            while self._minima and self._minima[-1][1] >= level:
                self._minima.pop()
            self._minima.append((self._index, float(level)))
            while self._minima[0][0] <= self._index - self.window_frames:
                self._minima.popleft()
            noise = self._minima[0][1]
            threshold = min(max(noise + self.snr_db, self.floor_dbfs), self.ceiling_dbfs)
            out[i] = 1.0 if level > threshold else 0.0
            self._index += 1
        return out


class AllSpeech:
    """No detection: every frame is speech (``--vad none``)."""

    name = "none"
    frame_length = 320

    def speech_probability(self, frames: np.ndarray) -> np.ndarray:
        return np.ones(len(frames), dtype=np.float32)

    def reset(self) -> None:
        pass


def create_vad(name: VadName = "auto") -> FrameVad:
    """A fresh detector: ``"silero"``, ``"energy"``, ``"none"``, or ``"auto"`` (silero when installed)."""
    if name == "auto":
        name = "silero" if silero_available() else "energy"
    if name == "silero":
        return SileroVad()
    if name == "energy":
        return EnergyVad()
    if name == "none":
        return AllSpeech()
    raise ConfigError(f"vad: expected 'auto', 'silero', 'energy' or 'none', got {name!r}")


@dataclass
class SpeechRegion:
    """A region in samples at 16 kHz: ``[start, end)`` including padding; ``first_speech`` and ``last_speech``
    bound the frames detected as speech (``last_speech`` grows while the region is open)."""

    start: int
    end: int | None
    first_speech: int
    last_speech: int


class SpeechGate:
    """Per-frame speech probabilities -> speech regions, causally.

    A region opens at a frame with probability >= ``threshold``; while open, frames >= ``threshold -
    hysteresis`` extend it; it closes once ``min_silence`` seconds have passed since its last speech frame.
    Regions are padded by ``pad`` seconds on each side (never overlapping the previous region) and dropped when
    their detected speech lasts less than ``min_speech`` seconds.

    Parameters are in seconds; positions in samples at 16 kHz.
    """

    def __init__(self, frame_length: int, *, threshold: float = 0.5, hysteresis: float = 0.15,
                 min_silence: float = 0.3, min_speech: float = 0.25, pad: float = 0.05):
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"vad threshold must be in (0, 1], got {threshold!r}")
        if pad * 2 > min_silence:
            raise ConfigError(f"speech_pad ({pad} s) must be at most half of min_silence ({min_silence} s), "
                              "so padded regions cannot overlap")
        self.frame_length = int(frame_length)
        self.threshold, self.low = threshold, max(0.0, threshold - hysteresis)
        sr = VAD_SAMPLE_RATE
        self.min_silence, self.min_speech, self.pad = (round(min_silence * sr), round(min_speech * sr),
                                                       round(pad * sr))
        self.frames_seen = 0
        self.current: SpeechRegion | None = None
        self._previous_end = 0

    @property
    def position(self) -> int:
        """Samples covered by the frames seen so far."""
        return self.frames_seen * self.frame_length

    def update(self, probabilities: np.ndarray) -> list[SpeechRegion]:
        """Feed the next frames' probabilities; returns the regions that closed (kept ones only)."""
        closed = []
        for p in np.asarray(probabilities, dtype=np.float64):
            start, end = self.frames_seen * self.frame_length, (self.frames_seen + 1) * self.frame_length
            self.frames_seen += 1
            region = self.current
            if region is None:
                if p >= self.threshold:
                    self.current = SpeechRegion(max(start - self.pad, self._previous_end), None, start, end)
            elif p >= self.low:
                region.last_speech = end
            elif end - region.last_speech >= self.min_silence:
                kept = self._close(region.last_speech + self.pad)
                if kept is not None:
                    closed.append(kept)
        return closed

    def finish(self, total_samples: int) -> list[SpeechRegion]:
        """End of stream at ``total_samples``: closes the open region, if any."""
        if self.current is None:
            return []
        kept = self._close(min(self.current.last_speech + self.pad, total_samples))
        return [] if kept is None else [kept]

    def speech_long_enough(self, region: SpeechRegion) -> bool:
        return region.last_speech - region.first_speech >= self.min_speech

    def _close(self, end: int) -> SpeechRegion | None:
        region, self.current = self.current, None
        assert region is not None
        region.end = end
        self._previous_end = end
        return region if self.speech_long_enough(region) else None

    def reset(self) -> None:
        self.frames_seen, self.current, self._previous_end = 0, None, 0


def max_delay_seconds(gate: SpeechGate) -> float:
    """How long after a region's last speech frame the gate can report its end (seconds)."""
    return math.ceil((gate.min_silence + gate.frame_length) / gate.frame_length) * gate.frame_length / VAD_SAMPLE_RATE
