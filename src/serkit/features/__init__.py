"""Feature frontends (batched, PyTorch, equal to librosa), their configs, an on-disk cache and openSMILE functionals.

>>> import torch
>>> frontend = create_frontend({"name": "mfcc", "n_mfcc": 40}, sample_rate=16000)
>>> frontend(torch.zeros(8, 48000)).shape   # (B, n_mfcc, frames)
torch.Size([8, 40, 94])
"""

from __future__ import annotations

from serkit.features.cache import FEATURE_FORMAT_VERSION, FeatureCache, canonical_json
from serkit.features.config import FRONTENDS, FrontendConfig, create_frontend
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
    release_work_buffers,
)
from serkit.features.functionals import FUNCTIONAL_SETS, EGeMAPS, OpenSmileFunctionals

__all__ = [
    "FEATURE_FORMAT_VERSION",
    "FRONTENDS",
    "FUNCTIONAL_SETS",
    "MFCC",
    "EGeMAPS",
    "FeatureCache",
    "Frontend",
    "FrontendConfig",
    "LogMel",
    "LogMelDeltas",
    "LogSTFT",
    "OpenSmileFunctionals",
    "Raw",
    "canonical_json",
    "compute_deltas",
    "create_frontend",
    "linear_pooling_matrix",
    "power_to_db",
    "release_work_buffers",
]
