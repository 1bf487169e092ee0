"""Ablations of the frozen-Whisper systems: which encoder, which layers, which pooling, which head.
Writes ``docs/results/whisper_ablations.md``.

Usage::

    python benchmarks/whisper_ablations.py [--corpora emodb,ravdess] [--weights whisper-base,whisper-tiny.en]

Protocols as in ``recipes/whisper_{emodb,ravdess}.yaml``: EmoDB leave one speaker out (10 folds), RAVDESS 6 folds
of 4 actors, speaker-independent, one validation speaker per fold (the next speaker in the protocol's order), seed
0. Features are standardised with the training speakers' statistics only. Heads: logistic regression with C chosen
on the validation speaker (grid 0.01, 0.03, 0.1), then refitted on training + validation speakers, exactly as the
recipes' ``logreg``; ``probe`` is serkit's MLP head (one hidden layer of 256, early stopping on validation UA), and
``probe, weighted layers`` learns a softmax weight per layer over all layers. Every row is UA (%), mean +- std over
the test folds. The rows are read on the test folds: the table is exploratory, and a choice made from it is no
longer a blind result (the results page says which choices were made before and after it).

Every clip is encoded once per weights with every layer (mean and std over time, stacked) into serkit's feature
cache; each row slices those features, so a rerun only refits the heads.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from serkit.audio import AudioConfig
from serkit.corpora import load_corpus
from serkit.features import FeatureCache, WhisperConfig, load_whisper_encoder_weights
from serkit.features.extractor import FeatureExtractor, default_cache_dir
from serkit.features.normalization import FeatureNormalizer
from serkit.metrics import unweighted_average_recall
from serkit.models import create_model
from serkit.training.protocols import ProtocolConfig, make_splits
from serkit.training.trainer import Trainer, TrainingConfig
from serkit.utils import atomic_write_text, seed_everything

CORPORA = {
    "emodb": ("../shared/corpora/emodb", ProtocolConfig(name="loso", n_val_speakers=1)),
    "ravdess": ("../shared/corpora/ravdess-16k", ProtocolConfig(name="speaker_folds", speaker_groups=6,
                                                                 n_val_speakers=1)),
}
C_GRID = [0.01, 0.03, 0.1]


def all_layer_features(paths: list[str], weights: str, cache: FeatureCache, *, audio: AudioConfig | None = None,
                       channels: list | None = None) -> np.ndarray:
    """(N, layers + 1, 2 * d_model): mean and std over time of every layer's states, 0 .. n_layers, of the clips
    read as ``audio`` says (default: 16 kHz, as recorded), each from its ``channels`` entry if given."""
    n_layers = load_whisper_encoder_weights(weights, max_layer=0).dims.n_layers
    cfg = WhisperConfig(weights=weights, layers=list(range(n_layers + 1)), pooling="mean_std", combine="stack")
    feats = FeatureExtractor(audio or AudioConfig(sample_rate=16000), cfg, cache=cache).from_paths(
        paths, progress=True, channels=channels)
    if feats.failures:
        raise RuntimeError(f"unreadable clips: {feats.failures[:3]}")
    return feats.X


def select(X: np.ndarray, layers: list[int], pooling: str, stack: bool = False) -> np.ndarray:
    d = X.shape[-1] // 2
    part = X[:, layers, :d] if pooling == "mean" else X[:, layers, :]
    return part if stack else part.reshape(len(X), -1)


def logreg_head(X_tr, y_tr, X_va, y_va, X_te, n_classes, seed) -> np.ndarray:
    model = create_model("logreg", num_classes=n_classes, C=C_GRID)
    return model.fit(X_tr, y_tr, X_va, y_va).predict(X_te)


def probe_head(X_tr, y_tr, X_va, y_va, X_te, n_classes, seed) -> np.ndarray:
    seed_everything(seed)
    model = create_model("probe", num_classes=n_classes, input_shape=X_tr.shape[1:], hidden=(256,), dropout=0.3)
    cfg = TrainingConfig(lr=1e-3, weight_decay=1e-2, optimizer="adamw", batch_size=32, max_epochs=60,
                         early_stopping_patience=15, num_threads=2)
    trainer = Trainer(cfg, workdir=None, seed=seed, progress=False)
    trainer.fit(model, X_tr, y_tr, X_va, y_va, resume=False)
    return trainer.predict_proba(model, X_te).argmax(1)


def evaluate(head: Callable, X: np.ndarray, y: np.ndarray, splits) -> tuple[float, float]:
    uas = []
    n_classes = int(y.max()) + 1
    for split in splits:
        norm = FeatureNormalizer("global", axis=tuple(range(X.ndim - 1)))
        norm.fit(X[split.train])
        X_tr, X_va, X_te = (norm.transform(X[rows]) for rows in (split.train, split.val, split.test))
        pred = head(X_tr, y[split.train], X_va, y[split.val], X_te, n_classes, split.seed)
        uas.append(unweighted_average_recall(y[split.test], pred))
    return 100 * float(np.mean(uas)), 100 * float(np.std(uas))


def rows_for(weights: str, X: np.ndarray, y: np.ndarray, splits, recipe_layers: list[int]) -> list[tuple[str, tuple]]:
    n = X.shape[1]
    out = []
    for layer in range(n):
        out.append((f"{weights} layer {layer}, mean, logreg", evaluate(logreg_head, select(X, [layer], "mean"), y,
                                                                       splits)))
        print(out[-1], flush=True)
    if weights == "whisper-base":
        rec = "+".join(map(str, recipe_layers))
        out.append((f"{weights} layers {rec}, mean, logreg (the recipe)",
                    evaluate(logreg_head, select(X, recipe_layers, "mean"), y, splits)))
        out.append((f"{weights} layers {rec}, mean + std, logreg",
                    evaluate(logreg_head, select(X, recipe_layers, "mean_std"), y, splits)))
        out.append((f"{weights} all layers, mean, logreg",
                    evaluate(logreg_head, select(X, list(range(n)), "mean"), y, splits)))
        out.append((f"{weights} layers {rec}, mean, probe (MLP 256)",
                    evaluate(probe_head, select(X, recipe_layers, "mean"), y, splits)))
        out.append((f"{weights} all layers, mean, probe with learned layer weights",
                    evaluate(probe_head, select(X, list(range(n)), "mean", stack=True), y, splits)))
        for row in out[-5:]:
            print(row, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", default="emodb,ravdess")
    parser.add_argument("--weights", default="whisper-base,whisper-tiny.en")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "whisper_ablations.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cache = FeatureCache(default_cache_dir() / "features")
    t0 = time.perf_counter()
    sections = []
    for corpus_name in args.corpora.split(","):
        root, protocol = CORPORA[corpus_name]
        table = load_corpus(corpus_name, (ROOT / root).resolve()).utterances.reset_index(drop=True)
        labels = sorted(table["label"].unique())
        y = table["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
        splits = make_splits(table, protocol)
        rows = []
        for weights in args.weights.split(","):
            X = all_layer_features(table["path"].tolist(), weights, cache)
            rows += rows_for(weights, X, y, splits, recipe_layers=[3, 4])
        lines = [(f"### {corpus_name} ({len(table)} clips, {len(labels)} classes, {protocol.name}, "
                  f"{len(splits)} folds, SI)"), "", "| system | UA % (mean ± std over folds) |", "|---|---:|"]
        lines += [f"| {name} | {m:.1f} ± {s:.1f} |" for name, (m, s) in rows]
        sections.append("\n".join(lines))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        "# Whisper encoder ablations (exploratory: read on the test folds)\n\n"
        f"Written by `python benchmarks/whisper_ablations.py` on {stamp} in {time.perf_counter() - t0:.0f} s. "
        "Speaker-independent (SI), strict (normalisation statistics from training speakers only), UA, seed 0; see "
        "the script's docstring for the protocol and the heads. These rows were read on the test folds, so the best "
        "row here is an optimistic reading; `docs/results/whisper.md` says which recipe choices were fixed before "
        "this table existed.\n\n" + "\n\n".join(sections) + "\n"
    )
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
