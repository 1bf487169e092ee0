"""Run a recipe end to end: corpus -> features -> splits -> (augment, normalise, train, test) per fold -> results.

The order is what keeps the evaluation leak-proof: splits are made on the utterance table first; augmented
copies are made from the fold's training items only; normalisation statistics come from the (augmented)
training split only, unless the recipe asks for per-speaker normalisation, which is reported as such.

Output folder layout::

    recipe.yaml  corpus_problems.csv  splits.csv
    folds/<split>/  result.json  predictions.csv  confusion.png  curves.png  log.csv  model.pt  last.pt  best.pt
    results.csv  results.md  summary.json  confusion.png  predictions.csv

A fold whose ``result.json`` exists is not run again (resume); a fold interrupted mid-training resumes from
its last epoch checkpoint.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from serkit.augment import augment_training_set
from serkit.augment.spec import spec_augment
from serkit.audio import load_clips
from serkit.corpora import Corpus, combine, load_corpus
from serkit.errors import ConfigError
from serkit.features import FeatureCache
from serkit.models.bundle import ModelBundle
from serkit.models.registry import create_model, model_spec
from serkit.recipe import Recipe, resolve_path
from serkit.training.data import FeatureExtractor, default_cache_dir
from serkit.training.metrics import compute_metrics, results_markdown, summarize, write_csv
from serkit.training.normalization import FeatureNormalizer
from serkit.training.plots import plot_confusion, plot_training_curves
from serkit.training.protocols import Split, make_splits, split_summary
from serkit.training.trainer import Trainer
from serkit.utils import atomic_write_text, seed_everything

log = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    out_dir: Path
    per_fold: pd.DataFrame
    summary: pd.DataFrame
    overall: dict
    protocol_tag: str


def load_recipe_corpus(recipe: Recipe, *, recipe_file: str | Path | None = None) -> Corpus:
    """Load (and combine) the recipe's corpora, applying its label selection."""
    loaded = []
    for cc in recipe.corpora:
        root = resolve_path(cc.root, recipe_file=recipe_file)
        corpus = load_corpus(cc.name, root, **cc.options)
        if cc.labels is not None:
            corpus = corpus.subset_labels(cc.labels)
        loaded.append(corpus)
    return loaded[0] if len(loaded) == 1 else combine(*loaded)


def run_experiment(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    recipe_file: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    console: Console | None = None,
) -> ExperimentResult:
    """Train and evaluate ``recipe`` under its protocol; write tables, plots and models to ``out_dir``."""
    console = console or Console(stderr=True, quiet=not progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not resume and (out / "folds").exists():
        shutil.rmtree(out / "folds")  # a fresh start must not mix in folds of an earlier run
    saved = out / "recipe.yaml"
    if saved.exists() and resume:
        previous = Recipe.from_yaml(saved)
        if previous.model_dump() != recipe.model_dump():
            raise ConfigError(
                f"{out}: holds a run of a different recipe; choose another --out or pass --no-resume to overwrite"
            )
    recipe.save(saved)

    corpus = load_recipe_corpus(recipe, recipe_file=recipe_file)
    table = corpus.utterances.reset_index(drop=True)
    console.print(f"[bold]{recipe.name}[/]: {len(table)} utterances, {table['speaker'].nunique()} speakers, "
                  f"labels {', '.join(sorted(table['label'].unique()))}")

    cache = FeatureCache(Path(cache_dir) if cache_dir else default_cache_dir() / "features")
    extractor = FeatureExtractor(recipe.audio, recipe.frontend, pooling=recipe.pooling, cache=cache,
                                 device=recipe.training.device if recipe.training.device != "auto" else "cpu")
    t0 = time.perf_counter()
    feats = extractor.from_paths(table["path"].tolist(), progress=progress)
    feature_seconds = time.perf_counter() - t0
    problems = [{"path": p.path, "reason": p.reason, "stage": "corpus"} for p in corpus.problems]
    problems += [{"path": p, "reason": r, "stage": "audio"} for p, r in feats.failures]
    write_csv(pd.DataFrame(problems, columns=["path", "reason", "stage"]), out / "corpus_problems.csv")
    if problems:
        console.print(f"[yellow]{len(problems)} file(s) left out, see {out / 'corpus_problems.csv'}[/]")
    table = table.iloc[feats.rows].reset_index(drop=True)
    X = feats.X
    console.print(f"features {recipe.frontend.name}: {X.shape[1:]} per item, {feature_seconds:.1f} s")

    splits = make_splits(table, recipe.protocol)
    # The task's classes are those the splits use (cross-corpus keeps only the labels both corpora share).
    used = np.unique(np.concatenate([np.concatenate([s.train, s.val, s.test]) for s in splits]))
    labels = sorted(table["label"].iloc[used].unique())
    y = table["label"].map({lab: i for i, lab in enumerate(labels)}).fillna(-1).astype(int).to_numpy()
    write_csv(split_summary(splits, table), out / "splits.csv")
    waveforms = _training_waveforms(recipe, table, progress)

    rows, all_preds = [], []
    for n, split in enumerate(splits, 1):
        console.print(f"[{n}/{len(splits)}] {split.name} ({split.tag}): "
                      f"train {len(split.train)}, val {len(split.val)}, test {len(split.test)}")
        row, preds = _run_fold(recipe, split, table, X, y, labels, waveforms, extractor,
                               out / "folds" / split.name, resume=resume, progress=progress)
        console.print(f"    UA {row['ua']:.3f}  WA {row['wa']:.3f}  F1 {row['macro_f1']:.3f}")
        rows.append(row)
        all_preds.append(preds)

    per_fold = pd.DataFrame(rows)
    preds = pd.concat(all_preds, ignore_index=True)
    return write_results(recipe, out, per_fold, preds, labels, corpus.name)


def _training_waveforms(recipe: Recipe, table: pd.DataFrame, progress: bool) -> list[np.ndarray] | None:
    """All waveforms, loaded once, when the recipe augments waveforms (copies are made per fold)."""
    if not recipe.augment.any_waveform:
        return None
    batch = load_clips(table["path"].tolist(), recipe.audio, progress=progress)
    if batch.failures:  # the features loaded a moment ago, so this is unexpected: stop rather than misalign
        raise RuntimeError(f"audio failed on second read: {batch.failures[:3]}")
    return batch.signals


def _run_fold(recipe, split: Split, table, X, y, labels, waveforms, extractor, fold_dir: Path, *, resume, progress):
    result_file = fold_dir / "result.json"
    if resume and result_file.exists():
        row = json.loads(result_file.read_text())
        return row, pd.read_csv(fold_dir / "predictions.csv")
    fold_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(split.seed)
    spec = model_spec(recipe.model.name)
    speakers = table["speaker"].to_numpy()

    X_tr, y_tr, spk_tr = X[split.train], y[split.train], speakers[split.train]
    n_aug = 0
    if waveforms is not None:
        aug = augment_training_set([waveforms[i] for i in split.train], y_tr, recipe.augment,
                                   recipe.audio.sample_rate, seed=split.seed)
        copies = aug.signals[len(split.train):]
        if copies:
            X_copies = extractor.pool(extractor.from_signals(copies))
            X_tr = np.concatenate([X_tr, X_copies])
            y_tr = np.asarray(aug.labels)
            spk_tr = spk_tr[aug.source]
            n_aug = len(copies)

    # per_speaker: every speaker, the test speaker too, is normalised by its own statistics (labels unused);
    # the results notes say so.
    normalizer = FeatureNormalizer(scope=recipe.normalization, unseen="own_audio")
    normalizer.fit(X_tr, speakers=spk_tr)
    X_tr = normalizer.transform(X_tr, speakers=spk_tr)
    X_va = normalizer.transform(X[split.val], speakers=speakers[split.val]) if len(split.val) else None
    y_va = y[split.val] if len(split.val) else None
    X_te = normalizer.transform(X[split.test], speakers=speakers[split.test])

    model = create_model(recipe.model.name, num_classes=len(labels), input_shape=X_tr.shape[1:],
                         **recipe.model.options)
    t0 = time.perf_counter()
    info: dict = {"n_augmented": n_aug}
    if spec.kind == "torch":
        transform = None
        if recipe.augment.specaugment is not None:
            sa = recipe.augment.specaugment
            transform = partial(spec_augment, freq_masks=sa.freq_masks, freq_width=sa.freq_width,
                                time_masks=sa.time_masks, time_width=sa.time_width)
        trainer = Trainer(recipe.training, workdir=fold_dir, seed=split.seed, batch_transform=transform,
                          progress=progress)
        fit = trainer.fit(model, X_tr, y_tr, X_va, y_va, resume=resume)
        proba = trainer.predict_proba(model, X_te)
        pred = proba.argmax(1)
        info.update(best_epoch=fit.best_epoch, epochs_run=fit.epochs_run, best_val=fit.best_score)
        if len(fit.history):
            plot_training_curves(fit.history, fold_dir / "curves.png")
        train_seconds = fit.train_seconds
    else:
        model.fit(X_tr, y_tr, X_va, y_va)
        proba = model.predict_proba(X_te)
        pred = model.predict(X_te)
        info.update(model.fit_info() if hasattr(model, "fit_info") else {})
        train_seconds = time.perf_counter() - t0

    y_te = y[split.test]
    metrics = compute_metrics([labels[i] for i in y_te], [labels[i] for i in pred], labels)
    plot_confusion(metrics["confusion"], labels, fold_dir / "confusion.png",
                   title=f"{recipe.name} {split.name} ({split.tag})")
    ModelBundle(recipe.model_dump(mode="json"), labels, tuple(X_tr.shape[1:]), model,
                normalizer.state_dict(), {"split": split.name, "seed": split.seed, "tag": split.tag}
                ).save(fold_dir / "model.pt")

    test_rows = table.iloc[split.test]
    preds = pd.DataFrame({
        "fold": split.name, "seed": split.seed, "utterance_id": test_rows["utterance_id"].to_numpy(),
        "path": test_rows["path"].to_numpy(), "speaker": test_rows["speaker"].to_numpy(),
        "true": [labels[i] for i in y_te], "pred": [labels[i] for i in pred],
    })
    for j, lab in enumerate(labels):
        preds[f"p_{lab}"] = proba[:, j] if proba.ndim == 2 and proba.shape[1] == len(labels) else np.nan
    write_csv(preds, fold_dir / "predictions.csv")
    row = {
        "fold": split.name, "seed": split.seed, "tag": split.tag,
        "test_speakers": " ".join(sorted(set(test_rows["speaker"]))) if split.speaker_independent else "mixed",
        "n_train": int(len(split.train)), "n_augmented": n_aug, "n_val": int(len(split.val)),
        "n_test": int(len(split.test)),
        "wa": metrics["wa"], "ua": metrics["ua"], "macro_f1": metrics["macro_f1"],
        "train_seconds": round(train_seconds, 2), **{k: v for k, v in info.items() if k != "n_augmented"},
    }
    details = {"per_class": metrics["per_class"].reset_index().to_dict("records"),
               "confusion": metrics["confusion"].tolist(), "labels": labels}
    atomic_write_text(fold_dir / "metrics.json", json.dumps(details, indent=2, default=_json_default))
    atomic_write_text(result_file, json.dumps(row, indent=2, default=_json_default))
    return json.loads(result_file.read_text()), preds


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return str(obj)


def write_results(recipe: Recipe, out: Path, per_fold: pd.DataFrame, preds: pd.DataFrame, labels: list[str],
                  corpus_name: str) -> ExperimentResult:
    """Aggregate per-fold rows and test predictions into results.csv/.md, summary.json and the pooled plot."""
    tag = "SI" if (per_fold["tag"] == "SI").all() else "SD"
    summary = summarize(per_fold.to_dict("records"))
    pooled = compute_metrics(preds["true"].tolist(), preds["pred"].tolist(), labels)
    overall = {
        "recipe": recipe.name, "corpus": corpus_name, "protocol": recipe.protocol.name, "protocol_tag": tag,
        "normalization": recipe.normalization,
        "folds": int(len(per_fold)), "seeds": sorted(int(s) for s in per_fold["seed"].unique()),
        "labels": labels,
        "mean": {m: float(per_fold[m].mean()) for m in ("wa", "ua", "macro_f1")},
        # Sample standard deviation (ddof=1) as in results.md; None for a single fold.
        "std": {m: (float(per_fold[m].std(ddof=1)) if len(per_fold) > 1 else None) for m in ("wa", "ua", "macro_f1")},
        "pooled": {m: float(pooled[m]) for m in ("wa", "ua", "macro_f1")},
        "train_seconds_total": float(per_fold["train_seconds"].sum()),
    }
    write_csv(per_fold, out / "results.csv")
    write_csv(preds, out / "predictions.csv")
    atomic_write_text(out / "summary.json", json.dumps(overall, indent=2))
    notes = [
        f"protocol: {recipe.protocol.name}",  # results_markdown explains the SI/SD tag itself
        f"normalisation: {recipe.normalization}"
        + (" (statistics of each test speaker from its own unlabelled audio)" if recipe.normalization == "per_speaker"
           else " (statistics from the training split only)" if recipe.normalization == "global" else ""),
        f"pooled over all test predictions: UA {pooled['ua']:.4f}, WA {pooled['wa']:.4f}, "
        f"macro F1 {pooled['macro_f1']:.4f}",
    ]
    md = results_markdown(per_fold, summary, title=recipe.name, protocol_tag=tag, corpus=corpus_name, notes=notes)
    atomic_write_text(out / "results.md", md)
    plot_confusion(pooled["confusion"], labels, out / "confusion.png",
                   title=f"{recipe.name}: {corpus_name}, {recipe.protocol.name} ({tag}), pooled")
    return ExperimentResult(out, per_fold, summary, overall, tag)
