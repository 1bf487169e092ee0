"""Re-evaluate a finished (or partly finished) run from its saved per-fold predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from serkit.errors import ConfigError
from serkit.recipe import Recipe
from serkit.training.experiment import write_results


def evaluate_run(run_dir: str | Path) -> dict:
    """Rebuild results.csv/.md, summary.json and the pooled confusion matrix of ``run_dir``; return the summary.

    Only folds that finished (have ``result.json``) count; the summary says how many there are.
    """
    run = Path(run_dir)
    recipe_file = run / "recipe.yaml"
    if not recipe_file.exists():
        raise ConfigError(f"{run}: not a serkit run folder (no recipe.yaml)")
    recipe = Recipe.from_yaml(recipe_file)
    rows, preds = [], []
    for result in sorted(run.glob("folds/*/result.json")):
        pred_file = result.parent / "predictions.csv"
        if not pred_file.exists():
            raise ConfigError(f"{result.parent}: result.json without predictions.csv")
        rows.append(json.loads(result.read_text()))
        preds.append(pd.read_csv(pred_file))
    if not rows:
        raise ConfigError(f"{run}: no finished fold yet (no folds/*/result.json)")
    predictions = pd.concat(preds, ignore_index=True)
    labels = sorted(c[2:] for c in predictions.columns if c.startswith("p_"))
    corpus = "+".join(c.name for c in recipe.corpora)
    return write_results(recipe, run, pd.DataFrame(rows), predictions, labels, corpus).overall
