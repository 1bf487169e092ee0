"""A trained model saved with everything needed to use it: recipe, labels, normaliser statistics, weights.

Format (``serkit-model/1``): one ``torch.save`` file with a dict: ``format``, ``recipe``, ``labels``,
``input_shape``, ``normalizer``, ``info``, ``kind`` (the learner kind, see :mod:`serkit.models.learner`) and that
learner's state: torch models a ``state_dict``, classical models the pickled ``estimator``, so load bundles only
from sources you trust (``torch.load(weights_only=False)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from serkit.errors import ConfigError
from serkit.models.learner import Learner, as_learner, learner_from_state
from serkit.utils import atomic_torch_save

FORMAT = "serkit-model/1"


@dataclass
class ModelBundle:
    recipe: dict[str, Any]
    labels: list[str]
    input_shape: tuple[int, ...] | dict[str, tuple[int, ...]]  # one shape per stream for a multi-input model
    learner: Learner  # a network or estimator given here is wrapped in its learner (serkit.models.learner)
    normalizer: dict[str, Any] | None
    info: dict[str, Any]

    def __post_init__(self):
        self.learner = as_learner(self.learner)

    @property
    def model(self) -> Any:
        """The underlying network or estimator (or ONNX classifier)."""
        return self.learner.model

    @property
    def model_name(self) -> str:
        return self.recipe["model"]["name"]

    def save(self, path: str | Path) -> Path:
        payload = {
            "format": FORMAT,
            "recipe": self.recipe,
            "labels": list(self.labels),
            "input_shape": _shape_to_payload(self.input_shape),
            "normalizer": self.normalizer,
            "info": self.info,
            "kind": self.learner.kind,
            **self.learner.state(),
        }
        return atomic_torch_save(payload, path)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> ModelBundle:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: model file not found")
        try:
            payload = torch.load(path, map_location=device, weights_only=False)
        except Exception as exc:
            raise ConfigError(f"{path}: not a readable serkit model ({exc})") from None
        if not isinstance(payload, dict) or "format" not in payload:
            raise ConfigError(f"{path}: not a serkit model file (expected format {FORMAT})")
        if payload["format"] != FORMAT:
            raise ConfigError(f"{path}: model file format {payload['format']!r} is not readable by this serkit "
                              f"(it reads {FORMAT})")
        recipe = payload["recipe"]
        # init_from only mattered before training: the saved weights replace whatever it loaded.
        opts = {k: v for k, v in recipe["model"].items() if k not in ("name", "init_from", "init_prefixes")}
        labels, shape = list(payload["labels"]), _shape_from_payload(payload["input_shape"])
        learner = learner_from_state(payload.get("kind"), payload, name=recipe["model"]["name"],
                                     num_classes=len(labels), input_shape=shape, options=opts, device=device,
                                     where=str(path))
        return cls(recipe, labels, shape, learner, payload.get("normalizer"), payload.get("info", {}))


def _shape_to_payload(shape: tuple[int, ...] | dict[str, tuple[int, ...]]) -> list[int] | dict[str, list[int]]:
    if isinstance(shape, dict):
        return {name: [int(n) for n in s] for name, s in shape.items()}
    return [int(n) for n in shape]


def _shape_from_payload(shape: Any) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
    if isinstance(shape, dict):
        return {str(name): tuple(int(n) for n in s) for name, s in shape.items()}
    return tuple(int(n) for n in shape)
