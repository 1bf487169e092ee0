"""An int8 encoder against the float32 one: does the default system keep its accuracy and its trends?

Usage::

    .venv/bin/python benchmarks/precision.py --run loco=runs/pool5_loco_whisper --run folds=runs/serkit_default

Every utterance of each run is encoded twice, by the recipe's encoder at float32 (what the fold models were trained
on, read from the feature cache) and with its Linear layers as int8 dynamic quantisation
(:func:`serkit.features.whisper.quantize_linear_int8`), and each fold's model scores its own test speakers from
both: UA per held-out corpus (strict, SI: the runs' own folds), the agreement of the two answers, and the cosine
between the two feature vectors. The target (issue 26): UA within 0.3 points of the float path on the speaker folds
and on leave-one-corpus-out. The speed of both is in docs/benchmarks/encoder.md (``bench_encoder.py``). Writes
``--out`` (Markdown) and a ``.json`` beside it, atomically.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from serkit.evaluation.heldout import read_run_material
from serkit.metrics import compute_metrics
from serkit.utils import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
TARGET_POINTS = 0.3


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, metavar="KIND=RUN")
    p.add_argument("--cache-dir", type=Path, help="feature cache, as serkit train --cache-dir")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "precision.md")
    return p.parse_args(argv)


def compare(run: Path, cache_dir: Path | None) -> dict:
    started = time.perf_counter()
    full = read_run_material(run, cache_dir=cache_dir)
    quant = read_run_material(run, cache_dir=cache_dir, precision="int8", progress=True)
    assert (full.table["utterance_id"].to_numpy() == quant.table["utterance_id"].to_numpy()).all()
    a, b = full.X.reshape(len(full.X), -1), quant.X.reshape(len(quant.X), -1)
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    per_corpus: dict[str, dict[str, list]] = {}
    for fold in full.folds:
        rows = fold.split.test
        labels = full.table["label"].to_numpy()[rows].astype(str)
        classes = np.asarray(fold.pipeline.labels)
        pred_f = classes[fold.pipeline.proba_of_features(full.X[rows], None, len(rows)).argmax(1)]
        pred_q = classes[fold.pipeline.proba_of_features(quant.X[rows], None, len(rows)).argmax(1)]
        for corpus in np.unique(full.corpus_of(rows)):
            sel = full.corpus_of(rows) == corpus
            entry = per_corpus.setdefault(str(corpus), {"true": [], "float32": [], "int8": []})
            entry["true"] += labels[sel].tolist()
            entry["float32"] += pred_f[sel].tolist()
            entry["int8"] += pred_q[sel].tolist()
    corpora = {}
    for corpus, e in per_corpus.items():
        labels = sorted(set(e["true"]) | set(e["float32"]) | set(e["int8"]))
        ua = {p: 100 * compute_metrics(e["true"], e[p], labels)["ua"] for p in ("float32", "int8")}
        corpora[corpus] = {"clips": len(e["true"]), "ua_float32": ua["float32"], "ua_int8": ua["int8"],
                           "delta": ua["int8"] - ua["float32"],
                           "agreement": float(np.mean(np.array(e["float32"]) == np.array(e["int8"])))}
    return {"run": str(run), "recipe": full.recipe.name, "folds": len(full.folds), "corpora": corpora,
            "mean_delta": float(np.mean([c["delta"] for c in corpora.values()])),
            "cosine": {"mean": float(cosine.mean()), "min": float(cosine.min())},
            "seconds": round(time.perf_counter() - started, 1)}


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/precision.py", *(sys.argv[1:] if argv is None else argv)])
    runs = {}
    for item in args.run:
        kind, _, run = item.partition("=")
        runs[kind] = compare(Path(run), args.cache_dir)
    report = {"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "target_points": TARGET_POINTS, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1))
    atomic_write_text(args.out, markdown(report))
    return report


def markdown(report: dict) -> str:
    lines = ["# The int8 encoder against the float32 one", "",
             f"Command: `{report['command']}` ({report['date'][:10]}). Each fold model of each run scores its own "
             "test speakers (SI, strict) from the features of the float32 encoder it was trained on and from those "
             "of the int8 one (its Linear layers as dynamic quantisation); UA in %, the share of clips given the "
             f"same label, and the cosine between the feature vectors. Target: UA within {report['target_points']} "
             "points of float32 (issue 26). Nothing here chose anything.", ""]
    for kind, r in report["runs"].items():
        met = all(abs(c["delta"]) <= report["target_points"] for c in r["corpora"].values())
        lines += [f"## {kind}: `{r['run']}` ({r['recipe']}, {r['folds']} folds, {r['seconds']:.0f} s)", "",
                  "| corpus | clips | UA float32 | UA int8 | difference | same label |",
                  "|---|---:|---:|---:|---:|---:|"]
        for corpus, c in r["corpora"].items():
            lines.append(f"| {corpus} | {c['clips']} | {c['ua_float32']:.1f} | {c['ua_int8']:.1f} | "
                         f"{c['delta']:+.2f} | {100 * c['agreement']:.1f} % |")
        mean_f = np.mean([c["ua_float32"] for c in r["corpora"].values()])
        mean_q = np.mean([c["ua_int8"] for c in r["corpora"].values()])
        lines += [f"| **mean** | | {mean_f:.1f} | {mean_q:.1f} | {mean_q - mean_f:+.2f} | |", "",
                  f"Feature cosine, int8 against float32: mean {r['cosine']['mean']:.4f}, worst "
                  f"{r['cosine']['min']:.4f}. Within {report['target_points']} points on every corpus: "
                  f"{'yes' if met else 'no'}.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
