"""Feature frontends (batched, PyTorch, librosa-equal), their configs, an on-disk cache and eGeMAPS."""

from __future__ import annotations

from serkit.features.frontends import (
    MFCC,
    Frontend,
    LogMel,
    LogMelDeltas,
    LogSTFT,
    Raw,
    compute_deltas,
    linear_pooling_matrix,
    power_to_db,
)

__all__ = [
    "Frontend",
    "Raw",
    "MFCC",
    "LogSTFT",
    "LogMel",
    "LogMelDeltas",
    "power_to_db",
    "compute_deltas",
    "linear_pooling_matrix",
]
