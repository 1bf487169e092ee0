"""Adaptation to one person: the training data's feature statistics moved toward that person's own.

A model standardises its features with the training split's mean and standard deviation. A new voice, language or
microphone shifts every feature, and the head reads the shift as emotion (a corpus never heard may come out as
"sad" in four clips of ten). Adaptation estimates the person's shift from their unlabelled recordings and
standardises with the training statistics moved by it. What it cannot see is why the person's material differs
from the training mean: their voice, or the emotions they happened to record. The methods differ in what they
assume about that:

``standardise``
    the person's own mean and standard deviation replace the training ones (the classic per-speaker
    normalisation). Right when the material covers the emotions as evenly as the training data did; lopsided
    material (a person sad in every recording) pulls its dominant emotion toward the middle, and a narrow set
    shrinks the standard deviation and so exaggerates every difference.
``centre``
    only the mean moves (the training standard deviation stays): the same assumption about the mean, none about
    the spread.
``balanced``
    the mean moves by the person's mean minus the mixture of the training classes' means that the adapted model
    itself hears in the material (an expectation-maximisation loop from the ``centre`` estimate). Material that
    sounds mostly sad is compared with the training data's sad clips, not with its average; ``prior`` mixes the
    heard mixture with the even one, so that a model wrong about the material cannot talk itself out of the
    correction altogether.
``neutral``
    the material is known to be the person's calm, ordinary voice (an enrolment reading): the mean moves by its
    mean minus the training data's neutral clips' mean.

Every method shrinks the shift toward no shift by the amount of material: the shift is scaled by
``n / (n + shrink)`` for ``n`` pieces, so three pieces move the statistics little and a hundred nearly all the way.

The class means come from the model file (``FeatureNormalizer.class_mean``, written by ``serkit train``); a model
file without them can be adapted by ``standardise`` and ``centre`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from serkit.errors import ConfigError
from serkit.features.normalization import FeatureNormalizer

__all__ = ["UNLIKE_DISTANCE", "AdaptationConfig", "AdaptationFit", "VoiceDistance", "adapt_normalizer",
           "voice_distance"]

#: The distance (root mean square over features, in training standard deviations) between the mean features of a
#: recording and of the material a model was adapted to, above which they are taken for another voice or another
#: recording setting: the 99th percentile of the distances between two sets of one speaker's clips of any emotional
#: mix, measured on the training corpora (benchmarks/adaptation.py, docs/benchmarks/adaptation.md).
UNLIKE_DISTANCE = 1.0

Method = Literal["standardise", "centre", "balanced", "neutral"]


class AdaptationConfig(BaseModel):
    """How a model adapts its feature statistics to a person (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = "standardise"
    shrink: float = Field(0.0, ge=0.0, description="pieces of prior weight on no shift: shift * n / (n + shrink)")
    prior: float = Field(0.5, ge=0.0, le=1.0, description="balanced: weight of the even class mixture")
    iterations: int = Field(5, ge=1, le=50, description="balanced: rounds of the expectation-maximisation loop")

    def describe(self) -> str:
        parts = [self.method]
        if self.shrink:
            parts.append(f"shrink {self.shrink:g}")
        if self.method == "balanced":
            parts.append(f"prior {self.prior:g}")
        return ", ".join(parts)


@dataclass
class AdaptationFit:
    """What an adaptation estimated: the pieces it used, the weight of their shift (``n / (n + shrink)``), the
    size of the shift in training standard deviations (root mean square over features), and for ``balanced`` the
    class mixture it heard."""

    pieces: int
    weight: float
    shift_sd: float
    mixture: dict[str, float] | None = None
    material_mean: np.ndarray | None = None  # the raw mean features of the material (for voice_distance)


@dataclass
class VoiceDistance:
    """How far a recording's mean features lie from the material a model was adapted to (see
    :data:`UNLIKE_DISTANCE`)."""

    distance: float
    threshold: float

    @property
    def unlike(self) -> bool:
        return self.distance > self.threshold

    def describe(self) -> str:
        return (f"{self.distance:.2f} training standard deviations apart, where two sets of one speaker's clips lie "
                f"within {self.threshold:g}")


def voice_distance(normalizer: FeatureNormalizer, material_mean: np.ndarray, X: np.ndarray) -> VoiceDistance:
    """The distance between the mean of features ``X`` (raw) and ``material_mean``, in the training standard
    deviations of ``normalizer``."""
    x = np.asarray(X)
    own = FeatureNormalizer._stats(x, normalizer._reduced_axes(x.ndim))[0]
    return VoiceDistance(float(np.sqrt(np.mean(((own - material_mean) / normalizer.std) ** 2))), UNLIKE_DISTANCE)


def adapt_normalizer(normalizer: FeatureNormalizer, X: np.ndarray, config: AdaptationConfig, *,
                     proba: Callable[[np.ndarray], np.ndarray] | None = None,
                     labels: list[str] | None = None) -> tuple[FeatureNormalizer, AdaptationFit]:
    """A global-scope normaliser adapted to the person whose features (raw, unnormalised) are ``X``.

    ``proba`` (normalised features -> probabilities, columns in ``labels``' order) is needed by ``balanced``.

    Raises
    ------
    ConfigError
        when the model does not standardise its features, ``X`` is empty or of another shape, or the method needs
        class means the model file does not have.
    """
    if normalizer.scope == "none" or normalizer.mean is None:
        raise ConfigError("adaptation: this model does not standardise its features, so there are no statistics "
                          "to adapt")
    x = np.asarray(X)
    normalizer._check(x, "adaptation")
    axes = normalizer._reduced_axes(x.ndim)
    own_mean, own_std = FeatureNormalizer._stats(x, axes)
    n = x.shape[0]
    weight = n / (n + config.shrink)
    train_mean, train_std = normalizer.mean.astype(np.float64), normalizer.std.astype(np.float64)
    mixture = None
    if config.method in ("balanced", "neutral"):
        needed = ["neutral"] if config.method == "neutral" else list(labels or [])
        missing = [c for c in needed if c not in normalizer.class_mean]
        if config.method == "balanced" and (proba is None or not labels):
            raise ConfigError("adaptation 'balanced' needs the model's probabilities and labels")
        if missing:
            raise ConfigError(f"adaptation {config.method!r}: the model file has no training mean for class(es) "
                              f"{', '.join(missing)} (written by serkit train since class means were stored); "
                              "use method 'centre' or 'standardise', or retrain")
    if config.method == "standardise":
        mean = train_mean + weight * (own_mean - train_mean)
        std = np.sqrt((1 - weight) * train_std ** 2 + weight * own_std.astype(np.float64) ** 2)
    elif config.method == "centre":
        mean, std = train_mean + weight * (own_mean - train_mean), train_std
    elif config.method == "neutral":
        mean, std = train_mean + weight * (own_mean - normalizer.class_mean["neutral"]), train_std
    else:
        means = np.stack([normalizer.class_mean[c].astype(np.float64) for c in labels])
        even = np.full(len(labels), 1.0 / len(labels))
        # start where centre ends: the person's material taken to be as even as the training data's
        shift = own_mean - np.tensordot(even, means, axes=1)
        for _ in range(config.iterations):
            trial = FeatureNormalizer("global", axis=normalizer.axis)
            trial.ndim, trial.feature_shape = normalizer.ndim, normalizer.feature_shape
            trial.mean, trial.std = (train_mean + weight * shift).astype(np.float32), normalizer.std
            heard = np.asarray(proba(trial.transform(x))).mean(axis=0)
            mix = config.prior * even + (1 - config.prior) * heard
            shift = own_mean - np.tensordot(mix, means, axes=1)
        mixture = {c: round(float(v), 4) for c, v in zip(labels, mix)}
        mean, std = train_mean + weight * shift, train_std
    adapted = FeatureNormalizer("global", axis=normalizer.axis)
    adapted.ndim, adapted.feature_shape = normalizer.ndim, normalizer.feature_shape
    adapted.mean, adapted.std = mean.astype(np.float32), std.astype(np.float32)
    adapted.class_mean = dict(normalizer.class_mean)
    shift_sd = float(np.sqrt(np.mean(((adapted.mean - normalizer.mean) / normalizer.std) ** 2)))
    return adapted, AdaptationFit(n, round(weight, 4), round(shift_sd, 4), mixture, own_mean)
