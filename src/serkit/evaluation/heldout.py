"""The held-out material of a finished run: each fold's model, with the features of every utterance of the run.

Benchmarks that score speakers through the model that never heard them (trend fidelity, adaptation, quantised
encoders) need more than a run's saved predictions: the features, to adapt or re-score them. This reads them back
the way training made them (the recipe's corpora, the same problems left out, the same splits from the same
seeds) through the feature cache, so a run's own cache makes it cheap; a run whose splits no longer match its
``splits.csv`` (the corpus changed on disk) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from serkit.errors import ConfigError
from serkit.features import FeatureCache
from serkit.features.extractor import default_cache_dir, make_feature_extractor
from serkit.inference.pipeline import EmotionPipeline
from serkit.recipe import Recipe
from serkit.training.experiment import load_recipe_corpus, table_channels
from serkit.training.protocols import Split, make_splits

__all__ = ["HeldOutFold", "RunMaterial", "read_run_material"]


@dataclass
class HeldOutFold:
    """One finished fold: its split (row positions of :attr:`RunMaterial.table`) and its model's pipeline."""

    split: Split
    model_path: Path
    pipeline: EmotionPipeline


@dataclass
class RunMaterial:
    """A run's utterance table, the features of every row (item ``i`` is row ``i``), and its finished folds."""

    recipe: Recipe
    table: pd.DataFrame
    X: np.ndarray
    folds: list[HeldOutFold]

    def corpus_of(self, rows: np.ndarray) -> np.ndarray:
        return self.table["corpus"].to_numpy()[rows]


def read_run_material(run_dir: str | Path, *, cache_dir: str | Path | None = None, progress: bool = False,
                      precision: str | None = None) -> RunMaterial:
    """Read ``run_dir``'s recipe, corpora, features and finished fold models. ``precision`` re-encodes the
    utterances with a pretrained encoder at that precision (``int8``: what the fold models would see from a
    quantised encoder), the recipe's own when None.

    Raises
    ------
    ConfigError
        when ``run_dir`` is not a run folder, no fold has a model, its recipe has segments or several input
        streams (pooled single-stream features only), or its splits differ from the ones it was trained on.
    """
    run = Path(run_dir)
    if not (run / "recipe.yaml").is_file() or not (run / "splits.csv").is_file():
        raise ConfigError(f"{run}: not a serkit run folder (needs recipe.yaml and splits.csv)")
    recipe = Recipe.from_yaml(run / "recipe.yaml")
    if recipe.segments is not None or recipe.frontends:
        raise ConfigError(f"{run}: held-out material is read for single-stream recipes without segments only")
    table = load_recipe_corpus(recipe).utterances.reset_index(drop=True)
    cache = FeatureCache(Path(cache_dir) if cache_dir else default_cache_dir() / "features")
    frontend = recipe.frontend
    if precision is not None:
        if "precision" not in type(frontend).model_fields:
            raise ConfigError(f"{run}: its frontend {frontend.name!r} has no precision to choose")
        frontend = frontend.model_copy(update={"precision": precision})
    extractor = make_feature_extractor(recipe.audio, frontend, pooling=recipe.pooling, cache=cache)
    feats = extractor.from_paths(table["path"].tolist(), progress=progress, channels=table_channels(table))
    table = table.iloc[feats.rows].reset_index(drop=True)
    splits = make_splits(table, recipe.protocol)
    saved = pd.read_csv(run / "splits.csv")
    if [s.name for s in splits] != saved["name"].astype(str).tolist() or \
            [len(s.test) for s in splits] != saved["n_test"].astype(int).tolist():
        raise ConfigError(f"{run}: its splits.csv no longer matches the splits of its recipe on these corpora "
                          "(files added or removed since it ran?)")
    folds = []
    for split in splits:
        path = run / "folds" / split.name / "model.pt"
        if (run / "folds" / split.name / "result.json").is_file() and path.is_file():
            folds.append(HeldOutFold(split, path, EmotionPipeline.load(path)))
    if not folds:
        raise ConfigError(f"{run}: no finished fold with a model.pt")
    return RunMaterial(recipe, table, np.asarray(feats.X), folds)
