"""Training support: evaluation protocols, metrics, the trainer and plots (feature normalisation is in
:mod:`serkit.features.normalization`).

The experiment runner (recipe -> results) is :func:`serkit.training.experiment.run_experiment`; it is not
imported here because it pulls in every other part of serkit.
"""

from __future__ import annotations

from serkit.training.metrics import (
    SUMMARY_METRICS,
    compute_metrics,
    results_markdown,
    scalar_metrics,
    summarize,
    unweighted_average_recall,
    write_csv,
)
from serkit.training.plots import plot_confusion, plot_training_curves
from serkit.training.protocols import ProtocolConfig, Split, make_splits, split_summary
from serkit.training.trainer import FitResult, Trainer, TrainingConfig

__all__ = [
    "SUMMARY_METRICS",
    "FitResult",
    "ProtocolConfig",
    "Split",
    "Trainer",
    "TrainingConfig",
    "compute_metrics",
    "make_splits",
    "plot_confusion",
    "plot_training_curves",
    "results_markdown",
    "scalar_metrics",
    "split_summary",
    "summarize",
    "unweighted_average_recall",
    "write_csv",
]
