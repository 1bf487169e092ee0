"""Fan-out of folds: a protocol's folds (and seeds) run as independent jobs that share one run folder.

A fold is finished when its ``folds/<fold>/result.json`` exists, so jobs need no coordination beyond the
file system: any process, on any machine that sees the run folder, may run any subset of folds
(``serkit train RECIPE --out RUN --folds 3,7``), a killed job resumes its fold from the last epoch checkpoint
when run again, and the run's table is built from whatever finished (:func:`collect_run`).

:func:`run_fanout` does this on one machine: it prepares the run once (recipe, features into the cache,
splits), then keeps ``jobs`` worker processes busy, one fold each, retries a fold whose worker failed or was
killed, and ends with the table plus a list of folds that failed every attempt. Each attempt is logged to
``fanout/<fold>.log``; ``fanout/jobs.csv`` records every fold's outcome.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Console

from serkit.errors import ConfigError
from serkit.recipe import Recipe
from serkit.training.evaluate import collect_run
from serkit.training.experiment import ExperimentResult, load_recipe_corpus, run_experiment, select_folds
from serkit.training.metrics import write_csv
from serkit.training.protocols import make_splits, split_summary
from serkit.utils import atomic_write_text

# A worker command for one fold: (run folder, fold name) -> argv. Tests swap in a wrapper.
WorkerCommand = Callable[[Path, str], list[str]]


@dataclass
class FoldJob:
    """The outcome of one fold's job: ``finished`` or ``failed`` after ``attempts`` tries."""

    fold: str
    status: str = "pending"
    attempts: int = 0
    returncode: int | None = None
    seconds: float = 0.0
    log: str = ""


@dataclass
class FanoutReport:
    """What :func:`run_fanout` did: every fold's job, the folds that failed, and the run's table."""

    out_dir: Path
    jobs: list[FoldJob]
    failed: list[str]
    result: ExperimentResult | None = None
    missing: list[str] = field(default_factory=list)


def list_folds(recipe: Recipe, *, recipe_file: str | Path | None = None) -> pd.DataFrame:
    """The protocol's folds, numbered from 1 as ``--folds`` takes them, with their sizes and test speakers.

    Built from the utterance table without reading audio, so a file that later fails to load is still
    counted here (the fold names do not change).
    """
    table = load_recipe_corpus(recipe, recipe_file=recipe_file).utterances.reset_index(drop=True)
    frame = split_summary(make_splits(table, recipe.protocol), table)
    frame.insert(0, "number", range(1, len(frame) + 1))
    return frame[["number", "name", "seed", "tag", "n_train", "n_val", "n_test", "test_speakers"]]


def worker_command(recipe_file: str | Path | None = None, cache_dir: str | Path | None = None) -> WorkerCommand:
    """The default worker: ``python -m serkit.training.fanout RUN FOLD`` with the run's saved recipe."""

    def command(out: Path, fold: str) -> list[str]:
        argv = [sys.executable, "-m", "serkit.training.fanout", str(out), fold]
        if recipe_file is not None:
            argv += ["--recipe-file", str(Path(recipe_file).resolve())]
        if cache_dir is not None:
            argv += ["--cache-dir", str(Path(cache_dir).resolve())]
        return argv

    return command


def run_fanout(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    jobs: int = 2,
    retries: int = 1,
    folds: Sequence[str] | None = None,
    recipe_file: str | Path | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    command: WorkerCommand | None = None,
) -> FanoutReport:
    """Run the recipe's folds as ``jobs`` parallel worker processes on this machine, then collect the table.

    Parameters
    ----------
    jobs : worker processes at a time; each gets ``cpu_count // jobs`` torch threads unless the recipe sets
        ``training.num_threads``.
    retries : further attempts for a fold whose worker fails or is killed (it resumes from its checkpoint).
    folds : fold names or 1-based numbers to run; None runs all.
    resume : False clears earlier folds first.
    command : builds a worker's argv (default :func:`worker_command`).

    Returns
    -------
    FanoutReport
        ``failed`` names the folds that failed every attempt; the table covers the folds that finished
        (``result`` is None when none did) and ``missing`` lists the rest.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give at least one worker")
    if retries < 0:
        raise ConfigError(f"--retries {retries}: cannot be negative")
    console = Console(stderr=True, quiet=not progress)
    out = Path(out_dir).resolve()
    if not resume and (out / "folds").exists():
        shutil.rmtree(out / "folds")
    # Prepare once (recipe.yaml, features into the cache, splits.csv) so that workers only read the cache.
    prepared = run_experiment(recipe, out, recipe_file=recipe_file, resume=resume, progress=progress,
                              cache_dir=cache_dir, folds=[])
    expected = pd.read_csv(out / "splits.csv")["name"].astype(str).tolist()
    wanted = set(select_folds(expected, folds))
    todo = [name for name in expected if name in wanted and name in prepared.pending]
    console.print(f"fan-out: {len(todo)} fold(s) to run with {jobs} worker(s); "
                  f"{len(expected) - len(prepared.pending)} already finished")

    command = command or worker_command(recipe_file, cache_dir)
    logs = out / "fanout"
    logs.mkdir(exist_ok=True)
    env = dict(os.environ)
    if recipe.training.num_threads is None:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    records = {name: FoldJob(name, log=str(logs / f"{name}.log")) for name in todo}
    lock = threading.Lock()

    def run_one(name: str) -> None:
        job = records[name]
        t0 = time.perf_counter()
        while job.attempts <= retries:
            job.attempts += 1
            with open(job.log, "a", encoding="utf-8") as log_file:
                log_file.write(f"--- attempt {job.attempts} ---\n")
                log_file.flush()
                proc = subprocess.Popen(command(out, name), stdout=log_file, stderr=subprocess.STDOUT, env=env)
                atomic_write_text(logs / f"{name}.pid", str(proc.pid))
                job.returncode = proc.wait()
            (logs / f"{name}.pid").unlink(missing_ok=True)
            if job.returncode == 0 and (out / "folds" / name / "result.json").exists():
                job.status = "finished"
                break
            job.status = "failed"
            console.print(f"[yellow]fold {name}: attempt {job.attempts} {_describe_exit(job.returncode)}"
                          f"{'; retrying' if job.attempts <= retries else ''} (log {job.log})[/]")
        job.seconds = round(time.perf_counter() - t0, 2)
        with lock:
            console.print(f"fold {name}: {job.status} after {job.attempts} attempt(s)")
            _write_jobs(logs / "jobs.csv", records)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run_one, todo))
    _write_jobs(logs / "jobs.csv", records)
    failed = [name for name in todo if records[name].status != "finished"]
    try:
        result, missing = collect_run(out)
    except ConfigError:  # no fold finished: nothing to tabulate, the report says what failed
        result, missing = None, [n for n in expected if not (out / "folds" / n / "result.json").exists()]
    return FanoutReport(out, [records[n] for n in todo], failed, result, missing)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not start"
    if code < 0:
        import signal

        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}" if code else "exited without writing result.json"


def _write_jobs(path: Path, records: dict[str, FoldJob]) -> None:
    write_csv(pd.DataFrame([asdict(j) for j in records.values()],
                           columns=["fold", "status", "attempts", "returncode", "seconds", "log"]), path)


def _worker_main(argv: Sequence[str] | None = None) -> int:
    """``python -m serkit.training.fanout RUN FOLD``: run one fold of a prepared run folder."""
    parser = argparse.ArgumentParser(prog="python -m serkit.training.fanout", description=_worker_main.__doc__)
    parser.add_argument("run", type=Path, help="run folder prepared by run_fanout (holds recipe.yaml)")
    parser.add_argument("fold", help="fold name or 1-based number")
    parser.add_argument("--recipe-file", default=None, help="the original recipe file (resolves relative roots)")
    parser.add_argument("--cache-dir", default=None, help="feature cache")
    args = parser.parse_args(argv)
    recipe = Recipe.from_yaml(args.run / "recipe.yaml")
    run_experiment(recipe, args.run, recipe_file=args.recipe_file, resume=True, progress=False,
                   cache_dir=args.cache_dir, folds=[args.fold])
    return 0


if __name__ == "__main__":  # pragma: no cover - worker entry point, exercised through subprocesses in the tests
    sys.exit(_worker_main())
