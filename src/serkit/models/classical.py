"""Classical baselines on utterance-level functionals (e.g. eGeMAPS), built on scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC

from serkit.models.registry import register_model
from serkit.training.metrics import unweighted_average_recall


class SVMClassifier:
    """An SVM on utterance-level feature vectors: the classic eGeMAPS (Eyben et al. 2016) and ComParE baselines.

    Inputs are expected to be standardised already (serkit's pipeline fits the normaliser on the training
    split only). When ``C`` is a list and a validation split is given, the C with the best validation UA is
    kept, the way a neural model keeps its best epoch, and the SVM is refitted on training + validation data
    with it; with no validation split the first C is used.
    """

    kind = "sklearn"

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
    ):
        self.C_grid = [float(C)] if np.isscalar(C) else [float(c) for c in C]
        if not self.C_grid:
            raise ValueError("C: give at least one value")
        self.kernel, self.gamma, self.class_weight, self.seed = kernel, gamma, class_weight, seed
        self.num_classes = int(num_classes)
        self.model: CalibratedClassifierCV | None = None
        self.selection: list[dict] = []

    def _svc(self, C: float) -> CalibratedClassifierCV:
        # Probabilities by Platt scaling on internal 3-fold predictions, then one SVM fitted on all the data
        # (what SVC(probability=True) did before scikit-learn deprecated it).
        svc = SVC(C=C, kernel=self.kernel, gamma=self.gamma, class_weight=self.class_weight, random_state=self.seed)
        return CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None):
        X = X.reshape(len(X), -1)
        if X_val is None or len(self.C_grid) == 1:
            self.model = self._svc(self.C_grid[0]).fit(X, y)
            return self
        X_val = X_val.reshape(len(X_val), -1)
        best = None
        for C in self.C_grid:
            ua = unweighted_average_recall(y_val, self._svc(C).fit(X, y).predict(X_val))
            self.selection.append({"C": C, "val_ua": float(ua)})
            if best is None or ua > best[1]:
                best = (C, ua)
        # Refit on training + validation with the chosen C: the validation speaker is only needed to choose.
        self.model = self._svc(best[0]).fit(np.concatenate([X, X_val]), np.concatenate([y, y_val]))
        return self

    def fit_info(self) -> dict:
        """What fit chose, for the results table (the full validation scores stay in ``selection``)."""
        chosen = max(self.selection, key=lambda s: s["val_ua"])["C"] if self.selection else self.C_grid[0]
        return {"chosen_C": chosen, "refit_on_val": bool(self.selection)}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("SVMClassifier: call fit() first")
        proba = self.model.predict_proba(X.reshape(len(X), -1))
        # SVC orders columns by the classes seen in training; map them back to all class indices.
        out = np.zeros((len(X), self.num_classes), dtype=np.float64)
        out[:, self.model.classes_] = proba
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("SVMClassifier: call fit() first")
        return self.model.predict(X.reshape(len(X), -1))


register_model(
    "svm", kind="sklearn", frontends=("egemaps", "compare"),
    paper="baseline: openSMILE functionals (eGeMAPS, Eyben et al. 2016; ComParE 2016) + SVM",
)(
    SVMClassifier
)
