"""Copy finished serkit runs into docs/results/ and rebuild the results index.

Usage::

    python benchmarks/publish_results.py RUN_DIR [RUN_DIR ...] --command "serkit train ..." [--docs docs/results]

Each run goes to ``docs/results/<run folder name>/`` (results.md with the command, machine and date on top,
results.csv, summary.json, confusion.png); ``docs/results/README.md`` lists every published run with its
corpus, protocol tag, folds, seeds and UA / WA / macro F1 (mean ± std over folds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from serkit.utils import atomic_write_bytes, atomic_write_text


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def publish(run: Path, docs: Path, command: str) -> Path:
    summary = json.loads((run / "summary.json").read_text())
    dest = docs / run.name
    dest.mkdir(parents=True, exist_ok=True)
    header = (
        f"<!-- published by benchmarks/publish_results.py -->\n"
        f"Command: `{command}`  \n"
        f"Machine: {machine()}  \n"
        f"Date: {datetime.now(timezone.utc).date().isoformat()}  \n"
        f"Corpus: {summary['corpus']}; protocol: {summary['protocol']} ({summary['protocol_tag']}); "
        f"folds: {summary['folds']}; seeds: {summary['seeds']}; training time (all folds): "
        f"{summary['train_seconds_total']:.0f} s\n\n"
    )
    atomic_write_text(dest / "results.md", header + (run / "results.md").read_text())
    for name in ("results.csv", "summary.json", "confusion.png"):
        atomic_write_bytes(dest / name, (run / name).read_bytes())
    meta = {"command": command, "run": run.name, "machine": machine()}
    atomic_write_text(dest / "command.json", json.dumps(meta, indent=2))
    return dest


NORMALISATION = {
    "global": "training split",
    "per_speaker": "per speaker (test speaker: its own unlabelled audio)",
    "none": "none",
}


def rebuild_index(docs: Path) -> None:
    rows = []
    for summary_file in sorted(docs.glob("*/summary.json")):
        s = json.loads(summary_file.read_text())
        cmd = json.loads((summary_file.parent / "command.json").read_text())["command"]

        def cell(metric: str) -> str:
            mean, std = s["mean"][metric] * 100, s["std"][metric]
            return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std * 100:.1f}"

        rows.append(
            f"| [{s['recipe']}]({summary_file.parent.name}/results.md) | {s['corpus']} | {s['protocol']} | "
            f"{s['protocol_tag']} | {NORMALISATION.get(s.get('normalization'), s.get('normalization'))} | {s['folds']} | {','.join(map(str, s['seeds']))} | {cell('ua')} | {cell('wa')} | "
            f"{cell('macro_f1')} | `{cmd}` |"
        )
    # Every top-level page (one per paper, plus serkit.md) is linked; run folders are in the table.
    pages = sorted(p.stem for p in docs.glob("*.md") if p.name != "README.md")
    links = ", ".join(f"[{name}]({name}.md)" for name in pages if name != "serkit")
    text = (
        "# Measured results\n\n"
        "Every figure here was measured by serkit on this project's machines with the command shown; none is\n"
        "copied from a paper. UA = unweighted average recall, WA = accuracy, F1 = macro F1, in %, mean ± sample\n"
        "standard deviation over folds (each fold's own test set). SI = speaker-independent (no test speaker in\n"
        "training or validation); SD = speaker-dependent (a speaker's clips fall on both sides of the split).\n"
        "Corpora: EmoDB (Burkhardt et al. 2005), RAVDESS speech (Livingstone & Russo 2018, CC BY-NC-SA 4.0),\n"
        "nEMO (Christop 2024, CC BY-NC-SA 4.0), EMOVO (Costantini et al. 2014). Leave-one-corpus-out runs\n"
        "(protocol leave_one_corpus_out) test each corpus whole on a model trained on the others: [loco.md](loco.md).\n\n"
        "| recipe | corpus | protocol | tag | normalisation | folds | seeds | UA | WA | F1 | command |\n"
        "|---|---|---|---|---|---:|---|---:|---:|---:|---|\n" + "\n".join(rows) + "\n\n"
        f"Per-paper pages set these beside the papers' own figures: {links}.\n"
        + ("serkit's own recipe, its ablations and the accuracy targets: [serkit.md](serkit.md).\n"
           if "serkit" in pages else "")
        + "Speed (frontends against librosa, inference, training, analyze, scaling): [../benchmarks/](../benchmarks/).\n"
    )
    atomic_write_text(docs / "README.md", text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--command", required=True, help="the command that produced the run(s)")
    ap.add_argument("--docs", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results")
    args = ap.parse_args()
    for run in args.runs:
        print(publish(run, args.docs, args.command))
    rebuild_index(args.docs)


if __name__ == "__main__":
    main()
