"""Exploratory ablations of the ComParE + linear SVM system: classifiers (PCA + LDA among them), feature
selection, speed-perturbed training copies, gender-wise standardisation, the other corpus as extra training data.
Writes ``docs/results/svm_ablations_<corpus>.md``.

Usage::

    python benchmarks/svm_ablations.py [--corpus emodb|ravdess] [--out docs/results/svm_ablations_<corpus>.md]

Speaker-independent folds as in the recipes: EmoDB leave one speaker out (10 folds), RAVDESS 6 folds of 4
actors. Every figure is UA (%) at a fixed C, mean +- std over the test folds, and every C tried is in the
table: the hyper-parameters here were not chosen on a validation speaker, so a row's best C is an optimistic
reading. An idea earns a place in a recipe (where C is chosen on the validation speaker) only if it wins at every
C. Standardisation statistics always come from the fold's training items (originals and their copies); copies
are made from the training speakers' clips only and never reach the test fold. The other corpus's clips (of the
emotions both corpora have) are standardised with their own corpus's statistics and only ever added to training.

Features (openSMILE ComParE 2016 functionals of the original clips and of speed-perturbed copies) go into
serkit's feature cache (``$SERKIT_CACHE/features``), so a rerun only refits the classifiers.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from rich.progress import track
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from serkit.audio import AudioConfig, load_clip
from serkit.augment.waveform import change_speed
from serkit.corpora import load_corpus
from serkit.features import FeatureCache
from serkit.features.extractor import default_cache_dir
from serkit.features.functionals import OpenSmileFunctionals
from serkit.models import create_model
from serkit.training.metrics import unweighted_average_recall
from serkit.training.protocols import ProtocolConfig, make_splits
from serkit.utils import atomic_write_text

CORPORA = {
    "emodb": ("../shared/corpora/emodb", ProtocolConfig(name="loso", n_val_speakers=0)),
    "ravdess": ("../shared/corpora/ravdess-16k", ProtocolConfig(name="speaker_folds", speaker_groups=6,
                                                                 n_val_speakers=0)),
}
RATES = (0.8, 0.9, 1.1, 1.2)
C_GRID = (1e-4, 1e-3, 1e-2)


def compare_features(paths: list[str], rate: float, cache: FeatureCache) -> np.ndarray:
    """ComParE functionals of every clip played ``rate`` times faster (1.0: the clip itself), one cache entry
    per clip and rate (keyed by the file's content, the feature set, the audio settings and the rate)."""
    audio = AudioConfig(sample_rate=16000)
    smile = OpenSmileFunctionals(16000, "compare")
    config = {**smile.config, "audio": audio.model_dump(mode="json"), "speed_rate": rate}

    def compute(path: str) -> np.ndarray:
        y = load_clip(path, audio)
        return smile(change_speed(y, rate, 16000) if rate != 1.0 else y)

    rows = [cache.get_or_compute(cache.key(path, config), partial(compute, path))
            for path in track(paths, description=f"ComParE, speed {rate}")]
    return np.nan_to_num(np.stack(rows)).astype(np.float32)


def evaluate(make: Callable[[], object], X: np.ndarray, y: np.ndarray, splits, copies: list[np.ndarray] = (),
             gender: np.ndarray | None = None, extra: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[float, float]:
    """Mean and std over test folds of UA (%): fit on the training split (+ its copies, + ``extra``: standardised
    clips of another corpus and their labels), predict the test split."""
    uas = []
    for split in splits:
        tr, te = split.train, split.test
        X_tr = np.concatenate([X[tr]] + [c[tr] for c in copies])
        y_tr = np.concatenate([y[tr]] * (1 + len(copies)))
        X_te = X[te]
        if gender is None:
            scaler = StandardScaler().fit(X_tr)
            X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
        else:
            X_tr, X_te = _genderwise(X_tr, np.concatenate([gender[tr]] * (1 + len(copies))), X_te)
        if extra is not None:
            X_tr, y_tr = np.concatenate([X_tr, extra[0]]), np.concatenate([y_tr, extra[1]])
        uas.append(unweighted_average_recall(y[te], make().fit(X_tr, y_tr).predict(X_te)))
    return 100 * float(np.mean(uas)), 100 * float(np.std(uas))


def _genderwise(X_tr: np.ndarray, g_tr: np.ndarray, X_te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise each gender with its own training statistics; a test clip's gender is predicted (a logistic
    regression on the training speakers), never read from the metadata."""
    scaler = StandardScaler().fit(X_tr)
    g_te = LogisticRegression(C=1e-2, max_iter=3000).fit(scaler.transform(X_tr), g_tr).predict(scaler.transform(X_te))
    out_tr, out_te = np.empty_like(X_tr), np.empty_like(X_te)
    for g in np.unique(g_tr):
        s = StandardScaler().fit(X_tr[g_tr == g])
        out_tr[g_tr == g] = s.transform(X_tr[g_tr == g])
        if (g_te == g).any():
            out_te[g_te == g] = s.transform(X_te[g_te == g])
    return out_tr, out_te


def _cell(mean_std: tuple[float, float]) -> str:
    return f"{mean_std[0]:.1f} ± {mean_std[1]:.1f}"


def linear_svm(C: float) -> Callable[[], object]:
    return lambda: SVC(kernel="linear", C=C, class_weight="balanced")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="emodb")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    root, protocol = CORPORA[args.corpus]
    out = args.out or ROOT / "docs" / "results" / f"svm_ablations_{args.corpus}.md"
    cache = FeatureCache(default_cache_dir() / "features")

    table = load_corpus(args.corpus, ROOT / root).utterances
    labels = sorted(table["label"].unique())
    y = table["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    gender = table["gender"].to_numpy()
    splits = make_splits(table, protocol)
    paths = table["path"].tolist()
    X = compare_features(paths, 1.0, cache)
    speed = {r: compare_features(paths, r, cache) for r in RATES}

    rows: list[tuple[str, list[str]]] = []

    def row(name: str, make_for_C: Callable[[float], Callable[[], object]] | None = None,
            fixed: Callable[[], object] | None = None, **kw) -> None:
        t0 = time.perf_counter()
        if fixed is not None:
            cells = [_cell(evaluate(fixed, X, y, splits, **kw))] + [""] * (len(C_GRID) - 1)
        else:
            cells = [_cell(evaluate(make_for_C(C), X, y, splits, **kw)) for C in C_GRID]
        rows.append((name, cells))
        print(f"{name}: {' | '.join(cells)} ({time.perf_counter() - t0:.0f} s)", flush=True)

    row("linear SVM (the recipe's classifier)", linear_svm)
    row("+ 2 speed copies per clip (rates 0.9, 1.1)", linear_svm, copies=[speed[0.9], speed[1.1]])
    row("+ 4 speed copies per clip (rates 0.8, 0.9, 1.1, 1.2)", linear_svm, copies=[speed[r] for r in RATES])
    row("gender-wise standardisation (predicted gender)", linear_svm, gender=gender)
    row("logistic regression instead of the SVM", lambda C: (lambda: LogisticRegression(
        C=C, class_weight="balanced", max_iter=3000)))
    row("ridge classifier, alpha 1e4 (one value)", fixed=lambda: RidgeClassifier(alpha=1e4, class_weight="balanced"))
    for k in (50, 100, 200, 300):
        row(f"PCA ({k}) + LDA, equal priors (model pca_lda; no C)",
            fixed=partial(create_model, "pca_lda", num_classes=len(labels), n_components=k))
    row("ANOVA-F best 3000 of the 6373 features + linear SVM", lambda C: (lambda: make_pipeline(
        SelectKBest(f_classif, k=3000), linear_svm(C)())))
    other = {"emodb": "ravdess", "ravdess": "emodb"}[args.corpus]
    extra_table = load_corpus(other, ROOT / CORPORA[other][0]).utterances
    shared = extra_table["label"].isin(labels).to_numpy()
    X_extra = compare_features(extra_table["path"][shared].tolist(), 1.0, cache)
    y_extra = extra_table["label"][shared].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    extra = (StandardScaler().fit_transform(X_extra), y_extra)
    # one C: three times the training clips make this row the slowest to fit
    row(f"+ {other} clips of the shared emotions as training data, linear SVM, C 1e-3 (one value)",
        fixed=linear_svm(1e-3), extra=extra)
    row(f"PCA (100) + LDA + {other} clips as training data",
        fixed=partial(create_model, "pca_lda", num_classes=len(labels), n_components=100), extra=extra)

    head = " | ".join(f"C = {c:g}" for c in C_GRID)
    lines = [
        f"# ComParE functionals: exploratory ablations on {args.corpus} ({protocol.name}, {len(splits)} folds, SI)",
        "",
        "Written by `python benchmarks/svm_ablations.py --corpus " + args.corpus + "` on "
        + datetime.now(timezone.utc).strftime("%Y-%m-%d") + ". UA (%) over the test folds, mean ± std, one "
        "deterministic run each (no seeds). **C is fixed per column, not chosen on a validation speaker**, so the "
        "best cell of a row is optimistic; compare rows column by column. Standardisation statistics from the "
        "training items only; speed copies (resampled: pitch and tempo move together) of training clips only.",
        "",
        f"| variant | {head} |",
        "|---|" + "---:|" * len(C_GRID),
        *[f"| {name} | {' | '.join(cells)} |" for name, cells in rows],
        "",
    ]
    atomic_write_text(out, "\n".join(lines))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
