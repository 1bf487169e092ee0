"""The prediction pipeline of a trained model: everything between audio and class probabilities, in one object.

:class:`EmotionPipeline` holds, in order:

1. audio preparation: the recipe's :class:`~serkit.audio.AudioConfig` (resampling, trimming, pad/crop), applied
   by the caller (:func:`serkit.audio.config.prepare_signal`, or ``load_clips`` for files);
2. the feature extractor: the frontend or encoder, its pooling, and the recipe's segments, if any
   (:mod:`serkit.features.extractor`);
3. its members, one per model file (one fold of a run, or the single model): each the normaliser fitted with
   that model and the model behind the learner interface (:mod:`serkit.models.learner`; an ONNX graph with the
   ``onnx`` backend);
4. the labels, and how the members' outputs become one prediction: a segmented item's probabilities are the mean
   of its segments', scaled by the member's calibration temperature (if the recipe asked for one), and the
   members' probabilities are averaged.

``serkit.load_model`` (:class:`serkit.inference.api.EmotionModel`) wraps a pipeline with input checks, windows
over long inputs and thread safety; ``serkit predict``, ``analyze`` and the service go through that API.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from serkit.audio import AudioConfig
from serkit.errors import ConfigError
from serkit.features import parse_frontend_config
from serkit.features.adaptation import AdaptationConfig, AdaptationFit, adapt_normalizer
from serkit.features.extractor import make_feature_extractor
from serkit.features.normalization import FeatureNormalizer, StreamNormalizer, normalizer_from_state
from serkit.features.segments import SegmentConfig, average_segments
from serkit.inference.bundles import find_bundles, load_bundle
from serkit.inference.export import onnx_classifier_for_bundle
from serkit.models.bundle import ModelBundle
from serkit.models.calibration import apply_temperature
from serkit.models.learner import Learner
from serkit.multi_input import num_items

#: The label of an answer whose confidence is below the asked minimum (``--min-confidence``).
UNCERTAIN = "uncertain"

#: How serkit adapts a model to a person unless told otherwise: the person's mean and spread, shrunk toward the
#: training ones by 20 pieces of prior weight. Chosen on the training corpora only (benchmarks/adaptation.py,
#: docs/benchmarks/adaptation.md): unshrunk, the same standardisation lost 20 UA points on material 80 % neutral.
ADAPTATION = AdaptationConfig(method="standardise", shrink=20)


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


@dataclass
class PipelineMember:
    """One model file of a pipeline: its bundle, the normaliser fitted with it, and its learner (whose
    probabilities are scaled by the bundle's calibration temperature, if it has one)."""

    bundle: ModelBundle
    normalizer: FeatureNormalizer | StreamNormalizer
    learner: Learner

    def proba(self, X, segment_owner: np.ndarray | None, n_items: int) -> np.ndarray:
        """Probabilities (n_items, C) of features ``X``; with segments, each item's is the mean of its segments'."""
        # A per-speaker model normalises the items given together as one (unseen) speaker.
        speakers = np.array(["<predict>"] * num_items(X))
        proba = self.learner.predict_proba(self.normalizer.transform(X, speakers=speakers))
        if segment_owner is not None:
            proba = average_segments(proba, segment_owner, n_items)
        return self._calibrated(proba)

    def proba_of_normalised(self, Z) -> np.ndarray:
        """Calibrated probabilities of features already normalised (one per item, no segments)."""
        return self._calibrated(self.learner.predict_proba(Z))

    def _calibrated(self, proba: np.ndarray) -> np.ndarray:
        temperature = self.bundle.info.get("temperature")
        if temperature is not None:  # fitted on the fold's validation speakers (recipe calibration)
            proba = apply_temperature(proba, float(temperature), probabilities=True)
        return proba


def _with_precision(frontend, precision: str | None):
    """``frontend`` at ``precision`` when it has that choice (a pretrained encoder), else as it is."""
    if precision is None or "precision" not in type(frontend).model_fields:
        return frontend
    return frontend.model_copy(update={"precision": precision})


class EmotionPipeline:
    """Audio -> features -> normalised -> model(s) -> probabilities, for one model file or a fold ensemble.

    Build it with :meth:`load`. The members must share labels, audio, frontend(s), pooling and segments (the
    folds of one run do).
    """

    def __init__(self, members: Sequence[PipelineMember], *, device: str = "cpu", source: str = "model",
                 precision: str | None = None):
        if not members:
            raise ConfigError(f"{source}: no model to build a pipeline from")
        self.members = list(members)
        first = self.members[0].bundle
        for member in self.members[1:]:
            b = member.bundle
            if b.labels != first.labels or any(b.recipe.get(k) != first.recipe.get(k)
                                               for k in ("audio", "frontend", "frontends", "pooling", "segments")):
                raise ConfigError(f"{source}: its models differ in labels, audio, frontend, pooling or segments; "
                                  "cannot ensemble them")
        recipe = first.recipe
        self.labels: list[str] = list(first.labels)
        self.audio = AudioConfig.model_validate(recipe["audio"])
        self.segments = SegmentConfig.model_validate(recipe["segments"]) if recipe.get("segments") else None
        if recipe.get("frontends"):  # a multi-input model: one frontend per stream
            frontend = {name: _with_precision(parse_frontend_config(cfg), precision)
                        for name, cfg in recipe["frontends"].items()}
        else:
            frontend = _with_precision(parse_frontend_config(recipe["frontend"]), precision)
        self.precision = precision
        self.extractor = make_feature_extractor(self.audio, frontend, pooling=recipe.get("pooling", "none"),
                                                device=device, segments=self.segments)

    @classmethod
    def load(cls, model: str | Path, *, device: str = "cpu", backend: str = "torch",
             precision: str | None = None) -> EmotionPipeline:
        """The pipeline of a model file (``.pt`` or ``.onnx``) or of every fold model of a run folder.

        ``backend="onnx"`` runs the torch networks as ONNX graphs with onnxruntime (exported in memory).
        ``precision`` (``float32`` or ``int8``) sets a pretrained encoder's precision (``WhisperConfig.precision``),
        whatever the model was trained with; None keeps the recipe's. Frontends without the choice ignore it.
        """
        if precision not in (None, "float32", "int8"):
            raise ConfigError(f"precision: expected 'float32' or 'int8', got {precision!r}")
        if backend not in ("torch", "onnx"):
            raise ConfigError(f"backend: expected 'torch' or 'onnx', got {backend!r}")
        members = []
        for path in find_bundles(model):
            bundle = load_bundle(path, device=device)
            learner = bundle.learner
            if backend == "onnx":
                try:
                    learner = onnx_classifier_for_bundle(bundle)
                except ImportError as exc:
                    raise ConfigError(f"backend 'onnx' is not available: {exc} (it needs the onnx and onnxruntime "
                                      "packages)") from None
            members.append(PipelineMember(bundle, normalizer_from_state(bundle.normalizer), learner))
        return cls(members, device=device, source=str(model), precision=precision)

    @property
    def bundles(self) -> list[ModelBundle]:
        return [m.bundle for m in self.members]

    def adapted(self, X, *, source: str = "this model", config: AdaptationConfig | None = None
                ) -> tuple[EmotionPipeline, list[AdaptationFit]]:
        """A copy whose members standardise features with statistics moved toward those of ``X`` (features of
        unlabelled recordings of one person or setting) by ``config`` (:mod:`serkit.features.adaptation`; default
        :data:`ADAPTATION`): test-time adaptation. Returns it and what each member estimated. Predictions made
        with it are adapted results and must be reported as such, never as strict ones.
        """
        config = config or ADAPTATION
        members, fits = [], []
        for m in self.members:
            norm = m.normalizer
            if not isinstance(norm, FeatureNormalizer) or norm.scope == "none":
                raise ConfigError(f"{source}: this model does not standardise its features (or has several input "
                                  "streams), so there are no statistics to adapt")
            try:
                own, fit = adapt_normalizer(norm, X, config, proba=m.proba_of_normalised, labels=self.labels)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
            members.append(PipelineMember(m.bundle, own, m.learner))
            fits.append(fit)
        adapted = copy.copy(self)  # the same extractor and labels, other members
        adapted.members = members
        return adapted, fits

    def predict_files(self, paths: Sequence[str | Path]) -> Predictions:
        """Probabilities of audio files, read and prepared as in training; unreadable files go to ``failures``."""
        feats = self.extractor.from_paths([str(p) for p in paths])
        ok_paths = [str(paths[i]) for i in feats.rows]
        if not len(feats.rows):
            return Predictions([], self.labels, np.zeros((0, len(self.labels))), feats.failures)
        proba = self.proba_of_features(feats.X, feats.segment_owner, len(feats.rows))
        return Predictions(ok_paths, self.labels, proba, feats.failures)

    def predict_prepared(self, signals: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N, C) of mono waveforms already prepared with the model's audio config
        (``serkit.audio.config.prepare_signal``): the in-memory twin of :meth:`predict_files`."""
        if not len(signals):
            return np.zeros((0, len(self.labels)))
        if self.segments is not None:
            X, owner = self.extractor.segment_features(list(signals))
        else:
            X, owner = self.extractor.pool(self.extractor.from_signals(list(signals))), None
        return self.proba_of_features(X, owner, len(signals))

    def proba_of_features(self, X, segment_owner: np.ndarray | None, n_items: int) -> np.ndarray:
        """The members' probabilities of features ``X`` (of ``n_items`` items, or their segments), averaged."""
        total = np.zeros((n_items, len(self.labels)))
        for member in self.members:
            total += member.proba(X, segment_owner, n_items)
        return total / len(self.members)
