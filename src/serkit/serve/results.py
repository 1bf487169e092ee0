"""Result files of the service: one folder per analysed session, one per person's trend, written atomically.

A session's folder is written beside its final place and renamed into it, so a reader (or a restart after a
kill) sees all of timeline.json/csv, timeline.png, report.html and the windows' features or none of them. A
person's trend is rebuilt from the stored timelines (the analysis code makes the plots and the report), and its
adapted results from the stored features (the encoder is not run again; :mod:`serkit.serve.baseline`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from serkit.inference.analysis import (
    RecordingAnalysis,
    SessionsResult,
    build_analysis,
    merge_segments,
    restrict_to_speaker,
    sessions_frame,
    smooth_windows,
    with_adaptation,
)
from serkit.inference.api import EmotionModel
from serkit.inference.report import write_analysis
from serkit.inference.stream import AnalysisConfig, WindowResult
from serkit.serve.baseline import _matching, load_features, person_baselines, save_features
from serkit.serve.voices import diarization_from_timeline, load_voices, person_speaker, save_voices
from serkit.utils import atomic_write_text

#: matplotlib's pyplot keeps global state: the job thread and request threads plot one at a time.
PLOT_LOCK = threading.Lock()

#: Files of an analysed session a client may fetch, with their media types.
SESSION_FILES = {"timeline.json": "application/json", "timeline.csv": "text/csv", "timeline.png": "image/png",
                 "report.html": "text/html"}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_session_files(settings, sid: str, audio: str | None, person_id: str | None) -> None:
    """Everything on disk of a deleted session: its results (features included), its recording, and the
    person's trend folders that showed it (they are rebuilt without it)."""
    if not sid:
        raise ValueError("remove_session_files: no session id")  # never the whole results folder
    remove_tree(settings.results_dir / sid)
    remove_tree(settings.results_dir / f".{sid}.tmp")
    if audio:
        (settings.uploads_dir / audio).unlink(missing_ok=True)
    if person_id:
        remove_tree(settings.people_dir / person_id)


def write_session_results(analysis: RecordingAnalysis, results_dir: Path, sid: str, model: EmotionModel) -> Path:
    """Timeline, plot and report of one session into ``results_dir/sid`` (replacing an older set whole), with
    its windows' features when the analysis kept them (the person's baselines are built from them)."""
    final = results_dir / sid
    tmp = results_dir / f".{sid}.tmp"
    remove_tree(tmp)
    with PLOT_LOCK:
        write_analysis(SessionsResult([analysis]), tmp, model)
    save_voices(analysis, tmp)
    save_features(analysis.features, tmp)
    old = results_dir / f".{sid}.old"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    remove_tree(old)
    return final


def parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text)


def analysis_from_timeline(timeline: dict[str, Any], model: EmotionModel, *, name: str, date: datetime,
                           peak_dbfs: float | None) -> RecordingAnalysis:
    """A stored session's analysis rebuilt from its timeline.json (windows and speech regions) by the analysis
    code's own :func:`build_analysis`, for the trend and the person's report."""
    labels = timeline["labels"]
    results = [WindowResult(w["start"], w["end"], w["region"], np.array([w["probabilities"][lab] for lab in labels]))
               for w in timeline["windows"]]
    speakers = [w["speaker"] for w in timeline["windows"]] if timeline["windows"] and all(
        "speaker" in w for w in timeline["windows"]) else None
    regions = [(float(s), float(e)) for s, e in timeline["speech_regions"]]
    peak = 10 ** (peak_dbfs / 20) if peak_dbfs is not None and np.isfinite(peak_dbfs) else 0.0
    a = build_analysis(name, model, AnalysisConfig(**timeline["config"]), results, regions,
                       duration=timeline["duration_s"], sample_rate=timeline["sample_rate"],
                       channels=timeline["channels"], peak=peak, vad=timeline["vad"], window_seconds=timeline["window_s"])
    a.date, a.date_source = date, "given at upload"
    if speakers is not None:  # diarized: the windows' voices, and the segments split by them, as analysed
        a.window_speakers = speakers
        groups = np.cumsum([True] + [speakers[i] != speakers[i - 1] or results[i].region != results[i - 1].region
                                     for i in range(1, len(speakers))])
        a.smoothed = smooth_windows(a.windows, a.config.smoothing, groups)
        a.segments = merge_segments(a.labels, a.smoothed, a.cells, np.array([w.region for w in a.windows]),
                                    a.config.merge_gap, speakers)
    return a


def person_trend(people_dir: Path, results_dir: Path, pid: str, sessions: list[dict[str, Any]],
                 model: EmotionModel, *, profile: np.ndarray | None = None, person: str = "") -> dict[str, Any]:
    """Trend of a person's analysed sessions: rows per session (strict, and adapted to the person's other
    sessions where their baseline is used), each session's baseline, and trend.png and report.html on disk.

    With the person's voice ``profile`` (:mod:`serkit.serve.voices`), each diarized session counts only the voice
    that matches it (its turns, its windows, its features for the baselines), and a session where no voice
    matches is left out, saying why. The files are rebuilt when the set of analysed sessions or the profile
    changes (a folder per set, named by its hash), and so are the baselines: each session's is the model adapted
    to the person's other sessions (:mod:`serkit.serve.baseline`). Sessions analysed with another label set than
    the model's (an older model) are listed as excluded.
    """
    done = [s for s in sessions if s["status"] == "done"]
    usable, excluded, timelines, speakers = [], [], [], []
    for s in done:
        path = results_dir / s["id"] / "timeline.json"
        try:
            timeline = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            excluded.append({"session_id": s["id"], "reason": f"its timeline cannot be read ({exc})"})
            continue
        if timeline["labels"] != model.labels:
            excluded.append({"session_id": s["id"], "reason": "analysed by a model with other classes "
                                                              f"({', '.join(timeline['labels'])})"})
            continue
        speaker, why = person_speaker(load_voices(results_dir, s["id"]), profile, person)
        if why:
            excluded.append({"session_id": s["id"], "reason": why, "flag": "voice"})
            continue
        usable.append(s)
        timelines.append(timeline)
        speakers.append(speaker)
    voice_key = None if profile is None else hashlib.sha256(np.asarray(profile, "<f4").tobytes()).hexdigest()[:8]
    key = hashlib.sha256(json.dumps([model.source, voice_key, [[s["id"], s["date"]] for s in usable]]).encode()
                         ).hexdigest()[:16]
    out = people_dir / pid / key
    cached = _read_json(out / "baselines.json")
    analyses, baselines = [], {}
    if cached is None or not (out / "report.html").is_file():
        analyses, baselines = _session_analyses(results_dir, usable, timelines, speakers, model)
    with PLOT_LOCK:  # one build at a time: two requests for the same trend must not share the temporary folder
        if analyses and not (out / "report.html").is_file():
            from serkit.inference.report import plot_trend, write_report

            tmp = people_dir / pid / f".{key}.tmp"
            remove_tree(tmp)
            tmp.mkdir(parents=True)
            trend = plot_trend(analyses, tmp / "trend.png")
            plots = {a.path: results_dir / s["id"] / "timeline.png" for a, s in zip(analyses, usable)}
            write_report(SessionsResult(analyses), tmp / "report.html", model, plots, trend)
            atomic_write_text(tmp / "baselines.json", json.dumps(
                {"sessions": {sid: b.describe() for sid, b in baselines.items()},
                 "rows": _rows(analyses, usable)}, default=str))
            for old in (people_dir / pid).iterdir():  # earlier sets are stale
                if old.is_dir() and old.name != tmp.name:
                    remove_tree(old)
            tmp.rename(out)
        cached = _read_json(out / "baselines.json") if usable else None
    rows = cached["rows"] if cached else []
    described = cached["sessions"] if cached else {}
    return {"labels": list(model.labels), "sessions": rows, "excluded": excluded,
            "baselines": described, "baseline": _baseline_status(described, model),
            "folder": out if usable else None}


def _session_analyses(results_dir: Path, usable: list[dict], timelines: list[dict], speakers: list[str | None],
                      model: EmotionModel):
    """The usable sessions' analyses rebuilt from their timelines (the person's voice only, where ``speakers``
    names it), each with its adapted result where its baseline is used, and every session's baseline."""
    analyses, features = [], {}
    for s, timeline, speaker in zip(usable, timelines, speakers):
        a = analysis_from_timeline(timeline, model, name=f"{s['date'][:10]} {s['recording']}",
                                   date=parse_date(s["date"]), peak_dbfs=s.get("peak_dbfs"))
        x = _matching(load_features(results_dir, s["id"]), model)
        if x is not None and len(x) != len(a.windows):
            x = None  # features of other windows than the timeline's (a damaged file): no adapted result
        if a.window_speakers is not None:
            a.speakers = diarization_from_timeline(timeline, load_voices(results_dir, s["id"]) or {})
        if speaker is not None and a.speakers is not None:
            a, kept = restrict_to_speaker(a, speaker)
            x = None if x is None else x[kept]
        analyses.append(a)
        features[s["id"]] = x
    names = [a.path for a in analyses]
    for k, a in enumerate(analyses):  # report sections and plots are keyed by name: keep names unique
        if names.count(a.path) > 1:
            a.path = f"{a.path} #{k + 1}"
    rows = [{"id": s["id"], "speech_s": a.speech_seconds} for s, a in zip(usable, analyses)]
    baselines = person_baselines(rows, model, features)
    for s, a in zip(usable, analyses):
        b, x = baselines[s["id"]], features[s["id"]]
        if b.model is not None and x is not None and len(x) == len(a.windows):
            for w, v in zip(a.windows, x):
                w.features = v
            with_adaptation(a, b.model, b.label)
    return analyses, baselines


def _rows(analyses: list[RecordingAnalysis], usable: list[dict]) -> list[dict[str, Any]]:
    rows = sessions_frame(analyses).replace({np.nan: None}).to_dict("records") if analyses else []
    for row, s in zip(rows, usable):
        row["session_id"], row["date"] = s["id"], s["date"]
    return rows


def _baseline_status(described: dict[str, dict], model: EmotionModel) -> dict[str, Any]:
    """The person's baseline in one line for the page: used (for how many sessions), or why not yet."""
    used = [sid for sid, b in described.items() if b["used"]]
    if used:
        return {"used": True, "sessions": len(used), "method": described[used[0]]["method"],
                "why_not": None}
    reasons = sorted({r for b in described.values() for r in b["why_not"]})
    return {"used": False, "sessions": 0, "method": None,
            "why_not": reasons or ["no analysed session of this person yet"]}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
