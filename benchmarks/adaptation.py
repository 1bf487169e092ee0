"""Which adaptation survives lopsided material? Chosen on the training corpora, then reported on corpora never heard.

Usage::

    .venv/bin/python benchmarks/adaptation.py --run runs/pool5_loco_whisper

A person's own recordings seldom cover the emotions evenly. This simulates enrolment sets of every shape on the
validation speakers of each fold of a leave-one-corpus-out run (speakers of the fold's training corpora whom the
fold model never trained on: ``refit: false``), adapts the fold's model to each set by every candidate method of
:mod:`serkit.features.adaptation`, and scores the speaker's clips outside the set, against the strict model on the
same clips (UA, pooled per corpus over its speakers). Enrolment mixes (drawn ``--draws`` times per speaker):

- ``as recorded``: a random half of the speaker's clips;
- ``80 % neutral``: 16 neutral clips and 4 of other emotions;
- ``two emotions``: up to 20 clips of two emotions (one of them not neutral);
- ``one emotion``: up to 20 clips of one emotion other than neutral (a person sad in every recording);
- ``calm reading``: 5 neutral clips (the enrolment by a short calm reading).

**The rule, fixed before any figure was seen:** the general method is the candidate (``neutral`` excluded: it is
right only for a calm reading) with the largest mean gain on ``as recorded`` among those whose worst gain over every
(validation corpus, mix) cell is at least -2 UA points; when none is, the candidate with the best worst cell. The
calm-reading method is the candidate with the largest mean gain on ``calm reading``, under the same floor. Only
validation speakers choose; the fold's held-out corpus is scored afterwards with the chosen methods (the second
table), so nothing is chosen on a corpus never heard.

Writes ``--out`` (Markdown) and a ``.json`` beside it, atomically.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from serkit.evaluation.heldout import read_run_material
from serkit.features.adaptation import AdaptationConfig
from serkit.metrics import compute_metrics
from serkit.utils import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
MIXES = ("as recorded", "80 % neutral", "two emotions", "one emotion", "calm reading")
CANDIDATES: list[AdaptationConfig] = [
    AdaptationConfig(method="standardise"),
    AdaptationConfig(method="standardise", shrink=20),
    AdaptationConfig(method="centre"),
    AdaptationConfig(method="centre", shrink=10),
    AdaptationConfig(method="centre", shrink=20),
    AdaptationConfig(method="centre", shrink=40),
    AdaptationConfig(method="balanced", prior=0.0),
    AdaptationConfig(method="balanced", prior=0.5),
    AdaptationConfig(method="balanced", prior=0.0, shrink=10),
    AdaptationConfig(method="balanced", prior=0.5, shrink=10),
    AdaptationConfig(method="balanced", prior=0.0, shrink=20),
    AdaptationConfig(method="neutral"),
    AdaptationConfig(method="neutral", shrink=5),
    AdaptationConfig(method="neutral", shrink=10),
]
FLOOR = -2.0  # UA points: the most an adaptation may lose against strict in any cell


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a finished leave-one-corpus-out run folder")
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", type=Path, help="feature cache, as serkit train --cache-dir (default $SERKIT_CACHE/features)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "adaptation.md")
    return p.parse_args(argv)


def enrolment(mix: str, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Positions of the enrolment clips among the speaker's clips for ``mix``, or None when the speaker cannot
    give that mix (and at least 5 clips must be left to score)."""
    n = len(labels)
    by = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    neutral = by.get("neutral", np.zeros(0, int))
    others = np.flatnonzero(labels != "neutral")
    emotional = [c for c in by if c != "neutral"]
    if mix == "as recorded":
        picked = rng.choice(n, n // 2, replace=False)
    elif mix == "80 % neutral":
        if len(neutral) < 8 or len(others) < 2:
            return None
        k = min(16, len(neutral) - 2)
        picked = np.concatenate([rng.choice(neutral, k, replace=False),
                                 rng.choice(others, min(len(others), max(1, k // 4)), replace=False)])
    elif mix == "two emotions":
        if not emotional or len(by) < 3:
            return None
        first = rng.choice(emotional)
        second = rng.choice([c for c in by if c != first])
        pool = np.concatenate([by[first], by[second]])
        picked = rng.choice(pool, min(20, len(pool)), replace=False)
    elif mix == "one emotion":
        if not emotional or len(by) < 2:
            return None
        pool = by[rng.choice(emotional)]
        picked = rng.choice(pool, min(20, len(pool)), replace=False)
    else:
        if len(neutral) < 6:
            return None
        picked = rng.choice(neutral, 5, replace=False)
    return picked if n - len(picked) >= 5 else None


def simulate(material, fold, rows: np.ndarray, args, candidates: list[AdaptationConfig]) -> list[dict]:
    """One row per (speaker, mix, draw): strict and every candidate's UA on the clips outside the enrolment, with
    the scored clips' labels and answers kept so that a corpus's UA can be pooled over its speakers."""
    pipeline = fold.pipeline
    classes = list(pipeline.labels)
    table = material.table
    out = []
    spk = table["speaker"].to_numpy()[rows]
    for speaker in sorted(set(spk)):
        mine = rows[spk == speaker]
        labels = table["label"].to_numpy()[mine].astype(str)
        X = material.X[mine]
        strict = pipeline.proba_of_features(X, None, len(mine))
        for mix in MIXES:
            for draw in range(args.draws):
                rng = np.random.default_rng([args.seed, draw, zlib.crc32(f"{speaker}/{mix}".encode())])
                enrol = enrolment(mix, labels, rng)
                if enrol is None:
                    continue
                scored = np.setdiff1d(np.arange(len(mine)), enrol)
                row = {"speaker": speaker, "corpus": str(table["corpus"].iloc[mine[0]]), "mix": mix, "draw": draw,
                       "true": labels[scored].tolist(), "strict": np.asarray(classes)[strict[scored].argmax(1)].tolist()}
                for config in candidates:
                    adapted, _ = pipeline.adapted(X[enrol], source=speaker, config=config)
                    proba = adapted.proba_of_features(X[scored], None, len(scored))
                    row[config.describe()] = np.asarray(classes)[proba.argmax(1)].tolist()
                out.append(row)
    return out


def cells(rows: list[dict], names: list[str]) -> dict:
    """(corpus, mix) -> {"strict": UA, name: UA, "speakers": n}: each pooled over the corpus's speakers' draws."""
    out: dict = {}
    for corpus in sorted({r["corpus"] for r in rows}):
        for mix in MIXES:
            sel = [r for r in rows if r["corpus"] == corpus and r["mix"] == mix]
            if not sel:
                continue
            true = [t for r in sel for t in r["true"]]
            entry = {"speakers": len({r["speaker"] for r in sel}), "clips": len(true)}
            for name in ["strict", *names]:
                pred = [p for r in sel for p in r[name]]
                entry[name] = 100 * float(compute_metrics(true, pred, sorted(set(true) | set(pred)))["ua"])
            out[f"{corpus}|{mix}"] = entry
    return out


def choose(table: dict, names: list[str], mixes: Sequence[str], lead: str) -> tuple[str, dict]:
    """The rule of the module docstring over the cells of ``mixes``; returns the choice and each name's scores."""
    scores = {}
    for name in names:
        gains = {k: v[name] - v["strict"] for k, v in table.items() if k.split("|")[1] in mixes}
        lead_gains = [g for k, g in gains.items() if k.split("|")[1] == lead]
        scores[name] = {"worst": min(gains.values()), "worst_cell": min(gains, key=gains.get),
                        "lead_gain": float(np.mean(lead_gains))}
    safe = [n for n in names if scores[n]["worst"] >= FLOOR]
    chosen = max(safe, key=lambda n: scores[n]["lead_gain"]) if safe else max(names, key=lambda n: scores[n]["worst"])
    return chosen, scores


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/adaptation.py", *(sys.argv[1:] if argv is None else argv)])
    started = time.perf_counter()
    material = read_run_material(args.run, cache_dir=args.cache_dir)
    names = [c.describe() for c in CANDIDATES]
    val_rows, test_rows = [], []
    for fold in material.folds:
        val_rows += simulate(material, fold, fold.split.val, args, CANDIDATES)
        print(f"{fold.split.name}: validation speakers done", file=sys.stderr)
    val = cells(val_rows, names)
    general = [c.describe() for c in CANDIDATES if c.method != "neutral"]
    chosen, scores = choose(val, general, [m for m in MIXES if m != "calm reading"], "as recorded")
    calm, calm_scores = choose(val, names, ["calm reading"], "calm reading")
    picked = [c for c in CANDIDATES if c.describe() in (chosen, calm)]
    for fold in material.folds:
        test_rows += simulate(material, fold, fold.split.test, args, picked)
        print(f"{fold.split.name}: held-out corpus done", file=sys.stderr)
    test = cells(test_rows, [c.describe() for c in picked])
    report = {"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "run": str(args.run), "recipe": material.recipe.name, "draws": args.draws, "seed": args.seed,
              "floor": FLOOR, "candidates": [c.model_dump() for c in CANDIDATES], "chosen": chosen,
              "chosen_config": next(c.model_dump() for c in CANDIDATES if c.describe() == chosen),
              "calm_reading": calm, "calm_config": next(c.model_dump() for c in CANDIDATES if c.describe() == calm),
              "scores": scores, "calm_scores": calm_scores, "validation": val, "held_out": test,
              "seconds": round(time.perf_counter() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1))
    atomic_write_text(args.out, markdown(report, names))
    print(f"chose {chosen!r} (calm reading: {calm!r}); wrote {args.out}", file=sys.stderr)
    return report


def markdown(report: dict, names: list[str]) -> str:
    def table(cells_: dict, cols: list[str]) -> list[str]:
        lines = ["| corpus | mix | speakers | strict UA | " + " | ".join(cols) + " |",
                 "|---|---|---:|---:|" + "---:|" * len(cols)]
        for key, v in cells_.items():
            corpus, mix = key.split("|")
            lines.append(f"| {corpus} | {mix} | {v['speakers']} | {v['strict']:.1f} | "
                         + " | ".join(f"{v[c] - v['strict']:+.1f}" for c in cols) + " |")
        return lines

    chosen, calm = report["chosen"], report["calm_reading"]
    out = ["# Adaptation to a person: which method survives lopsided material", "",
           f"Command: `{report['command']}` ({report['date'][:10]}, {report['seconds']:.0f} s). Run "
           f"`{report['run']}` ({report['recipe']}), seed {report['seed']}, {report['draws']} draws per speaker and "
           "mix. UA in %, pooled per corpus over its speakers' scored clips (the clips outside the enrolment set); "
           "the candidates' columns are gains over the strict model on the same clips (adapted results, never "
           "strict ones).", "",
           f"**Chosen for serkit's adaptation: `{chosen}`**; for a calm reading: **`{calm}`**. The rule (written in "
           f"benchmarks/adaptation.py before the first run): the largest mean gain on `as recorded` among the "
           f"methods whose worst (corpus, mix) cell loses at most {-report['floor']:g} points, chosen on the "
           "validation speakers of the training corpora only.", "",
           "## Validation speakers of the training corpora (these choose)", "",
           *table(report["validation"], names), "",
           "| method | worst gain | in | mean gain, as recorded |", "|---|---:|---|---:|"]
    for name, s in {**report["scores"], **{k: v for k, v in report["calm_scores"].items()
                                           if k not in report["scores"]}}.items():
        out.append(f"| {name} | {s['worst']:+.1f} | {s['worst_cell']} | {s['lead_gain']:+.1f} |")
    picked = [chosen] + ([calm] if calm != chosen else [])
    out += ["", "## Corpora never heard (each fold's held-out corpus; nothing here chose)", "",
            *table(report["held_out"], picked), ""]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
