"""Classification metrics of one test set (scikit-learn): WA, UA, F1, per-class table and confusion matrices.

Below ``models/`` so that a model choosing its own hyperparameters scores with the same UA as the results tables
(:mod:`serkit.training.metrics` summarises them over folds and seeds).

Conventions
-----------
- WA is accuracy; UA is unweighted average recall (balanced accuracy) over the classes
  present in ``y_true``. A class absent from a fold's test set (one speaker never shows it)
  has no defined recall and is left out of UA and of macro F1, as
  :func:`sklearn.metrics.balanced_accuracy_score` does; its row in ``per_class`` holds NaN
  where a value is undefined, and its support is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score

from serkit.errors import ConfigError

__all__ = ["compute_metrics", "unweighted_average_recall"]


def _as_labels(values: Sequence | np.ndarray, labels: list[str], what: str) -> np.ndarray:
    """Class names as strings; integer arrays are read as indices into ``labels``."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ConfigError(f"{what}: expected a 1-D array, got shape {array.shape}")
    if array.size and np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() >= len(labels):
            raise ConfigError(f"{what}: class index out of range 0..{len(labels) - 1}")
        return np.asarray(labels, dtype=object)[array].astype(str)
    array = array.astype(str)
    unknown = sorted(set(array) - set(labels))
    if unknown:
        raise ConfigError(f"{what}: label(s) {unknown} not in labels {labels}")
    return array


def unweighted_average_recall(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray) -> float:
    """UA: mean recall over the classes present in ``y_true`` (balanced accuracy without its warning about
    predicted classes absent from ``y_true``, which is normal when one speaker lacks a class)."""
    true = np.asarray(y_true)
    present = np.unique(true)
    return float(recall_score(true, np.asarray(y_pred), labels=present, average="macro", zero_division=0))


def compute_metrics(y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray, labels: list[str]) -> dict[str, Any]:
    """WA, UA, F1 scores, per-class table and confusion matrices of one test set.

    Parameters
    ----------
    y_true, y_pred : class names, or integer indices into ``labels``.
    labels : every class of the task, in the order of the confusion matrix.

    Returns
    -------
    dict with ``wa``, ``ua``, ``macro_f1``, ``weighted_f1`` (floats in [0, 1]), ``n`` (items),
    ``present_labels`` (classes in ``y_true``), ``per_class`` (DataFrame indexed by label:
    precision, recall, f1, support), ``confusion`` (int counts, rows = true, columns =
    predicted, in ``labels`` order) and ``confusion_normalized`` (rows sum to 1; rows of absent
    classes are 0).
    """
    labels = [str(x) for x in labels]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"labels: duplicates in {labels}")
    true = _as_labels(y_true, labels, "y_true")
    pred = _as_labels(y_pred, labels, "y_pred")
    if true.size != pred.size:
        raise ConfigError(f"y_true and y_pred differ in length: {true.size} vs {pred.size}")
    if true.size == 0:
        raise ConfigError("y_true is empty: no test items to score")
    present = [label for label in labels if label in set(true)]

    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=labels, zero_division=np.nan
    )
    per_class = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)},
        index=pd.Index(labels, name="label"),
    )
    counts = confusion_matrix(true, pred, labels=labels)
    normalized = confusion_matrix(true, pred, labels=labels, normalize="true")
    return {
        "wa": float(accuracy_score(true, pred)),
        "ua": float(recall_score(true, pred, labels=present, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(true, pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(true, pred, labels=labels, average="weighted", zero_division=0)),
        "n": int(true.size),
        "present_labels": present,
        "per_class": per_class,
        "confusion": counts,
        "confusion_normalized": normalized,
    }
