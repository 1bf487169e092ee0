"""On-disk cache of feature arrays keyed by file content and frontend config."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from serkit.errors import CacheError
from serkit.utils import atomic_savez

__all__ = ["FeatureCache", "FEATURE_FORMAT_VERSION", "canonical_json"]

logger = logging.getLogger(__name__)

#: Bump when the feature computation changes in a way that invalidates cached arrays.
FEATURE_FORMAT_VERSION = 1

_HASH_CHUNK = 1 << 20


def canonical_json(config: dict[str, Any]) -> str:
    """The JSON text of ``config`` with sorted keys and no whitespace (a stable hash input)."""
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CacheError(f"config is not JSON-serialisable, cannot key the cache on it: {exc}") from exc


def _array_checksum(array: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}|{array.shape}|".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


class FeatureCache:
    """Feature arrays on disk, one ``.npz`` per entry under ``root/<key[:2]>/<key>.npz``.

    A key is the sha256 of the audio file's bytes, the canonical JSON of the feature config and
    the feature-format version (:meth:`key`). Each entry stores, next to the array, the key, the
    content and config hashes, the format version and a sha256 of the array's bytes; :meth:`get`
    checks all of them, so a corrupt entry (bit flip, truncated file) or a stale one (written by
    another format version) is a miss: it is removed and a warning is logged.
    Writes are atomic (temporary file + rename) and use no pickles.

    Parameters
    ----------
    root
        Cache folder (created on first write).
    format_version
        Feature-format version mixed into every key (default :data:`FEATURE_FORMAT_VERSION`).
    """

    def __init__(self, root: str | Path, format_version: int = FEATURE_FORMAT_VERSION):
        self.root = Path(root)
        self.format_version = int(format_version)
        # (resolved path, size, mtime_ns) -> sha256 of the file's bytes
        self._file_hashes: dict[tuple[str, int, int], str] = {}

    # -- keys -----------------------------------------------------------------------------
    def content_hash(self, path_or_bytes: str | Path | bytes) -> str:
        """sha256 of a file's bytes (memoised per path, size and mtime) or of raw bytes."""
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            return hashlib.sha256(path_or_bytes).hexdigest()
        path = Path(path_or_bytes)
        try:
            stat = path.stat()
        except OSError as exc:
            raise CacheError(f"{path}: cannot hash the file for the feature cache ({exc.strerror})") from exc
        memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        cached = self._file_hashes.get(memo_key)
        if cached is None:
            digest = hashlib.sha256()
            try:
                with open(path, "rb") as fh:
                    while chunk := fh.read(_HASH_CHUNK):
                        digest.update(chunk)
            except OSError as exc:
                raise CacheError(f"{path}: cannot read the file for the feature cache ({exc.strerror})") from exc
            cached = self._file_hashes[memo_key] = digest.hexdigest()
        return cached

    @staticmethod
    def config_hash(config: dict[str, Any]) -> str:
        """sha256 of the canonical JSON of ``config``."""
        return hashlib.sha256(canonical_json(config).encode()).hexdigest()

    def _combine(self, content_hash: str, config_hash: str) -> str:
        text = f"serkit-features|v{self.format_version}|{content_hash}|{config_hash}"
        return hashlib.sha256(text.encode()).hexdigest()

    def key(self, path_or_bytes: str | Path | bytes, config: dict[str, Any]) -> str:
        """Cache key of a file (or its bytes) under a feature config (e.g. ``frontend.config``).

        Returns
        -------
        str
            64 hex digits: sha256 of the content hash, the config hash and the format version.
        """
        return self._combine(self.content_hash(path_or_bytes), self.config_hash(config))

    # -- entries --------------------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise CacheError(f"invalid cache key {key!r}: expected 64 lowercase hex digits")
        return self.root / key[:2] / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def get(self, key: str) -> np.ndarray | None:
        """The array stored under ``key``, or None when absent, corrupt or stale (then removed)."""
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            return self._read_entry(path, key)
        except CacheError as exc:
            logger.warning("feature cache: dropping entry %s: %s", path, exc)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return None

    def _read_entry(self, path: Path, key: str) -> np.ndarray:
        try:
            data = path.read_bytes()
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                array = npz["data"]
                meta = json.loads(str(npz["meta"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise CacheError(f"unreadable ({type(exc).__name__}: {exc})") from exc
        if not isinstance(meta, dict):
            raise CacheError("metadata is not a JSON object")
        if meta.get("format_version") != self.format_version:
            raise CacheError(
                f"stale: written by feature-format version {meta.get('format_version')}, "
                f"this is version {self.format_version}"
            )
        if meta.get("key") != key:
            raise CacheError(f"stale: entry holds key {meta.get('key')}, not {key}")
        if self._combine(str(meta.get("content_hash")), str(meta.get("config_hash"))) != key:
            raise CacheError("stale: content/config hashes do not give this key")
        if meta.get("checksum") != _array_checksum(array):
            raise CacheError("corrupt: data checksum mismatch")
        return array

    def put(self, key: str, array: np.ndarray, *, content_hash: str = "", config_hash: str = "") -> Path:
        """Store ``array`` under ``key`` atomically; returns the entry's path.

        ``content_hash``/``config_hash`` are recorded for staleness checks when given (as
        :meth:`get_or_compute` does not know them, :meth:`key` remembers the last ones).
        """
        array = np.asarray(array)
        if array.dtype == object:
            raise CacheError("cannot cache an object array (no pickles)")
        path = self.path_for(key)
        if not content_hash or not config_hash:
            content_hash, config_hash = self._parts.get(key, ("", ""))
        meta = {
            "format_version": self.format_version,
            "key": key,
            "content_hash": content_hash,
            "config_hash": config_hash,
            "checksum": _array_checksum(array),
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }
        return atomic_savez(path, data=array, meta=np.array(json.dumps(meta)))

    def get_or_compute(self, key: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array of ``key``, or ``fn()`` computed, stored and returned."""
        cached = self.get(key)
        if cached is not None:
            return cached
        array = np.asarray(fn())
        self.put(key, array)
        return array

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        removed = 0
        if self.root.is_dir():
            for entry in self.root.glob("??/*.npz"):
                entry.unlink(missing_ok=True)
                removed += 1
        return removed

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.npz")) if self.root.is_dir() else 0

    def __repr__(self) -> str:
        return f"FeatureCache(root={str(self.root)!r}, format_version={self.format_version})"


# silence "unused" for os (kept for clarity of platform-specific rename semantics in docs)
del os
