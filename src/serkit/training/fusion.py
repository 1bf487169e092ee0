"""Late fusion of finished runs: average their test probabilities per utterance and score the result.

A run with several seeds is first averaged over its seeds (a seed ensemble); the runs are then combined with
fixed weights (equal by default). The weights are given, never fitted on the test predictions, so the fused
figure is as leak-free as its members. The members must have tested the same utterances in the same folds
(the same protocol on the same corpus), which is checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from serkit.errors import ConfigError, SerkitError
from serkit.metrics import compute_metrics
from serkit.recipe import FusionRecipe
from serkit.training.evaluate import FinishedFolds, read_run
from serkit.training.experiment import ExperimentResult, write_results
from serkit.utils import atomic_write_text

__all__ = ["fuse_runs", "run_fusion"]

_SEED_SUFFIX = re.compile(r"-seed\d+$")


def _member(run_dir: Path) -> FinishedFolds:
    """A finished run, read without writing into it."""
    folds = read_run(run_dir)
    if folds.missing:
        raise ConfigError(f"{run_dir}: {len(folds.missing)} fold(s) did not finish ({', '.join(folds.missing)}); "
                          "fuse finished runs only")
    return folds


def _fold_groups(frame: pd.DataFrame) -> pd.Series:
    """Each row's fold name without its seed suffix: the test group that runs of other seeds share."""
    return frame["fold"].astype(str).str.replace(_SEED_SUFFIX, "", regex=True)


def fuse_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, *, weights: Sequence[float] | None = None,
              name: str | None = None) -> ExperimentResult:
    """Fuse finished runs into ``out_dir`` (results.csv/.md, predictions.csv, summary.json, confusion plot).

    Parameters
    ----------
    run_dirs : two or more run folders of ``serkit train`` (or one with several seeds: a seed ensemble).
    weights : one non-negative weight per run (normalised to sum 1); equal weights when None.
    name : the fused system's name in the tables (default: the members' recipe names joined by "+").

    Raises
    ------
    ConfigError
        A folder is not a finished run; the runs differ in labels, utterances, folds, protocol or normalisation;
        bad weights.
    """
    runs = [Path(r) for r in run_dirs]
    if not runs:
        raise ConfigError("fuse: give at least one run folder")
    if weights is None:
        weights = [1.0] * len(runs)
    weights = [float(w) for w in weights]
    if len(weights) != len(runs):
        raise ConfigError(f"weights: one per run ({len(runs)}), got {len(weights)}")
    if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"weights: non-negative numbers, not all zero, got {weights}")
    members = [_member(r) for r in runs]

    first = members[0]
    labels, prob_cols = first.labels, [f"p_{label}" for label in first.labels]
    # Each utterance's test group: the grouping that per-fold metrics use.
    folds = first.predictions.assign(fold=_fold_groups(first.predictions))
    folds = folds.drop_duplicates("utterance_id").set_index("utterance_id")
    utterances = folds.index
    truth = folds["true"].astype(str)

    fused = np.zeros((len(utterances), len(labels)))
    for run, member, weight in zip(runs, members, weights, strict=True):
        preds = member.predictions
        if member.labels != labels:
            raise ConfigError(f"{run}: labels {member.labels} differ from {runs[0]}'s {labels}")
        # the same protocol (seeds aside: a seed ensemble fuses runs of other seeds) and normalisation
        if (member.recipe.protocol.model_dump(exclude={"seeds"}) != first.recipe.protocol.model_dump(exclude={"seeds"})
                or member.recipe.normalization != first.recipe.normalization):
            raise ConfigError(f"{run}: protocol or normalisation differs from {runs[0]}'s; fuse runs of one protocol")
        if set(preds["utterance_id"]) != set(utterances):
            raise ConfigError(f"{run}: tested other utterances than {runs[0]} (a different corpus or split)")
        per_utterance = preds.assign(fold=_fold_groups(preds)).drop_duplicates("utterance_id").set_index(
            "utterance_id").reindex(utterances)
        if not (per_utterance["true"].astype(str).to_numpy() == truth.to_numpy()).all():
            raise ConfigError(f"{run}: gives other true labels than {runs[0]} for the same utterances")
        pairs = pd.DataFrame({"a": folds["fold"], "b": per_utterance["fold"]}).drop_duplicates()
        if pairs["a"].duplicated().any() or pairs["b"].duplicated().any():
            raise ConfigError(f"{run}: its test folds group the utterances differently from {runs[0]}'s")
        # the seed ensemble of this run, then its share of the fusion
        fused += weight * preds.groupby("utterance_id")[prob_cols].mean().reindex(utterances).to_numpy()
    fused /= sum(weights)

    seeds = sorted({int(s) for m in members for s in m.predictions["seed"].unique()})
    predictions = pd.DataFrame({
        "fold": folds["fold"].to_numpy(), "seed": seeds[0], "utterance_id": utterances,
        "path": folds["path"].to_numpy(), "speaker": folds["speaker"].to_numpy(), "true": truth.to_numpy(),
        "pred": np.asarray(labels)[fused.argmax(axis=1)],
    })
    predictions[prob_cols] = fused

    member_rows = [m.per_fold.assign(fold=_fold_groups(m.per_fold)) for m in members]
    test_speakers = dict(zip(member_rows[0]["fold"], member_rows[0].get("test_speakers", ""), strict=False))
    tag = "SI" if {t for r in member_rows for t in r["tag"]} == {"SI"} else "SD"
    rows = []
    for fold, part in predictions.groupby("fold", sort=True):
        metrics = compute_metrics(part["true"].tolist(), part["pred"].tolist(), labels)
        rows.append({
            "fold": fold, "seed": seeds[0], "tag": tag, "test_speakers": test_speakers.get(fold, ""),
            "n_test": int(metrics["n"]), "wa": metrics["wa"], "ua": metrics["ua"], "macro_f1": metrics["macro_f1"],
            # what the fused system cost to train: every member's training on this fold, all seeds
            "train_seconds": float(sum(r.loc[r["fold"] == fold, "train_seconds"].sum() for r in member_rows)),
        })
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fused_name = name or "+".join(m.recipe.name for m in members)
    description = [{"run": str(run), "recipe": m.recipe.name,
                    "seeds": sorted(int(s) for s in m.predictions["seed"].unique()), "weight": w / sum(weights)}
                   for run, m, w in zip(runs, members, weights, strict=True)]
    listing = "\n".join(f"- `{d['run']}` ({d['recipe']}, seeds {d['seeds']}): weight {d['weight']:.3g}"
                         for d in description)
    appendix = ("## Late fusion of\n\nProbabilities averaged per utterance (each run's seeds first, then the runs "
                "with these fixed weights):\n\n" + listing)
    corpus = "+".join(c.name for c in first.recipe.corpora)
    result = write_results(first.recipe.model_copy(update={"name": fused_name}), out, pd.DataFrame(rows),
                           predictions, labels, corpus, summary_extra={"seeds": seeds, "fusion": description},
                           appendix=appendix)
    atomic_write_text(out / "fusion.json", json.dumps({"name": fused_name, "members": description}, indent=2))
    return result


def run_fusion(
    recipe: FusionRecipe,
    out_dir: str | Path,
    *,
    recipe_file: str | Path | None = None,
    overrides: dict | None = None,
    jobs: int = 1,
    retries: int = 1,
    resume: bool = True,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> ExperimentResult:
    """Train every member of a fusion recipe into ``<out_dir>/members/<name>``, then fuse them into ``out_dir``.

    A member whose run already finished is only read again (each member resumes like ``serkit train``), so an
    interrupted fusion picks up where it stopped. ``overrides`` (dotted names) are set in every member, after
    the member's own ``set``. ``jobs`` > 1 runs each member's folds in that many worker processes.

    Raises
    ------
    ConfigError
        Invalid members, or ``out_dir`` holds a fusion of another recipe (and ``resume`` is on).
    SerkitError
        A member's folds did not all finish (its fold logs are named).
    """
    from serkit.training.experiment import run_experiment
    from serkit.training.fanout import run_fanout

    effective = recipe.with_overrides(**overrides) if overrides else recipe
    members = effective.member_recipes(recipe_file=recipe_file)
    out = Path(out_dir)
    saved = out / "fusion_recipe.yaml"
    if resume and saved.exists() and FusionRecipe.from_yaml(saved).model_dump() != effective.model_dump():
        raise ConfigError(f"{out}: holds a fusion of a different recipe; choose another --out or pass --no-resume "
                          "to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    effective.save(saved)
    console = Console(stderr=True, quiet=not progress)
    member_dirs = []
    for i, (name, rec, member_file) in enumerate(members, 1):
        member_dir = out / "members" / name
        console.print(f"[bold]member {i}/{len(members)}: {name}[/] ({member_file}) -> {member_dir}")
        if jobs > 1:
            report = run_fanout(rec, member_dir, jobs=jobs, retries=retries, recipe_file=member_file,
                                cache_dir=cache_dir, resume=resume, progress=progress)
            if report.missing:
                raise SerkitError(f"{effective.name}: member {name}: {len(report.missing)} fold(s) did not finish "
                                  f"({', '.join(report.missing)}; logs in {member_dir / 'fanout'}); run the same "
                                  "command again to resume")
        else:
            run_experiment(rec, member_dir, recipe_file=member_file, resume=resume, progress=progress,
                           cache_dir=cache_dir)
        member_dirs.append(member_dir)
    return fuse_runs(member_dirs, out, weights=[m.weight for m in effective.members], name=effective.name)
