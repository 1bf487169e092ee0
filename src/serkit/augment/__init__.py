"""Training-set augmentation: waveform copies (AWGN, shifts, speed, class balancing) and SpecAugment."""

from __future__ import annotations

from serkit.augment.config import (
    AugmentConfig,
    AwgnConfig,
    BalanceConfig,
    SpecAugmentConfig,
    SpeedConfig,
    TimeShiftConfig,
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
    "AugmentConfig",
    "AugmentedSet",
    "AwgnConfig",
    "BalanceConfig",
    "SpecAugment",
    "SpecAugmentConfig",
    "SpeedConfig",
    "TimeShiftConfig",
    "add_noise",
    "augment_training_set",
    "change_speed",
    "spec_augment",
    "time_shift",
    "time_stretch",
]
