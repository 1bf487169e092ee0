"""Prediction with trained models: one bundle, or the fold models of a run averaged as an ensemble."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from serkit.audio import AudioConfig
from serkit.errors import ConfigError
from serkit.features import parse_frontend_config
from serkit.models.bundle import ModelBundle
from serkit.multi_input import num_items
from serkit.training.calibration import apply_temperature
from serkit.training.data import SegmentConfig, average_segments, make_feature_extractor
from serkit.training.normalization import normalizer_from_state
from serkit.training.trainer import predict_proba


def find_bundles(model: str | Path) -> list[Path]:
    """A model file (``.pt``, or ``.onnx`` from ``serkit export``), or every ``folds/*/model.pt`` of a run folder
    (or the ``*.pt`` / ``*.onnx`` files of a folder, e.g. the ``onnx/`` folder ``serkit export`` writes for a run)."""
    path = Path(model)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(path.glob("folds/*/model.pt")) or sorted(path.glob("*.pt")) or sorted(path.glob("*.onnx"))
        if found:
            return found
        raise ConfigError(f"{path}: no model.pt under folds/ and no *.pt or *.onnx file (is this a serkit run "
                          "folder?)")
    raise ConfigError(f"{path}: no such model file or run folder")


def load_bundle(path: str | Path, *, device: str = "cpu") -> ModelBundle:
    """A ``model.pt`` bundle, or an exported ``.onnx`` file as a bundle that runs with onnxruntime."""
    if Path(path).suffix.lower() == ".onnx":
        try:
            from serkit.inference.export import load_onnx_bundle
        except ImportError as exc:
            raise ConfigError(f"{path}: an ONNX model needs the onnx and onnxruntime packages ({exc})") from None
        return load_onnx_bundle(path)
    return ModelBundle.load(path, device=device)


#: The label of an answer whose confidence is below the asked minimum (``--min-confidence``).
UNCERTAIN = "uncertain"


@dataclass
class Predictions:
    """Per-file probabilities; files that could not be read are listed in ``failures``.

    ``windows`` maps each input judged window by window (longer than the model's clip) to its windows:
    ``{"start", "end", "probabilities"}`` (seconds, label -> probability).
    """

    paths: list[str]
    labels: list[str]
    proba: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)
    windows: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def predicted(self) -> list[str]:
        return [self.labels[i] for i in self.proba.argmax(1)] if len(self.paths) else []

    def to_frame(self, min_confidence: float | None = None) -> pd.DataFrame:
        """One row per file: its label, confidence (the top probability) and every probability. With
        ``min_confidence``, a file whose confidence is below it is labelled ``uncertain`` (abstention); its
        probabilities are kept."""
        df = pd.DataFrame({"path": self.paths, "label": self.predicted})
        df["confidence"] = self.proba.max(1) if len(self.paths) else []
        if min_confidence is not None and len(self.paths):
            df.loc[df["confidence"] < min_confidence, "label"] = UNCERTAIN
        for j, lab in enumerate(self.labels):
            df[f"p_{lab}"] = self.proba[:, j] if len(self.paths) else []
        return df


class Predictor:
    """Loads one or more bundles sharing audio, frontend and labels; ``predict_proba`` averages them."""

    def __init__(self, model: str | Path, *, device: str = "cpu", backend: str = "torch"):
        if backend not in ("torch", "onnx"):
            raise ConfigError(f"backend: expected 'torch' or 'onnx', got {backend!r}")
        self.bundles = [load_bundle(p, device=device) for p in find_bundles(model)]
        first = self.bundles[0]
        for b in self.bundles[1:]:
            if b.labels != first.labels or b.recipe["audio"] != first.recipe["audio"] \
                    or b.recipe["frontend"] != first.recipe["frontend"] \
                    or b.recipe.get("frontends") != first.recipe.get("frontends") \
                    or b.recipe.get("segments") != first.recipe.get("segments"):
                raise ConfigError(f"{model}: its models differ in labels, audio, frontend or segments; "
                                  "cannot ensemble them")
        self.labels = first.labels
        if first.recipe.get("frontends"):  # a multi-input model: one frontend per stream
            frontend = {name: parse_frontend_config(cfg) for name, cfg in first.recipe["frontends"].items()}
        else:
            frontend = parse_frontend_config(first.recipe["frontend"])
        self.extractor = make_feature_extractor(
            AudioConfig.model_validate(first.recipe["audio"]),
            frontend,
            pooling=first.recipe.get("pooling", "none"),
            device=device,
            segments=SegmentConfig.model_validate(first.recipe["segments"]) if first.recipe.get("segments") else None,
        )
        self.normalizers = [normalizer_from_state(b.normalizer) for b in self.bundles]
        self.device = torch.device(device)
        self.backend = backend
        self._onnx = [_onnx_classifier(b) for b in self.bundles] if backend == "onnx" else None

    def predict_proba(self, paths: Sequence[str | Path]) -> Predictions:
        feats = self.extractor.from_paths([str(p) for p in paths])
        ok_paths = [str(paths[i]) for i in feats.rows]
        if not len(feats.rows):
            return Predictions([], self.labels, np.zeros((0, len(self.labels))), feats.failures)
        proba = self._ensemble_proba(feats.X, feats.segment_owner, len(feats.rows))
        return Predictions(ok_paths, self.labels, proba, feats.failures)

    def predict_signals(self, signals: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N, C) of mono waveforms already prepared with the model's audio config
        (``serkit.audio.config.prepare_signal``): the in-memory twin of :meth:`predict_proba`."""
        if not len(signals):
            return np.zeros((0, len(self.labels)))
        if self.bundles[0].recipe.get("segments"):
            X, owner = self.extractor.segment_features(list(signals))
        else:
            X, owner = self.extractor.pool(self.extractor.from_signals(list(signals))), None
        return self._ensemble_proba(X, owner, len(signals))

    def _ensemble_proba(self, X, segment_owner: np.ndarray | None, n_items: int) -> np.ndarray:
        """The bundles' probabilities averaged; with segments, each item's is the mean of its segments'."""
        total = np.zeros((n_items, len(self.labels)))
        # A per-speaker model normalises the items given together as one (unseen) speaker.
        speakers = np.array(["<predict>"] * num_items(X))
        for bundle, norm in zip(self.bundles, self.normalizers):
            proba = self._proba(bundle, norm.transform(X, speakers=speakers))
            if segment_owner is not None:
                proba = average_segments(proba, segment_owner, n_items)
            temperature = bundle.info.get("temperature")
            if temperature is not None:  # fitted on the fold's validation speakers (recipe calibration)
                proba = apply_temperature(proba, float(temperature), probabilities=True)
            total += proba
        return total / len(self.bundles)

    def _proba(self, bundle: ModelBundle, X: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx[self.bundles.index(bundle)].predict_proba(X)
        if isinstance(bundle.model, torch.nn.Module):
            return predict_proba(bundle.model, X, device=self.device)
        return bundle.model.predict_proba(X)


def _onnx_classifier(bundle: ModelBundle):
    try:
        from serkit.inference.export import OnnxClassifier, onnx_classifier_for_bundle
    except ImportError as exc:
        raise ConfigError(f"backend 'onnx' is not available: {exc} (ONNX export needs serkit.inference.export "
                          "and the onnx/onnxruntime packages)") from None
    if isinstance(bundle.model, OnnxClassifier):  # loaded from an exported .onnx file
        return bundle.model
    return onnx_classifier_for_bundle(bundle)
