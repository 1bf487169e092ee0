"""Training support: evaluation protocols, metrics, feature normalisation and plots."""

from __future__ import annotations

from serkit.training.metrics import (
    SUMMARY_METRICS,
    compute_metrics,
    results_markdown,
    scalar_metrics,
    summarize,
    write_csv,
)
from serkit.training.normalization import FeatureNormalizer
from serkit.training.plots import plot_confusion, plot_training_curves
from serkit.training.protocols import ProtocolConfig, Split, make_splits, split_summary
