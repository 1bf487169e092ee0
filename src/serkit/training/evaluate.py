"""Re-evaluate a finished (or partly finished) run from its saved per-fold predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from serkit.errors import ConfigError
from serkit.recipe import Recipe
from serkit.training.experiment import ExperimentResult, write_results


@dataclass
class FinishedFolds:
    """What the finished folds of a run folder hold, read without writing anything."""

    recipe: Recipe
    per_fold: pd.DataFrame  # one row per finished fold (its result.json)
    predictions: pd.DataFrame  # their test predictions, one row per utterance and seed
    labels: list[str]  # the classes, from the probability columns
    missing: list[str]  # folds of splits.csv without a result.json


def read_run(run_dir: str | Path) -> FinishedFolds:
    """Read the finished folds of ``run_dir``.

    Raises
    ------
    ConfigError
        When ``run_dir`` is not a run folder or no fold has finished.
    """
    run = Path(run_dir)
    if not (run / "recipe.yaml").exists():
        raise ConfigError(f"{run}: not a serkit run folder (no recipe.yaml)")
    if not (run / "splits.csv").exists():
        raise ConfigError(f"{run}: not a prepared serkit run folder (no splits.csv)")
    recipe = Recipe.from_yaml(run / "recipe.yaml")
    expected = pd.read_csv(run / "splits.csv")["name"].astype(str).tolist()
    rows, preds, missing = [], [], []
    for name in expected:
        fold_dir = run / "folds" / name
        if not (fold_dir / "result.json").exists():
            missing.append(name)
            continue
        if not (fold_dir / "predictions.csv").exists():
            raise ConfigError(f"{fold_dir}: result.json without predictions.csv")
        rows.append(json.loads((fold_dir / "result.json").read_text()))
        preds.append(pd.read_csv(fold_dir / "predictions.csv"))
    if not rows:
        raise ConfigError(f"{run}: no fold has finished yet (no folds/*/result.json)")
    predictions = pd.concat(preds, ignore_index=True)
    labels = sorted(c[2:] for c in predictions.columns if c.startswith("p_"))
    return FinishedFolds(recipe, pd.DataFrame(rows), predictions, labels, missing)


def collect_run(run_dir: str | Path) -> tuple[ExperimentResult, list[str]]:
    """Build the run's table (results.csv/.md, summary.json, pooled plot) from the folds that finished.

    Returns
    -------
    (result, missing)
        ``missing`` lists the folds of ``splits.csv`` without a ``result.json``; they are named in
        results.md and summary.json as well.

    Raises
    ------
    ConfigError
        When ``run_dir`` is not a run folder or no fold has finished.
    """
    folds = read_run(run_dir)
    corpus = "+".join(c.name for c in folds.recipe.corpora)
    result = write_results(folds.recipe, Path(run_dir), folds.per_fold, folds.predictions, folds.labels, corpus,
                           missing_folds=folds.missing)
    return result, folds.missing


def evaluate_run(run_dir: str | Path) -> dict:
    """Rebuild results.csv/.md, summary.json and the pooled confusion matrix of ``run_dir``; return the summary.

    Only folds that finished (have ``result.json``) count; the summary names the ones that did not.
    """
    return collect_run(run_dir)[0].overall
