"""Metrics over folds and seeds, and results tables. The metrics of one test set (WA, UA over the classes present,
F1; their conventions) are :mod:`serkit.metrics`, re-exported here.

Standard deviations over folds/seeds use ``ddof=1`` (the sample standard deviation, the usual estimate of the
spread between runs); with a single run it is NaN and the Markdown shows the mean alone.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serkit.errors import ConfigError
from serkit.metrics import compute_metrics, unweighted_average_recall
from serkit.utils import atomic_write_text

__all__ = [
    "SUMMARY_METRICS",
    "compute_metrics",
    "results_markdown",
    "scalar_metrics",
    "summarize",
    "unweighted_average_recall",
    "write_csv",
]

#: The scalar metrics summarised over folds and seeds.
SUMMARY_METRICS = ("wa", "ua", "macro_f1", "weighted_f1")


def scalar_metrics(metrics: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """A flat row for a per-fold table: ``meta`` (e.g. fold name, seed) then the scalar metrics."""
    row = dict(meta)
    for key in (*SUMMARY_METRICS, "n"):
        if key in metrics:
            row[key] = metrics[key]
    return row


def summarize(rows: Sequence[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (``ddof=1``) of the scalar metrics over folds/seeds.

    Parameters
    ----------
    rows : one dict (or DataFrame row) per fold/seed holding some of ``wa``, ``ua``,
        ``macro_f1``, ``weighted_f1``; other keys are ignored.

    Returns
    -------
    DataFrame indexed by metric, columns ``mean``, ``std`` (NaN for a single run) and ``n_runs``.
    """
    frame = pd.DataFrame(list(rows)) if not isinstance(rows, pd.DataFrame) else rows
    if frame.empty:
        raise ConfigError("summarize: no rows to summarise")
    present = [m for m in SUMMARY_METRICS if m in frame.columns]
    if not present:
        raise ConfigError(f"summarize: rows hold none of the metrics {list(SUMMARY_METRICS)}")
    values = frame[present].astype(float)
    summary = pd.DataFrame({
        "mean": values.mean(axis=0),
        "std": values.std(axis=0, ddof=1),
        "n_runs": values.count(axis=0).astype(int),
    })
    summary.index.name = "metric"
    return summary


_TAG_TEXT = {
    "SI": "SI (speaker-independent: no test speaker is seen in training or validation)",
    "SD": "SD (speaker-dependent: clips of the same speaker fall on both sides of a split; "
          "results overstate performance on new speakers)",
}
_NAMES = {"wa": "WA", "ua": "UA", "macro_f1": "macro F1", "weighted_f1": "weighted F1"}


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _percent(value: float) -> str:
    return "" if math.isnan(value) else f"{100 * value:.2f}"


def results_markdown(
    per_fold: pd.DataFrame,
    summary: pd.DataFrame,
    *,
    title: str,
    protocol_tag: str,
    corpus: str,
    notes: str | Sequence[str] = (),
) -> str:
    """A Markdown report: title, corpus, protocol tag (SI/SD), per-fold table, mean ± std.

    Metric columns (WA, UA, F1) are shown in percent. ``protocol_tag`` is ``"SI"``, ``"SD"``,
    or ``"SI+SD"`` / ``"mixed"`` when splits differ (then it is stated as speaker-dependent
    too). ``notes`` (e.g. "per-speaker normalisation used the test speaker's own audio") are
    listed under the header.
    """
    tag = protocol_tag.strip()
    if tag not in _TAG_TEXT and tag not in ("SI+SD", "mixed"):
        raise ConfigError(f"protocol_tag: expected 'SI' or 'SD', got {protocol_tag!r}")
    tag_text = _TAG_TEXT.get(tag, f"{tag} (some splits are speaker-dependent)")
    lines = [f"# {title}", "", f"- Corpus: {corpus}", f"- Protocol: {tag_text}"]
    for note in [notes] if isinstance(notes, str) else list(notes):
        if note:
            lines.append(f"- Note: {note}")
    lines.append("")

    columns = list(per_fold.columns)
    metric_cols = [c for c in columns if c in SUMMARY_METRICS]
    header = [(_NAMES[c] + " (%)") if c in metric_cols else str(c) for c in columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---:" if c in metric_cols else "---" for c in columns) + "|")
    for _, row in per_fold.iterrows():
        cells = [_percent(float(row[c])) if c in metric_cols else _cell(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    if metric_cols:
        total = []
        for i, c in enumerate(columns):
            if c in metric_cols and c in summary.index:
                mean, std = float(summary.loc[c, "mean"]), float(summary.loc[c, "std"])
                total.append(f"**{_percent(mean)}**" + ("" if math.isnan(std) else f" ± {_percent(std)}"))
            else:
                total.append("**mean ± std**" if i == 0 else "")
        lines.append("| " + " | ".join(total) + " |")
    lines.append("")
    lines.append("Summary over all folds and seeds (mean ± sample standard deviation, ddof=1):")
    lines.append("")
    for metric, stats in summary.iterrows():
        std = float(stats["std"])
        spread = "" if math.isnan(std) else f" ± {_percent(std)}"
        lines.append(f"- {_NAMES.get(str(metric), str(metric))}: {_percent(float(stats['mean']))}{spread} % "
                     f"({int(stats['n_runs'])} run{'s' if int(stats['n_runs']) != 1 else ''})")
    return "\n".join(lines) + "\n"


def write_csv(frame: pd.DataFrame, path: str | Path, *, index: bool = False) -> Path:
    """Write a DataFrame as CSV atomically (the old file or the whole new one, never half)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=index)
    return atomic_write_text(path, buffer.getvalue())

