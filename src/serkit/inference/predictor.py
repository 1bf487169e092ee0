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
from serkit.features.extractor import make_feature_extractor
from serkit.features.normalization import normalizer_from_state
from serkit.features.segments import SegmentConfig, average_segments
from serkit.inference.bundles import find_bundles, load_bundle
from serkit.inference.export import onnx_classifier_for_bundle
from serkit.models.bundle import ModelBundle
from serkit.multi_input import num_items


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

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({"path": self.paths, "label": self.predicted})
        df["confidence"] = self.proba.max(1) if len(self.paths) else []
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
        self._onnx = None
        if backend == "onnx":
            try:
                self._onnx = [onnx_classifier_for_bundle(b) for b in self.bundles]
            except ImportError as exc:
                raise ConfigError(f"backend 'onnx' is not available: {exc} (it needs the onnx and onnxruntime "
                                  "packages)") from None

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
            total += proba
        return total / len(self.bundles)

    def _proba(self, bundle: ModelBundle, X: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx[self.bundles.index(bundle)].predict_proba(X)
        return bundle.learner.predict_proba(X)
