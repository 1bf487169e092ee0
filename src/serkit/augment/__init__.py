"""Training-set augmentation: waveform copies (AWGN, shifts, speed, class balancing) and SpecAugment."""

from __future__ import annotations

from serkit.augment.config import (
    AugmentConfig,
    AwgnConfig,
    BalanceConfig,
    RebalanceConfig,
    SpecAugmentConfig,
    SpeedConfig,
    TimeShiftConfig,
)
from serkit.augment.rebalance import balance_weights, rebalance_rows, systematic_resample
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
    "AugmentConfig",
    "AugmentedSet",
    "AwgnConfig",
    "BalanceConfig",
    "RebalanceConfig",
    "SpecAugment",
    "SpecAugmentConfig",
    "SpeedConfig",
    "TimeShiftConfig",
    "add_noise",
    "augment_training_set",
    "balance_weights",
    "rebalance_rows",
    "change_speed",
    "spec_augment",
    "systematic_resample",
    "time_shift",
    "time_stretch",
]
