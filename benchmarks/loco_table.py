"""LOCO table: per held-out corpus UA / WA / macro F1 of finished leave-one-corpus-out runs, and their mean.

Usage::

    .venv/bin/python benchmarks/loco_table.py runs/pool4_loco_egemaps_svm               # one run
    .venv/bin/python benchmarks/loco_table.py "linear probe=runs/probe" "serkit default=runs/default_loco" \\
        --out docs/results/loco.md                                                         # a baseline, then others

Each RUN is a run folder written by ``serkit train`` with ``protocol.name: leave_one_corpus_out`` (its
``summary.json``, ``results.csv`` and ``predictions.csv``), optionally named ``LABEL=RUN`` (default: the recipe's
name). Per held-out corpus: the mean over the run's seeds of the fold's UA, WA and macro F1 (sample std over seeds
when there are several), the test clips, the classes tested, and the collapse: the largest ratio of a class's
share of the answers to its true share (the target is at most 2); the mean row is the mean over the corpora (each
corpus weighs the same, whatever its size). Corpora below ``--min-ua`` (45 %) are named. With several runs, a
comparison table gives each run's UA per corpus and its difference from the first run (the baseline).
Writes ``--out`` (Markdown) and a ``.json`` beside it with every number, atomically.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from serkit.utils import atomic_write_text

METRICS = ("ua", "wa", "macro_f1")
NAMES = {"ua": "UA", "wa": "WA", "macro_f1": "macro F1"}
#: leave_one_corpus_out's fold names: fold01-test=emodb, with -seed0 when a run has several seeds
FOLD_NAME = re.compile(r"^fold\d+-test=(?P<corpus>.+?)(?:-seed\d+)?$")


def read_run(path: Path, label: str | None = None) -> dict:
    """One finished LOCO run folder -> its per-corpus figures, mean, tag, seeds.

    Raises
    ------
    SystemExit
        Naming the folder and file when it is not a finished leave_one_corpus_out run.
    """
    summary_file, results_file = path / "summary.json", path / "results.csv"
    for needed in (summary_file, results_file):
        if not needed.is_file():
            raise SystemExit(f"{path}: no {needed.name}; not a finished run folder of `serkit train`")
    try:
        summary = json.loads(summary_file.read_text())
        results = pd.read_csv(results_file)
    except (json.JSONDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SystemExit(f"{path}: cannot read {summary_file.name} / {results_file.name}: {exc}") from None
    if summary.get("protocol") != "leave_one_corpus_out":
        raise SystemExit(f"{summary_file}: protocol is {summary.get('protocol')!r}, not leave_one_corpus_out")
    missing = [c for c in ("fold", "seed", *METRICS) if c not in results.columns]
    if missing:
        raise SystemExit(f"{results_file}: lacks column(s) {', '.join(missing)}")
    corpora = []
    for fold in results["fold"].astype(str):
        match = FOLD_NAME.match(fold)
        if not match:
            raise SystemExit(f"{results_file}: fold {fold!r} is not a leave_one_corpus_out fold (foldNN-test=CORPUS)")
        corpora.append(match["corpus"])
    results = results.assign(corpus=corpora)
    classes: dict[str, list[str]] = {}
    collapse: dict[str, dict] = {}
    predictions = path / "predictions.csv"
    if predictions.is_file():
        preds = pd.read_csv(predictions, usecols=["fold", "true", "pred"])
        preds["corpus"] = preds["fold"].astype(str).str.extract(FOLD_NAME)["corpus"]
        classes = {c: sorted(part["true"].astype(str).unique()) for c, part in preds.groupby("corpus")}
        collapse = {c: collapse_of(part["true"].astype(str), part["pred"].astype(str))
                    for c, part in preds.groupby("corpus")}
    rows = []
    for corpus, part in results.groupby("corpus", sort=True):
        row: dict = {"corpus": corpus, "seeds": sorted(int(s) for s in part["seed"])}
        for m in METRICS:
            row[m] = float(part[m].mean())
            row[f"{m}_std"] = float(part[m].std(ddof=1)) if len(part) > 1 else None
        row["n_test"] = int(part["n_test"].iloc[0]) if "n_test" in part.columns else None
        row["tag"] = ",".join(sorted(set(part["tag"].astype(str)))) if "tag" in part.columns else None
        row["classes"] = classes.get(corpus)
        row.update(collapse.get(corpus, {}))
        rows.append(row)
    return {
        "label": label or str(summary.get("recipe") or path.name), "path": str(path),
        "recipe": summary.get("recipe"), "protocol": summary["protocol"],
        "protocol_tag": summary.get("protocol_tag"), "seeds": summary.get("seeds"),
        "missing_folds": summary.get("missing_folds", []), "rows": rows,
        "mean": {m: float(np.mean([r[m] for r in rows])) for m in METRICS},
    }


def collapse_of(true: pd.Series, pred: pd.Series) -> dict:
    """How far the answers on a corpus collapse onto one class: the largest ratio of a class's share of the
    answers to its true share (over the classes the corpus has; the target is at most 2), that class, and the
    share of answers given to classes the corpus does not have at all."""
    truth = true.value_counts(normalize=True)
    said = pred.value_counts(normalize=True)
    ratios = {c: float(said.get(c, 0.0) / share) for c, share in truth.items()}
    worst = max(ratios, key=ratios.get)
    return {"collapse_ratio": ratios[worst], "collapse_class": worst,
            "collapse_share": float(said.get(worst, 0.0)),
            "absent_share": float(said[[c for c in said.index if c not in truth.index]].sum())}


def _pct(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}" + (f" ± {std * 100:.1f}" if std is not None else "")


def markdown(runs: list[dict], min_ua: float, command: str) -> str:
    parts = ["# Leave-one-corpus-out results", "",
             ("Train on every corpus but one, validate on held-out speakers of the training corpora, test on the "
              "whole held-out corpus (speaker-independent by construction). Per held-out corpus: mean over seeds "
              "(± sample std when there are several); the mean row weighs every corpus the same. Figures in %."), ""]
    for run in runs:
        below = [r["corpus"] for r in run["rows"] if r["ua"] * 100 < min_ua]
        parts += [f"## {run['label']}", "",
                  (f"Run `{run['path']}` (recipe {run['recipe']}), protocol {run['protocol']} "
                   f"({run['protocol_tag']}), seeds {', '.join(map(str, run['seeds'] or []))}."), ""]
        if run["missing_folds"]:
            parts += [f"**INCOMPLETE**: {len(run['missing_folds'])} fold(s) did not finish: "
                      + ", ".join(run["missing_folds"]), ""]
        parts += ["| held-out corpus | UA | WA | macro F1 | test clips | worst class ratio | classes tested |",
                  "|---|---|---|---|---|---|---|"]
        for r in run["rows"]:
            ratio = (f"{r['collapse_ratio']:.2f} ({r['collapse_class']}: {100 * r['collapse_share']:.0f} % of the "
                     f"answers)" + (f"; {100 * r['absent_share']:.0f} % to classes it lacks" if r['absent_share']
                                    else "") if "collapse_ratio" in r else "")
            parts.append(f"| {r['corpus']} | {_pct(r['ua'], r['ua_std'])} | {_pct(r['wa'], r['wa_std'])} | "
                         f"{_pct(r['macro_f1'], r['macro_f1_std'])} | {r['n_test'] if r['n_test'] is not None else ''}"
                         f" | {ratio} | {', '.join(r['classes']) if r['classes'] else ''} |")
        mean = run["mean"]
        parts.append(f"| **mean** | **{_pct(mean['ua'])}** | **{_pct(mean['wa'])}** | **{_pct(mean['macro_f1'])}** "
                     "| | |")
        over = [r["corpus"] for r in run["rows"] if r.get("collapse_ratio", 0) > 2]
        parts += ["", f"Below {min_ua:g} % UA: {', '.join(below) if below else 'none'}. Collapse (a class given more "
                  f"than twice its true share of a corpus's clips): {', '.join(over) if over else 'none'}.", ""]
    if len(runs) > 1:
        base = runs[0]
        corpora = sorted({r["corpus"] for run in runs for r in run["rows"]})
        # columns by run folder, short and unique; the labels head the sections above
        head = "| held-out corpus | " + " | ".join(f"`{Path(run['path']).name}`" for run in runs) + " |"
        parts += ["## UA by run", "",
                  (f"One column per run folder (its section above says what it is); Δ: UA points against the first, "
                   f"`{Path(base['path']).name}` ({base['label']})."), "", head, "|---" * (len(runs) + 1) + "|"]

        def ua_of(run: dict, corpus: str | None) -> float | None:
            if corpus is None:
                return run["mean"]["ua"]
            return next((r["ua"] for r in run["rows"] if r["corpus"] == corpus), None)

        for corpus in [*corpora, None]:
            cells = []
            for i, run in enumerate(runs):
                value, ref = ua_of(run, corpus), ua_of(base, corpus)
                cell = _pct(value)
                if i and value is not None and ref is not None:
                    cell += f" ({(value - ref) * 100:+.1f})"
                cells.append(cell)
            name = "**mean**" if corpus is None else corpus
            parts.append(f"| {name} | " + " | ".join(cells) + " |")
        parts.append("")
    parts += [f"Command: `{command}` ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}).", ""]
    return "\n".join(parts)


def _label_and_run(item: str) -> tuple[str, str]:
    """``LABEL=RUN`` -> (LABEL, RUN), split at the last "=" (a label may hold one, e.g. a --set; a run folder's name
    does not); an existing folder whose name has a "=" is a run without a label."""
    try:
        if Path(item).is_dir():
            return "", item
    except OSError:  # a long label makes the whole item too long to be a path
        pass
    label, _, path = item.rpartition("=")
    return label, path


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="[LABEL=]RUN", help="finished leave_one_corpus_out run folders")
    parser.add_argument("--min-ua", type=float, default=45.0, help="name the corpora below this UA (%%)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "loco.md")
    args = parser.parse_args(argv)
    runs = []
    for item in args.runs:
        label, path = _label_and_run(item)
        runs.append(read_run(Path(path), label or None))
    command = shlex.join(["python", "benchmarks/loco_table.py", *(sys.argv[1:] if argv is None else argv)])
    atomic_write_text(args.out.with_suffix(".json"), json.dumps({"command": command, "min_ua": args.min_ua,
                                                                  "runs": runs}, indent=2))
    atomic_write_text(args.out, markdown(runs, args.min_ua, command))
    print(f"wrote {args.out} and {args.out.with_suffix('.json').name}")
    return runs


if __name__ == "__main__":
    main()
