"""Result files of the service: one folder per analysed session, one per person's trend, written atomically.

A session's folder is written beside its final place and renamed into it, so a reader (or a restart after a
kill) sees all of timeline.json/csv, timeline.png and report.html or none of them. A person's trend is rebuilt
from the stored timelines (the analysis code makes the plots and the report; nothing is recomputed here).
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

from serkit.inference.analysis import RecordingAnalysis, SessionsResult, build_analysis, sessions_frame
from serkit.inference.api import EmotionModel
from serkit.inference.report import write_analysis
from serkit.inference.stream import AnalysisConfig, WindowResult

#: matplotlib's pyplot keeps global state: the job thread and request threads plot one at a time.
PLOT_LOCK = threading.Lock()

#: Files of an analysed session a client may fetch, with their media types.
SESSION_FILES = {"timeline.json": "application/json", "timeline.csv": "text/csv", "timeline.png": "image/png",
                 "report.html": "text/html"}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def write_session_results(analysis: RecordingAnalysis, results_dir: Path, sid: str, model: EmotionModel) -> Path:
    """Timeline, plot and report of one session into ``results_dir/sid`` (replacing an older set whole)."""
    final = results_dir / sid
    tmp = results_dir / f".{sid}.tmp"
    remove_tree(tmp)
    with PLOT_LOCK:
        write_analysis(SessionsResult([analysis]), tmp, model)
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
    regions = [(float(s), float(e)) for s, e in timeline["speech_regions"]]
    peak = 10 ** (peak_dbfs / 20) if peak_dbfs is not None and np.isfinite(peak_dbfs) else 0.0
    a = build_analysis(name, model, AnalysisConfig(**timeline["config"]), results, regions,
                       duration=timeline["duration_s"], sample_rate=timeline["sample_rate"],
                       channels=timeline["channels"], peak=peak, vad=timeline["vad"], window_seconds=timeline["window_s"])
    a.date, a.date_source = date, "given at upload"
    return a


def person_trend(people_dir: Path, results_dir: Path, pid: str, sessions: list[dict[str, Any]],
                 model: EmotionModel) -> dict[str, Any]:
    """Trend of a person's analysed sessions: rows per session, and trend.png and report.html on disk.

    The files are rebuilt when the set of analysed sessions changes (a folder per set, named by its hash).
    Sessions analysed with another label set than the model's (an older model) are listed as excluded.
    """
    done = [s for s in sessions if s["status"] == "done"]
    usable, excluded, analyses = [], [], []
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
        usable.append(s)
        analyses.append(analysis_from_timeline(timeline, model, name=f"{s['date'][:10]} {s['recording']}",
                                               date=parse_date(s["date"]), peak_dbfs=s.get("peak_dbfs")))
    names = [a.path for a in analyses]
    for k, a in enumerate(analyses):  # report sections and plots are keyed by name: keep names unique
        if names.count(a.path) > 1:
            a.path = f"{a.path} #{k + 1}"
    key = hashlib.sha256(json.dumps([[s["id"], s["date"]] for s in usable]).encode()).hexdigest()[:16]
    out = people_dir / pid / key
    with PLOT_LOCK:  # one build at a time: two requests for the same trend must not share the temporary folder
        if analyses and not (out / "report.html").is_file():
            from serkit.inference.report import plot_trend, write_report

            tmp = people_dir / pid / f".{key}.tmp"
            remove_tree(tmp)
            tmp.mkdir(parents=True)
            trend = plot_trend(analyses, tmp / "trend.png")
            plots = {a.path: results_dir / s["id"] / "timeline.png" for a, s in zip(analyses, usable)}
            write_report(SessionsResult(analyses), tmp / "report.html", model, plots, trend)
            for old in (people_dir / pid).iterdir():  # earlier sets are stale
                if old.is_dir() and old.name != tmp.name:
                    remove_tree(old)
            tmp.rename(out)
    rows = sessions_frame(analyses).replace({np.nan: None}).to_dict("records") if analyses else []
    for row, s in zip(rows, usable):
        row["session_id"], row["date"] = s["id"], s["date"]
    return {"labels": list(model.labels), "sessions": rows, "excluded": excluded, "folder": out if analyses else None}

