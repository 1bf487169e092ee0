"""Fixed-length segments of an utterance (each a training item) and the mean of their predictions."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class SegmentConfig(BaseModel):
    """Cut each utterance into fixed-length segments, each a training item with its utterance's label
    (akalya2022, after Chen et al. 2018: 3 s segments, the last one zero-padded).

    Attributes
    ----------
    length : seconds per segment.
    hop : seconds between segment starts; None = ``length`` (no overlap). At most ``length``, so no audio is
        skipped.
    min_length : a trailing piece shorter than this many seconds is dropped, unless it is the whole
        utterance (every utterance keeps at least one segment, zero-padded to ``length``).
    """

    model_config = ConfigDict(extra="forbid")

    length: float = Field(3.0, gt=0, allow_inf_nan=False)
    hop: float | None = Field(None, gt=0, allow_inf_nan=False)
    min_length: float = Field(1.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> SegmentConfig:
        if self.hop is not None and self.hop > self.length:
            raise ValueError(f"hop ({self.hop} s) must not exceed length ({self.length} s): audio would be skipped")
        if self.min_length > self.length:
            raise ValueError(f"min_length ({self.min_length} s) must not exceed length ({self.length} s)")
        return self


def segment_signal(y: np.ndarray, sample_rate: int, cfg: SegmentConfig) -> np.ndarray:
    """Cut a 1-D waveform into segments of ``cfg.length`` seconds: (n_segments, length_samples).

    Segments start every ``hop`` seconds while audio remains; a last piece shorter than ``length`` is
    zero-padded, or dropped when shorter than ``min_length`` and not the only segment.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"segment_signal: expected a 1-D waveform, got shape {y.shape}")
    size = max(1, round(cfg.length * sample_rate))
    hop = max(1, round((cfg.hop or cfg.length) * sample_rate))
    min_size = round(cfg.min_length * sample_rate)
    starts = [0]
    while starts[-1] + size < len(y):  # audio remains after the current segment
        start = starts[-1] + hop
        if len(y) - start < min_size:
            break
        starts.append(start)
    out = np.zeros((len(starts), size), dtype=y.dtype)
    for i, start in enumerate(starts):
        piece = y[start : start + size]
        out[i, : len(piece)] = piece
    return out


def average_segments(proba: np.ndarray, segment_owner: np.ndarray, n_utterances: int) -> np.ndarray:
    """Utterance probabilities: the mean of each utterance's segment probabilities.

    ``segment_owner[i]`` is the utterance (0..n_utterances-1) of row i of ``proba`` (n_segments, C).
    """
    owner = np.asarray(segment_owner, dtype=np.int64)
    counts = np.bincount(owner, minlength=n_utterances)
    if len(owner) != len(proba) or (counts == 0).any():
        raise ValueError("average_segments: every utterance needs at least one segment and every segment an owner")
    total = np.zeros((n_utterances, proba.shape[1]), dtype=np.float64)
    np.add.at(total, owner, proba)
    return total / counts[:, None]
