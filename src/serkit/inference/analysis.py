"""Long recordings: per-window emotion probabilities over speech, smoothed and merged into a timeline.

A file is read in blocks and fed through the streaming core (:class:`~serkit.inference.stream.StreamAnalyzer`),
so memory does not grow with the recording's length beyond the timeline itself (a few numbers per window).

Arousal and valence are estimated as the expectation of a fixed (arousal, valence) position per emotion under
the window's class probabilities. The positions (:data:`AROUSAL_VALENCE`) place each unified label in Russell's
circumplex model of affect (Russell 1980, "A circumplex model of affect", J. Pers. Soc. Psychol. 39(6),
1161-1178) on a [-1, 1] scale; they are coarse, serkit's own reading of that model, not measured values.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from serkit.audio.io import find_audio_files, header_length_is_exact, open_audio
from serkit.errors import AudioError, ConfigError
from serkit.inference.api import EmotionModel, speech_shortfall
from serkit.inference.stream import AnalysisConfig, StreamAnalyzer, WindowResult, window_cells
from serkit.utils import atomic_write_text

#: (arousal, valence) of each unified label, in [-1, 1]; see the module docstring for the basis.
AROUSAL_VALENCE: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "calm": (-0.6, 0.4),
    "happy": (0.5, 0.8),
    "sad": (-0.5, -0.7),
    "angry": (0.8, -0.6),
    "fearful": (0.7, -0.7),
    "disgust": (0.3, -0.7),
    "surprised": (0.8, 0.3),
    "boredom": (-0.7, -0.3),
}

#: Emotions counted as negative in the summaries.
NEGATIVE_LABELS: tuple[str, ...] = ("sad", "angry", "fearful", "disgust")

#: What a session's summary repeats of its adapted result (``summary["adapted"]``).
ADAPTED_SUMMARY: tuple[str, ...] = ("share", "mean_proba", "negative_share", "arousal", "valence", "confidence",
                                    "uncertain_share")

#: Seconds of audio read per block.
BLOCK_SECONDS = 10.0

#: A window whose top probability is below this is counted as uncertain (AnalysisConfig.min_confidence's default).
LOW_CONFIDENCE = 0.5

_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})[-_.]?(\d{2})[-_.]?(\d{2})(?:[T_ -](\d{2})[-:h.]?(\d{2}))?(?!\d)")


@dataclass
class Segment:
    """A stretch of speech with one (smoothed) label; ``proba`` is the speech-time weighted mean."""

    start: float
    end: float
    label: str
    proba: np.ndarray
    speech_seconds: float
    windows: int
    speaker: str | None = None  # with diarization: whose speech it is


@dataclass
class RecordingAnalysis:
    """Everything the timeline and the report need about one recording."""

    path: str
    labels: list[str]
    duration: float
    sample_rate: int
    channels: int
    peak_dbfs: float
    vad: str
    window_seconds: float
    config: AnalysisConfig
    windows: list[WindowResult]
    regions: list[tuple[float, float]]
    smoothed: np.ndarray  # (n_windows, C)
    cells: np.ndarray  # (n_windows, 2): the stretch of speech each window stands for (start, end seconds)
    segments: list[Segment]
    date: datetime | None = None
    date_source: str = ""
    shortfall: str | None = None  # why nothing was classified (too short, too little speech), or None
    #: the same windows scored by a model adapted to the person (:func:`with_adaptation`), and what it was adapted
    #: to ("adapted to this person's 4 sessions"): an adapted result, shown beside this strict one
    adapted: RecordingAnalysis | None = None
    adapted_label: str | None = None
    #: with diarization (:func:`with_speakers`): who spoke when, each window's speaker, and the enrolled people
    #: looked for but not heard
    speakers: Any = None
    window_speakers: list[str] | None = None
    speaker_names: dict[str, str] = field(default_factory=dict)
    not_heard: list[str] = field(default_factory=list)

    @property
    def features(self) -> np.ndarray | None:
        """(windows, ...) pooled features of the windows, when the analysis kept them (``keep_features``)."""
        if not self.windows or any(w.features is None for w in self.windows):
            return None
        return np.stack([w.features for w in self.windows])

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def speech_seconds(self) -> float:
        return float(sum(e - s for s, e in self.regions))

    def summary(self) -> dict[str, Any]:
        """Shares per emotion, negative share, arousal/valence and confidence, weighted by speech time."""
        return summarize(self)


# -- analysis -----------------------------------------------------------------------------------------
def analyze_recording(path: str | Path, model: EmotionModel, config: AnalysisConfig | None = None, *,
                      block_seconds: float = BLOCK_SECONDS, progress=None,
                      keep_features: bool = False) -> RecordingAnalysis:
    """Analyse one audio file of any length, reading it ``block_seconds`` at a time.

    ``progress``, when given, is called with the fraction of the file read (0-1) after each block; an exception
    it raises stops the analysis (the service cancels jobs this way). ``keep_features`` keeps each window's
    features (:attr:`RecordingAnalysis.features`), for :func:`with_adaptation`.

    Raises
    ------
    AudioError
        naming the file: not audio, empty, truncated, undecodable, NaN samples.
    """
    config = config or AnalysisConfig()
    with open_audio(path) as handle:
        sr, channels, frames = handle.samplerate, handle.channels, handle.frames
        stream = StreamAnalyzer(model, sr, channels, config, keep_features=keep_features)
        results: list[WindowResult] = []
        read = 0
        block = max(1, round(block_seconds * sr))
        while read < frames:
            try:
                data = handle.read(min(block, frames - read), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                detail = getattr(exc, "error_string", None) or str(exc)
                raise AudioError(path, f"truncated or corrupt at {read / sr:.1f} s: decoding failed "
                                       f"(libsndfile: {detail})") from None
            if not len(data):
                if header_length_is_exact(handle) or not read:
                    raise AudioError(path, f"truncated: the header declares {frames} frames but decoding stopped "
                                           f"after {read}")
                break  # MP3/Ogg: the declared length was an estimate
            if not np.all(np.isfinite(data)):
                raise AudioError(path, f"NaN or infinite samples in the block at {read / sr:.1f} s")
            read += len(data)
            results += stream.push(data if channels > 1 else data[:, 0])
            if progress is not None:
                progress(read / frames)
        results += stream.finish()
    return build_analysis(str(path), model, config, results, stream.take_regions(), duration=read / sr,
                          sample_rate=sr, channels=channels, peak=stream.peak, vad=stream.vad_name,
                          window_seconds=stream.window_seconds)


def analyze_signal(y: np.ndarray, sample_rate: int, model: EmotionModel, config: AnalysisConfig | None = None,
                   *, name: str = "<array>", keep_features: bool = False) -> RecordingAnalysis:
    """Analyse a mono waveform (n,) or a (n, channels) array already in memory."""
    config = config or AnalysisConfig()
    y = np.asarray(y, dtype=np.float32)
    channels = 1 if y.ndim == 1 else y.shape[1]
    stream = StreamAnalyzer(model, sample_rate, channels, config, keep_features=keep_features)
    try:
        results = stream.push(y) + stream.finish()
    except AudioError as exc:
        raise AudioError(name, exc.reason) from None
    return build_analysis(name, model, config, results, stream.take_regions(), duration=len(y) / sample_rate,
                          sample_rate=sample_rate, channels=channels, peak=stream.peak, vad=stream.vad_name,
                          window_seconds=stream.window_seconds)


# -- timeline -----------------------------------------------------------------------------------------
def smooth_windows(results: list[WindowResult], width: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Centred moving average of the window probabilities over ``width`` windows, never across regions (or across
    ``groups``: one id per window, e.g. a region and a speaker)."""
    if not results:
        return np.zeros((0, 0))
    proba = np.stack([r.proba for r in results]).astype(np.float64)
    if width <= 1:
        return proba
    regions = np.array([r.region for r in results]) if groups is None else np.asarray(groups)
    out = np.empty_like(proba)
    half = width // 2
    for region in np.unique(regions):
        idx = np.flatnonzero(regions == region)
        for k, i in enumerate(idx):
            out[i] = proba[idx[max(0, k - half) : k + half + 1]].mean(axis=0)
    return out


def merge_segments(labels: list[str], smoothed: np.ndarray, cells: np.ndarray, regions: np.ndarray,
                   merge_gap: float, speakers: Sequence[str] | None = None) -> list[Segment]:
    """Consecutive windows with the same top label (and, with ``speakers``, the same speaker) -> segments; across
    a silence only when it is shorter than ``merge_gap`` seconds."""
    segments: list[Segment] = []
    current: dict[str, Any] | None = None
    top = smoothed.argmax(1) if len(smoothed) else np.zeros(0, dtype=int)

    def close() -> None:
        weight = current["weight"]
        proba = current["sum"] / weight if weight > 0 else current["sum"]
        segments.append(Segment(current["start"], current["end"], labels[current["label"]], proba, weight,
                                current["n"], current["speaker"]))

    for i in range(len(smoothed)):
        a, b = float(cells[i, 0]), float(cells[i, 1])
        speaker = speakers[i] if speakers is not None else None
        same_region = current is not None and regions[i] == current["region"]
        joinable = current is not None and top[i] == current["label"] and speaker == current["speaker"] and (
            same_region or a - current["end"] < merge_gap)
        if not joinable:
            if current is not None:
                close()
            current = {"start": a, "end": b, "label": int(top[i]), "region": regions[i], "n": 0,
                       "sum": np.zeros(smoothed.shape[1]), "weight": 0.0, "speaker": speaker}
        current["end"], current["region"] = b, regions[i]
        current["sum"] += smoothed[i] * (b - a)
        current["weight"] += b - a
        current["n"] += 1
    if current is not None:
        close()
    return segments


def build_analysis(path: str, model: EmotionModel, config: AnalysisConfig, results: list[WindowResult],
                   regions: list[tuple[float, float]], *, duration: float, sample_rate: int, channels: int,
                   peak: float, vad: str, window_seconds: float) -> RecordingAnalysis:
    """Window results and speech regions -> smoothed probabilities, cells and segments.

    A recording with too little audio or speech (:func:`~serkit.inference.api.speech_shortfall`, the rule
    ``predict`` follows too) keeps its speech regions but no windows: nothing is classified."""
    shortfall = speech_shortfall(duration, sum(e - s for s, e in regions))
    if shortfall:
        results = []
    smoothed = smooth_windows(results, config.smoothing)
    cells = window_cells(results, regions)
    region_ids = np.array([r.region for r in results])
    segments = merge_segments(model.labels, smoothed, cells, region_ids, config.merge_gap) if results else []
    peak_dbfs = 20 * math.log10(peak) if peak > 0 else -math.inf
    return RecordingAnalysis(path, list(model.labels), duration, sample_rate, channels, peak_dbfs, vad,
                             window_seconds, config, results, regions,
                             smoothed if results else np.zeros((0, len(model.labels))), cells, segments,
                             shortfall=shortfall)


def with_adaptation(a: RecordingAnalysis, adapted: EmotionModel, label: str) -> RecordingAnalysis:
    """Score ``a``'s windows again with ``adapted`` (a model adapted to the person, sharing the strict model's
    extractor) from the features the analysis kept, and attach the result as ``a.adapted`` with ``label`` (what
    it was adapted to). Returns ``a``.

    Raises
    ------
    ConfigError
        when ``a`` kept no features (analysed without ``keep_features``) though it has windows.
    """
    features = a.features
    if features is None and a.windows:
        raise ConfigError(f"{a.name}: its windows' features were not kept, so it cannot be scored adapted")
    proba = adapted.proba_of_features(features) if a.windows else np.zeros((0, len(a.labels)))
    results = [WindowResult(w.start, w.end, w.region, p) for w, p in zip(a.windows, proba)]
    b = build_analysis(a.path, adapted, a.config, results, a.regions, duration=a.duration, sample_rate=a.sample_rate,
                       channels=a.channels, peak=10 ** (a.peak_dbfs / 20) if np.isfinite(a.peak_dbfs) else 0.0,
                       vad=a.vad, window_seconds=a.window_seconds)
    b.date, b.date_source = a.date, a.date_source
    if a.window_speakers is not None:
        _split_by_speaker(b, a.speakers, a.window_speakers)
    a.adapted, a.adapted_label = b, label
    return a


def with_speakers(a: RecordingAnalysis, diarization, names: dict[str, str] | None = None,
                  looked_for: Sequence[str] = ()) -> RecordingAnalysis:
    """Give ``a``'s windows their speakers from ``diarization`` (:mod:`serkit.speakers`; ``names`` maps its
    speakers to enrolled people's names) and split its smoothing and segments at every change of speaker, so
    that one timeline becomes one lane per speaker. ``looked_for``: the enrolled names; those no speaker matched
    are listed in ``a.not_heard``. Returns ``a``."""
    names = names or {}
    speakers = [names.get(s, s) for s in (diarization.speaker_at(float(c[0]), float(c[1])) or "?" for c in a.cells)]
    _split_by_speaker(a, diarization, speakers, names)
    heard = {names.get(s, s) for s in diarization.speakers}
    a.not_heard = [n for n in looked_for if n not in heard]
    return a


def restrict_to_speaker(a: RecordingAnalysis, speaker: str) -> tuple[RecordingAnalysis, np.ndarray]:
    """``a`` as if only ``speaker`` had spoken: their windows, segments and speech (their turns) only, so that
    their summary, a trend or a baseline is theirs alone. Returns it and the positions of the windows it kept.

    Raises
    ------
    ConfigError
        when ``a`` has no speakers (it was not diarized).
    """
    if a.window_speakers is None:
        raise ConfigError(f"{a.name}: not diarized, so there is no one speaker's part to keep")
    kept = np.flatnonzero(np.array(a.window_speakers) == speaker)
    b = copy.copy(a)
    b.windows = [a.windows[i] for i in kept]
    b.cells, b.smoothed = a.cells[kept], a.smoothed[kept]
    b.window_speakers = [speaker] * len(kept)
    b.segments = [g for g in a.segments if g.speaker == speaker]
    named = {k: v for k, v in a.speaker_names.items()}
    if a.speakers is not None:
        b.regions = [(t.start, t.end) for t in a.speakers.turns if named.get(t.speaker, t.speaker) == speaker]
    b.adapted = None
    return b, kept


def _split_by_speaker(a: RecordingAnalysis, diarization, speakers: list[str], names: dict | None = None) -> None:
    a.speakers, a.window_speakers = diarization, speakers
    if names is not None:
        a.speaker_names = names
    if not a.windows:
        return
    regions = np.array([w.region for w in a.windows])
    groups = np.cumsum([True] + [regions[i] != regions[i - 1] or speakers[i] != speakers[i - 1]
                                 for i in range(1, len(speakers))])
    a.smoothed = smooth_windows(a.windows, a.config.smoothing, groups)
    a.segments = merge_segments(a.labels, a.smoothed, a.cells, regions, a.config.merge_gap, speakers)


# -- summaries ------------------------------------------------------------------------------------------
def arousal_valence(labels: list[str], proba: np.ndarray) -> np.ndarray:
    """(N, 2) expected (arousal, valence) under class probabilities (N, C); unknown labels count as (0, 0)."""
    table = np.array([AROUSAL_VALENCE.get(lab, (0.0, 0.0)) for lab in labels])
    return np.asarray(proba) @ table


def negative_mass(labels: list[str], proba: np.ndarray) -> np.ndarray:
    """(N,) probability of any negative emotion."""
    cols = [j for j, lab in enumerate(labels) if lab in NEGATIVE_LABELS]
    return np.asarray(proba)[:, cols].sum(axis=1) if cols else np.zeros(len(proba))


def time_bins(duration: float) -> float:
    """Bin width (s) for "over time" summaries: the smallest of 10 s, 30 s, 1, 5, 10, 30 min giving <= 60 bins."""
    for width in (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0):
        if duration / width <= 60:
            return width
    return 3600.0


def summarize(a: RecordingAnalysis) -> dict[str, Any]:
    labels = a.labels
    weight = a.cells[:, 1] - a.cells[:, 0] if len(a.windows) else np.zeros(0)
    total = float(weight.sum())
    top = a.smoothed.argmax(1) if len(a.windows) else np.zeros(0, dtype=int)
    raw = np.stack([w.proba for w in a.windows]) if a.windows else np.zeros((0, len(labels)))
    out: dict[str, Any] = {
        "recording": a.name, "duration_s": a.duration, "speech_s": a.speech_seconds,
        "speech_fraction": a.speech_seconds / a.duration if a.duration else 0.0, "windows": len(a.windows),
        "segments": len(a.segments), "date": a.date.isoformat(sep=" ") if a.date else None,
        "date_source": a.date_source, "negative_labels": [lab for lab in labels if lab in NEGATIVE_LABELS],
    }
    if total <= 0:
        out.update({"share": {lab: 0.0 for lab in labels}, "negative_share": None, "arousal": None,
                    "valence": None, "confidence": None, "uncertain_share": None, "over_time": []})
        return out
    out["share"] = {lab: float(weight[top == j].sum() / total) for j, lab in enumerate(labels)}
    out["mean_proba"] = {lab: float(np.average(a.smoothed[:, j], weights=weight)) for j, lab in enumerate(labels)}
    neg = np.isin(np.array(labels)[top], NEGATIVE_LABELS)
    out["negative_share"] = float(weight[neg].sum() / total)
    av = arousal_valence(labels, a.smoothed)
    out["arousal"], out["valence"] = (float(np.average(av[:, k], weights=weight)) for k in range(2))
    confidence = raw.max(1)
    out["confidence"] = float(np.average(confidence, weights=weight))
    out["uncertain_share"] = float(weight[confidence < a.config.min_confidence].sum() / total)
    out["min_confidence"] = a.config.min_confidence
    out["chance"] = 1.0 / len(labels)
    width = time_bins(a.duration)
    mass = negative_mass(labels, a.smoothed)
    mid = (a.cells[:, 0] + a.cells[:, 1]) / 2
    rows = []
    for k in range(math.ceil(a.duration / width)):
        sel = (mid >= k * width) & (mid < (k + 1) * width)
        w = weight[sel]
        if w.sum() <= 0:
            continue
        rows.append({"start_s": k * width, "end_s": min((k + 1) * width, a.duration), "speech_s": float(w.sum()),
                     "negative_share": float(w[neg[sel]].sum() / w.sum()),
                     "negative_proba": float(np.average(mass[sel], weights=w))})
    out["bin_seconds"] = width
    out["over_time"] = rows
    if a.adapted is not None:
        adapted = summarize(a.adapted)
        out["adapted"] = {"label": a.adapted_label, **{k: adapted.get(k) for k in ADAPTED_SUMMARY}}
    if a.window_speakers is not None:
        out["speakers"] = speaker_summaries(a, weight, top)
        out["not_heard"] = list(a.not_heard)
    return out


def speaker_summaries(a: RecordingAnalysis, weight: np.ndarray, top: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per speaker (diarized): speech time, shares per emotion, negative share, arousal and valence of their
    windows only."""
    who = np.array(a.window_speakers)
    av = arousal_valence(a.labels, a.smoothed)
    out = {}
    for speaker in dict.fromkeys(a.window_speakers):
        sel = who == speaker
        w = weight[sel]
        total = float(w.sum())
        if total <= 0:
            continue
        neg = np.isin(np.array(a.labels)[top[sel]], NEGATIVE_LABELS)
        out[speaker] = {"speech_s": total,
                        "share": {lab: float(w[top[sel] == j].sum() / total) for j, lab in enumerate(a.labels)},
                        "negative_share": float(w[neg].sum() / total),
                        "arousal": float(np.average(av[sel, 0], weights=w)),
                        "valence": float(np.average(av[sel, 1], weights=w))}
    return out


# -- sessions -------------------------------------------------------------------------------------------
def recording_date(path: str | Path) -> tuple[datetime, str]:
    """The session date: from the file name (YYYY-MM-DD, YYYYMMDD, optional _HH-MM) or else its modified time."""
    path = Path(path)
    for match in _DATE.finditer(path.stem):
        y, m, d, hh, mm = match.groups()
        try:
            return datetime(int(y), int(m), int(d), int(hh or 0), int(mm or 0)), "file name"
        except ValueError:
            continue
    return datetime.fromtimestamp(path.stat().st_mtime), "file modified time"


@dataclass
class SessionsResult:
    """Analyses of several recordings in date order, and the ones that failed."""

    analyses: list[RecordingAnalysis] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def analyze_recordings(inputs: list[str | Path], model: EmotionModel, config: AnalysisConfig | None = None,
                       *, progress=None, keep_features: bool = False) -> SessionsResult:
    """Analyse files and folders; each recording is a session dated by its name or modified time.

    Goes on past recordings that fail (listed in ``failures`` with the reason). ``progress`` is called with
    each path before it is analysed.
    """
    result = SessionsResult()
    for path in find_audio_files(inputs):
        if progress is not None:
            progress(path)
        try:
            analysis = analyze_recording(path, model, config, keep_features=keep_features)
        except AudioError as exc:
            result.failures.append((str(path), exc.reason))
            continue
        analysis.date, analysis.date_source = recording_date(path)
        result.analyses.append(analysis)
    result.analyses.sort(key=lambda a: (a.date or datetime.min, a.path))
    return result


# -- outputs --------------------------------------------------------------------------------------------
def timeline_frame(a: RecordingAnalysis) -> pd.DataFrame:
    """The segments: start, end, label, confidence and one probability column per label."""
    df = pd.DataFrame({"start": [s.start for s in a.segments], "end": [s.end for s in a.segments],
                       **({"speaker": [s.speaker for s in a.segments]} if a.window_speakers is not None else {}),
                       "label": [s.label for s in a.segments],
                       "confidence": [float(s.proba.max()) for s in a.segments],
                       "speech_seconds": [s.speech_seconds for s in a.segments],
                       "windows": [s.windows for s in a.segments]})
    for j, lab in enumerate(a.labels):
        df[f"p_{lab}"] = [float(s.proba[j]) for s in a.segments]
    return df.round(4)


def timeline_json(a: RecordingAnalysis) -> dict[str, Any]:
    """Segments, windows (raw and smoothed probabilities), speech regions, settings and the summary."""
    def probs(p: np.ndarray) -> dict[str, float]:
        return {lab: round(float(v), 5) for lab, v in zip(a.labels, p)}

    return {
        "recording": a.path, "labels": a.labels, "duration_s": a.duration, "sample_rate": a.sample_rate,
        "channels": a.channels, "vad": a.vad, "window_s": a.window_seconds, "config": a.config.model_dump(),
        "summary": a.summary(),
        "segments": [{"start": round(s.start, 3), "end": round(s.end, 3), "label": s.label,
                      "probabilities": probs(s.proba), **({"speaker": s.speaker} if s.speaker is not None else {})}
                     for s in a.segments],
        "windows": [{"start": round(w.start, 3), "end": round(w.end, 3), "region": w.region,
                     "probabilities": probs(w.proba), "smoothed": probs(a.smoothed[i]),
                     **({"speaker": a.window_speakers[i]} if a.window_speakers is not None else {})}
                    for i, w in enumerate(a.windows)],
        **({"turns": speaker_turns(a)} if a.speakers is not None else {}),
        "speech_regions": [[round(s, 3), round(e, 3)] for s, e in a.regions],
        # the same windows scored adapted to the person (an adapted, not strict, result), when there is one
        **({"adapted": {"label": a.adapted_label,
                        "segments": [{"start": round(s.start, 3), "end": round(s.end, 3), "label": s.label,
                                      "probabilities": probs(s.proba)} for s in a.adapted.segments],
                        "windows": [{"probabilities": probs(w.proba)} for w in a.adapted.windows]}}
           if a.adapted is not None else {}),
    }


def speaker_turns(a: RecordingAnalysis) -> list[dict[str, Any]]:
    """Who spoke when (diarized): one row per turn, speakers named as in the timeline."""
    return [{"start": t.start, "end": t.end, "speaker": a.speaker_names.get(t.speaker, t.speaker)}
            for t in a.speakers.turns]


def write_timeline(a: RecordingAnalysis, out_dir: str | Path) -> dict[str, Path]:
    """``timeline.csv`` (segments) and ``timeline.json`` (everything) in ``out_dir``; with diarization also
    ``speakers.csv`` (``start,end,speaker``, one row per turn)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = atomic_write_text(out_dir / "timeline.csv", timeline_frame(a).to_csv(index=False))
    js = atomic_write_text(out_dir / "timeline.json", json.dumps(timeline_json(a), indent=1, default=str))
    written = {"csv": csv, "json": js}
    if a.speakers is not None:
        turns = pd.DataFrame(speaker_turns(a), columns=["start", "end", "speaker"])
        written["speakers"] = atomic_write_text(out_dir / "speakers.csv", turns.to_csv(index=False))
    return written


def sessions_frame(analyses: list[RecordingAnalysis]) -> pd.DataFrame:
    """One row per session: date, speech time, shares per emotion, negative share, arousal, valence, confidence."""
    rows = []
    for a in analyses:
        s = a.summary()
        row = {"date": s["date"], "recording": a.name, "speech_s": round(s["speech_s"], 2),
               "negative_share": s["negative_share"], "arousal": s["arousal"], "valence": s["valence"],
               "confidence": s["confidence"]}
        row.update({f"share_{lab}": s["share"][lab] for lab in a.labels})
        if "adapted" in s:  # an adapted result, in columns of its own beside the strict ones
            row.update({"adapted": s["adapted"]["label"], "adapted_negative_share": s["adapted"]["negative_share"],
                        "adapted_arousal": s["adapted"]["arousal"], "adapted_valence": s["adapted"]["valence"]})
            row.update({f"adapted_share_{lab}": s["adapted"]["share"][lab] for lab in a.labels})
        rows.append(row)
    return pd.DataFrame(rows).round(4)
