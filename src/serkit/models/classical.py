"""Classical baselines on utterance-level functionals (eGeMAPS, ComParE), built on scikit-learn.

Both classifiers take one hyperparameter as a grid (the SVM's ``C``, PCA+LDA's number of components): with a
validation split the value with the best validation UA is kept, the way a neural model keeps its best epoch, and
the classifier is refitted on training + validation data with it; with no validation split the first value is
used. Inputs are expected to be standardised already (serkit's pipeline fits the normaliser on the training
split only).

``select_on: groups`` chooses the value instead by leaving each group of training items out in turn (the runner
passes the corpus of every item, so this is leave-one-corpus-out inside the training corpora): the value whose
mean UA over the held-out groups is best. A model meant for speech from corpora it has never met is then tuned
for exactly that, where validation speakers of its own corpora reward fitting those corpora more closely (in the
four-corpus LOCO recipe they chose C about 30 times larger than the held-out corpora did: 0.023 against 0.0007,
geometric means over the folds). The held-out group is a little
less new than a real one: the runner standardises every item with the whole training split's statistics (the
held-out group's included) before the classifier sees them, and its degraded copies are scored with its clips.

``nuisance_dims: k`` (with the groups the runner passes, i.e. the training corpora) projects out, before the fit
and at every prediction, the k directions along which the groups' mean vectors (each the mean of its class means
over the classes every group has) differ most (nuisance attribute
projection, as speaker and language recognition use it against channel differences): a corpus's recording set-up
and language move every clip of it the same way, and a classifier that never sees those directions cannot
learn them as cues. The directions come from the items each fit is trained on (an inner leave-one-group-out fit
finds its own from its own groups), never from the items it is scored on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from serkit.errors import ConfigError
from serkit.metrics import unweighted_average_recall
from serkit.models.registry import register_model


def group_mean_directions(X: np.ndarray, groups: np.ndarray, k: int, y: np.ndarray | None = None) -> np.ndarray:
    """(k, features): orthonormal directions along which the mean vectors of ``groups`` differ most, largest
    first (right singular vectors of the centred group means); at most one fewer than the number of groups.

    With labels ``y``, a group's mean is the mean of its class means over the classes every group has: groups
    whose class mixes differ (or that lack a class) would otherwise differ along the class directions too, and
    projecting those out would remove what the classifier needs.
    """
    names = np.unique(groups)
    common = sorted(set.intersection(*(set(y[groups == g].tolist()) for g in names))) if y is not None else []
    if common:
        means = np.stack([np.mean([X[(groups == g) & (y == c)].mean(0) for c in common], axis=0) for g in names])
    else:  # no labels, or no class that every group has
        means = np.stack([X[groups == g].mean(0) for g in names])
    means = means.astype(np.float64) - means.mean(0)
    _, sing, vt = np.linalg.svd(means, full_matrices=False)
    keep = min(int(k), names.size - 1, int(np.sum(sing > 1e-9 * max(sing.max(), 1e-30))))
    return vt[:keep]


def _project_out(X: np.ndarray, directions: np.ndarray | None) -> np.ndarray:
    """``X`` without its components along ``directions`` (orthonormal rows); ``X`` itself when there are none."""
    if directions is None or not len(directions):
        return X
    return X - (X @ directions.T) @ directions


class _GridSelectedClassifier:
    """fit / predict / predict_proba around a scikit-learn estimator with one hyperparameter chosen on validation."""

    kind = "sklearn"
    param: str  # the grid's name in ``selection`` and ``fit_info``
    # class defaults: also what a model pickled before these options existed reads
    select_on = "validation"
    nuisance_dims = 0
    nuisance_directions: np.ndarray | None = None

    def __init__(self, num_classes: int, grid: Sequence[Any], refit: bool = True,
                 select_on: Literal["validation", "groups"] = "validation", nuisance_dims: int = 0):
        if not grid:
            raise ValueError(f"{self.param}: give at least one value")
        if select_on not in ("validation", "groups"):
            raise ValueError(f"select_on: 'validation' or 'groups', got {select_on!r}")
        if int(nuisance_dims) != nuisance_dims or nuisance_dims < 0:
            raise ValueError(f"nuisance_dims: a whole number >= 0, got {nuisance_dims!r}")
        self.nuisance_dims = int(nuisance_dims)
        self.grid = list(grid)
        self.refit = bool(refit)
        self.select_on = select_on
        self.num_classes = int(num_classes)
        self.model = None
        self.selection: list[dict] = []

    def _estimator(self, value):
        raise NotImplementedError

    @property
    def uses_groups(self) -> bool:
        """Whether fit needs each training item's group (corpus): to choose on groups, or for nuisance_dims."""
        return self.select_on == "groups" or self.nuisance_dims > 0

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            groups: np.ndarray | None = None):
        """Fit, choosing the grid's value on (X_val, y_val) or, with ``select_on: groups``, by leaving each of
        ``groups`` (one label per training item) out in turn."""
        X = X.reshape(len(X), -1)
        self.selection = []
        self.validation_proba = None
        self.nuisance_directions = None
        if self.nuisance_dims:  # the final fit's directions, from all its training items
            groups = self._checked_groups(groups, len(X), "nuisance_dims")
            self.nuisance_directions = group_mean_directions(X, groups, self.nuisance_dims, y)
        if len(self.grid) > 1 and self.select_on == "groups":
            return self._fit_on_groups(X, y, X_val, y_val, groups)
        X = _project_out(X, self.nuisance_directions)
        if X_val is not None:
            X_val = _project_out(X_val.reshape(len(X_val), -1), self.nuisance_directions)
        if X_val is None or len(self.grid) == 1:
            self.model = self._estimator(self.grid[0]).fit(X, y)
            return self
        best, chosen = None, None
        for value in self.grid:
            candidate = self._estimator(value).fit(X, y)
            ua = unweighted_average_recall(y_val, candidate.predict(X_val))
            self.selection.append({self.param: value, "val_ua": float(ua)})
            if best is None or ua > best[1]:
                best = (value, ua)
                # what the chosen model says of the validation items before it sees them: for calibration
                self.validation_proba = self._all_columns(candidate, candidate.predict_proba(X_val))
                chosen = candidate
        if not self.refit:  # the validation speakers stay unseen (e.g. a shipped model's demo speakers)
            self.model = chosen
            return self
        # Refit on training + validation with the chosen value: the validation speaker is only needed to choose.
        self.model = self._estimator(best[0]).fit(np.concatenate([X, X_val]), np.concatenate([y, y_val]))
        return self

    def _fit_on_groups(self, X, y, X_val, y_val, groups) -> _GridSelectedClassifier:
        """Choose the value by leave-one-group-out over the training items (mean UA over the held-out groups, each
        group weighing the same), fit on all of them; the validation split, if any, is then only predicted (for
        calibration) and, with ``refit``, joins the final fit."""
        groups = self._checked_groups(groups, len(X), "select_on: groups")
        splits = list(LeaveOneGroupOut().split(X, y, groups))
        # each inner fit projects out the directions of its own groups only (none when it has a single group)
        directions = [group_mean_directions(X[inner], groups[inner], self.nuisance_dims, y[inner])
                      if self.nuisance_dims else None for inner, _ in splits]
        for value in self.grid:
            per_group = {}
            for (inner, held), inner_directions in zip(splits, directions, strict=True):
                candidate = self._estimator(value).fit(_project_out(X[inner], inner_directions), y[inner])
                X_held = _project_out(X[held], inner_directions)
                per_group[str(groups[held[0]])] = unweighted_average_recall(y[held], candidate.predict(X_held))
            self.selection.append({self.param: value, "val_ua": float(np.mean(list(per_group.values()))),
                                   "per_group": per_group})
        best = max(self.selection, key=lambda s: s["val_ua"])[self.param]
        X = _project_out(X, self.nuisance_directions)
        self.model = self._estimator(best).fit(X, y)
        if X_val is not None:
            X_val = _project_out(X_val.reshape(len(X_val), -1), self.nuisance_directions)
            self.validation_proba = self._all_columns(self.model, self.model.predict_proba(X_val))
            if self.refit:
                self.model = self._estimator(best).fit(np.concatenate([X, X_val]), np.concatenate([y, y_val]))
        return self

    @staticmethod
    def _checked_groups(groups: np.ndarray | None, n: int, option: str) -> np.ndarray:
        """``groups`` as an array with one label per training item, or a ConfigError; choosing on groups also
        needs two of them (``nuisance_dims`` with a single group has no direction to remove and removes none)."""
        groups = None if groups is None else np.asarray(groups)
        if groups is None or len(groups) != n:
            raise ConfigError(f"{option} needs a group for each of the {n} training items (the runner passes each "
                              "item's corpus)")
        names = np.unique(groups)
        if names.size < 2 and option.startswith("select_on"):
            raise ConfigError(f"{option} needs at least 2 groups (training corpora) to leave one out, got "
                              f"{names.tolist()}; choose on validation speakers (select_on: validation) instead")
        return groups

    def fit_info(self) -> dict:
        """What fit chose, for the results table (the full validation scores stay in ``selection``)."""
        chosen = max(self.selection, key=lambda s: s["val_ua"])[self.param] if self.selection else self.grid[0]
        # a fit that chose on validation data, or predicted it after choosing on groups, kept what it said of it
        info = {f"chosen_{self.param}": chosen, "refit_on_val": self.refit and self.validation_proba is not None}
        if self.selection and self.select_on == "groups":
            info["selected_on"] = "groups"
        if self.nuisance_directions is not None:
            info["nuisance_dims"] = len(self.nuisance_directions)
        return info

    def _fitted(self):
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() first")
        return self.model

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        return _project_out(X.reshape(len(X), -1), self.nuisance_directions)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        model = self._fitted()
        return self._all_columns(model, model.predict_proba(self._inputs(X)))

    def _all_columns(self, model, proba: np.ndarray) -> np.ndarray:
        # scikit-learn orders columns by the classes seen in training; map them back to all class indices.
        out = np.zeros((len(proba), self.num_classes), dtype=np.float64)
        out[:, model.classes_] = proba
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        model = self._fitted()
        return model.predict(self._inputs(X))


class SVMClassifier(_GridSelectedClassifier):
    """An SVM on utterance-level feature vectors: the classic eGeMAPS (Eyben et al. 2016) and ComParE baselines.

    ``C`` may be a list, chosen on the validation split (see the module's docstring).
    """

    param = "C"

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int] | None = None,
        *,
        C: float | Sequence[float] = (0.1, 1.0, 10.0),
        kernel: Literal["linear", "rbf"] = "rbf",
        gamma: str | float = "scale",
        class_weight: Literal["balanced"] | None = "balanced",
        seed: int = 0,
        select_on: Literal["validation", "groups"] = "validation",
    ):
        super().__init__(num_classes, [float(C)] if np.isscalar(C) else [float(c) for c in C], select_on=select_on)
        self.kernel, self.gamma, self.class_weight, self.seed = kernel, gamma, class_weight, seed

    def _estimator(self, C: float) -> CalibratedClassifierCV:
        # Probabilities by Platt scaling on internal 3-fold predictions, then one SVM fitted on all the data
        # (what SVC(probability=True) did before scikit-learn deprecated it).
        svc = SVC(C=C, kernel=self.kernel, gamma=self.gamma, class_weight=self.class_weight, random_state=self.seed)
        return CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)


class PCALDAClassifier(_GridSelectedClassifier):
    """Linear discriminant analysis after PCA: for large functional sets (ComParE's 6373 per clip) with a few
    hundred training clips, where the within-class covariance cannot be estimated in the full space.

    PCA (exact SVD, so deterministic) keeps ``n_components`` directions of the training data; LDA then fits
    class means and one shared covariance there, with equal class priors by default so that UA, not the class
    frequencies, is what it aims at. ``n_components`` may be a list, chosen on the validation split; values
    above what the training data allows (clips - 1, features) are clipped.
    """

    param = "n_components"

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int] | None = None,
        *,
        n_components: int | Sequence[int] = (50, 100, 200),
        priors: Literal["equal", "empirical"] = "equal",
        shrinkage: float | None = None,
        select_on: Literal["validation", "groups"] = "validation",
    ):
        grid = [int(n_components)] if np.isscalar(n_components) else [int(n) for n in n_components]
        if any(n < 1 for n in grid):
            raise ValueError(f"n_components: positive integers, got {grid}")
        if priors not in ("equal", "empirical"):
            raise ValueError(f"priors: 'equal' or 'empirical', got {priors!r}")
        if shrinkage is not None and not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage: between 0 and 1, got {shrinkage}")
        super().__init__(num_classes, grid, select_on=select_on)
        self.priors, self.shrinkage = priors, shrinkage

    def _estimator(self, n_components: int) -> _ClippedPCALDA:
        return _ClippedPCALDA(n_components, self.priors, self.shrinkage)


class LogisticRegressionClassifier(_GridSelectedClassifier):
    """Multinomial logistic regression: the linear probe on pretrained-encoder features (or any vector).

    ``C`` (inverse L2 strength) may be a list, chosen on the validation split. ``class_weight="balanced"`` weighs
    classes inversely to their frequency, so the fit aims at UA rather than at the majority classes.
    ``refit: false`` keeps the model fitted on the training split alone (the validation speakers then stay unseen,
    as a shipped model's held-out speakers must). ``select_on: groups`` chooses ``C`` by leaving each training
    corpus out in turn instead of on the validation speakers; ``nuisance_dims: k`` projects out the k directions
    along which the training corpora's means differ (both: see the module's docstring).
    """

    param = "C"

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int] | None = None,
        *,
        C: float | Sequence[float] = (0.01, 0.1, 1.0),
        class_weight: Literal["balanced"] | None = "balanced",
        max_iter: int = 2000,
        refit: bool = True,
        select_on: Literal["validation", "groups"] = "validation",
        nuisance_dims: int = 0,
    ):
        super().__init__(num_classes, [float(C)] if np.isscalar(C) else [float(c) for c in C], refit, select_on,
                         nuisance_dims)
        self.class_weight, self.max_iter = class_weight, int(max_iter)

    def _estimator(self, C: float) -> LogisticRegression:
        # lbfgs on standardised inputs is deterministic, so no seed is needed.
        return LogisticRegression(C=C, class_weight=self.class_weight, max_iter=self.max_iter)


class _ClippedPCALDA:
    """PCA -> LDA whose component count is clipped to what the data it is fitted on allows."""

    def __init__(self, n_components: int, priors: str, shrinkage: float | None):
        self.n_components, self.priors, self.shrinkage = n_components, priors, shrinkage
        self.pipeline: Pipeline | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> _ClippedPCALDA:
        n = max(1, min(self.n_components, X.shape[0] - 1, X.shape[1]))
        classes = np.unique(y)
        priors = np.full(len(classes), 1.0 / len(classes)) if self.priors == "equal" else None
        lda = (LinearDiscriminantAnalysis(priors=priors) if self.shrinkage is None else
               LinearDiscriminantAnalysis(solver="lsqr", shrinkage=self.shrinkage, priors=priors))
        self.pipeline = Pipeline([("pca", PCA(n, svd_solver="full")), ("lda", lda)]).fit(X, y)
        return self

    @property
    def classes_(self) -> np.ndarray:
        return self.pipeline.classes_

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline.predict_proba(X)


register_model(
    "svm", kind="sklearn", inputs=("vector",),
    paper="baseline: openSMILE functionals (eGeMAPS, Eyben et al. 2016; ComParE 2016) + SVM",
)(
    SVMClassifier
)
register_model(
    "logreg", kind="sklearn", inputs=("vector",),
    paper="linear probe: multinomial logistic regression on clip vectors (e.g. pooled Whisper encoder states)",
)(
    LogisticRegressionClassifier
)
register_model(
    "pca_lda", kind="sklearn", inputs=("vector",),
    paper="baseline: openSMILE functionals + PCA + linear discriminant analysis",
)(
    PCALDAClassifier
)
