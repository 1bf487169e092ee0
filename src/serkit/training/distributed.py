"""Data parallelism with ``torch.distributed``: process-group set-up, collectives the trainer needs, the launcher.

One process per device (a CPU core group or a GPU) trains a replica of the model with
``DistributedDataParallel``; gloo carries the gradients on CPU, NCCL on GPUs. Every process reads the same
recipe, features (the feature cache is shared) and splits, so the protocol's splits are identical on every
rank; each rank trains on its share of every global batch, and predictions are gathered before any metric
is computed. Only rank 0 writes files.

Two ways to start the processes, the same entry point for both:

* ``serkit train RECIPE --nproc N`` calls :func:`launch`, which runs ``torch.distributed.run`` (torchrun's
  elastic agent) in-process: it starts N workers on this machine, watches them, and ends the job when one
  of them dies;
* ``torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT -m serkit.cli train
  RECIPE`` on each of M machines (see ``docs/distributed.md``).

A worker finds itself in a distributed job by the environment torchrun sets (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); :func:`init_distributed` then joins the process group with a
timeout (``SERKIT_DIST_TIMEOUT`` seconds, default 1800) so that a rank that stops answering ends the job
with an error instead of a hang.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from serkit.errors import SerkitError

log = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT_ENV = "SERKIT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0


class DistributedError(SerkitError):
    """A distributed job could not start, or one of its processes failed."""


# -- where am I ----------------------------------------------------------------------------------------------
def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """The number of processes in the job (1 when not distributed)."""
    return dist.get_world_size() if is_initialized() else 1


def get_local_rank() -> int:
    """This process's index on its machine (torchrun's ``LOCAL_RANK``; 0 when not distributed)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_initialized() else 0


def is_main_process() -> bool:
    """True on rank 0, the only process that writes files."""
    return get_rank() == 0


def launched_distributed() -> bool:
    """True when torchrun (or ``serkit train --nproc``) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout_from_env() -> float:
    """Seconds a collective may wait for the other ranks (``SERKIT_DIST_TIMEOUT``, default 1800)."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise DistributedError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise DistributedError(f"{TIMEOUT_ENV}={raw!r}: must be positive")
    return value


# -- set-up --------------------------------------------------------------------------------------------------
def init_distributed(device: str = "cpu", *, timeout_s: float | None = None) -> bool:
    """Join the process group described by torchrun's environment variables; return whether distributed.

    Parameters
    ----------
    device : the recipe's ``training.device``: ``cuda``/``auto`` with CUDA present selects NCCL and pins this
        process to GPU ``LOCAL_RANK``; anything else selects gloo.
    timeout_s : how long a collective waits for the other ranks; None reads ``SERKIT_DIST_TIMEOUT``.

    Returns
    -------
    bool
        False (and nothing done) when the environment describes a single process.
    """
    if is_initialized():
        return True
    if not launched_distributed():
        return False
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DistributedError(f"WORLD_SIZE is set but {', '.join(missing)} is not: start the job with torchrun "
                               "or `serkit train --nproc N`")
    timeout = timeout_s if timeout_s is not None else timeout_from_env()
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise DistributedError(f"training.device {device!r}: CUDA is not available on this machine")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) here: "
                                   "use --nproc-per-node <= the number of GPUs")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
    log.info("rank %d of %d joined (%s, timeout %.0f s)", dist.get_rank(), dist.get_world_size(), backend, timeout)
    return True


def shutdown() -> None:
    """Leave the process group (no-op when not distributed).

    Every rank waits for the others first, so that no rank tears its gloo connections down while a peer still
    talks to it; then the group and what still refers to it (a DDP wrapper's reducer) are freed now, while the
    interpreter is whole: freeing them at interpreter exit sometimes aborted a finished job (SIGABRT).
    """
    if is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        gc.collect()


# -- collectives -------------------------------------------------------------------------------------------
def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_initialized():
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank, so that decisions (stop early, skip a fold) agree everywhere."""
    if not is_initialized() or get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order (``[obj]`` when not distributed)."""
    if not is_initialized() or get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(value: float) -> float:
    """The sum of a float over all ranks (float64 on the wire, the value itself when not distributed)."""
    if not is_initialized() or get_world_size() == 1:
        return float(value)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous rows ``[start, stop)`` of ``n`` that ``rank`` handles; shards differ by at most one row."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def gather_rows(part: np.ndarray) -> np.ndarray:
    """Concatenate every rank's rows in rank order (the inverse of :func:`shard_bounds`)."""
    parts = all_gather_objects(np.asarray(part))
    kept = [p for p in parts if len(p)]
    return np.concatenate(kept) if kept else parts[0]


# -- launcher ----------------------------------------------------------------------------------------------
def launch(target: Sequence[str], *, nproc: int, module: bool = False, timeout_s: float | None = None,
           monitor_interval: float = 0.5) -> None:
    """Run ``target`` in ``nproc`` worker processes on this machine under torchrun's elastic agent.

    Parameters
    ----------
    target : a script and its arguments, or (``module=True``) a module name and its arguments, as torchrun
        takes them, e.g. ``["serkit.cli", "train", "recipe.yaml"]`` with ``module=True``.
    nproc : worker processes (one per GPU, or per group of CPU cores).
    timeout_s : passed to the workers as ``SERKIT_DIST_TIMEOUT``: how long a collective waits for a rank.
    monitor_interval : seconds between the agent's checks of its workers.

    Raises
    ------
    DistributedError
        When a worker fails: the message names the first rank that failed and how (exit code or signal);
        the agent has already stopped the other workers.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if nproc < 1:
        raise DistributedError(f"--nproc {nproc}: give at least one process")
    if not target:
        raise DistributedError("nothing to launch")
    if timeout_s is not None:
        os.environ[TIMEOUT_ENV] = str(float(timeout_s))
    argv = ["--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc),
            "--monitor-interval", str(monitor_interval), "--max-restarts", "0"]
    argv += (["-m"] if module else []) + list(target)
    # The agent logs every worker's start and a failure table at WARNING/ERROR; our own message replaces it.
    elastic_log = logging.getLogger("torch.distributed.elastic")
    previous = elastic_log.level
    elastic_log.setLevel(logging.CRITICAL)
    try:
        run(parse_args(argv))
    except ChildFailedError as exc:
        raise DistributedError(describe_failure(exc, nproc)) from None
    finally:
        elastic_log.setLevel(previous)


def describe_failure(exc: Any, nproc: int) -> str:
    """One readable paragraph for torchrun's ``ChildFailedError``: which rank failed first, and how."""
    rank, failure = exc.get_first_failure()
    how = f"exited with code {failure.exitcode}"
    if failure.exitcode is not None and failure.exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-failure.exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-failure.exitcode}"
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    detail = f": {message}" if message and "To enable traceback" not in str(message) else \
        " (its own error message, if any, is printed above)"
    return (f"distributed job failed: rank {rank} of {nproc} (pid {failure.pid}) {how}{detail}; "
            "the other ranks were stopped")
