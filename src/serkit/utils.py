"""Small shared helpers: atomic writes and seeding."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from serkit.errors import AudioError


def positive_int(value: Any, name: str, error: type[Exception] | None = None) -> int:
    """``value`` as an int when it is a positive integer (a bool is not one); otherwise ``error`` (ValueError by
    default; a class taking one message argument, or ``AudioError`` which also takes the file) naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        message = f"{name} must be a positive integer, got {value!r}"
        error = error or ValueError
        raise AudioError(None, message) if error is AudioError else error(message)
    return int(value)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never half.

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the permissions a plain open() would have.
        os.fchmod(fd, _default_mode(path))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _default_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`atomic_write_bytes`."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_savez(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez`` through :func:`atomic_write_bytes` (no pickles)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


#: The file that marks a folder as one run's output written by serkit (see :func:`replace_output_dir`).
OUTPUT_MARKER = ".serkit-output.json"


def check_output_dir(path: str | Path, *, kind: str, force: bool = False) -> None:
    """Raise a ``ConfigError`` unless ``path`` may receive a ``kind`` run: absent, empty, or an earlier output of
    serkit's (its :data:`OUTPUT_MARKER`), or anything when ``force``. A file is never replaced by a folder."""
    from serkit.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is a file; the output of {kind} is a folder")
    if force or not path.is_dir() or not any(path.iterdir()) or (path / OUTPUT_MARKER).is_file():
        return
    raise ConfigError(f"{path}: the folder is not empty and was not written by serkit {kind}; choose an empty or "
                      "new folder, or pass --force to replace its content")


@contextmanager
def replace_output_dir(path: str | Path, *, kind: str, force: bool = False) -> Iterator[Path]:
    """Write one run's output into a new folder that replaces ``path`` when the block succeeds.

    Yields a temporary folder beside ``path``; on success it gets :data:`OUTPUT_MARKER` and takes ``path``'s
    place (an earlier run there is removed whole, so old and new outputs never mix); on failure it is removed
    and ``path`` is left as it was. See :func:`check_output_dir` for which folders may be replaced.
    """
    from serkit._version import __version__

    path = Path(path)
    check_output_dir(path, kind=kind, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent))
    try:
        yield tmp
        atomic_write_text(tmp / OUTPUT_MARKER, json.dumps({"written_by": f"serkit {__version__}", "kind": kind}))
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
