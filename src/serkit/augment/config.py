"""Configuration of training-set augmentation (pydantic, unknown fields rejected).

Every augmentation is off by default (``None``). The waveform ones (``balance``, ``awgn``,
``time_shift``, ``speed`` and the robustness ones ``noise``, ``babble``, ``reverb``, ``telephone``,
``codec``, ``gain``, ``trim``, ``crop``) are applied by :func:`serkit.augment.augment_training_set` to the
training split only; ``rebalance`` resamples the training rows before that; ``specaugment`` is applied by the
trainer to batches of features.
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


class _RobustnessCopies(_Strict):
    """What every robustness augmentation shares: ``copies`` per chosen item, and which share of the items get
    them (``fraction``: a seeded random subset of that size; 1 = every item). Fractions let a recipe mix several
    kinds at about one copy per clip, which keeps a pretrained encoder's extraction affordable."""

    copies: int = Field(1, ge=1)
    fraction: float = Field(1.0, gt=0.0, le=1.0)


def _check_range(value: tuple[float, float], name: str) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value}")
    return value


class NoiseConfig(_RobustnessCopies):
    """Coloured-noise copies: each at a colour drawn from ``colours`` and an SNR drawn uniformly from
    ``snr_db`` (exact SNR against the clip's mean power, see ``serkit.augment.robustness``)."""

    colours: list[Literal["white", "pink", "brown"]] = Field(
        default_factory=lambda: ["white", "pink", "brown"], min_length=1)
    snr_db: tuple[float, float] = (5.0, 20.0)

    @field_validator("snr_db")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        return _check_range(value, "snr_db")


class BabbleConfig(_RobustnessCopies):
    """Babble copies: ``talkers`` (drawn from the range) stretches of training clips of other speakers, summed,
    added at an SNR drawn from ``snr_db``. Needs the speakers of the training items."""

    talkers: tuple[int, int] = (3, 6)
    snr_db: tuple[float, float] = (5.0, 20.0)

    @field_validator("snr_db", "talkers")
    @classmethod
    def _ordered(cls, value, info):
        if info.field_name == "talkers" and value[0] < 1:
            raise ValueError(f"talkers must be >= 1, got {value}")
        return _check_range(value, info.field_name)


class ReverbConfig(_RobustnessCopies):
    """Reverberant copies through simulated shoebox rooms (pyroomacoustics, image sources).

    A bank of ``rooms`` impulse responses is simulated per training set (lengths, widths drawn from
    ``room_size_m``, heights from ``height_m``, RT60 from ``rt60_s``, random source and microphone), and each
    copy takes one of them at random.
    """

    rooms: int = Field(32, ge=1)
    room_size_m: tuple[float, float] = (3.0, 10.0)
    height_m: tuple[float, float] = (2.5, 4.0)
    rt60_s: tuple[float, float] = (0.2, 0.9)

    @field_validator("room_size_m", "height_m", "rt60_s")
    @classmethod
    def _ordered(cls, value, info):
        if value[0] <= 0:
            raise ValueError(f"{info.field_name} must be > 0, got {value}")
        return _check_range(value, info.field_name)


class TelephoneConfig(_RobustnessCopies):
    """Telephone copies: band-pass ``low_hz``-``high_hz`` and a round trip through ``rate`` Hz."""

    low_hz: float = Field(300.0, gt=0)
    high_hz: float = Field(3400.0, gt=0)
    rate: int = Field(8000, gt=0)


class CodecConfig(_RobustnessCopies):
    """Lossy-codec copies: a round trip through a codec drawn from ``codecs`` (libsndfile's MP3 and Ogg Opus) at
    a compression level drawn from ``compression_level`` (libsndfile's 0-0.99; higher is fewer kbit/s)."""

    codecs: list[Literal["mp3", "opus"]] = Field(default_factory=lambda: ["mp3", "opus"], min_length=1)
    compression_level: tuple[float, float] = (0.75, 0.99)

    @field_validator("compression_level")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= value[0] <= value[1] <= 0.99:
            raise ValueError(f"compression_level must be (low, high) within [0, 0.99], got {value}")
        return value


class GainConfig(_RobustnessCopies):
    """Copies at a level changed by a gain drawn uniformly from ``gain_db``."""

    gain_db: tuple[float, float] = (-12.0, 6.0)

    @field_validator("gain_db")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        return _check_range(value, "gain_db")


class TrimConfig(_RobustnessCopies):
    """Copies with their leading and trailing silence trimmed (frames ``top_db`` below the loudest,
    :func:`serkit.audio.trim_silence`, i.e. librosa's ``effects.trim``).

    Corpora hold different amounts of silence around each clip (RAVDESS clips are about half silence, EmoDB's
    almost none), while ``serkit analyze`` cuts its windows to speech with a VAD. Seeing every clip both ways
    keeps a whole-clip model (mean over the clip's frames) from learning the amount of silence as a cue; 30 dB
    matches silero-vad's speech extents best on the four corpora here. Deterministic: further copies would be
    identical.
    """

    top_db: float = Field(30.0, gt=0.0, allow_inf_nan=False)


class CropConfig(_RobustnessCopies):
    """Copies that keep a random stretch of each clip's speech, ``seconds`` long (drawn uniformly; a clip with less
    speech is kept whole), after trimming its leading and trailing silence at ``top_db`` (as ``trim``; None: crop
    the clip as it is).

    Acted clips are whole sentences of 2-4 s; what a user records, and what ``serkit analyze`` windows hold, is
    often shorter, and a head trained on whole sentences alone hears a 1 s remark as something else (UA about 20
    points lower at 1 s on the robustness card). A stretch of a sentence also carries less of the sentence's
    wording and of the corpus's way of framing it.
    """

    seconds: tuple[float, float] = (1.0, 2.0)
    top_db: float | None = Field(30.0, gt=0.0, allow_inf_nan=False)

    @field_validator("seconds")
    @classmethod
    def _seconds(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] <= 0:
            raise ValueError(f"seconds must be > 0, got {value}")
        return _check_range(value, "seconds")


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
    """All training-set augmentations; each ``None`` (off) by default.

    ``draws`` says where the random choices of the copies (which clips get a kind of copy, the noise, SNR, room,
    codec, stretch, shift or rate) come from:

    - ``per_split`` (default): one random sequence per kind for the whole training split, consumed in the split's
      order, so a clip's copy depends on which clips come before it. Two folds, or two recipes, that share a clip
      give it different copies.
    - ``per_clip``: each clip draws from its own generator, seeded by the seed, the kind and the clip's samples
      (and, for a clip that the rebalancing repeats, which repeat it is). A clip gets the same copies in every fold
      and every recipe with the same settings, so an encoder's features of the copies, cached under the copies'
      samples, are computed once and read back by every other fold. Babble copies still differ between folds,
      because their voices are picked among the fold's other training speakers. The share of clips that get a
      kind of copy is then ``fraction`` in expectation, not exactly.

    ha2024's class ``balance`` is per split either way.
    """

    draws: Literal["per_split", "per_clip"] = "per_split"
    awgn: AwgnConfig | None = None
    time_shift: TimeShiftConfig | None = None
    speed: SpeedConfig | None = None
    balance: BalanceConfig | None = None
    specaugment: SpecAugmentConfig | None = None
    rebalance: RebalanceConfig | None = None
    noise: NoiseConfig | None = None
    babble: BabbleConfig | None = None
    reverb: ReverbConfig | None = None
    telephone: TelephoneConfig | None = None
    codec: CodecConfig | None = None
    gain: GainConfig | None = None
    trim: TrimConfig | None = None
    crop: CropConfig | None = None

    @property
    def any_waveform(self) -> bool:
        """Whether any augmentation that :func:`augment_training_set` applies is on."""
        return any(x is not None for x in (self.awgn, self.time_shift, self.speed, self.balance, self.noise,
                                           self.babble, self.reverb, self.telephone, self.codec, self.gain,
                                           self.trim, self.crop))
