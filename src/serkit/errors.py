"""Exceptions raised by serkit. Each names the file or field at fault and the reason."""

from __future__ import annotations

from pathlib import Path


class SerkitError(Exception):
    """Base class of every error serkit raises on purpose."""


class AudioError(SerkitError, ValueError):
    """An audio file or signal cannot be used: names the file (if any) and the reason."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        # Without a path (a signal in memory) the caller names the item in the reason, or re-raises with a name.
        super().__init__(reason if self.path is None else f"{self.path}: {reason}")


class CorpusError(SerkitError, ValueError):
    """A corpus root or manifest cannot be read."""


class ConfigError(SerkitError, ValueError):
    """A recipe or config field is invalid: names the field and the reason."""


class CacheError(SerkitError):
    """A cache entry is corrupt or unreadable."""
