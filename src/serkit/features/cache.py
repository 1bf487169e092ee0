"""On-disk cache of feature arrays keyed by file content and frontend config."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from serkit.errors import CacheError
from serkit.utils import atomic_write_bytes

__all__ = ["FEATURE_FORMAT_VERSION", "FeatureCache", "canonical_json"]

logger = logging.getLogger(__name__)

#: Bump when the feature computation changes in a way that invalidates cached arrays.
FEATURE_FORMAT_VERSION = 1

_HASH_CHUNK = 1 << 20
# Every entry file ends with this magic and the sha256 of everything before it, so that damage
# anywhere in the file (also in zip headers that readers ignore) is detected.
_TRAILER_MAGIC = b"SERKIT-FC1"
_TRAILER_SIZE = len(_TRAILER_MAGIC) + 32


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
    the feature-format version (:meth:`key`). An entry is an uncompressed ``.npz`` (members
    ``data`` and ``meta``, no pickles) followed by a trailer: a magic string and the sha256 of
    the npz bytes. ``meta`` records the key, the content and config hashes, the format version
    and a sha256 of the array. :meth:`get` checks all of them, so a corrupt entry (any flipped
    byte, a truncated file) or a stale one (another format version, or an entry under the wrong
    key) is a miss: it is removed and a warning is logged. Writes are atomic (temporary file +
    rename).

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
        # key -> (content hash, config hash) of the keys made by this instance, recorded in entries
        self._parts: dict[str, tuple[str, str]] = {}

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
        parts = (self.content_hash(path_or_bytes), self.config_hash(config))
        key = self._combine(*parts)
        self._parts[key] = parts
        return key

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
            raw = path.read_bytes()
        except OSError as exc:
            raise CacheError(f"unreadable ({exc.strerror})") from exc
        payload, trailer = raw[:-_TRAILER_SIZE], raw[-_TRAILER_SIZE:]
        if len(raw) < _TRAILER_SIZE or not trailer.startswith(_TRAILER_MAGIC):
            raise CacheError("unreadable (no integrity trailer: truncated or not a serkit entry)")
        if hashlib.sha256(payload).digest() != trailer[len(_TRAILER_MAGIC) :]:
            raise CacheError("corrupt: file checksum mismatch")
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
                array = npz["data"]
                meta = json.loads(str(npz["meta"]))
        except Exception as exc:  # any failure to parse a damaged zip/npy means: corrupt
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
        content_hash, config_hash = meta.get("content_hash"), meta.get("config_hash")
        if content_hash and config_hash and self._combine(str(content_hash), str(config_hash)) != key:
            raise CacheError("stale: the recorded content and config hashes do not give this key")
        if meta.get("checksum") != _array_checksum(array):
            raise CacheError("corrupt: data checksum mismatch")
        return array

    def put(self, key: str, array: np.ndarray) -> Path:
        """Store ``array`` under ``key`` atomically (no pickles); returns the entry's path.

        When ``key`` was made by this instance's :meth:`key`, the content and config hashes behind
        it are recorded too, and :meth:`get` checks that they still give the key.
        """
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise CacheError("cannot cache an object array (no pickles)")
        path = self.path_for(key)
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
        buffer = io.BytesIO()
        np.savez(buffer, data=array, meta=np.array(json.dumps(meta)))
        payload = buffer.getvalue()
        return atomic_write_bytes(path, payload + _TRAILER_MAGIC + hashlib.sha256(payload).digest())

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

