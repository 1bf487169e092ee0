"""Prediction with trained models: one bundle, or the fold models of a run averaged as an ensemble."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from serkit.audio import AudioConfig
from serkit.errors import ConfigError
from serkit.features import FrontendConfig
from serkit.models.bundle import ModelBundle
from serkit.training.data import FeatureExtractor
from serkit.training.normalization import FeatureNormalizer
from serkit.training.trainer import predict_proba


def find_bundles(model: str | Path) -> list[Path]:
    """A model file, or every ``folds/*/model.pt`` of a run folder."""
    path = Path(model)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(path.glob("folds/*/model.pt")) or sorted(path.glob("*.pt"))
        if found:
            return found
        raise ConfigError(f"{path}: no model.pt under folds/ (is this a serkit run folder?)")
    raise ConfigError(f"{path}: no such model file or run folder")


@dataclass
class Predictions:
    """Per-file probabilities; files that could not be read are listed in ``failures``."""

    paths: list[str]
    labels: list[str]
    proba: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)

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

    def __init__(self, model: str | Path, *, device: str = "cpu"):
        self.bundles = [ModelBundle.load(p, device=device) for p in find_bundles(model)]
        first = self.bundles[0]
        for b in self.bundles[1:]:
            if b.labels != first.labels or b.recipe["audio"] != first.recipe["audio"] \
                    or b.recipe["frontend"] != first.recipe["frontend"]:
                raise ConfigError(f"{model}: its models differ in labels, audio or frontend; cannot ensemble them")
        self.labels = first.labels
        self.extractor = FeatureExtractor(
            AudioConfig.model_validate(first.recipe["audio"]),
            FrontendConfig.model_validate(first.recipe["frontend"]),
            pooling=first.recipe.get("pooling", "none"),
            device=device,
        )
        self.normalizers = [FeatureNormalizer(scope="none") if b.normalizer is None
                            else FeatureNormalizer().load_state_dict(b.normalizer) for b in self.bundles]
        self.device = torch.device(device)

    def predict_proba(self, paths: Sequence[str | Path]) -> Predictions:
        feats = self.extractor.from_paths([str(p) for p in paths])
        ok_paths = [str(paths[i]) for i in feats.rows]
        if not len(feats.rows):
            return Predictions([], self.labels, np.zeros((0, len(self.labels))), feats.failures)
        total = np.zeros((len(feats.rows), len(self.labels)))
        # A per-speaker model normalises the files given together as one (unseen) speaker.
        speakers = np.array(["<predict>"] * len(feats.X))
        for bundle, norm in zip(self.bundles, self.normalizers):
            total += self._proba(bundle, norm.transform(feats.X, speakers=speakers))
        return Predictions(ok_paths, self.labels, total / len(self.bundles), feats.failures)

    def _proba(self, bundle: ModelBundle, X: np.ndarray) -> np.ndarray:
        if isinstance(bundle.model, torch.nn.Module):
            return predict_proba(bundle.model, X, device=self.device)
        return bundle.model.predict_proba(X)
