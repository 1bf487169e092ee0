"""From an utterance table to feature arrays: audio loading, frontends in batches, the on-disk cache.

Audio -> features happens once per (file content, audio config, frontend config): later runs, folds and
seeds read the cache. Augmented training copies are made from waveforms per fold; a pretrained encoder's features
of them are cached by the sha256 of their samples (:meth:`FeatureExtractor.from_signals_cached`), so a rerun with
the same seed reads them back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from serkit.audio import AudioConfig, check_channels, load_clips
from serkit.errors import AudioError, ConfigError
from serkit.features.cache import FeatureCache
from serkit.features.config import FrontendConfig, create_frontend
from serkit.features.functionals import FUNCTIONAL_SETS, OpenSmileFunctionals
from serkit.features.segments import SegmentConfig, segment_signal

#: Files read, featurised and cached together by ``FeatureExtractor.from_paths``.
EXTRACT_CHUNK_FILES = 128

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$SERKIT_CACHE`` or ``~/.cache/serkit``."""
    return Path(os.environ.get("SERKIT_CACHE", Path.home() / ".cache" / "serkit"))


@dataclass
class FeatureSet:
    """Features of the items that could be read; ``rows`` are their positions in the input list.

    With segments, ``X`` holds every segment and ``segment_owner[i]`` is the position in ``rows`` of the
    utterance that segment ``i`` came from (a file's segments are consecutive); otherwise it is None.
    """

    X: np.ndarray
    rows: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)
    segment_owner: np.ndarray | None = None


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
        segments: SegmentConfig | None = None,
    ):
        self.audio, self.frontend_cfg, self.pooling = audio, frontend, pooling
        self.segments = segments
        self.cache, self.batch_size, self.device = cache, batch_size, torch.device(device)
        if frontend.name in FUNCTIONAL_SETS:
            self.functionals: OpenSmileFunctionals | None = OpenSmileFunctionals(audio.sample_rate, frontend.name)
            self.module = None
            self.variable_length = False
        else:
            self.module = create_frontend(frontend, audio.sample_rate).to(self.device).eval()
            # A frontend that pools itself (a pretrained encoder) takes clips of any length, one at a time.
            self.variable_length = bool(getattr(self.module, "accepts_variable_length", False))
            if audio.duration is None and segments is None and not self.variable_length:
                raise ConfigError(
                    f"audio.duration: frontend {frontend.name!r} feeds fixed-size inputs to a network; set a duration "
                    "in seconds (clips are then padded or cropped to it) or a segments section"
                )
            self.functionals = None
        self.cache_config = {
            "audio": audio.model_dump(mode="json"),
            "frontend": frontend.model_dump(mode="json"),
        }
        if self.module is not None and hasattr(self.module, "cache_identity"):
            self.cache_config.update(self.module.cache_identity())  # e.g. the sha256 of pretrained weights
        if segments is not None:  # only then, so that unsegmented recipes keep their cache keys
            if frontend.name in FUNCTIONAL_SETS:
                raise ConfigError(f"segments: {frontend.name} gives one vector per clip; segments need a frame-based "
                                  "frontend")
            self.cache_config["segments"] = segments.model_dump(mode="json")

    # -- waveforms -> features -----------------------------------------------------------------------
    @torch.no_grad()
    def from_signals(self, signals: Sequence[np.ndarray]) -> np.ndarray:
        """Features (N, ...) of waveforms already loaded with this extractor's audio config (unpooled)."""
        if len(signals) == 0:
            return np.zeros((0,), dtype=np.float32)
        if self.functionals is not None:
            return np.asarray(self.functionals.batch(list(signals)), dtype=np.float32)
        if self.variable_length:  # each clip at its own length: no padding to compute
            return np.stack([self.module(torch.as_tensor(y, dtype=torch.float32).to(self.device)).cpu().numpy()
                             for y in signals]).astype(np.float32, copy=False)
        outs = []
        for i in range(0, len(signals), self.batch_size):
            batch = torch.as_tensor(np.stack(signals[i : i + self.batch_size]), dtype=torch.float32)
            outs.append(self.module(batch.to(self.device)).cpu().numpy())
        return np.concatenate(outs).astype(np.float32, copy=False)

    def from_signals_cached(self, signals: Sequence[np.ndarray], *, progress: bool = False) -> np.ndarray:
        """:meth:`from_signals`, each waveform's features cached under the sha256 of its float32 samples.

        For in-memory waveforms that come back: a recipe's augmented copies are seeded, so a rerun, a resumed
        run or the same copies in another fold find their encoder features here instead of recomputing them.
        Only a pretrained encoder's features are worth it (a spectral frontend recomputes faster than it reads
        an entry back); otherwise, or without a cache, this is :meth:`from_signals`.
        """
        if self.cache is None or not self.variable_length or len(signals) == 0:
            return self.from_signals(signals)
        config = {**self.cache_config, "input": "float32 samples"}  # never the key of a file's bytes
        samples = [np.ascontiguousarray(y, dtype=np.float32) for y in signals]
        keys = [self.cache.key(y.tobytes(), config) for y in samples]
        results: list[np.ndarray | None] = [self.cache.get(k) for k in keys]
        todo = [i for i, hit in enumerate(results) if hit is None]
        with Progress(TextColumn("features of augmented copies"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), disable=not progress or not todo, transient=True) as bar:
            task = bar.add_task("copies", total=len(todo))
            for start in range(0, len(todo), EXTRACT_CHUNK_FILES):  # cached as it goes: an interruption resumes
                chunk = todo[start:start + EXTRACT_CHUNK_FILES]
                for i, feats in zip(chunk, self.from_signals([samples[i] for i in chunk])):
                    results[i] = feats
                    self.cache.put(keys[i], feats)
                bar.advance(task, len(chunk))
        return np.stack(results).astype(np.float32, copy=False)

    def features_per_signal(self, signals: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Unpooled features of each waveform: one array per signal, (n_segments, ...) with segments."""
        if self.segments is None:
            return list(self.from_signals(signals)) if len(signals) else []
        pieces = [segment_signal(y, self.audio.sample_rate, self.segments) for y in signals]
        if not pieces:
            return []
        X = self.from_signals(list(np.concatenate(pieces)))  # all segments batched together
        return np.split(X, np.cumsum([len(p) for p in pieces])[:-1])

    def segment_features(self, signals: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features of the segments of ``signals`` and, per segment, the index of its signal."""
        per_signal = self.features_per_signal(signals)
        owner = np.repeat(np.arange(len(per_signal)), [len(f) for f in per_signal])
        return self.pool(np.concatenate(per_signal)), owner

    def pool(self, X: np.ndarray) -> np.ndarray:
        """Apply the recipe's pooling over the last (time) axis."""
        if self.pooling == "none" or self.functionals is not None:
            return X
        if self.pooling == "mean":
            return X.mean(axis=-1)
        return np.concatenate([X.mean(axis=-1), X.std(axis=-1)], axis=-1)

    # -- paths -> features -----------------------------------------------------------------------------
    def from_paths(self, paths: Sequence[str], *, progress: bool = False,
                   channels: Sequence[object] | None = None) -> FeatureSet:
        """Features of the files in ``paths``; unreadable files are reported in ``failures``, not raised.

        ``channels``: one channel choice per path (a corpus table's ``channel`` column), see ``load_clips``.
        """
        paths = [str(p) for p in paths]
        choices = check_channels(channels, len(paths))
        results: dict[int, np.ndarray] = {}
        failures: dict[int, str] = {}
        keys: dict[int, str] = {}
        if self.cache is not None:
            for i, p in enumerate(paths):
                # a channel choice joins the key only when set, so downmixed files keep their cache keys
                config = self.cache_config if choices[i] is None else {**self.cache_config, "channel": choices[i]}
                try:
                    keys[i] = self.cache.key(p, config)
                except OSError as exc:
                    failures[i] = f"cannot read file: {exc.strerror or exc}"
                    continue
                hit = self.cache.get(keys[i])
                if hit is not None:
                    results[i] = hit
        todo = [i for i in range(len(paths)) if i not in results and i not in failures]
        # In chunks, each cached as soon as it is computed: an interrupted extraction (a pretrained encoder over a
        # large pool takes many minutes) resumes from the cache, and only a chunk of waveforms is held at once.
        with Progress(TextColumn("features"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      disable=not progress or not todo, transient=True) as bar:
            task = bar.add_task("features", total=len(todo))
            for start in range(0, len(todo), EXTRACT_CHUNK_FILES):
                chunk = todo[start:start + EXTRACT_CHUNK_FILES]
                batch = load_clips([paths[i] for i in chunk], self.audio, channels=[choices[i] for i in chunk])
                loaded = set(int(j) for j in batch.index)
                failed = [j for j in range(len(chunk)) if j not in loaded]  # failures come in input order
                for j, (_, reason) in zip(failed, batch.failures):
                    failures[chunk[j]] = reason
                if self.variable_length:  # one clip at a time anyway: a clip the encoder refuses fails alone
                    feats = []
                    for j, pos in enumerate(batch.index):
                        try:
                            feats.append(self.features_per_signal([batch.signals[j]])[0])
                        except AudioError as exc:
                            failures[chunk[int(pos)]] = exc.reason
                            feats.append(None)
                else:
                    feats = self.features_per_signal(batch.signals)
                for j, pos in enumerate(batch.index):
                    i = chunk[int(pos)]
                    if feats[j] is None:
                        continue
                    results[i] = feats[j]
                    if self.cache is not None and i in keys:
                        self.cache.put(keys[i], feats[j])
                bar.advance(task, len(chunk))
        ok = np.array(sorted(results), dtype=np.int64)
        fails = [(paths[i], failures[i]) for i in sorted(failures)]
        if not len(ok):
            return FeatureSet(X=np.zeros((0,), dtype=np.float32), rows=ok, failures=fails)
        if self.segments is not None:
            owner = np.repeat(np.arange(len(ok)), [len(results[i]) for i in ok])
            X = np.concatenate([results[i] for i in ok])
            return FeatureSet(X=self.pool(X), rows=ok, failures=fails, segment_owner=owner)
        X = np.stack([results[i] for i in ok])
        return FeatureSet(X=self.pool(X), rows=ok, failures=fails)



class MultiFeatureExtractor:
    """One :class:`FeatureExtractor` per stream of a multi-input model, sharing one audio config.

    Features are ``dict[str, np.ndarray]`` (stream -> (N, ...), see :mod:`serkit.multi_input`). Every stream
    has its own cache entries (keyed by its frontend config), except a ``raw`` stream: the waveform itself,
    which would only duplicate the audio on disk. Items that fail in any stream are left out of all of them.
    """

    def __init__(self, audio: AudioConfig, frontends: dict[str, FrontendConfig], *, pooling: str = "none",
                 cache: FeatureCache | None = None, batch_size: int = 64, device: str = "cpu",
                 segments: SegmentConfig | None = None):
        if not frontends:
            raise ConfigError("frontends: give at least one stream")
        self.audio = audio
        self.streams = {
            name: FeatureExtractor(audio, cfg, pooling=pooling, cache=None if cfg.name == "raw" else cache,
                                   batch_size=batch_size, device=device, segments=segments)
            for name, cfg in frontends.items()
        }

    def from_signals(self, signals: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Unpooled features of every stream."""
        return {name: ex.from_signals(signals) for name, ex in self.streams.items()}

    def from_signals_cached(self, signals: Sequence[np.ndarray], *, progress: bool = False
                            ) -> dict[str, np.ndarray]:
        """:meth:`FeatureExtractor.from_signals_cached` of every stream."""
        return {name: ex.from_signals_cached(signals, progress=progress) for name, ex in self.streams.items()}

    def pool(self, X: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: self.streams[name].pool(a) for name, a in X.items()}

    def segment_features(self, signals: Sequence[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Pooled segment features of every stream and, per segment, the index of its signal."""
        out, owner = {}, None
        for name, ex in self.streams.items():
            out[name], owner = ex.segment_features(signals)
        return out, owner

    def from_paths(self, paths: Sequence[str], *, progress: bool = False,
                   channels: Sequence[object] | None = None) -> FeatureSet:
        """Features of every stream; files unreadable in any stream are reported once in ``failures``."""
        sets = {name: ex.from_paths(paths, progress=progress, channels=channels) for name, ex in self.streams.items()}
        common = sorted(set.intersection(*(set(s.rows.tolist()) for s in sets.values())))
        failures = {path: reason for s in sets.values() for path, reason in s.failures}
        ok = np.array(common, dtype=np.int64)
        X = {}
        for name, s in sets.items():
            keep = np.isin(s.rows, ok)
            if s.segment_owner is None:
                X[name] = s.X[keep] if len(s.rows) else s.X
            else:
                X[name] = s.X[keep[s.segment_owner]]
        first = next(iter(sets.values()))
        owner = None
        if first.segment_owner is not None:
            keep = np.isin(first.rows, ok)
            owner = np.searchsorted(ok, first.rows[first.segment_owner[keep[first.segment_owner]]])
        fails = [(str(p), failures[str(p)]) for p in paths if str(p) in failures]
        return FeatureSet(X=X, rows=ok, failures=fails, segment_owner=owner)


def make_feature_extractor(audio: AudioConfig, frontend: FrontendConfig | dict[str, FrontendConfig], **kwargs):
    """A :class:`FeatureExtractor` for one frontend, a :class:`MultiFeatureExtractor` for a stream mapping."""
    if isinstance(frontend, dict):
        return MultiFeatureExtractor(audio, frontend, **kwargs)
    return FeatureExtractor(audio, frontend, **kwargs)
