"""Confusion-matrix and training-curve plots, written as PNG atomically.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend switch, no
display needed), rendered into memory and written with :func:`serkit.utils.atomic_write_bytes`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from serkit.errors import ConfigError
from serkit.utils import atomic_write_bytes

__all__ = ["plot_confusion", "plot_training_curves"]


def _save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_confusion(
    cm: np.ndarray, labels: Sequence[str], path: str | Path, *, normalize: bool = True, title: str | None = None
) -> Path:
    """Plot a confusion matrix (rows = true, columns = predicted) as a PNG.

    Parameters
    ----------
    cm : square matrix of counts (or already row-normalised values).
    labels : class names in the matrix's order.
    path : PNG file to write.
    normalize : show row-normalised values (recall on the diagonal); rows without items stay 0.
    title : figure title.

    Returns
    -------
    The written path.
    """
    matrix = np.asarray(cm, dtype=np.float64)
    labels = [str(x) for x in labels]
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(labels):
        raise ConfigError(f"plot_confusion: cm of shape {matrix.shape} does not match {len(labels)} labels")
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = max(4.0, 0.6 * len(labels) + 2.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(matrix.max(), 1.0))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = (1.0 if normalize else matrix.max()) / 2.0
    for i in range(len(labels)):
        for j in range(len(labels)):
            value = matrix[i, j]
            text = f"{value:.2f}" if normalize else f"{value:.0f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if value > threshold else "black")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_training_curves(log: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """Plot losses and validation metrics per epoch as a PNG.

    Parameters
    ----------
    log : one row per epoch; column ``epoch``, at least one ``*loss*`` column (e.g.
        ``train_loss``, ``val_loss``), and optionally metric columns named ``train_*`` / ``val_*``
        (e.g. ``val_ua``, ``val_wa``), drawn in a second panel.
    path : PNG file to write.

    Returns
    -------
    The written path.
    """
    if "epoch" not in log.columns:
        raise ConfigError(f"plot_training_curves: log has no 'epoch' column (columns: {list(log.columns)})")
    loss_cols = [c for c in log.columns if "loss" in str(c)]
    if not loss_cols:
        raise ConfigError(f"plot_training_curves: log has no loss column (columns: {list(log.columns)})")
    metric_cols = [c for c in log.columns
                   if c not in loss_cols and str(c).startswith(("train_", "val_"))
                   and pd.api.types.is_numeric_dtype(log[c])]
    panels = 2 if metric_cols else 1
    fig = Figure(figsize=(6.0 * panels, 4.0))
    epochs = log["epoch"].to_numpy()
    panel_columns = [("loss", loss_cols)] + ([("metric", metric_cols)] if metric_cols else [])
    for i, (ylabel, columns) in enumerate(panel_columns, 1):
        ax = fig.add_subplot(1, panels, i)
        for column in columns:
            ax.plot(epochs, log[column].to_numpy(dtype=float), label=column)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
