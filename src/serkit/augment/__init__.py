"""Training-set augmentation: waveform copies (AWGN, shifts, speed, class balancing) and SpecAugment."""

from __future__ import annotations

from serkit.augment.config import (
    AugmentConfig,
    AwgnConfig,
    BabbleConfig,
    BalanceConfig,
    CodecConfig,
    GainConfig,
    NoiseConfig,
    RebalanceConfig,
    ReverbConfig,
    SpecAugmentConfig,
    SpeedConfig,
    TelephoneConfig,
    TimeShiftConfig,
    TrimConfig,
)
from serkit.augment.rebalance import balance_weights, rebalance_rows, systematic_resample
from serkit.augment.robustness import (
    NOISE_COLOURS,
    apply_gain,
    babble_noise,
    codec_round_trip,
    coloured_noise,
    mix_at_snr,
    reverberate,
    room_impulse_response,
    telephone_band,
)
from serkit.augment.spec import SpecAugment, spec_augment
from serkit.augment.waveform import (
    AugmentedSet,
    add_noise,
    augment_training_set,
    change_speed,
    time_shift,
    time_stretch,
)

__all__ = [
    "NOISE_COLOURS",
    "AugmentConfig",
    "AugmentedSet",
    "AwgnConfig",
    "BabbleConfig",
    "BalanceConfig",
    "CodecConfig",
    "GainConfig",
    "NoiseConfig",
    "RebalanceConfig",
    "ReverbConfig",
    "SpecAugment",
    "SpecAugmentConfig",
    "SpeedConfig",
    "TelephoneConfig",
    "TimeShiftConfig",
    "TrimConfig",
    "add_noise",
    "apply_gain",
    "augment_training_set",
    "babble_noise",
    "balance_weights",
    "change_speed",
    "codec_round_trip",
    "coloured_noise",
    "mix_at_snr",
    "rebalance_rows",
    "reverberate",
    "room_impulse_response",
    "spec_augment",
    "systematic_resample",
    "telephone_band",
    "time_shift",
    "time_stretch",
]
