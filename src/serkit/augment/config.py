"""Configuration of training-set augmentation (pydantic, unknown fields rejected).

Every augmentation is off by default (``None``). The waveform ones (``balance``, ``awgn``,
``time_shift``, ``speed``) are applied by :func:`serkit.augment.augment_training_set` to the
training split only; ``specaugment`` is applied by the trainer to batches of features.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AwgnConfig(_Strict):
    """Additive white Gaussian noise copies (an2021, islam).

    Each training clip gets ``copies`` noisy copies, each at an SNR drawn uniformly from
    ``snr_db`` (low, high). The papers give no SNR; 15-30 dB is a common choice.
    """

    copies: int = Field(1, ge=1)
    snr_db: tuple[float, float] = (15.0, 30.0)

    @field_validator("snr_db")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"snr_db must be (low, high) with low <= high, got {value}")
        return value


class TimeShiftConfig(_Strict):
    """Randomly shifted copies: shift drawn uniformly from [-max_shift_s, +max_shift_s]."""

    copies: int = Field(1, ge=1)
    max_shift_s: float = Field(0.1, gt=0)
    mode: Literal["roll", "zero"] = "roll"


class SpeedConfig(_Strict):
    """Time-warped copies (ha2024's "time warping"), each at a rate drawn from ``rates``.

    ``method="resample"`` (default) is speed perturbation: the clip is resampled so that it
    plays ``rate`` times faster, which shifts pitch and formants together (Ko et al. 2015,
    sox ``speed``). ``method="stretch"`` keeps pitch (phase vocoder,
    ``librosa.effects.time_stretch``). ha2024 does not define its time warping; resampling
    is the common reading in speech augmentation and the cheaper one.
    """

    copies: int = Field(1, ge=1)
    rates: list[float] = Field(default_factory=lambda: [0.9, 1.1], min_length=1)
    method: Literal["resample", "stretch"] = "resample"

    @field_validator("rates")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(rate <= 0 for rate in value):
            raise ValueError(f"every rate must be > 0, got {value}")
        return value


class BalanceConfig(_Strict):
    """Class balancing with shifted copies (ha2024).

    Each class with fewer than ``target_count`` training clips is filled up to exactly
    ``target_count``: every clip of the class is shifted left by ``shift_s``, then by
    ``2 * shift_s``, and so on, until the class is full (the last round uses a seeded random
    subset of the clips). Classes already at or above the target are left as they are.
    """

    target_count: int = Field(500, ge=1)
    method: Literal["time_shift"] = "time_shift"
    shift_s: float = Field(0.1, gt=0)
    mode: Literal["roll", "zero"] = "roll"


class RebalanceConfig(_Strict):
    """Resample the training split so that the values of some columns weigh the same (e.g. a pool of corpora).

    ``by`` names utterance-table columns: ``["label"]`` balances classes, ``["corpus"]`` corpora,
    ``["corpus", "label"]`` both at once (iterative proportional fitting over the corpus x label cells that
    exist, so a corpus that lacks a class is not asked for it). Rows are drawn by systematic resampling: an
    item of expected count e appears floor(e) or ceil(e) times, so small groups are repeated and large ones
    thinned, never emptied at random. ``strength`` 1 balances fully, 0 leaves the split as it is (weights
    raised to this power). ``size``: training items after resampling; None keeps the split's size. Made per fold
    from the training split only, before waveform augmentation (whose copies then differ between repeats).
    """

    by: list[str] = Field(default_factory=lambda: ["label"], min_length=1)
    strength: float = Field(1.0, ge=0.0, le=1.0)
    size: int | None = Field(None, ge=1)


class SpecAugmentConfig(_Strict):
    """SpecAugment-style masking of feature maps during training (not in the papers)."""

    freq_masks: int = Field(2, ge=0)
    freq_width: int = Field(8, ge=0)
    time_masks: int = Field(2, ge=0)
    time_width: int = Field(20, ge=0)


class AugmentConfig(_Strict):
    """All training-set augmentations; each ``None`` (off) by default."""

    awgn: AwgnConfig | None = None
    time_shift: TimeShiftConfig | None = None
    speed: SpeedConfig | None = None
    balance: BalanceConfig | None = None
    specaugment: SpecAugmentConfig | None = None
    rebalance: RebalanceConfig | None = None

    @property
    def any_waveform(self) -> bool:
        """Whether any augmentation that :func:`augment_training_set` applies is on."""
        return any(x is not None for x in (self.awgn, self.time_shift, self.speed, self.balance))
