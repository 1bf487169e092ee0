"""One interface over torch networks and scikit-learn classifiers: fit, predict_proba, state to save, module.

The runner, the model file, the predictor and ONNX export talk to a :class:`Learner` only, so none of them asks
what kind of model it holds. The two kinds differ here and nowhere else:

- :class:`TorchLearner`: an ``nn.Module``; fitted by a trainer (``serkit.training.trainer.Trainer`` or anything
  with its ``fit``/``predict_proba``), after the model's own unsupervised ``pretrain`` step if it has one (the
  DBN's RBMs); saved as a state dict, rebuilt from the registry when loaded.
- :class:`EstimatorLearner`: a scikit-learn style classifier (``serkit.models.classical``) that fits itself,
  choosing its hyperparameter on the validation split; saved pickled.

This module sits in ``models/`` (the trainer is passed in, never imported) so that the model file can be read
without the training package.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from serkit.errors import ConfigError
from serkit.models.registry import create_model, model_spec
from serkit.multi_input import num_items, to_tensors

__all__ = [
    "EstimatorLearner",
    "Learner",
    "TorchLearner",
    "as_learner",
    "create_learner",
    "learner_from_state",
    "predict_proba",
]


@runtime_checkable
class Learner(Protocol):
    """What the runner, the model file, the predictor and export need of a trainable classifier."""

    kind: str  # the tag stored in the model file, naming the class that reads the state back

    @property
    def model(self) -> Any:
        """The underlying network or estimator."""

    @property
    def module(self) -> nn.Module | None:
        """The torch module (what ONNX export takes), or None for a model that is not one."""

    def fit(self, X: Any, y: np.ndarray, X_val: Any = None, y_val: np.ndarray | None = None, *,
            groups: np.ndarray | None = None, resume: bool = True) -> dict[str, Any]:
        """Fit on (X, y), using the validation split to choose (epoch, hyperparameter); returns fit information
        for the results table (``train_seconds`` always; ``history``, a per-epoch DataFrame, when there is one).
        ``groups``: the corpus of every training item, for a model that chooses by leaving groups out."""

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, C)."""

    def validation_proba(self, X_val: Any) -> np.ndarray:
        """What the fitted model says of the validation items before any refit on them (for calibration)."""

    def state(self) -> dict[str, Any]:
        """What the model file stores to rebuild the fitted learner (see :func:`learner_from_state`)."""


@torch.no_grad()
def predict_proba(model: nn.Module, X: np.ndarray, *, batch_size: int = 256,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """Softmax outputs (N, C) of ``model`` in eval mode, computed in batches of ``batch_size`` items."""
    model.eval()
    model.to(device)
    outs = []
    streams = getattr(model, "input_streams", None)  # a multi-input model's call order (serkit.multi_input)
    for i in range(0, num_items(X), batch_size):
        xb = to_tensors(X, slice(i, i + batch_size), streams=streams, device=device)
        outs.append(torch.softmax(model(*xb), dim=1).cpu())
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(outs).numpy()


class TorchLearner:
    """A torch classifier (logits out) with the trainer that fits it.

    Parameters
    ----------
    model : the network.
    trainer : a callable returning the trainer (built only when needed, so that prediction needs none); the
        trainer's ``fit(model, X, y, X_val, y_val, resume=...)`` returns a FitResult and its
        ``predict_proba(model, X)`` predicts (data parallel when it runs so).
    seed, progress : for the model's own ``pretrain`` step, if it has one.
    device : where :meth:`predict_proba` runs without a trainer.
    """

    kind = "torch"

    def __init__(self, model: nn.Module, *, trainer: Callable[[], Any] | None = None, seed: int = 0,
                 progress: bool = False, device: str | torch.device = "cpu"):
        self._model = model
        self._make_trainer = trainer
        self._trainer = None
        self.seed, self.progress, self.device = int(seed), progress, torch.device(device)

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def module(self) -> nn.Module:
        return self._model

    @property
    def trainer(self) -> Any | None:
        if self._trainer is None and self._make_trainer is not None:
            self._trainer = self._make_trainer()
        return self._trainer

    def fit(self, X, y, X_val=None, y_val=None, *, groups=None, resume: bool = True) -> dict[str, Any]:
        # groups: unused, a network chooses its epoch on the validation split
        if self.trainer is None:
            raise RuntimeError("TorchLearner: no trainer given, so it cannot fit")
        info: dict[str, Any] = {}
        if hasattr(self._model, "pretrain"):  # unsupervised pre-training (the DBN's RBMs) on the training data only
            info.update(self._model.pretrain(X, seed=self.seed, progress=self.progress) or {})
        fit = self.trainer.fit(self._model, X, y, X_val, y_val, resume=resume)
        info.update(best_epoch=fit.best_epoch, epochs_run=fit.epochs_run, best_val=fit.best_score,
                    train_seconds=fit.train_seconds, history=fit.history)
        return info

    def predict_proba(self, X) -> np.ndarray:
        if self.trainer is not None:
            return self.trainer.predict_proba(self._model, X)
        return predict_proba(self._model, X, device=self.device)

    def validation_proba(self, X_val) -> np.ndarray:
        return self.predict_proba(X_val)  # the validation split only chose the epoch

    def state(self) -> dict[str, Any]:
        return {"state_dict": {k: v.detach().cpu() for k, v in self._model.state_dict().items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], *, name: str, num_classes: int, input_shape: Any,
                   options: Mapping[str, Any], device: str | torch.device = "cpu") -> TorchLearner:
        model = create_model(name, num_classes=num_classes, input_shape=input_shape, **options)
        model.load_state_dict(state["state_dict"])
        model.eval()
        return cls(model, device=device)


class EstimatorLearner:
    """A scikit-learn style classifier: ``fit(X, y, X_val, y_val)``, ``predict_proba``, optional ``fit_info()``."""

    kind = "sklearn"

    def __init__(self, model: Any):
        self._model = model

    @property
    def model(self) -> Any:
        return self._model

    @property
    def module(self) -> None:
        return None

    def fit(self, X, y, X_val=None, y_val=None, *, groups=None, resume: bool = True) -> dict[str, Any]:
        # resume: nothing to resume, a classical fit is one call
        t0 = time.perf_counter()
        if groups is not None and getattr(self._model, "uses_groups", False):
            self._model.fit(X, y, X_val, y_val, groups=groups)
        else:
            self._model.fit(X, y, X_val, y_val)
        info = dict(self._model.fit_info()) if hasattr(self._model, "fit_info") else {}
        return {**info, "train_seconds": time.perf_counter() - t0}

    def predict_proba(self, X) -> np.ndarray:
        return self._model.predict_proba(X)

    def validation_proba(self, X_val) -> np.ndarray:
        # a grid-selected classifier keeps what its chosen candidate said before the refit on validation data
        kept = getattr(self._model, "validation_proba", None)
        return kept if kept is not None else self.predict_proba(X_val)

    def state(self) -> dict[str, Any]:
        return {"estimator": self._model}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **_: Any) -> EstimatorLearner:
        return cls(state["estimator"])


#: The model file's ``kind`` tag -> the learner class that reads its state.
LEARNER_KINDS: dict[str, type] = {TorchLearner.kind: TorchLearner, EstimatorLearner.kind: EstimatorLearner}


def create_learner(name: str, *, num_classes: int, input_shape: Any, options: Mapping[str, Any] | None = None,
                   trainer: Callable[[], Any] | None = None, seed: int = 0, progress: bool = False) -> Learner:
    """The registered model ``name``, created with ``options``, inside the learner of its kind.

    ``trainer`` (a callable returning one) is used by torch models only; classical models fit themselves.
    """
    model = create_model(name, num_classes=num_classes, input_shape=input_shape, **dict(options or {}))
    cls = LEARNER_KINDS[model_spec(name).kind]
    if cls is TorchLearner:
        return TorchLearner(model, trainer=trainer, seed=seed, progress=progress)
    return cls(model)


def as_learner(model: Any, *, device: str | torch.device = "cpu") -> Learner:
    """``model`` itself when it is a learner already (e.g. an ONNX classifier), else wrapped in its learner."""
    if isinstance(model, Learner):  # TorchLearner, EstimatorLearner, an ONNX classifier
        return model
    if isinstance(model, nn.Module):
        return TorchLearner(model, device=device)
    if callable(getattr(model, "fit", None)) and callable(getattr(model, "predict_proba", None)):
        return EstimatorLearner(model)
    raise TypeError(f"{type(model).__name__}: neither a torch module nor a classifier with fit/predict_proba")


def learner_from_state(kind: str, state: Mapping[str, Any], *, name: str, num_classes: int,
                       input_shape: Sequence[int] | Mapping[str, Sequence[int]], options: Mapping[str, Any],
                       device: str | torch.device = "cpu", where: str = "model file") -> Learner:
    """The fitted learner a model file stored as ``kind`` + ``state`` (see :meth:`Learner.state`)."""
    try:
        cls = LEARNER_KINDS[kind]
    except KeyError:
        raise ConfigError(f"{where}: unknown model kind {kind!r}; this serkit reads {', '.join(LEARNER_KINDS)}"
                          ) from None
    return cls.from_state(state, name=name, num_classes=num_classes, input_shape=input_shape, options=options,
                          device=device)
