"""Frontend configuration (a recipe field) and the registry that builds frontends from it.

Each kind of frontend has its own config class, next to its code, with a literal ``name`` (or names), a
``build(sample_rate)`` that returns the torch module and an ``output_kind(pooling)`` that says what it feeds a model
(see :data:`serkit.models.registry.InputKind`). :data:`FrontendConfig` is their discriminated union on ``name``: a
recipe's ``frontend:`` mapping validates against the class its name picks. Adding a frontend is its module plus
its config class in :data:`FRONTEND_CONFIGS`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from torch import nn

from serkit.errors import ConfigError
from serkit.features.frontends import MFCC, Frontend, LogMel, LogMelDeltas, LogSTFT, Raw
from serkit.features.functionals import FUNCTIONAL_SETS
from serkit.features.whisper import WhisperConfig

__all__ = ["FRONTENDS", "FrontendConfig", "FrontendName", "SpectralFrontendConfig", "create_frontend",
           "parse_frontend_config"]

FrontendName = Literal["raw", "mfcc", "stft", "logmel", "logmel_deltas", "egemaps", "compare"]

#: name -> frontend class (egemaps and compare are computed by openSMILE: see
#: :class:`serkit.features.OpenSmileFunctionals`).
FRONTENDS: dict[str, type[Frontend]] = {
    "raw": Raw,
    "mfcc": MFCC,
    "stft": LogSTFT,
    "logmel": LogMel,
    "logmel_deltas": LogMelDeltas,
}

_LOGMEL = ("logmel", "logmel_deltas")
_SPECTRAL = ("mfcc", "stft", *_LOGMEL)
# Which parameter applies to which frontend.
_APPLIES_TO: dict[str, tuple[str, ...]] = {
    "n_mfcc": ("mfcc",),
    "n_fft": _SPECTRAL,
    "hop_length": _SPECTRAL,
    "win_length": _LOGMEL,
    "n_mels": ("mfcc", *_LOGMEL),
    "fmin": ("mfcc", *_LOGMEL),
    "fmax": ("mfcc", *_LOGMEL),
    "window": _SPECTRAL,
    "center": _SPECTRAL,
    "top_db": _SPECTRAL,
    "n_bands": ("stft",),
    "pooling": ("stft",),
    "delta_n": ("logmel_deltas",),
}


class SpectralFrontendConfig(BaseModel):
    """Which hand-crafted frontend and its parameters; unset parameters take the frontend's defaults.

    Defaults (section 2 of the spec): mfcc n_mfcc 40, n_fft 2048, hop 512, n_mels 128;
    stft n_fft 2048, hop 512, 128 linear bands; logmel / logmel_deltas 40 mels, 25 ms Hamming
    window, 10 ms hop, n_fft the next power of two, delta_n 2. ``hop_length`` is in samples for
    mfcc and stft but in seconds for logmel and logmel_deltas (as ``win_length``).
    ``top_db: false`` disables the dB floor (leaving it unset keeps librosa's 80 dB).
    A parameter that does not apply to ``name`` is an error naming the field.
    """

    model_config = ConfigDict(extra="forbid")

    name: FrontendName
    n_mfcc: int | None = Field(default=None, ge=1)
    n_fft: int | None = Field(default=None, ge=1)
    hop_length: int | float | None = Field(default=None, gt=0)
    win_length: float | None = Field(default=None, gt=0)
    n_mels: int | None = Field(default=None, ge=1)
    fmin: float | None = Field(default=None, ge=0)
    fmax: float | None = Field(default=None, gt=0)
    window: str | None = None
    center: bool | None = None
    top_db: float | bool | None = None
    n_bands: int | None = Field(default=None, ge=1)
    pooling: Literal["linear", "none"] | None = None
    delta_n: int | None = Field(default=None, ge=1)

    @field_validator("top_db", mode="before")
    @classmethod
    def _top_db_number_or_false(cls, value: Any) -> Any:
        if value is True:
            raise ValueError("top_db must be a number of dB or false (to disable the floor), not true")
        if value is False or value is None:
            return value
        return float(value)

    @model_validator(mode="after")
    def _check_fields_apply(self) -> SpectralFrontendConfig:
        for field, names in _APPLIES_TO.items():
            if getattr(self, field) is not None and self.name not in names:
                raise ValueError(
                    f"field '{field}' does not apply to frontend '{self.name}' "
                    f"(it applies to: {', '.join(names)})"
                )
        if self.top_db is not False and self.top_db is not None and self.top_db < 0:
            raise ValueError(f"field 'top_db' must be >= 0 or false, got {self.top_db}")
        if self.hop_length is not None:
            if self.name in _LOGMEL:
                if not 0 < self.hop_length <= 1:
                    raise ValueError(
                        f"field 'hop_length' is in seconds for '{self.name}' (e.g. 0.010), got {self.hop_length}"
                    )
            elif not float(self.hop_length).is_integer():
                raise ValueError(
                    f"field 'hop_length' is in samples for '{self.name}' (e.g. 512), got {self.hop_length}"
                )
            else:
                self.hop_length = int(self.hop_length)
        if self.win_length is not None and not 0 < self.win_length <= 1:
            raise ValueError(f"field 'win_length' is in seconds (e.g. 0.025), got {self.win_length}")
        return self

    def output_kind(self, pooling: str = "none") -> str:
        """The kind of input this frontend feeds a model (see ``serkit.models.registry.InputKind``)."""
        if self.name in FUNCTIONAL_SETS:
            return "vector"
        if self.name == "raw":
            return "waveform"
        return "time_frequency" if pooling == "none" else "vector"

    #: Whether the frontend pools over time itself (the recipe's ``pooling`` then stays ``none``).
    pools_itself: ClassVar[bool] = False

    def build(self, sample_rate: int) -> nn.Module:
        """The torch module (see :func:`create_frontend`)."""
        if self.name in FUNCTIONAL_SETS:
            raise ConfigError(
                f"frontend {self.name!r} is computed by openSMILE on numpy signals, not by a torch module: "
                f"use serkit.features.OpenSmileFunctionals(sample_rate, {self.name!r}) (one vector per clip; "
                "EGeMAPS(sample_rate) for eGeMAPS)"
            )
        return FRONTENDS[self.name](sample_rate=sample_rate, **self.frontend_kwargs())

    def frontend_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the frontend class: the parameters that were given."""
        kwargs = {k: v for k, v in self.model_dump(exclude={"name"}).items() if v is not None}
        if kwargs.get("top_db") is False:
            kwargs["top_db"] = None
        return kwargs


#: Every frontend config class; each declares its ``name`` literal(s), ``build`` and ``output_kind``.
FRONTEND_CONFIGS: tuple[type[BaseModel], ...] = (SpectralFrontendConfig, WhisperConfig)
#: A frontend's config: one class per kind of frontend, chosen by ``name`` (a pydantic discriminated union).
FrontendConfig = Annotated[Union[FRONTEND_CONFIGS], Field(discriminator="name")]  # noqa: UP007
_FRONTEND_ADAPTER: TypeAdapter = TypeAdapter(FrontendConfig)


def parse_frontend_config(data: Any) -> SpectralFrontendConfig | WhisperConfig:
    """A frontend config from its dict form (or a name, or a config already built); errors name the field."""
    if isinstance(data, FRONTEND_CONFIGS):
        return data
    if isinstance(data, str):
        data = {"name": data}
    try:
        return _FRONTEND_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(f"frontend config: {exc}") from exc


def create_frontend(cfg: FrontendConfig | dict[str, Any] | str, sample_rate: int) -> nn.Module:
    """Build the frontend module a config names.

    Parameters
    ----------
    cfg
        A :class:`FrontendConfig`, its dict form, or just a frontend name (all defaults).
    sample_rate
        Sample rate of the audio the frontend will see, in Hz.

    Returns
    -------
    torch.nn.Module
        A :class:`~serkit.features.Frontend` (with ``.config`` and ``.num_frames``).

    Raises
    ------
    ConfigError
        Invalid config (names the field), or an openSMILE set (``egemaps``, ``compare``), which is not a torch
        module.
    """
    if not isinstance(cfg, (str, dict, *FRONTEND_CONFIGS)):
        raise ConfigError(f"frontend config: expected a frontend config, dict or name, got {type(cfg).__name__}")
    return parse_frontend_config(cfg).build(sample_rate)
