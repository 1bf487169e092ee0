"""A registry of models created by name, in the spirit of timm's ``create_model``.

Torch models are built with ``num_classes`` and ``input_shape`` (the shape of one item's features,
without the batch axis) plus their own options; classical (scikit-learn) models take their options only.

A model declares the kinds of input it takes (:data:`InputKind`), not frontend names: any frontend whose output is
of such a kind fits it (see ``output_kind`` on each frontend config), so a new frontend needs no model edits.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from serkit.errors import ConfigError

ModelKind = Literal["torch", "sklearn"]
#: waveform (B, T); time_frequency (B, [C,] F, T) feature maps; vector (B, D) one vector per clip;
#: layer_vectors (B, L, D) one vector per encoder layer (for heads that learn a weighted sum of layers);
#: frame_sequence (B, D + 1, T) encoder states per frame, the last row 1 on the clip's frames and 0 on padding.
InputKind = Literal["waveform", "time_frequency", "vector", "layer_vectors", "frame_sequence"]
INPUT_KINDS: tuple[str, ...] = ("waveform", "time_frequency", "vector", "layer_vectors", "frame_sequence")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., Any]
    kind: ModelKind
    inputs: tuple[InputKind, ...]  # the kinds of input it takes (each stream's, for a multi-input model)
    paper: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    #: A small valid per-item input shape (timm's pretrained config in spirit): what a test or an export builds
    #: the model on without a recipe; None for multi-input models, whose streams give their shapes.
    example_input: tuple[int, ...] | None = None

    def options(self) -> list[str]:
        """The keyword options the builder accepts (for error messages and docs)."""
        params = inspect.signature(self.builder).parameters
        return [p for p in params if p not in ("num_classes", "input_shape")]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    kind: ModelKind = "torch",
    inputs: tuple[InputKind, ...] = ("time_frequency",),
    paper: str | None = None,
    example_input: tuple[int, ...] | None = None,
    **defaults: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``builder`` under ``name``; ``defaults`` are keyword options applied before the user's;
    ``example_input`` a small valid per-item input shape (see :class:`ModelSpec`)."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        unknown = [k for k in inputs if k not in INPUT_KINDS]
        if unknown:
            raise ValueError(f"model {name!r}: unknown input kind(s) {unknown}; known: {INPUT_KINDS}")
        _REGISTRY[name] = ModelSpec(name, builder, kind, tuple(inputs), paper, dict(defaults),
                                    None if example_input is None else tuple(example_input))
        return builder

    return wrap


def _ensure_loaded() -> None:
    # Importing the package's modules registers their models: a new model is one new file.
    import importlib
    import pkgutil

    import serkit.models as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"model.name: unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}") from None


def create_model(name: str, **cfg: Any) -> Any:
    """Create the model registered as ``name``.

    Torch models need ``num_classes`` and ``input_shape``; unknown options raise a ConfigError naming them.
    """
    spec = model_spec(name)
    options = {**spec.defaults, **cfg}
    accepted = inspect.signature(spec.builder).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"model: option(s) {', '.join(unknown)} not accepted by {name!r}; accepted: {', '.join(spec.options())}"
            )
    return spec.builder(**options)
