"""Features of single- and multi-input models, handled the same way.

Convention: a single-input model's features are one array ``X`` (N, ...) and the model is called
``model(x)``; a multi-input model's features are a ``dict[str, np.ndarray]`` (stream name -> array with the
item axis first, every stream with the same N) and the model is called ``model(*tensors)`` with the streams in
the order the model declares (positional tensors, so that ONNX export works).

A model is multi-input when its options (registry defaults and recipe options together) contain ``streams``,
the ordered stream names; a recipe then gives one frontend per stream in ``frontends:``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from serkit.errors import ConfigError

Features = np.ndarray | dict[str, np.ndarray]

__all__ = [
    "Features",
    "concat_items",
    "is_multi",
    "item_shape",
    "map_streams",
    "num_items",
    "take_items",
    "to_tensors",
    "transform_feature_maps",
]


def is_multi(X: Any) -> bool:
    """Whether ``X`` holds several streams (a mapping) rather than one array."""
    return isinstance(X, Mapping)


def num_items(X: Features) -> int:
    """Number of items; every stream of a multi-input set must have the same number."""
    if not is_multi(X):
        return len(X)
    if not X:
        raise ConfigError("features: a multi-input feature set needs at least one stream")
    counts = {name: len(a) for name, a in X.items()}
    if len(set(counts.values())) != 1:
        raise ConfigError(f"features: streams differ in their number of items: {counts}")
    return next(iter(counts.values()))


def take_items(X: Features, index: Any) -> Features:
    """Rows ``index`` (an index array, a slice or a boolean mask) of every stream."""
    if is_multi(X):
        return {name: a[index] for name, a in X.items()}
    return X[index]


def concat_items(parts: Sequence[Features]) -> Features:
    """Items of several feature sets of the same kind, one after the other."""
    if not parts:
        raise ValueError("concat_items: nothing to concatenate")
    if is_multi(parts[0]):
        names = list(parts[0])
        for p in parts[1:]:
            if not is_multi(p) or list(p) != names:
                raise ConfigError(f"features: cannot concatenate streams {names} with {list(p) if is_multi(p) else 'an array'}")
        return {name: np.concatenate([p[name] for p in parts]) for name in names}
    return np.concatenate(list(parts))


def item_shape(X: Features) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
    """The shape of one item: a tuple, or one tuple per stream."""
    if is_multi(X):
        return {name: tuple(int(n) for n in a.shape[1:]) for name, a in X.items()}
    return tuple(int(n) for n in X.shape[1:])


def map_streams(fn: Callable[[str | None, np.ndarray], np.ndarray], X: Features) -> Features:
    """Apply ``fn(stream_name, array)`` to every stream (``stream_name`` is None for a single array)."""
    if is_multi(X):
        return {name: fn(name, a) for name, a in X.items()}
    return fn(None, X)


def to_tensors(X: Features, index: Any = None, *, streams: Sequence[str] | None = None,
               device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """Float32 tensors to call a model with: ``model(*to_tensors(X))``.

    Parameters
    ----------
    X : features (array or stream dict), numpy arrays or tensors.
    index : optional rows to take first (the same rows of every stream).
    streams : order of the streams (the model's declared order); default the dict's own order.
    device : where the tensors go.
    """
    if index is not None:
        X = take_items(X, index)
    if is_multi(X):
        order = list(streams) if streams is not None else list(X)
        missing = [s for s in order if s not in X]
        if missing:
            raise ConfigError(f"features: stream(s) {missing} missing; have {list(X)}")
        arrays = [X[s] for s in order]
    else:
        arrays = [X]
    return tuple(_as_tensor(a).to(device) for a in arrays)


def is_feature_map(batch: torch.Tensor | np.ndarray) -> bool:
    """Whether a batch (B, F, T) or (B, C, F, T) is a 2-D feature map, not a waveform (B, 1, T) or vector (B, D)."""
    return batch.ndim >= 3 and batch.shape[-2] > 1


def transform_feature_maps(transform: Callable[..., Any], batch: Any, **kwargs: Any) -> Any:
    """Apply a batch transform (e.g. SpecAugment) to one batch, or to the 2-D feature-map streams of a
    multi-input batch only (a raw waveform stream is left as it is)."""
    if not is_multi(batch):
        return transform(batch, **kwargs)
    return {name: transform(x, **kwargs) if is_feature_map(x) else x for name, x in batch.items()}


def _as_tensor(a: Any) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.float()
    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)
