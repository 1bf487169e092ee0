"""Mean/std normalisation of features with statistics from the training split only.

Axes: statistics are taken over the item axis (0) and, for feature maps, the time axis (last),
so there is one mean and one std per feature row: per F for (N, F, T), per (C, F) for
(N, C, F, T), per D for (N, D). ``axis`` overrides the reduced axes (it must contain 0); e.g.
``axis=(0, 2, 3)`` on (N, C, F, T) gives one scalar pair per channel.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from serkit.errors import ConfigError

__all__ = ["FeatureNormalizer", "StreamNormalizer", "normalizer_from_state"]

_MIN_STD = 1e-8
Scope = Literal["global", "per_speaker", "none"]
Unseen = Literal["error", "global", "own_audio"]


class FeatureNormalizer:
    """Standardise features: ``(x - mean) / std``.

    Parameters
    ----------
    scope :
        ``"global"``: one set of statistics from all training items (akalya2022).
        ``"per_speaker"``: statistics of each speaker from that speaker's own items; a global set
        is fitted too, for ``unseen="global"``.
        ``"none"``: transform returns its input (as float32).
    axis :
        axes of X reduced to get the statistics; ``None`` = (0, last) for 3-D/4-D X, (0,) for 2-D.
    unseen :
        per_speaker only: what transform does with a speaker not seen in ``fit`` (in a
        speaker-independent protocol every test speaker is one). ``"error"`` (default) raises;
        ``"global"`` uses the training set's global statistics; ``"own_audio"`` computes that
        speaker's statistics from the items passed to ``transform``, i.e. from its own unlabelled
        test audio. That is test-time adaptation (no labels, but test data inform the model's
        input), so results obtained with it must be reported as such:
        :attr:`uses_test_audio` is then ``True``.

    Zero standard deviations (constant features) are replaced by 1, so such features become 0.
    Statistics are computed in float64 and stored in float32.

    :meth:`fit_class_means` adds the training items' mean per class (``class_mean``, in the raw feature space):
    what adaptation to a person compares their material with (:mod:`serkit.features.adaptation`).
    """

    def __init__(self, scope: Scope = "global", axis: tuple[int, ...] | None = None, unseen: Unseen = "error"):
        if scope not in ("global", "per_speaker", "none"):
            raise ConfigError(f"normalization scope: expected 'global', 'per_speaker' or 'none', got {scope!r}")
        if unseen not in ("error", "global", "own_audio"):
            raise ConfigError(f"normalization unseen: expected 'error', 'global' or 'own_audio', got {unseen!r}")
        self.scope: Scope = scope
        self.axis = None if axis is None else tuple(int(a) for a in axis)
        self.unseen: Unseen = unseen
        self.ndim: int | None = None
        self.feature_shape: tuple[int, ...] | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.speaker_mean: dict[str, np.ndarray] = {}
        self.speaker_std: dict[str, np.ndarray] = {}
        self.class_mean: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------------------- helpers

    @property
    def uses_test_audio(self) -> bool:
        """Whether transform may compute statistics from the data it normalises (report it)."""
        return self.scope == "per_speaker" and self.unseen == "own_audio"

    @property
    def fitted(self) -> bool:
        return self.scope == "none" or self.mean is not None

    def _reduced_axes(self, ndim: int) -> tuple[int, ...]:
        if self.axis is None:
            return (0, ndim - 1) if ndim >= 3 else (0,)
        if any(not -ndim <= a < ndim for a in self.axis):
            raise ConfigError(f"normalization axis {self.axis} out of range for {ndim}-D features")
        axes = tuple(sorted({a % ndim for a in self.axis}))
        if 0 not in axes:
            raise ConfigError(f"normalization axis {self.axis} must include the item axis 0")
        return axes

    def _kept_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        axes = self._reduced_axes(len(shape))
        return tuple(1 if i in axes else n for i, n in enumerate(shape))[1:]

    @staticmethod
    def _stats(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        x64 = x.astype(np.float64, copy=False)
        mean = x64.mean(axis=axes, keepdims=True)[0]
        std = x64.std(axis=axes, keepdims=True)[0]
        std = np.where(std < _MIN_STD, 1.0, std)
        return mean.astype(np.float32), std.astype(np.float32)

    def _check(self, x: np.ndarray, what: str) -> None:
        if x.ndim not in (2, 3, 4):
            raise ConfigError(f"{what}: features must be (N, D), (N, F, T) or (N, C, F, T), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ConfigError(f"{what}: no items")
        if self.ndim is not None:
            if x.ndim != self.ndim or self._kept_shape(x.shape) != self.feature_shape:
                raise ConfigError(f"{what}: features of shape {x.shape} do not match the fitted ones "
                                  f"({self.ndim}-D, statistics of shape {self.feature_shape})")

    @staticmethod
    def _speakers(speakers: Any, n: int, what: str) -> np.ndarray:
        if speakers is None:
            raise ConfigError(f"{what}: scope='per_speaker' needs the speaker of every item")
        array = np.asarray(speakers).astype(str)
        if array.shape != (n,):
            raise ConfigError(f"{what}: expected {n} speakers, got shape {array.shape}")
        return array

    # ----------------------------------------------------------------------------- API

    def fit(self, X: np.ndarray | torch.Tensor, speakers: Any = None) -> FeatureNormalizer:
        """Fit the statistics on training features only (and their speakers for per_speaker)."""
        x = _to_numpy(X)
        self.ndim = None
        self._check(x, "fit")
        self.ndim = x.ndim
        axes = self._reduced_axes(x.ndim)
        self.mean, self.std = self._stats(x, axes)
        self.feature_shape = tuple(self.mean.shape)
        self.speaker_mean, self.speaker_std = {}, {}
        if self.scope == "per_speaker":
            spk = self._speakers(speakers, x.shape[0], "fit")
            for speaker in np.unique(spk):
                self.speaker_mean[str(speaker)], self.speaker_std[str(speaker)] = self._stats(x[spk == speaker], axes)
        return self

    def fit_class_means(self, X: np.ndarray | torch.Tensor, labels: Any) -> FeatureNormalizer:
        """Store the mean of the training items of each class (``labels``: one name per item), reduced over the
        same axes as the statistics. Call after :meth:`fit`, on clean training items."""
        x = _to_numpy(X)
        self._check(x, "fit_class_means")
        names = np.asarray(labels).astype(str)
        if names.shape != (x.shape[0],):
            raise ConfigError(f"fit_class_means: expected {x.shape[0]} labels, got shape {names.shape}")
        axes = self._reduced_axes(x.ndim)
        self.class_mean = {str(c): self._stats(x[names == c], axes)[0] for c in np.unique(names)}
        return self

    def transform(self, X: np.ndarray | torch.Tensor, speakers: Any = None) -> np.ndarray | torch.Tensor:
        """Normalise features with the fitted statistics; returns the input's type (float32)."""
        x = _to_numpy(X)
        if self.scope == "none":
            return _like(x.astype(np.float32, copy=True), X)
        if not self.fitted:
            raise ConfigError("transform: the normalizer is not fitted (call fit on training features first)")
        self._check(x, "transform")
        if self.scope == "global":
            out = (x - self.mean) / self.std
            return _like(out.astype(np.float32), X)
        spk = self._speakers(speakers, x.shape[0], "transform")
        out = np.empty(x.shape, dtype=np.float32)
        unknown = sorted(str(s) for s in set(spk) - set(self.speaker_mean))
        if unknown and self.unseen == "error":
            raise ConfigError(f"transform: speaker(s) {unknown} were not in the training data; set unseen='global' "
                              "or unseen='own_audio' (test-time statistics, to be reported)")
        axes = self._reduced_axes(x.ndim)
        for speaker in np.unique(spk):
            rows = spk == speaker
            if speaker in self.speaker_mean:
                mean, std = self.speaker_mean[speaker], self.speaker_std[speaker]
            elif self.unseen == "global":
                mean, std = self.mean, self.std
            else:
                mean, std = self._stats(x[rows], axes)
            out[rows] = (x[rows] - mean) / std
        return _like(out, X)

    def fit_transform(self, X: np.ndarray | torch.Tensor, speakers: Any = None) -> np.ndarray | torch.Tensor:
        return self.fit(X, speakers).transform(X, speakers)

    def state_dict(self) -> dict[str, Any]:
        """The configuration and statistics as torch tensors and plain values (``torch.load``
        with ``weights_only=True`` reads it), to save next to the model."""
        def tensor(a: np.ndarray | None) -> torch.Tensor | None:
            return None if a is None else torch.from_numpy(np.ascontiguousarray(a))

        return {
            "scope": self.scope,
            "axis": None if self.axis is None else list(self.axis),
            "unseen": self.unseen,
            "ndim": self.ndim,
            "mean": tensor(self.mean),
            "std": tensor(self.std),
            "speaker_mean": {k: tensor(v) for k, v in self.speaker_mean.items()},
            "speaker_std": {k: tensor(v) for k, v in self.speaker_std.items()},
            "class_mean": {k: tensor(v) for k, v in self.class_mean.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> FeatureNormalizer:
        """Restore what :meth:`state_dict` returned."""
        def array(a: Any) -> np.ndarray | None:
            return None if a is None else _to_numpy(a).astype(np.float32)

        try:
            self.__init__(state["scope"], None if state["axis"] is None else tuple(state["axis"]), state["unseen"])
            self.ndim = state["ndim"]
            self.mean, self.std = array(state["mean"]), array(state["std"])
            self.speaker_mean = {str(k): array(v) for k, v in state["speaker_mean"].items()}
            self.speaker_std = {str(k): array(v) for k, v in state["speaker_std"].items()}
            # absent from model files written before adaptation learnt to use class means
            self.class_mean = {str(k): array(v) for k, v in (state.get("class_mean") or {}).items()}
        except KeyError as err:
            raise ConfigError(f"normalizer state: missing field {err.args[0]!r}") from None
        self.feature_shape = None if self.mean is None else tuple(self.mean.shape)
        return self


class StreamNormalizer:
    """One :class:`FeatureNormalizer` per stream of multi-input features (``dict[str, array]``).

    Every stream gets the configured scope except those in ``raw_streams`` (default: the stream named
    ``raw``), which stay unnormalised: a waveform's global statistics are one scalar pair that the first
    BatchNorm of a 1-D network undoes anyway, and computing them in float64 over N x samples values would copy
    the whole training set (gigabytes for ha2024's balanced EmoDB). Same API as :class:`FeatureNormalizer`.
    """

    def __init__(self, scope: Scope = "global", axis: tuple[int, ...] | None = None, unseen: Unseen = "error",
                 raw_streams: tuple[str, ...] = ("raw",)):
        self.scope, self.axis, self.unseen = scope, axis, unseen
        self.raw_streams = tuple(raw_streams)
        self.streams: dict[str, FeatureNormalizer] = {}

    @property
    def uses_test_audio(self) -> bool:
        return any(n.uses_test_audio for n in self.streams.values())

    def fit(self, X: dict[str, Any], speakers: Any = None) -> StreamNormalizer:
        self.streams = {}
        for name, x in X.items():
            scope: Scope = "none" if name in self.raw_streams else self.scope
            norm = FeatureNormalizer(scope, self.axis, self.unseen)
            self.streams[name] = norm if scope == "none" else norm.fit(x, speakers)  # "none" needs no statistics
        return self

    def transform(self, X: dict[str, Any], speakers: Any = None) -> dict[str, Any]:
        unknown = sorted(set(X) - set(self.streams))
        if unknown:
            raise ConfigError(f"transform: stream(s) {unknown} were not fitted (fitted: {sorted(self.streams)})")
        return {name: self.streams[name].transform(x, speakers) for name, x in X.items()}

    def fit_transform(self, X: dict[str, Any], speakers: Any = None) -> dict[str, Any]:
        return self.fit(X, speakers).transform(X, speakers)

    def state_dict(self) -> dict[str, Any]:
        return {"streams": {name: n.state_dict() for name, n in self.streams.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> StreamNormalizer:
        if "streams" not in state:
            raise ConfigError("normalizer state: missing field 'streams' (not a multi-stream normalizer)")
        self.streams = {name: FeatureNormalizer().load_state_dict(s) for name, s in state["streams"].items()}
        return self


def normalizer_from_state(state: dict[str, Any] | None) -> FeatureNormalizer | StreamNormalizer:
    """The normaliser a model bundle saved (None: no normalisation), single- or multi-stream."""
    if state is None:
        return FeatureNormalizer(scope="none")
    if "streams" in state:
        return StreamNormalizer().load_state_dict(state)
    return FeatureNormalizer().load_state_dict(state)


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _like(out: np.ndarray, reference: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    if isinstance(reference, torch.Tensor):
        return torch.from_numpy(out).to(reference.device)
    return out
