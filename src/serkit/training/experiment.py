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
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from sklearn.model_selection import GroupKFold

from serkit.audio import fix_length, load_clips, normalize_level
from serkit.augment import augment_training_set, rebalance_rows
from serkit.augment.spec import spec_augment
from serkit.corpora import Corpus, combine, load_corpus
from serkit.errors import ConfigError
from serkit.features import FeatureCache
from serkit.features.extractor import default_cache_dir, make_feature_extractor
from serkit.features.normalization import FeatureNormalizer, StreamNormalizer
from serkit.features.segments import average_segments
from serkit.models.bundle import ModelBundle
from serkit.models.calibration import apply_temperature, expected_calibration_error, fit_temperature
from serkit.models.init import init_from_checkpoint
from serkit.models.learner import create_learner
from serkit.multi_input import concat_items, is_multi, item_shape, num_items, take_items
from serkit.recipe import Recipe, check_recipe_streams, resolve_path
from serkit.training import distributed as dist
from serkit.training.metrics import compute_metrics, results_markdown, summarize, write_csv
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
    pending: list[str] = field(default_factory=list)  # folds not finished yet (a run of selected folds)


def load_recipe_corpus(recipe: Recipe, *, recipe_file: str | Path | None = None) -> Corpus:
    """Load (and combine) the recipe's corpora, applying its label selection."""
    loaded = []
    for cc in recipe.corpora:
        root = resolve_path(cc.root, recipe_file=recipe_file)
        # Unreadable, empty and truncated files go to the corpus problems (corpus_problems.csv) before any count.
        corpus = load_corpus(cc.name, root, check_audio=True, **cc.options)
        if cc.labels is not None:
            corpus = corpus.subset_labels(cc.labels)
        loaded.append(corpus)
    return loaded[0] if len(loaded) == 1 else combine(*loaded)


def table_channels(table: pd.DataFrame) -> list | None:
    """The utterance table's per-file channel choices (its ``channel`` column, e.g. EMOVO's), or None."""
    return table["channel"].tolist() if "channel" in table.columns else None


def run_experiment(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    recipe_file: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    console: Console | None = None,
    folds: Sequence[str] | None = None,
) -> ExperimentResult:
    """Train and evaluate ``recipe`` under its protocol; write tables, plots and models to ``out_dir``.

    ``folds`` runs only these folds (names, or 1-based numbers as strings, see ``serkit train --list-folds``)
    so that several workers can share one run folder; the run's tables are written by whichever call finds
    every fold finished, otherwise the result lists the ``pending`` folds. Under ``torch.distributed`` every
    rank calls this; rank 0 alone writes, and every rank returns rank 0's result.
    """
    main = dist.is_main_process()
    progress = progress and main  # one progress display per job
    console = console or Console(stderr=True, quiet=not progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not resume and folds is None and (out / "folds").exists() and main:
        shutil.rmtree(out / "folds")  # a fresh start must not mix in folds of an earlier run
    saved = out / "recipe.yaml"
    if saved.exists() and resume:
        previous = Recipe.from_yaml(saved)
        if previous.model_dump() != recipe.model_dump():
            raise ConfigError(
                f"{out}: holds a run of a different recipe; choose another --out or pass --no-resume to overwrite"
            )
    if main:
        recipe.save(saved)
    dist.barrier()  # no rank looks at the folds before rank 0 has cleared them

    corpus = load_recipe_corpus(recipe, recipe_file=recipe_file)
    table = corpus.utterances.reset_index(drop=True)
    console.print(f"[bold]{recipe.name}[/]: {len(table)} utterances, {table['speaker'].nunique()} speakers, "
                  f"labels {', '.join(sorted(table['label'].unique()))}")

    cache = FeatureCache(Path(cache_dir) if cache_dir else default_cache_dir() / "features")
    streams = check_recipe_streams(recipe)  # a multi-input model's stream order, None for one input
    init_path = None
    if recipe.model.init_from:
        init_path = resolve_path(recipe.model.init_from, recipe_file=recipe_file)
        if not init_path.is_file():
            raise ConfigError(f"model.init_from: {init_path}: no such checkpoint file")
    frontend = recipe.frontend if streams is None else {name: recipe.frontends[name] for name in streams}
    extractor = make_feature_extractor(recipe.audio, frontend, pooling=recipe.pooling, cache=cache,
                                 device=recipe.training.device if recipe.training.device != "auto" else "cpu",
                                 segments=recipe.segments)
    t0 = time.perf_counter()
    feats = extractor.from_paths(table["path"].tolist(), progress=progress, channels=table_channels(table))
    feature_seconds = time.perf_counter() - t0
    problems = [{"path": p.path, "reason": p.reason, "stage": "corpus"} for p in corpus.problems]
    problems += [{"path": p, "reason": r, "stage": "audio"} for p, r in feats.failures]
    if main:
        write_csv(pd.DataFrame(problems, columns=["path", "reason", "stage"]), out / "corpus_problems.csv")
    if problems:
        console.print(f"[yellow]{len(problems)} file(s) left out, see {out / 'corpus_problems.csv'}[/]")
    table = table.iloc[feats.rows].reset_index(drop=True)
    X = feats.X
    owner = feats.segment_owner  # segments: X holds segments, owner[i] = row of segment i's utterance
    frontend_names = "+".join(f.name for f in recipe.frontend_configs.values())
    console.print(f"features {frontend_names}: {item_shape(X)} per item, {feature_seconds:.1f} s"
                  + (f", {num_items(X)} segments of {len(table)} utterances" if owner is not None else ""))

    splits = make_splits(table, recipe.protocol)
    # The task's classes are those the splits use (cross-corpus keeps only the labels both corpora share).
    used = np.unique(np.concatenate([np.concatenate([s.train, s.val, s.test]) for s in splits]))
    labels = sorted(table["label"].iloc[used].unique())
    y = table["label"].map({lab: i for i, lab in enumerate(labels)}).fillna(-1).astype(int).to_numpy()
    if main:
        write_csv(split_summary(splits, table), out / "splits.csv")
    selected = select_folds([s.name for s in splits], folds)
    waveforms = _training_waveforms(recipe, table, progress)

    rows, all_preds = [], []
    for n, split in enumerate(splits, 1):
        if split.name not in selected:
            continue
        console.print(f"[{n}/{len(splits)}] {split.name} ({split.tag}): "
                      f"train {len(split.train)}, val {len(split.val)}, test {len(split.test)}")
        row, preds = _run_fold(recipe, split, table, X, y, labels, waveforms, extractor,
                               out / "folds" / split.name, resume=resume, progress=progress, owner=owner,
                               init_path=init_path)
        console.print(f"    UA {row['ua']:.3f}  WA {row['wa']:.3f}  F1 {row['macro_f1']:.3f}")
        rows.append(row)
        all_preds.append(preds)

    if folds is not None:  # the table covers every fold, so it waits for the last one
        done = {s.name: out / "folds" / s.name for s in splits if (out / "folds" / s.name / "result.json").exists()}
        pending = [s.name for s in splits if s.name not in done]
        if pending:
            return ExperimentResult(out, pd.DataFrame(rows), pd.DataFrame(), {}, _run_tag(rows), pending)
        rows = [json.loads((d / "result.json").read_text()) for d in done.values()]
        all_preds = [pd.read_csv(d / "predictions.csv") for d in done.values()]
    per_fold = pd.DataFrame(rows)
    preds = pd.concat(all_preds, ignore_index=True)
    result = write_results(recipe, out, per_fold, preds, labels, corpus.name) if main else None
    return dist.broadcast_object(result)


def select_folds(names: Sequence[str], selectors: Sequence[str] | None) -> list[str]:
    """The fold names ``selectors`` picks from ``names``: fold names or 1-based fold numbers; None picks all."""
    names = list(names)
    if selectors is None:
        return names
    chosen = []
    for sel in selectors:
        sel = str(sel).strip()
        if sel.isdigit() and sel not in names:
            if not 1 <= int(sel) <= len(names):
                raise ConfigError(f"fold {sel}: the protocol has folds 1..{len(names)}")
            sel = names[int(sel) - 1]
        elif sel not in names:
            raise ConfigError(f"fold {sel!r}: no such fold; the protocol's folds are {', '.join(names)}")
        if sel not in chosen:
            chosen.append(sel)
    return chosen


def _run_tag(rows: list[dict]) -> str:
    return "SI" if rows and all(r["tag"] == "SI" for r in rows) else "SD"


def _training_waveforms(recipe: Recipe, table: pd.DataFrame, progress: bool) -> list[np.ndarray] | None:
    """All waveforms, loaded once, when the recipe augments waveforms (copies are made per fold)."""
    if not recipe.augment.any_waveform:
        return None
    batch = load_clips(table["path"].tolist(), recipe.audio, progress=progress, channels=table_channels(table))
    if batch.failures:  # the features loaded a moment ago, so this is unexpected: stop rather than misalign
        raise RuntimeError(f"audio failed on second read: {batch.failures[:3]}")
    return batch.signals


def _segment_items(rows: np.ndarray, owner: np.ndarray | None) -> np.ndarray:
    """Positions in X of the utterances ``rows``: the rows themselves, or all their segments (a row that
    repeats, after rebalancing, repeats its segments)."""
    if owner is None:
        return rows
    if np.unique(rows).size == rows.size:
        return np.flatnonzero(np.isin(owner, rows))
    order = np.argsort(owner, kind="stable")
    starts, ends = np.searchsorted(owner[order], rows, "left"), np.searchsorted(owner[order], rows, "right")
    return np.concatenate([order[a:b] for a, b in zip(starts, ends)]) if rows.size else rows


def _run_fold(recipe, split: Split, table, X, y, labels, waveforms, extractor, fold_dir: Path, *, resume, progress,
              owner: np.ndarray | None = None, init_path: Path | None = None):
    result_file = fold_dir / "result.json"
    if dist.broadcast_object(resume and result_file.exists()):  # every rank skips, or none
        row = json.loads(result_file.read_text())
        return row, pd.read_csv(fold_dir / "predictions.csv")
    fold_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(split.seed)
    speakers = table["speaker"].to_numpy()

    # Class/corpus balancing resamples the training rows only (rows may repeat), before augmentation.
    train_rows = split.train
    if recipe.augment.rebalance is not None:
        train_rows = rebalance_rows(split.train, table, recipe.augment.rebalance, seed=split.seed)
    # Splits are on utterances; with segments every split takes all the segments of its utterances.
    tr, va, te = (_segment_items(rows, owner) for rows in (train_rows, split.val, split.test))
    y_items = y if owner is None else y[owner]
    spk_items = speakers if owner is None else speakers[owner]
    X_tr, y_tr, spk_tr = take_items(X, tr), y_items[tr], spk_items[tr]
    corpus_of_row = table["corpus"].to_numpy()
    grp_tr = (corpus_of_row if owner is None else corpus_of_row[owner])[tr]  # for select_on: groups and nuisance_dims
    n_aug = 0
    if waveforms is not None:
        aug = augment_training_set([waveforms[i] for i in train_rows], y[train_rows], recipe.augment,
                                   recipe.audio.sample_rate, seed=split.seed, speakers=speakers[train_rows])
        copies = aug.signals[len(train_rows):]
        if recipe.audio.normalize != "none":
            # a degraded recording reaches the model normalised as a whole (noise, echo and all): so do the copies
            copies = [normalize_level(c, recipe.audio) for c in copies]
        if copies and recipe.audio.num_samples is not None:
            # Speed copies change length; a fixed-duration recipe pads or crops them the way it did the originals.
            copies = [fix_length(c, recipe.audio.num_samples, pad_mode=recipe.audio.pad_mode, crop=recipe.audio.crop)
                      for c in copies]
        if copies:
            if owner is None:
                X_copies = extractor.pool(extractor.from_signals_cached(copies, progress=progress))
                copy_of = np.arange(len(copies))
            else:
                X_copies, copy_of = extractor.segment_features(copies)
            X_tr = concat_items([X_tr, X_copies])
            y_tr = np.concatenate([y_tr, np.asarray(aug.labels)[len(train_rows):][copy_of]])
            copy_rows = train_rows[np.asarray(aug.source)[len(train_rows):]][copy_of]  # each copy item's table row
            spk_tr = np.concatenate([spk_tr, speakers[copy_rows]])
            grp_tr = np.concatenate([grp_tr, corpus_of_row[copy_rows]])
            n_aug = len(copies)

    # per_speaker: every speaker, the test speaker too, is normalised by its own statistics (labels unused);
    # the results notes say so.
    # stacked per-layer vectors (N, layers, features): one mean and std per feature, shared by the layers
    layer_axes = {"axis": (0, 1)} if not is_multi(X) and recipe.frontend.output_kind(recipe.pooling) == \
        "layer_vectors" else {}
    normalizer = (StreamNormalizer if is_multi(X) else FeatureNormalizer)(**layer_axes, scope=recipe.normalization,
                                                                          unseen="own_audio")
    normalizer.fit(X_tr, speakers=spk_tr)
    if isinstance(normalizer, FeatureNormalizer) and recipe.normalization == "global":
        # each class's mean over the clean training items: what adapting to a person compares their material with
        normalizer.fit_class_means(take_items(X, tr), [labels[i] for i in y_items[tr]])
    X_tr = normalizer.transform(X_tr, speakers=spk_tr)
    X_va = normalizer.transform(take_items(X, va), speakers=spk_items[va]) if len(va) else None
    y_va = y_items[va] if len(va) else None  # with segments, early stopping watches segment-level scores
    X_te = normalizer.transform(take_items(X, te), speakers=spk_items[te])

    transform = None
    if recipe.augment.specaugment is not None:
        sa = recipe.augment.specaugment
        transform = partial(spec_augment, freq_masks=sa.freq_masks, freq_width=sa.freq_width,
                            time_masks=sa.time_masks, time_width=sa.time_width)
    # The trainer is built only for a model that uses one (a torch model).
    make_trainer = partial(Trainer, recipe.training, workdir=fold_dir, seed=split.seed, batch_transform=transform,
                           progress=progress)
    learner = create_learner(recipe.model.name, num_classes=len(labels), input_shape=item_shape(X_tr),
                             options=recipe.model.options, trainer=make_trainer, seed=split.seed, progress=progress)
    if init_path is not None:  # pre-trained initialisation (ha2024): the whole model or some streams
        init_info = init_from_checkpoint(learner.model, init_path, prefixes=recipe.model.init_prefixes)
        log.info("model.init_from: %d tensors from %s", len(init_info["loaded"]), recipe.model.init_from)
    info: dict = {"n_augmented": n_aug}
    if recipe.augment.rebalance is not None:  # training items after resampling, before augmented copies
        info["n_rebalanced"] = len(train_rows)
    if init_path is not None:  # in the fold's result, so a table shows that the start was pre-trained
        info["init_tensors"] = len(init_info["loaded"])
    fit = learner.fit(X_tr, y_tr, X_va, y_va, groups=grp_tr, resume=resume)
    history, train_seconds = fit.pop("history", None), fit.pop("train_seconds")
    info.update(fit)
    if history is not None and len(history) and dist.is_main_process():
        plot_training_curves(history, fold_dir / "curves.png")
    proba = learner.predict_proba(X_te)
    pred = proba.argmax(1)
    if owner is not None:  # an utterance's prediction is the mean of its segments' probabilities
        proba = average_segments(proba, np.searchsorted(split.test, owner[te]), len(split.test))
        pred = proba.argmax(1)
        info["n_train_segments"] = len(tr)

    y_te = y[split.test]
    if recipe.calibration.enabled:
        held_proba, held_y = _validation_proba(learner, X_va, split, owner, va, y)
        if recipe.calibration.fit_on == "cross_fit":
            new_learner = partial(_cross_fit_learner, recipe, labels, item_shape(X_tr), _chosen_options(recipe, info),
                                  split.seed, partial(make_trainer, progress=False), fold_dir, init_path)
            oof_proba, oof_y = _cross_fit_proba(split, recipe.calibration.folds, X, y, speakers, owner, normalizer,
                                                X_tr, y_tr, spk_tr, grp_tr, X_va, y_va, new_learner, resume=resume)
            held_proba, held_y = np.concatenate([held_proba, oof_proba]), np.concatenate([held_y, oof_y])
            info["calibration_items"] = len(oof_y)
        proba = _calibrate(held_proba, held_y, y_te, proba, info)
    metrics = compute_metrics([labels[i] for i in y_te], [labels[i] for i in pred], labels)
    main = dist.is_main_process()
    if main:
        plot_confusion(metrics["confusion"], labels, fold_dir / "confusion.png",
                       title=f"{recipe.name} {split.name} ({split.tag})")
        ModelBundle(recipe.model_dump(mode="json"), labels, item_shape(X_tr), learner,
                    normalizer.state_dict(), {"split": split.name, "seed": split.seed, "tag": split.tag,
                                              **{k: info[k] for k in ("temperature",) if k in info}}
                    ).save(fold_dir / "model.pt")

    test_rows = table.iloc[split.test]
    preds = pd.DataFrame({
        "fold": split.name, "seed": split.seed, "utterance_id": test_rows["utterance_id"].to_numpy(),
        "path": test_rows["path"].to_numpy(), "speaker": test_rows["speaker"].to_numpy(),
        "true": [labels[i] for i in y_te], "pred": [labels[i] for i in pred],
    })
    for j, lab in enumerate(labels):
        preds[f"p_{lab}"] = proba[:, j] if proba.ndim == 2 and proba.shape[1] == len(labels) else np.nan
    if main:
        write_csv(preds, fold_dir / "predictions.csv")
    row = {
        "fold": split.name, "seed": split.seed, "tag": split.tag,
        "test_speakers": " ".join(sorted(set(test_rows["speaker"]))) if split.speaker_independent else "mixed",
        "n_train": len(split.train), "n_augmented": n_aug, "n_val": len(split.val),
        "n_test": len(split.test),
        "wa": metrics["wa"], "ua": metrics["ua"], "macro_f1": metrics["macro_f1"],
        "train_seconds": round(train_seconds, 2), **{k: v for k, v in info.items() if k != "n_augmented"},
    }
    details = {"per_class": metrics["per_class"].reset_index().to_dict("records"),
               "confusion": metrics["confusion"].tolist(), "labels": labels}
    row_json = json.dumps(row, indent=2, default=_json_default)
    if main:  # result.json last: its presence marks the fold finished
        atomic_write_text(fold_dir / "metrics.json", json.dumps(details, indent=2, default=_json_default))
        atomic_write_text(result_file, row_json)
    return json.loads(row_json), preds


def _validation_proba(learner, X_va, split: Split, owner, va, y) -> tuple[np.ndarray, np.ndarray]:
    """What the fold's model says of its validation utterances before any refit on them, and their labels."""
    if X_va is None:
        raise ConfigError("calibration: temperature needs validation speakers; set protocol.n_val_speakers (or "
                          "val_size, val_speakers) so that each fold has some")
    val_proba = np.asarray(learner.validation_proba(X_va))
    if owner is not None:
        val_proba = average_segments(val_proba, np.searchsorted(split.val, owner[va]), len(split.val))
    return val_proba, y[split.val]


def _chosen_options(recipe, info: dict) -> dict:
    """The model's options with a validation-chosen hyperparameter (``chosen_<name>`` in the fit info, named as the
    model's option) fixed, also when the recipe left the grid at its default, so that the cross-fitted copies are
    the fold's model trained on less data, not a new selection. (A copy is not refitted on the validation
    speakers, as a ``refit: true`` fold model is: it predicts other speakers than those, and fewer of them.)"""
    options = dict(recipe.model.options)
    for key, value in info.items():
        if key.startswith("chosen_"):
            options[key.removeprefix("chosen_")] = value
    return options


def _cross_fit_learner(recipe, labels, input_shape, options, seed: int, make_trainer, fold_dir: Path,
                       init_path: Path | None, group: int):
    """A new head like the fold's for cross-fitted calibration group ``group``: seeded per group (a resumed run
    gives the same temperature), started as the fold's model was (``init_from``), a torch head checkpointing in
    its own folder apart from the fold's."""
    seed_everything(seed + 1000 * (group + 1))
    learner = create_learner(recipe.model.name, num_classes=len(labels), input_shape=input_shape, options=options,
                             seed=seed, trainer=partial(make_trainer, workdir=fold_dir / "calibration" / f"group{group}"))
    if init_path is not None:
        init_from_checkpoint(learner.model, init_path, prefixes=recipe.model.init_prefixes)
    return learner


def _cross_fit_proba(split: Split, folds: int, X, y, speakers, owner, normalizer, X_tr, y_tr, spk_tr, grp_tr, X_va,
                     y_va, new_learner, *, resume: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities of the training speakers' original utterances (calibration ``cross_fit``).

    The training speakers are cut into ``folds`` groups (scikit-learn's GroupKFold: sizes balanced,
    deterministic); for each group a new learner (``new_learner(group)``) trained on the other groups' training
    items (their rebalanced repeats and augmented copies included, normalised as the fold's model saw them)
    predicts the group's original utterances, once each. The test speakers are never touched. (Babble copies of a
    kept speaker's clip may carry a held-out group's voices in the background, and the normaliser's statistics
    include the held-out groups: both make the out-of-fold predictions a little easier than a new speaker's,
    never the test's.) ``speakers``: the speaker of every row of the utterance table; ``grp_tr``: the corpus of
    every training item, passed on to a learner that uses groups (``nuisance_dims``).
    """
    item_speakers = spk_tr.astype(str)
    train_row_speakers = speakers[split.train].astype(str)
    spk_items = speakers if owner is None else speakers[owner]  # the speaker of every item (segment) of X
    groups = np.unique(item_speakers)
    if groups.size < folds:
        raise ConfigError(f"calibration.folds: {folds} speaker groups wanted, but fold {split.name} has only "
                          f"{groups.size} training speaker(s)")
    probas, truths = [], []
    for g, (_, held) in enumerate(GroupKFold(n_splits=folds).split(groups, groups=groups)):
        held_speakers = groups[held]
        keep = ~np.isin(item_speakers, held_speakers)
        learner = new_learner(g)
        learner.fit(take_items(X_tr, np.flatnonzero(keep)), y_tr[keep], X_va, y_va, groups=grp_tr[keep],
                    resume=resume)
        rows = split.train[np.isin(train_row_speakers, held_speakers)]
        items = _segment_items(rows, owner)
        proba = learner.predict_proba(normalizer.transform(take_items(X, items), speakers=spk_items[items]))
        if owner is not None:
            proba = average_segments(proba, np.searchsorted(rows, owner[items]), len(rows))
        probas.append(np.asarray(proba))
        truths.append(y[rows])
    return np.concatenate(probas), np.concatenate(truths)


def _calibrate(held_proba: np.ndarray, held_y: np.ndarray, y_te, proba, info: dict) -> np.ndarray:
    """Temperature scaling fitted on held-out speakers' predictions (validation speakers, and with ``cross_fit``
    out-of-fold training speakers), applied to the test probabilities; ECE of the test predictions before and
    after goes into ``info``. The temperature travels in the model file, so predictions made from it are
    calibrated the same way."""
    temperature = fit_temperature(held_proba, held_y, probabilities=True)
    calibrated = apply_temperature(proba, temperature, probabilities=True)
    info.update(temperature=float(temperature),
                ece_before=float(expected_calibration_error(proba, y_te)),
                ece_after=float(expected_calibration_error(calibrated, y_te)))
    return calibrated


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return str(obj)


def write_results(recipe: Recipe, out: Path, per_fold: pd.DataFrame, preds: pd.DataFrame, labels: list[str],
                  corpus_name: str, *, missing_folds: Sequence[str] = (), summary_extra: dict | None = None,
                  appendix: str = "") -> ExperimentResult:
    """Aggregate per-fold rows and test predictions into results.csv/.md, summary.json and the pooled plot.

    ``missing_folds`` (folds that did not finish) are listed in summary.json and results.md. ``summary_extra``
    adds to (or replaces) summary.json's entries, and ``appendix`` (Markdown) ends results.md: what a caller
    such as late fusion knows beyond the per-fold rows.
    """
    tag = _run_tag(per_fold.to_dict("records"))
    summary = summarize(per_fold.to_dict("records"))
    pooled = compute_metrics(preds["true"].tolist(), preds["pred"].tolist(), labels)
    overall = {
        "recipe": recipe.name, "corpus": corpus_name, "protocol": recipe.protocol.name, "protocol_tag": tag,
        "normalization": recipe.normalization,
        "folds": len(per_fold), "seeds": sorted(int(s) for s in per_fold["seed"].unique()),
        "labels": labels,
        "mean": {m: float(per_fold[m].mean()) for m in ("wa", "ua", "macro_f1")},
        # Sample standard deviation (ddof=1) as in results.md; None for a single fold.
        "std": {m: (float(per_fold[m].std(ddof=1)) if len(per_fold) > 1 else None) for m in ("wa", "ua", "macro_f1")},
        "pooled": {m: float(pooled[m]) for m in ("wa", "ua", "macro_f1")},
        "train_seconds_total": float(per_fold["train_seconds"].sum()),
    }
    if missing_folds:
        overall["missing_folds"] = list(missing_folds)
    overall.update(summary_extra or {})
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
    if recipe.protocol.select_on_test:
        notes.append("PAPER'S PROTOCOL, LEAKS: the test split also chose the model (early stopping and the best "
                     "epoch watched it), as the paper did; the honest figure chooses on a validation part instead")
    if missing_folds:
        notes.append(f"INCOMPLETE: {len(missing_folds)} fold(s) did not finish and are not in this table: "
                     + ", ".join(missing_folds))
    md = results_markdown(per_fold, summary, title=recipe.name, protocol_tag=tag, corpus=corpus_name, notes=notes)
    if appendix:
        md = md.rstrip("\n") + "\n\n" + appendix.rstrip("\n") + "\n"
    atomic_write_text(out / "results.md", md)
    plot_confusion(pooled["confusion"], labels, out / "confusion.png",
                   title=f"{recipe.name}: {corpus_name}, {recipe.protocol.name} ({tag}), pooled")
    return ExperimentResult(out, per_fold, summary, overall, tag)
