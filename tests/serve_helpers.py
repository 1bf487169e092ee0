"""Shared helpers of the serve tests: recordings, a slowed-down model, waiting for jobs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import tone
from test_api import SR, TONE_LABELS


def write_tones(path: Path, plan: list[tuple[str, float]], sr: int = SR, gap: float = 0.6, fmt: str | None = None) -> Path:
    """Tones of the tiny model's classes ``(label, seconds)`` separated by silences."""
    parts = [np.zeros(round(0.3 * sr), np.float32)]
    for i, (label, seconds) in enumerate(plan):
        parts += [tone(seconds, sr, TONE_LABELS[label], amp=0.3, seed=i), np.zeros(round(gap * sr), np.float32)]
    sf.write(path, np.concatenate(parts), sr, format=fmt)
    return path


class SlowModel:
    """The tiny model, ``delay`` seconds slower per batch of windows: keeps a job running long enough to be
    deleted or interrupted in a test. Everything else is the wrapped model's."""

    def __init__(self, model, delay: float):
        self._model, self.delay = model, delay

    def __getattr__(self, name):
        return getattr(self._model, name)

    def proba_of_signals(self, signals, sample_rate):
        time.sleep(self.delay)
        return self._model.proba_of_signals(signals, sample_rate)

    def predict_batch(self, items, *args, **kwargs):  # /predict's clips
        time.sleep(self.delay)
        return self._model.predict_batch(items, *args, **kwargs)

    def features_of_signals(self, signals, sample_rate):  # the service's analyses keep the windows' features
        time.sleep(self.delay)
        return self._model.features_of_signals(signals, sample_rate)


def wait_for(predicate, timeout: float = 30.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
