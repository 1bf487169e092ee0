"""Wall time, training throughput and peak memory of a full recipe run (default: serkit_cnn on EmoDB, LOSO).

Usage::

    python benchmarks/bench_training.py [--recipe recipes/serkit_cnn_emodb.yaml] [--jobs 2] [--out docs/benchmarks/training.md]

Runs ``serkit train RECIPE --jobs N --no-resume`` into a temporary folder (features come from the feature cache
when present: the first run also pays for feature extraction, which the report separates) and writes the wall
time, the clips per second of training (training items x epochs / training seconds, summed over folds), the peak
resident memory of the largest process, and the accuracy of that run, to ``docs/benchmarks/training.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from serkit.utils import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "serkit_cnn_emodb.yaml")
    parser.add_argument("--jobs", type=int, default=2, help="folds trained at once (one torch thread each)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "training.md")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    serkit = Path(sys.executable).with_name("serkit")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [str(serkit), "train", str(args.recipe), "--out", str(run), "--no-resume", "-q",
               "--set", "training.num_threads=1"]
        if args.jobs > 1:
            cmd += ["--jobs", str(args.jobs)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        per_fold = pd.read_csv(run / "results.csv")
        summary = json.loads((run / "summary.json").read_text())
    items = ((per_fold["n_train"] + per_fold["n_augmented"]) * per_fold["epochs_run"]).sum()
    clips_per_s = items / per_fold["train_seconds"].sum()
    load_after = os.getloadavg()[0]
    shown_cmd = " ".join(["serkit", *cmd[1:3], "--jobs", str(args.jobs), "--set", "training.num_threads=1"])
    md = f"""# Training speed: a full recipe run

Command: `python benchmarks/bench_training.py --recipe {args.recipe.relative_to(ROOT) if args.recipe.is_absolute() else args.recipe} --jobs {args.jobs}`
(which runs `{shown_cmd}` on a fresh output folder). Machine: {platform.machine()}, {os.cpu_count()} cores;
{datetime.now(timezone.utc).isoformat(timespec="seconds")}; 1-minute load average before / after:
{load_before:.2f} / {load_after:.2f}.

| recipe | corpus | protocol | folds | wall time | training throughput | peak memory (largest process) | UA | WA | macro F1 |
|---|---|---|---:|---:|---:|---:|---:|---:|---:|
| {summary['recipe']} | {summary['corpus']} | {summary['protocol']} ({summary['protocol_tag']}) | {summary['folds']} | {wall / 60:.1f} min | {clips_per_s:.0f} clips/s | {peak_mb:.0f} MB | {summary['mean']['ua'] * 100:.1f} | {summary['mean']['wa'] * 100:.1f} | {summary['mean']['macro_f1'] * 100:.1f} |

- Wall time covers everything: start-up, corpus scan, features (read from the feature cache when an earlier
  run filled it), {summary['folds']} folds trained {args.jobs} at a time with one torch thread each, tables and plots.
- Throughput: training items x epochs run / training seconds, over all folds (each fold's own clock).
- Target (accuracy issue): the full EmoDB leave-one-speaker-out run in at most 15 minutes.
"""
    atomic_write_text(args.out, md)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps({
        "recipe": summary["recipe"], "jobs": args.jobs, "wall_seconds": wall, "clips_per_second": clips_per_s,
        "peak_rss_mb": peak_mb, "mean": summary["mean"], "load_before": load_before, "load_after": load_after,
    }, indent=2))
    print(md)


if __name__ == "__main__":
    main()
