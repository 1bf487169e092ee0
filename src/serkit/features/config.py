"""Frontend configuration (a recipe field) and the registry that builds frontends from it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import nn

from serkit.errors import ConfigError
from serkit.features.frontends import MFCC, Frontend, LogMel, LogMelDeltas, LogSTFT, Raw
from serkit.features.functionals import FUNCTIONAL_SETS

__all__ = ["FRONTENDS", "FrontendConfig", "FrontendName", "create_frontend"]

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


class FrontendConfig(BaseModel):
    """Which frontend and its parameters; unset parameters take the frontend's defaults.

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
    def _check_fields_apply(self) -> FrontendConfig:
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

    def frontend_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the frontend class: the parameters that were given."""
        kwargs = {k: v for k, v in self.model_dump(exclude={"name"}).items() if v is not None}
        if kwargs.get("top_db") is False:
            kwargs["top_db"] = None
        return kwargs


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
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if isinstance(cfg, dict):
        try:
            cfg = FrontendConfig.model_validate(cfg)
        except ValidationError as exc:
            raise ConfigError(f"frontend config: {exc}") from exc
    if not isinstance(cfg, FrontendConfig):
        raise ConfigError(f"frontend config: expected FrontendConfig, dict or name, got {type(cfg).__name__}")
    if cfg.name in FUNCTIONAL_SETS:
        raise ConfigError(
            f"frontend {cfg.name!r} is computed by openSMILE on numpy signals, not by a torch module: "
            f"use serkit.features.OpenSmileFunctionals(sample_rate, {cfg.name!r}) (one vector per clip; "
            "EGeMAPS(sample_rate) for eGeMAPS)"
        )
    return FRONTENDS[cfg.name](sample_rate=sample_rate, **cfg.frontend_kwargs())
