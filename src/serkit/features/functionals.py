"""Utterance-level functionals from openSMILE: eGeMAPS (88) and ComParE 2016 (6373), the classic SVM features."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from serkit.errors import AudioError, SerkitError
from serkit.utils import positive_int

__all__ = ["FUNCTIONAL_SETS", "EGeMAPS", "OpenSmileFunctionals"]

logger = logging.getLogger(__name__)

#: frontend name -> openSMILE feature set
FUNCTIONAL_SETS: dict[str, str] = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}


class OpenSmileFunctionals:
    """openSMILE functionals of a whole clip: one vector per clip (eGeMAPSv02: 88 values, ComParE_2016: 6373).

    A thin wrapper over ``opensmile.Smile(feature_set=..., feature_level=Functionals)``; the values are
    exactly what ``Smile.process_signal`` returns (float32).

    Parameters
    ----------
    sample_rate
        Sample rate of the signals in Hz.
    name
        The frontend name: "egemaps" (eGeMAPSv02, Eyben et al. 2016) or "compare" (the ComParE 2016
        set, Schuller et al.), see :data:`FUNCTIONAL_SETS`.
    """

    def __init__(self, sample_rate: int = 16000, name: str = "egemaps"):
        import opensmile  # imported lazily: it loads a native library

        positive_int(sample_rate, "sample_rate", AudioError)
        if name not in FUNCTIONAL_SETS:
            raise ValueError(f"name: one of {sorted(FUNCTIONAL_SETS)}, got {name!r}")
        self.name, self.feature_set, self.sample_rate = name, FUNCTIONAL_SETS[name], sample_rate
        self._smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, self.feature_set),
            feature_level=opensmile.FeatureLevel.Functionals,
        )
        self.feature_names: list[str] = list(self._smile.feature_names)
        self.num_features = len(self.feature_names)

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable description (a cache key), like the torch frontends'."""
        return {"name": self.name, "sample_rate": self.sample_rate, "feature_set": self.feature_set}

    def __call__(self, signal: np.ndarray) -> np.ndarray:
        """Functionals of one mono signal ``(T,)`` (or ``(1, T)``) -> float32 ``(num_features,)``.

        Raises
        ------
        AudioError
            Not a 1-D real signal, empty, non-finite, or too short for openSMILE (NaN output).
        """
        signal = np.asarray(signal)
        if signal.ndim == 2 and signal.shape[0] == 1:
            signal = signal[0]
        if signal.ndim != 1:
            raise AudioError(None, f"expected a mono signal of shape (T,), got shape {signal.shape}")
        if not np.issubdtype(signal.dtype, np.floating):
            raise AudioError(None, f"expected a floating-point signal, got dtype {signal.dtype}")
        if signal.size == 0:
            raise AudioError(None, "empty signal")
        if not np.isfinite(signal).all():
            raise AudioError(None, "signal contains NaN or infinite samples")
        with warnings.catch_warnings():
            # opensmile warns "Segment too short, filling with NaN": reported as an error below
            warnings.simplefilter("ignore", UserWarning)
            frame = self._smile.process_signal(signal, self.sample_rate)
        values = frame.to_numpy()[0]
        if not np.isfinite(values).all():
            raise AudioError(
                None,
                f"openSMILE gave NaN {self.feature_set} features: signal of {signal.size} samples "
                f"({signal.size / self.sample_rate:.3f} s) is too short",
            )
        return values

    def batch(
        self, signals: Sequence[np.ndarray], on_error: Literal["raise", "nan"] = "raise"
    ) -> np.ndarray:
        """Functionals of several signals -> ``(N, num_features)``.

        Every signal is processed even when some fail. With ``on_error="raise"`` a
        :class:`~serkit.errors.SerkitError` listing every failed index and reason is raised at the
        end; with ``"nan"`` failed rows are NaN and the failures are logged as a warning.
        """
        if on_error not in ("raise", "nan"):
            raise ValueError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
        out = np.full((len(signals), self.num_features), np.nan, dtype=np.float32)
        failures: list[str] = []
        for index, signal in enumerate(signals):
            try:
                out[index] = self(signal)
            except AudioError as exc:
                failures.append(f"signal {index}: {exc.reason}")
        if failures:
            message = f"{self.feature_set} failed on {len(failures)} of {len(signals)} signals: " + "; ".join(failures)
            if on_error == "raise":
                raise SerkitError(message)
            logger.warning(message)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sample_rate={self.sample_rate}, name={self.name!r})"


class EGeMAPS(OpenSmileFunctionals):
    """openSMILE eGeMAPSv02 functionals: 88 values per clip (``OpenSmileFunctionals(name="egemaps")``)."""

    def __init__(self, sample_rate: int = 16000):
        super().__init__(sample_rate, "egemaps")

    def __repr__(self) -> str:
        return f"EGeMAPS(sample_rate={self.sample_rate})"
