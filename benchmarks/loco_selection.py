"""How to choose the head of a model meant for corpora it has never heard: validation speakers or held-out corpora.
Writes ``docs/results/loco_selection.md``.

Usage::

    python benchmarks/loco_selection.py [--recipe recipes/pool4_loco_whisper.yaml]

The LOCO recipe's corpora, protocol and rebalancing, on clean clips (no degraded copies, no calibration, so that a
table takes minutes, not an hour): every clip at the recipe's level, the Whisper-base encoder's every layer, mean
and std over time, cached once. For each held-out corpus (fold) and each feature variant (layers, pooling) and
each C of the grid, three figures of a logistic regression on the rebalanced training split:

- **validation speakers**: UA on the fold's validation speakers (a quarter of each training corpus's speakers);
- **held-out training corpora**: mean UA over the training corpora, each predicted by a model fitted on the other
  two (the rule of ``select_on: groups``; the runner's version differs in two ways: it standardises with the whole
  training split's statistics, the held-out corpus's included, and it also scores the degraded copies);
- **test**: UA on the held-out corpus (read on the test corpora: only to see what each rule would have got).

The summary takes, per fold, the C (or variant and C) that each rule picks and reports its test UA; neither rule
sees the test corpus. The "best fixed C" rows are read on the test corpora (an oracle, not a result).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from whisper_ablations import all_layer_features, select  # benchmarks/ is the script's own folder

from serkit.augment import rebalance_rows
from serkit.features import FeatureCache
from serkit.features.extractor import default_cache_dir
from serkit.features.normalization import FeatureNormalizer
from serkit.metrics import unweighted_average_recall
from serkit.models import create_model
from serkit.recipe import Recipe
from serkit.training.experiment import load_recipe_corpus, table_channels
from serkit.training.protocols import make_splits
from serkit.utils import atomic_write_text

C_GRID = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1]
OTHER_C = [0.0003, 0.001, 0.003]  # the other variants: the values the recipe's selection ever chose, and around
# name -> (layers, with std over time)
VARIANTS = {"layers 3+4, mean (the recipe)": ([3, 4], False), "layers 2-5, mean": ([2, 3, 4, 5], False),
            "layers 0-6, mean": (list(range(7)), False), "layers 3+4, mean + std": ([3, 4], True)}


def fit_ua(X, y, train, evaluate_on: list[np.ndarray], C: float, n_classes: int) -> list[float]:
    """Standardise with ``train``'s statistics, fit serkit's logreg at ``C``, UA on each of ``evaluate_on``."""
    norm = FeatureNormalizer("global").fit(X[train])
    model = create_model("logreg", num_classes=n_classes, C=C).fit(norm.transform(X[train]), y[train])
    return [unweighted_average_recall(y[rows], model.predict(norm.transform(X[rows]))) for rows in evaluate_on]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "pool4_loco_whisper.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "loco_selection.md")
    args = parser.parse_args()
    t0 = time.perf_counter()
    recipe = Recipe.from_yaml(args.recipe)
    table = load_recipe_corpus(recipe, recipe_file=args.recipe).utterances.reset_index(drop=True)
    labels = sorted(table["label"].unique())
    y = table["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    corpus = table["corpus"].to_numpy()
    features = all_layer_features(table["path"].tolist(), recipe.frontend.weights,
                                  FeatureCache(default_cache_dir() / "features"), audio=recipe.audio,
                                  channels=table_channels(table))
    splits = make_splits(table, recipe.protocol)
    rows = []
    for split in splits:
        held_out = split.name.split("=")[-1]
        train = rebalance_rows(split.train, table, recipe.augment.rebalance, seed=split.seed)
        train_corpora = np.unique(corpus[train])
        for name, (layers, with_std) in VARIANTS.items():
            X = select(features, layers, "mean_std" if with_std else "mean")
            for C in (C_GRID if "recipe" in name else OTHER_C):
                val_ua, test_ua = fit_ua(X, y, train, [split.val, split.test], C, len(labels))
                inner = np.mean([fit_ua(X, y, train[corpus[train] != c], [train[corpus[train] == c]], C,
                                        len(labels))[0] for c in train_corpora])
                rows.append({"fold": held_out, "variant": name, "C": C, "val": val_ua, "inner": inner,
                             "test": test_ua})
                print(f"{held_out:8s} {name:32s} C {C:<7} val {val_ua:.3f} inner {inner:.3f} test {test_ua:.3f}",
                      flush=True)
    df = pd.DataFrame(rows)
    atomic_write_text(args.out, render(df, recipe, time.perf_counter() - t0))
    atomic_write_text(args.out.with_suffix(".csv"), df.to_csv(index=False))
    print(f"wrote {args.out}")


def _pick(df: pd.DataFrame, by: str) -> pd.DataFrame:
    return df.loc[df.groupby("fold")[by].idxmax()].set_index("fold")


def render(df: pd.DataFrame, recipe: Recipe, seconds: float) -> str:
    folds = sorted(df["fold"].unique())
    recipe_rows = df[df["variant"].str.contains("recipe")]
    summary = [("C on validation speakers (the rule of the session 8 recipes)", _pick(recipe_rows, "val")),
               ("C by leaving each training corpus out (the rule of `select_on: groups`, the recipes now)",
                _pick(recipe_rows, "inner"))]
    summary.append(("variant and C by leaving each training corpus out", _pick(df, "inner")))
    lines = ["| rule | " + " | ".join(folds) + " | mean | C (or variant) chosen |",
             "|---|" + "---:|" * (len(folds) + 1) + "---|"]
    for label, picked in summary:
        ua = [picked.loc[f, "test"] * 100 for f in folds]
        chosen = ", ".join(f"{f} {picked.loc[f, 'C']:g}" + ("" if "recipe" in picked.loc[f, "variant"] else
                                                          f" ({picked.loc[f, 'variant']})") for f in folds)
        lines.append(f"| {label} | " + " | ".join(f"{u:.1f}" for u in ua) + f" | **{np.mean(ua):.1f}** | {chosen} |")
    for C in C_GRID:
        fixed = recipe_rows[recipe_rows["C"] == C].set_index("fold")
        ua = [fixed.loc[f, "test"] * 100 for f in folds]
        lines.append(f"| fixed C {C:g} (read on the test corpora) | " + " | ".join(f"{u:.1f}" for u in ua)
                     + f" | {np.mean(ua):.1f} | |")
    detail = [("| held-out corpus | variant | C | UA on validation speakers | UA on held-out training corpora | "
               "UA on the test corpus |"), "|---|---|---:|---:|---:|---:|"]
    for r in df.itertuples():
        detail.append(f"| {r.fold} | {r.variant} | {r.C:g} | {r.val * 100:.1f} | {r.inner * 100:.1f} | "
                      f"{r.test * 100:.1f} |")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "# Choosing the head for unseen corpora: validation speakers or held-out corpora\n\n"
        f"Written by `python benchmarks/loco_selection.py` on {stamp} in {seconds:.0f} s (2 CPU cores). Leave one "
        f"corpus out over {', '.join(sorted(df['fold'].unique()))} ({recipe.name}'s corpora, seven emotions, "
        "protocol, level normalisation and rebalancing), SI, strict, UA in %, seed 0; clean clips only (no "
        "degraded copies, no calibration: the recipe's full runs are in [loco.md](loco.md)). See the script's "
        "docstring for the three scores.\n\n"
        "## What each rule picks, and what it gets on the held-out corpus\n\n"
        f"Both rules choose from the same grid, C {min(C_GRID):g}-{max(C_GRID):g} (the recipes' own grids: "
        "0.01-0.1 in session 8, 0.0001-0.03 now); the other variants from C "
        f"{', '.join(f'{c:g}' for c in OTHER_C)}.\n\n" + "\n".join(lines) + "\n\n"
        "Validation speakers are new people of the corpora the model trains on; held-out training corpora are new "
        "corpora, as a user's recordings are. The mean C each rule picks, over the folds: validation speakers "
        f"{np.exp(np.log(summary[0][1]['C']).mean()):.2g}, held-out training corpora "
        f"{np.exp(np.log(summary[1][1]['C']).mean()):.2g} (geometric means). How this came about, honestly: the "
        "fixed-C rows were looked at first (session 9, exploring); the rule was written after that. The rule itself "
        "never sees the test corpus, but the decision to adopt it was not blind.\n\n"
        "## Every fold, variant and C\n\n" + "\n".join(detail) + "\n"
    )


if __name__ == "__main__":
    main()
