"""Data-parallel scaling on this machine: ``serkit train --nproc 1`` against ``--nproc 2`` on RAVDESS.

Usage (CPU-heavy: run it on an otherwise idle machine)::

    python benchmarks/bench_scaling.py [--out-root runs/scaling] [--doc docs/benchmarks]

Two short runs of the paper hold-out split (speaker-dependent, seed 0) per recipe, one per process count,
with the same global batch (the recipe's ``training.batch_size``):

* CNN-ATN (BatchNorm, dropout 0.5): seconds per training epoch, and how far 2 processes drift from 1
  (per-process BatchNorm statistics and dropout masks on CPU);
* SDNN with dropout 0 (no BatchNorm): the two runs must agree to float rounding; the largest difference of
  a test probability is reported.

Writes ``scaling.json`` and ``scaling.md`` (timings, UA of both runs, the commands) to ``--doc``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

from serkit.utils import atomic_write_text

CASES = [
    {"name": "cnn_atn", "recipe": "recipes/mountzouris2023_cnn_atn_ravdess.yaml", "args": ["--max-epochs", "6"]},
    {"name": "sdnn_no_dropout", "recipe": "recipes/mountzouris2023_sdnn_ravdess.yaml",
     "args": ["--max-epochs", "40", "--set", "model.dropout=0.0"]},
]


def run_case(case: dict, nproc: int, out_root: Path) -> dict:
    out = out_root / f"{case['name']}-nproc{nproc}"
    cmd = ["serkit", "train", case["recipe"], "--out", str(out), "--no-resume", "--quiet", *case["args"]]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.perf_counter()
    subprocess.run([str(REPO / ".venv" / "bin" / cmd[0]), *cmd[1:]], check=True, cwd=REPO)
    wall = time.perf_counter() - t0
    fold = next((out / "folds").iterdir())
    result = json.loads((fold / "result.json").read_text())
    return {
        "command": " ".join(cmd), "nproc": nproc, "wall_seconds": round(wall, 1),
        "train_seconds": result["train_seconds"], "epochs": result["epochs_run"],
        "seconds_per_epoch": round(result["train_seconds"] / result["epochs_run"], 3),
        "ua": result["ua"], "wa": result["wa"], "predictions": str(fold / "predictions.csv"),
    }


def compare(a: dict, b: dict) -> float:
    pa, pb = pd.read_csv(a["predictions"]), pd.read_csv(b["predictions"])
    cols = [c for c in pa.columns if c.startswith("p_")]
    return float((pa[cols] - pb[cols]).abs().to_numpy().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-root", type=Path, default=REPO / "runs" / "scaling")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks")
    args = parser.parse_args()
    os.environ.pop("OMP_NUM_THREADS", None)  # one process uses both cores; torchrun gives each of 2 one thread
    rows = []
    for case in CASES:
        one, two = (run_case(case, n, args.out_root) for n in (1, 2))
        rows.append({"case": case["name"], "runs": [one, two], "max_abs_proba_diff": compare(one, two),
                     "speedup": round(one["seconds_per_epoch"] / two["seconds_per_epoch"], 2)})
        print(json.dumps(rows[-1], indent=2))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    report = {"machine": machine, "cases": rows}
    atomic_write_text(args.doc / "scaling.json", json.dumps(report, indent=2))
    lines = [
        "# Data-parallel scaling: 1 vs 2 processes",
        "",
        (f"Machine: {machine} (CPU only, gloo). Produced by `python "
         "benchmarks/bench_scaling.py`; corpus RAVDESS (16 kHz FLAC, resampled as the recipes say), protocol "
         "holdout (SD: speaker-dependent 80/20 split with 10 % validation), seed 0, one fold; short schedules "
         "(`--max-epochs`), so the UA figures are for comparing the two runs, not results."),
        "",
        "| case | processes | s / epoch | speed-up | epochs | UA | WA | max abs. test-probability difference (1 vs 2) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for run in row["runs"]:
            first = run["nproc"] == 1
            speedup = "1.00" if first else f"{row['speedup']:.2f}"
            diff = "" if first else f"{row['max_abs_proba_diff']:.2e}"
            lines.append(f"| {row['case']} | {run['nproc']} | {run['seconds_per_epoch']:.3f} | {speedup} | "
                         f"{run['epochs']} | {run['ua']:.4f} | {run['wa']:.4f} | {diff} |")
    lines += ["", "Commands:", ""] + [f"- `{run['command']}`" for row in rows for run in row["runs"]]
    lines += ["", ("Reading the table: the global batch is the recipe's `training.batch_size` in both runs. The SDNN "
                   "without dropout has no per-process state, so 2 processes follow the 1-process run to float "
                   "rounding; the CNN-ATN's BatchNorm statistics are per process on CPU (SyncBatchNorm needs GPUs) "
                   "and its dropout masks differ, so its two runs differ like two seeds would."), ""]
    atomic_write_text(args.doc / "scaling.md", "\n".join(lines))


if __name__ == "__main__":
    main()
