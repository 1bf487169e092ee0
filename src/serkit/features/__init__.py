"""Feature frontends (batched, PyTorch, equal to librosa), their configs, an on-disk cache and openSMILE functionals.

>>> import torch
>>> frontend = create_frontend({"name": "mfcc", "n_mfcc": 40}, sample_rate=16000)
>>> frontend(torch.zeros(8, 48000)).shape   # (B, n_mfcc, frames)
torch.Size([8, 40, 94])
"""

from __future__ import annotations

from serkit.features.cache import FEATURE_FORMAT_VERSION, FeatureCache, canonical_json
from serkit.features.config import (
    FRONTENDS,
    FrontendConfig,
    SpectralFrontendConfig,
    create_frontend,
    parse_frontend_config,
)
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
from serkit.features.whisper import WhisperConfig, WhisperFrontend
from serkit.features.whisper_weights import KNOWN_WEIGHTS, load_whisper_encoder_weights

__all__ = [
    "FEATURE_FORMAT_VERSION",
    "FRONTENDS",
    "FUNCTIONAL_SETS",
    "KNOWN_WEIGHTS",
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
    "SpectralFrontendConfig",
    "WhisperConfig",
    "WhisperFrontend",
    "canonical_json",
    "compute_deltas",
    "create_frontend",
    "linear_pooling_matrix",
    "load_whisper_encoder_weights",
    "parse_frontend_config",
    "power_to_db",
    "release_work_buffers",
]
