"""From an utterance table to feature arrays: audio loading, frontends in batches, the on-disk cache.

Audio -> features happens once per (file content, audio config, frontend config): later runs, folds and
seeds read the cache. Augmented training copies are made from waveforms per fold and never cached, since they
depend on the fold's seed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from serkit.audio import AudioConfig, load_clips
from serkit.errors import ConfigError
from serkit.features import EGeMAPS, FeatureCache, FrontendConfig, create_frontend

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$SERKIT_CACHE`` or ``~/.cache/serkit``."""
    return Path(os.environ.get("SERKIT_CACHE", Path.home() / ".cache" / "serkit"))


@dataclass
class FeatureSet:
    """Features of the items that could be read; ``rows`` are their positions in the input list."""

    X: np.ndarray
    rows: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)


class FeatureExtractor:
    """Turns audio (paths or in-memory waveforms) into features with one audio config and one frontend."""

    def __init__(
        self,
        audio: AudioConfig,
        frontend: FrontendConfig,
        *,
        pooling: str = "none",
        cache: FeatureCache | None = None,
        batch_size: int = 64,
        device: str = "cpu",
    ):
        self.audio, self.frontend_cfg, self.pooling = audio, frontend, pooling
        self.cache, self.batch_size, self.device = cache, batch_size, torch.device(device)
        if frontend.name == "egemaps":
            self.egemaps: EGeMAPS | None = EGeMAPS(sample_rate=audio.sample_rate)
            self.module = None
        else:
            if audio.duration is None:
                raise ConfigError(
                    f"audio.duration: frontend {frontend.name!r} feeds fixed-size inputs to a network; set a duration "
                    "in seconds (clips are then padded or cropped to it)"
                )
            self.egemaps = None
            self.module = create_frontend(frontend, audio.sample_rate).to(self.device).eval()
        self.cache_config = {
            "audio": audio.model_dump(mode="json"),
            "frontend": frontend.model_dump(mode="json"),
        }

    # -- waveforms -> features -----------------------------------------------------------------------
    @torch.no_grad()
    def from_signals(self, signals: Sequence[np.ndarray]) -> np.ndarray:
        """Features (N, ...) of waveforms already loaded with this extractor's audio config (unpooled)."""
        if len(signals) == 0:
            return np.zeros((0,), dtype=np.float32)
        if self.egemaps is not None:
            return np.asarray(self.egemaps.batch(list(signals)), dtype=np.float32)
        outs = []
        for i in range(0, len(signals), self.batch_size):
            batch = torch.as_tensor(np.stack(signals[i : i + self.batch_size]), dtype=torch.float32)
            outs.append(self.module(batch.to(self.device)).cpu().numpy())
        return np.concatenate(outs).astype(np.float32, copy=False)

    def pool(self, X: np.ndarray) -> np.ndarray:
        """Apply the recipe's pooling over the last (time) axis."""
        if self.pooling == "none" or self.egemaps is not None:
            return X
        if self.pooling == "mean":
            return X.mean(axis=-1)
        return np.concatenate([X.mean(axis=-1), X.std(axis=-1)], axis=-1)

    # -- paths -> features -----------------------------------------------------------------------------
    def from_paths(self, paths: Sequence[str], *, progress: bool = False) -> FeatureSet:
        """Features of the files in ``paths``; unreadable files are reported in ``failures``, not raised."""
        paths = [str(p) for p in paths]
        results: dict[int, np.ndarray] = {}
        failures: dict[int, str] = {}
        keys: dict[int, str] = {}
        if self.cache is not None:
            for i, p in enumerate(paths):
                try:
                    keys[i] = self.cache.key(p, self.cache_config)
                except OSError as exc:
                    failures[i] = f"cannot read file: {exc.strerror or exc}"
                    continue
                hit = self.cache.get(keys[i])
                if hit is not None:
                    results[i] = hit
        todo = [i for i in range(len(paths)) if i not in results and i not in failures]
        if todo:
            batch = load_clips([paths[i] for i in todo], self.audio, progress=progress)
            loaded = set(int(j) for j in batch.index)
            failed = [j for j in range(len(todo)) if j not in loaded]  # failures come in input order
            for j, (_, reason) in zip(failed, batch.failures):
                failures[todo[j]] = reason
            feats = self.from_signals(batch.signals)
            for j, pos in enumerate(batch.index):
                i = todo[int(pos)]
                results[i] = feats[j]
                if self.cache is not None and i in keys:
                    self.cache.put(keys[i], feats[j])
        ok = np.array(sorted(results), dtype=np.int64)
        X = np.stack([results[i] for i in ok]) if len(ok) else np.zeros((0,), dtype=np.float32)
        fails = [(paths[i], failures[i]) for i in sorted(failures)]
        return FeatureSet(X=self.pool(X) if len(ok) else X, rows=ok, failures=fails)

