"""Who spoke when: speaker diarization of a recording's speech, and voices recognised by enrolment.

The speech regions (the voice activity detection's, as ``serkit analyze`` finds them) are cut into windows of the
encoder's length (1.6 s) every ``hop`` seconds; each window is embedded (:mod:`serkit.speakers.embeddings`) and
the windows, each averaged with its neighbours, are clustered with scikit-learn's spectral clustering on their
cosine similarities (:func:`cluster`): into the number of speakers given, or, with ``speakers="auto"``, into the
number the affinity's eigenvalues show (clusters of less than ``min_speaker_seconds`` of speech then join the
nearest larger one: an overlap or a cough is no speaker). Every stretch of
speech then goes to the speaker of the windows that cover it (each 0.1 s to the window whose centre is nearest);
neighbouring stretches of one speaker are merged across pauses shorter than ``merge_gap``, and turns shorter than
``min_turn`` join the speaker around them. Speakers are named ``S1``, ``S2``... in order of first appearance, or by
the enrolled voice they match (:func:`name_speakers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import AgglomerativeClustering

from serkit.errors import AudioError, ConfigError
from serkit.speakers.embeddings import SpeakerEncoder, cosine

__all__ = [
    "Diarization",
    "DiarizationConfig",
    "Turn",
    "VoiceProfile",
    "diarize",
    "diarize_file",
    "enrol",
    "name_speakers",
]

#: The grid (s) on which speech is given to speakers.
STEP = 0.1


class DiarizationConfig(BaseModel):
    """How a recording's speech is split between speakers (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    speakers: Literal["auto"] | int = "auto"
    hop: float = Field(0.8, gt=0, le=5)
    refine: float = Field(0.2, gt=0, le=1, description="the share of each window's strongest similarities that "
                          "the clustering keeps whole (the others are scaled down a hundredfold)")
    smooth: int = Field(1, ge=0, description="neighbouring windows on each side averaged into a window's embedding")
    max_speakers: int = Field(8, ge=1)
    min_speaker_seconds: float = Field(2.0, ge=0, description="auto: a cluster of less speech than this is no "
                                       "speaker of its own (overlaps, coughs, a window across a change of voice); "
                                       "its windows go to the nearest larger speaker")
    merge_gap: float = Field(1.0, ge=0)
    min_turn: float = Field(0.6, ge=0)

    def model_post_init(self, _) -> None:
        if isinstance(self.speakers, int) and self.speakers < 1:
            raise ConfigError(f"speakers: expected 'auto' or a count of at least 1, got {self.speakers}")


@dataclass
class Turn:
    start: float
    end: float
    speaker: str


@dataclass
class Diarization:
    """The turns, and each speaker's mean embedding (for naming them by enrolled voices; personal data: never
    written out by serkit)."""

    turns: list[Turn]
    centroids: dict[str, np.ndarray]
    windows: int

    @property
    def speakers(self) -> list[str]:
        return list(self.centroids)

    def speaker_at(self, start: float, end: float) -> str | None:
        """The speaker who holds most of ``[start, end]`` (None when nobody speaks in it)."""
        best, held = None, 0.0
        for t in self.turns:
            overlap = min(end, t.end) - max(start, t.start)
            if overlap > held:
                best, held = t.speaker, overlap
        return best

    def seconds(self) -> dict[str, float]:
        out = dict.fromkeys(self.centroids, 0.0)
        for t in self.turns:
            out[t.speaker] = out.get(t.speaker, 0.0) + t.end - t.start
        return out


def speaker_windows(regions: Sequence[tuple[float, float]], window: float, hop: float) -> list[tuple[float, float]]:
    """Windows of ``window`` s every ``hop`` s inside each region; a region shorter than a window gives one."""
    out = []
    for start, end in regions:
        if end - start <= window:
            out.append((start, end))
            continue
        t = start
        while t + window < end:
            out.append((t, t + window))
            t += hop
        out.append((end - window, end))
    return out


def diarize(signal: np.ndarray, sample_rate: int, regions: Sequence[tuple[float, float]], encoder: SpeakerEncoder,
            config: DiarizationConfig | None = None) -> Diarization:
    """Split the speech ``regions`` (s) of a mono ``signal`` between speakers (see the module docstring).

    Raises
    ------
    AudioError
        when there is no speech to diarize.
    ConfigError
        when more speakers are asked for than there are windows of speech.
    """
    config = config or DiarizationConfig()
    if sample_rate != encoder.sample_rate:
        raise ConfigError(f"diarize: the signal is at {sample_rate} Hz, the encoder takes {encoder.sample_rate} Hz")
    regions, spans = _spans(regions, encoder, config)
    X = _embed_in_batches((signal[round(s * sample_rate):round(e * sample_rate)] for s, e in spans), encoder)
    labels = cluster(X, config, spans)
    return _turns(spans, labels, X, regions, config)


def diarize_file(path, regions: Sequence[tuple[float, float]], encoder: SpeakerEncoder,
                 config: DiarizationConfig | None = None, *, block_seconds: float = 10.0) -> Diarization:
    """:func:`diarize` of an audio file of any length, read ``block_seconds`` at a time and resampled as a stream
    (channels averaged), so that memory holds a block and the embeddings, never the recording."""
    import soxr

    from serkit.audio.io import open_audio

    config = config or DiarizationConfig()
    regions, spans = _spans(regions, encoder, config)
    rate = encoder.sample_rate

    def windows():
        with open_audio(path) as handle:
            resampler = None if handle.samplerate == rate else soxr.ResampleStream(
                handle.samplerate, rate, 1, dtype="float32", quality="HQ")
            buffer, offset = np.zeros(0, np.float32), 0  # buffer[0] is sample `offset` of the resampled stream
            k, block = 0, max(1, round(block_seconds * handle.samplerate))
            done = False
            while k < len(spans):
                if not done:
                    data = handle.read(block, dtype="float32", always_2d=True).mean(axis=1)
                    done = len(data) < block
                    if resampler is not None:
                        data = resampler.resample_chunk(data, last=done)
                    buffer = np.concatenate([buffer, data])
                while k < len(spans) and (round(spans[k][1] * rate) <= offset + len(buffer) or done):
                    a, b = round(spans[k][0] * rate) - offset, round(spans[k][1] * rate) - offset
                    yield buffer[max(a, 0):max(b, 0)]
                    k += 1
                keep = round(spans[k][0] * rate) - offset if k < len(spans) else len(buffer)
                if keep > 0:  # nothing before the next window's start is needed again
                    buffer, offset = buffer[keep:], offset + keep

    X = _embed_in_batches(windows(), encoder)
    labels = cluster(X, config, spans)
    return _turns(spans, labels, X, regions, config)


def _spans(regions, encoder: SpeakerEncoder, config: DiarizationConfig):
    regions = [(float(s), float(e)) for s, e in regions if e > s]
    if not regions:
        raise AudioError(None, "no speech to tell the speakers apart in")
    return regions, speaker_windows(regions, encoder.window_seconds, config.hop)


def _embed_in_batches(windows, encoder: SpeakerEncoder, batch: int = 64) -> np.ndarray:
    """Embeddings of the windows as they come, ``batch`` at a time (only the embeddings are kept)."""
    out, pending = [], []
    for w in windows:
        pending.append(w)
        if len(pending) == batch:
            out.append(encoder.embed(pending))
            pending = []
    if pending:
        out.append(encoder.embed(pending))
    return np.concatenate(out) if out else np.zeros((0, 256), np.float32)


def cluster(X: np.ndarray, config: DiarizationConfig, spans: Sequence[tuple[float, float]] | None = None) -> np.ndarray:
    """Cluster labels of the embeddings ``X`` (one speaker, when there is one window or one is asked for).

    Each window's embedding is first averaged with its ``smooth`` neighbours on each side that follow it without a
    gap (``spans``: the windows' times; a voice seldom changes within a second). Then spectral clustering
    (scikit-learn's, on a precomputed affinity): the windows' cosine similarities, each row keeping its
    ``refine`` share of strongest links (the refinement of Wang et al. 2018, "Speaker diarization with LSTM",
    made for GE2E embeddings like Resemblyzer's), symmetrised; the number of speakers given, or with ``auto``
    the one at the largest gap between the normalised Laplacian's smallest eigenvalues. A recording of more than
    ``MAX_CLUSTERED`` windows is clustered on that many evenly spaced ones, the rest joining the nearest
    speaker's mean."""
    n = len(X)
    if config.speakers != "auto" and config.speakers > n:
        raise ConfigError(f"--speakers {config.speakers}: the recording holds only {n} window(s) of speech")
    if n == 1 or config.speakers == 1 or (config.speakers == "auto" and n < 4):
        return np.zeros(n, dtype=int)
    X = _smoothed(np.asarray(X, np.float64), spans, config)
    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    if n > MAX_CLUSTERED:
        pick = np.unique(np.linspace(0, n - 1, MAX_CLUSTERED).round().astype(int))
        sub = cluster_spectral(X[pick], config)
        centroids = np.stack([X[pick][sub == c].mean(0) for c in range(sub.max() + 1)])
        return np.argmax(X @ centroids.T, axis=1)
    return cluster_spectral(X, config)


#: The most windows one spectral clustering takes (its affinity is n x n; an hour of speech is about 4500).
MAX_CLUSTERED = 3000
#: A cosine similarity of two windows' embeddings that only one voice gives (see cluster_spectral).
SURE_SAME = 0.95


def _smoothed(X: np.ndarray, spans, config: DiarizationConfig) -> np.ndarray:
    if spans is None or config.smooth == 0:
        return X
    starts = np.array([s for s, _ in spans])
    out = X.copy()
    for i in range(len(X)):
        for j in range(i - config.smooth, i + config.smooth + 1):
            if j != i and 0 <= j < len(X) and abs(starts[j] - starts[i]) <= abs(j - i) * config.hop + 1e-6:
                out[i] += X[j]
    return out


def cluster_spectral(X: np.ndarray, config: DiarizationConfig) -> np.ndarray:
    """Spectral clustering of unit-length embeddings ``X`` (see :func:`cluster`)."""
    from sklearn.cluster import SpectralClustering

    n = len(X)
    affinity = np.clip(X @ X.T, 0.0, 1.0)
    keep = min(n, max(2, int(config.refine * n)))
    # links at least SURE_SAME strong are always kept: windows of one steady voice, near-identical, would
    # otherwise keep a random few of each other and split into several speakers
    row_floor = np.minimum(-np.sort(-affinity, axis=1)[:, keep - 1:keep], SURE_SAME)
    # the weak links are scaled down, not cut, so that the graph stays connected
    affinity = np.where(affinity >= row_floor, affinity, 0.01 * affinity)
    affinity = np.maximum(affinity, affinity.T)
    if config.speakers == "auto":
        degree = affinity.sum(1)
        laplacian = np.eye(n) - affinity / np.sqrt(np.outer(degree, degree))
        most = min(config.max_speakers, n - 1)
        eigenvalues = np.linalg.eigvalsh(laplacian)[: most + 1]
        k = int(np.argmax(np.diff(eigenvalues))) + 1
    else:
        k = int(config.speakers)
    if k == 1:
        return np.zeros(n, dtype=int)
    labels = SpectralClustering(n_clusters=k, affinity="precomputed", assign_labels="cluster_qr",
                                random_state=0).fit_predict(affinity)
    if config.speakers == "auto":
        labels = _absorb_small_clusters(X, labels, round(config.min_speaker_seconds / config.hop))
    return labels


def _absorb_small_clusters(X: np.ndarray, labels: np.ndarray, min_windows: int) -> np.ndarray:
    """``labels`` with every cluster of fewer than ``min_windows`` windows given, window by window, to the
    nearest (cosine to its mean) of the clusters that have enough; labels renumbered 0..k-1. When no cluster has
    enough, the largest one alone is kept as the speaker."""
    sizes = np.bincount(labels)
    big = np.flatnonzero(sizes >= max(min_windows, 1))
    if len(big) == 0:
        big = np.array([int(np.argmax(sizes))])
    if len(big) == len(sizes):
        return labels
    centroids = np.stack([X[labels == c].mean(0) for c in big])
    out = labels.copy()
    small = ~np.isin(labels, big)
    sims = (X[small] / np.linalg.norm(X[small], axis=1, keepdims=True)) @ \
        (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).T
    out[small] = big[np.argmax(sims, axis=1)]
    return np.unique(out, return_inverse=True)[1]


def _turns(spans, labels, X, regions, config: DiarizationConfig) -> Diarization:
    centres = np.array([(s + e) / 2 for s, e in spans])
    pieces: list[list] = []  # [start, end, label] on the STEP grid, within the regions
    for start, end in regions:
        grid = np.arange(start, end, STEP)
        inside = (centres >= start - 1e-9) & (centres <= end + 1e-9)
        idx = np.flatnonzero(inside) if inside.any() else np.arange(len(spans))
        for t in grid:
            mid = min(t + STEP / 2, end)
            label = labels[idx[np.argmin(np.abs(centres[idx] - mid))]]
            stop = min(t + STEP, end)
            if pieces and pieces[-1][2] == label and abs(pieces[-1][1] - t) < 1e-6:
                pieces[-1][1] = stop
            else:
                pieces.append([t, stop, label])
    pieces = _absorb_short(pieces, config.min_turn)
    merged: list[list] = []
    for p in pieces:
        if merged and merged[-1][2] == p[2] and p[0] - merged[-1][1] < config.merge_gap:
            merged[-1][1] = p[1]
        else:
            merged.append(list(p))
    order = []
    for _, _, label in merged:
        if label not in order:
            order.append(label)
    names = {label: f"S{k + 1}" for k, label in enumerate(order)}
    centroids = {}
    for label in order:
        c = X[labels == label].mean(axis=0)
        centroids[names[label]] = c / max(float(np.linalg.norm(c)), 1e-12)
    turns = [Turn(round(float(s), 3), round(float(e), 3), names[label]) for s, e, label in merged]
    return Diarization(turns, centroids, len(spans))


def _absorb_short(pieces: list[list], min_turn: float) -> list[list]:
    """Pieces shorter than ``min_turn`` between pieces of one speaker (or at an edge) join their neighbour."""
    changed = True
    while changed and len(pieces) > 1:
        changed = False
        for i, (s, e, label) in enumerate(pieces):
            if e - s >= min_turn:
                continue
            before = pieces[i - 1] if i else None
            after = pieces[i + 1] if i + 1 < len(pieces) else None
            # the longer neighbour that touches it takes it
            options = [n for n in (before, after) if n is not None and min(abs(n[1] - s), abs(e - n[0])) < 1e-6]
            if not options:
                continue
            target = max(options, key=lambda n: n[1] - n[0])
            if target is before:
                before[1] = e
            else:
                after[0] = s
            del pieces[i]
            changed = True
            break
    out: list[list] = []
    for p in pieces:  # neighbours that now share a speaker are one piece
        if out and out[-1][2] == p[2] and abs(out[-1][1] - p[0]) < 1e-6:
            out[-1][1] = p[1]
        else:
            out.append(p)
    return out


@dataclass
class VoiceProfile:
    """An enrolled voice: a name, the mean embedding of its enrolment (personal data) and how much speech made it."""

    name: str
    embedding: np.ndarray
    seconds: float


#: An enrolment needs this much speech (s).
MIN_ENROL_SECONDS = 3.0

#: Two speakers' embeddings closer than this cosine are taken for one voice: the threshold at the equal error rate
#: of speaker verification on held-out speakers (benchmarks/diarization.py, docs/benchmarks/diarization.md: EER 7.3 %
#: at 0.672 over 21 held-out speakers whose 3 enrolment clips were long enough, against single clips; a
#: diarized speaker's mean over many windows is steadier than one clip, so this errs towards accepting).
SAME_VOICE = 0.67


def enrol(name: str, signal: np.ndarray, sample_rate: int, regions: Sequence[tuple[float, float]],
          encoder: SpeakerEncoder, *, hop: float = 0.8) -> VoiceProfile:
    """A voice profile from an enrolment recording's speech ``regions``.

    Raises
    ------
    AudioError
        naming the enrolment: too little speech (under :data:`MIN_ENROL_SECONDS`), or two voices in it (its windows
        fall into two clusters whose centroids are further apart than one voice's).
    """
    seconds = sum(e - s for s, e in regions)
    if seconds < MIN_ENROL_SECONDS:
        raise AudioError(name, f"enrolment too short: {seconds:.1f} s of speech, needs {MIN_ENROL_SECONDS:g} s")
    spans = speaker_windows(regions, encoder.window_seconds, hop)
    X = encoder.embed([signal[round(s * sample_rate):round(e * sample_rate)] for s, e in spans])
    if len(X) >= 4:
        halves = AgglomerativeClustering(n_clusters=2, metric="cosine", linkage="average").fit_predict(X)
        a, b = X[halves == 0].mean(0), X[halves == 1].mean(0)
        if min((halves == 0).sum(), (halves == 1).sum()) >= 2 and float(cosine(a, b)[0]) < SAME_VOICE:
            raise AudioError(name, "the enrolment holds two voices (its speech falls into two groups that sound like "
                                   "different people); enrol with a recording of this person alone")
    centre = X.mean(axis=0)
    return VoiceProfile(name, centre / max(float(np.linalg.norm(centre)), 1e-12), float(seconds))


def name_speakers(diarization: Diarization, profiles: Sequence[VoiceProfile],
                  threshold: float = SAME_VOICE) -> dict[str, str]:
    """Each diarized speaker's name: the enrolled voice it matches (one speaker per profile, the best pairs
    first), else its own ``S#``. Profiles matched by no speaker are not heard in the recording."""
    speakers = diarization.speakers
    names = {s: s for s in speakers}
    if not profiles or not speakers:
        return names
    sim = cosine(np.stack([diarization.centroids[s] for s in speakers]), np.stack([p.embedding for p in profiles]))
    rows, cols = linear_sum_assignment(-sim)
    for r, c in zip(rows, cols):
        if sim[r, c] >= threshold:
            names[speakers[r]] = profiles[c].name
    return names
