"""Plots and the self-contained HTML report of an analysis (inline CSS, images embedded, no scripts), and the
analysis output folder that holds them with the timelines (:func:`write_analysis`)."""

from __future__ import annotations

import base64
import functools
import html
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from serkit._version import __version__
from serkit.corpora.labels import UNIFIED_LABELS
from serkit.inference.analysis import (
    AROUSAL_VALENCE,
    LOW_CONFIDENCE,
    NEGATIVE_LABELS,
    RecordingAnalysis,
    SessionsResult,
    arousal_valence,
    negative_mass,
    sessions_frame,
    write_timeline,
)
from serkit.utils import atomic_write_bytes, atomic_write_text, replace_output_dir

if TYPE_CHECKING:
    from serkit.inference.api import EmotionModel

#: Limits that hold for any serkit model trained on the bundled corpora; the model card may add its own.
GENERAL_LIMITS = [
    ("Trained on acted emotional speech (actors reading fixed sentences in a studio), which is more intense and "
    "more clearly expressed than everyday speech; accuracy on natural conversation is lower and unmeasured."),
    ("Training languages are limited (EmoDB: German; RAVDESS: North American English); other languages, accents, "
    "children's or elderly voices, and noisy or telephone audio are outside what was measured."),
    ("The model labels how speech sounds, not how a person feels; several emotions sound alike (e.g. fear and "
    "surprise, sadness and boredom)."),
]


#: Families for plot text, in matplotlib's fallback order: DejaVu Sans (matplotlib's own), then CJK families
#: where one is installed.
_FONT_FAMILIES = ("DejaVu Sans", "Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
                  "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "IPAGothic",
                  "Unifont")


@functools.cache
def _fonts() -> tuple[tuple[str, ...], frozenset[int]]:
    """The installed families of :data:`_FONT_FAMILIES` and the code points they can draw."""
    from matplotlib import font_manager

    files = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    families = tuple(name for name in _FONT_FAMILIES if name in files)
    covered: set[int] = set()
    for name in families:
        covered.update(font_manager.get_font(files[name]).get_charmap())
    return families, frozenset(covered)


def _drawable(text: str) -> str:
    """``text`` with the characters no installed font can draw as "?" (matplotlib would warn "Glyph missing" and
    draw boxes); the HTML report gives file names in full."""
    _, covered = _fonts()
    return "".join(ch if ch.isspace() or ord(ch) in covered else "?" for ch in text)


def _colour(label: str) -> tuple:
    cmap = plt.get_cmap("tab10")
    idx = UNIFIED_LABELS.index(label) if label in UNIFIED_LABELS else hash(label) % 10
    return cmap(idx % 10)


def _time_axis(duration: float) -> tuple[float, str]:
    return (60.0, "time (min)") if duration > 600 else (1.0, "time (s)")


def _save(fig, path: str | Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_timeline(a: RecordingAnalysis, path: str | Path) -> Path:
    """Stacked emotion probabilities over time (speech only), the segment labels, and arousal/valence."""
    with plt.rc_context({"font.family": list(_fonts()[0]) or ["sans-serif"]}):
        return _plot_timeline(a, path)


def _plot_timeline(a: RecordingAnalysis, path: str | Path) -> Path:
    scale, xlabel = _time_axis(a.duration)
    lanes = list(dict.fromkeys(a.window_speakers)) if a.window_speakers else []  # one lane per speaker
    fig, axes = plt.subplots(3, 1, figsize=(12, 6.5 + 0.35 * max(0, len(lanes) - 1)), sharex=True,
                             gridspec_kw={"height_ratios": [3, 0.6 * max(1, len(lanes)), 1.6]})
    ax_p, ax_s, ax_av = axes
    if a.windows:
        # Each window's (smoothed) probabilities hold over its cell; zeros in the silences between regions.
        xs, ps, regions = [], [], np.array([w.region for w in a.windows])
        for i in range(len(a.windows)):
            if i and regions[i] != regions[i - 1]:
                xs += [a.cells[i - 1, 1], a.cells[i, 0]]
                ps += [np.zeros(len(a.labels))] * 2
            xs += [a.cells[i, 0], a.cells[i, 1]]
            ps += [a.smoothed[i]] * 2
        x = np.array(xs) / scale
        ax_p.stackplot(x, np.array(ps).T, labels=a.labels, colors=[_colour(lab) for lab in a.labels],
                       linewidth=0)
        for seg in a.segments:
            lane = len(lanes) - 1 - lanes.index(seg.speaker) if lanes and seg.speaker in lanes else 0
            ax_s.broken_barh([(seg.start / scale, (seg.end - seg.start) / scale)], (lane + 0.1, 0.8),
                             color=_colour(seg.label))
        av = arousal_valence(a.labels, a.smoothed)
        neg = negative_mass(a.labels, a.smoothed)
        mid = (a.cells[:, 0] + a.cells[:, 1]) / 2 / scale
        breaks = np.flatnonzero(np.diff(regions)) + 1
        for values, name, style in ((av[:, 0], "arousal", "-"), (av[:, 1], "valence", "-"),
                                    (neg, "P(negative)", ":")):
            ax_av.plot(np.insert(mid, breaks, np.nan), np.insert(values, breaks, np.nan), style, label=name,
                       marker=".", markersize=3)
    else:
        ax_p.text(0.5, 0.5, a.shortfall or "no speech detected", ha="center", va="center", transform=ax_p.transAxes)
    for s, e in a.regions:
        ax_s.axvspan(s / scale, e / scale, color="0.9", zorder=0)
    ax_p.set_ylim(0, 1)
    ax_p.set_xlim(0, max(a.duration, 1e-3) / scale)
    ax_p.set_ylabel("probability")
    ax_p.set_title(f"{_drawable(a.name)}: emotion probabilities over speech ({a.window_seconds:g} s windows, "
                   f"hop {a.config.hop:g} s, smoothed over {a.config.smoothing})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=_colour(lab)) for lab in a.labels]
    ax_p.legend(handles, a.labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    if lanes:
        ax_s.set_ylim(0, len(lanes))
        ax_s.set_yticks([len(lanes) - 1 - k + 0.5 for k in range(len(lanes))], [_drawable(x) for x in lanes],
                        fontsize=8)
    else:
        ax_s.set_yticks([])
        ax_s.set_ylabel("label", rotation=0, ha="right", va="center")
    ax_av.set_ylim(-1.05, 1.05)
    ax_av.axhline(0, color="0.7", linewidth=0.8)
    ax_av.set_ylabel("estimate")
    ax_av.set_xlabel(xlabel)
    if a.windows:
        ax_av.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _save(fig, path)


def plot_trend(analyses: list[RecordingAnalysis], path: str | Path) -> Path:
    """Across sessions: share of speech time per emotion (stacked bars), negative share, arousal, valence."""
    with plt.rc_context({"font.family": list(_fonts()[0]) or ["sans-serif"]}):
        return _plot_trend(analyses, path)


def _plot_trend(analyses: list[RecordingAnalysis], path: str | Path) -> Path:
    frame = sessions_frame(analyses)
    labels = analyses[0].labels
    names = [_drawable(f"{d[:10] if d else '?'}\n{r[:18]}") for d, r in zip(frame["date"], frame["recording"])]
    x = np.arange(len(frame))
    fig, (ax_s, ax_t) = plt.subplots(2, 1, figsize=(max(7.0, 1.1 * len(x) + 3), 6.5), sharex=True)
    bottom = np.zeros(len(x))
    for lab in labels:
        values = frame[f"share_{lab}"].fillna(0).to_numpy()
        ax_s.bar(x, values, bottom=bottom, color=_colour(lab), label=lab)
        bottom += values
    ax_s.set_ylim(0, 1)
    ax_s.set_ylabel("share of speech time")
    ax_s.set_title("Sessions over time")
    ax_s.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    for col, style in (("negative_share", "o-"), ("arousal", "s--"), ("valence", "^--")):
        ax_t.plot(x, frame[col].astype(float), style, label=col.replace("_", " "))
    if "adapted_negative_share" in frame.columns:
        ax_t.plot(x, frame["adapted_negative_share"].astype(float), "o:", color="C0", markerfacecolor="none",
                  label="negative share, adapted")
    ax_t.axhline(0, color="0.7", linewidth=0.8)
    ax_t.set_ylim(-1.05, 1.05)
    ax_t.set_xticks(x, names, fontsize=8)
    ax_t.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _save(fig, path)


# -- HTML -------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.warn{background:#fff4e5;border:1px solid #f0b45b;padding:.8em 1em;border-radius:4px}
.bar{display:inline-block;height:.8em;background:#4a7fb5;vertical-align:middle}
img{max-width:100%;border:1px solid #ddd}.muted{color:#666;font-size:.9em}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:+.{digits}f}"


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_esc(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt_time(seconds: float) -> str:
    seconds = max(0.0, seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h else f"{int(m)}:{s:04.1f}"


def _model_section(model: EmotionModel) -> str:
    card = model.card or {}
    parts = [(f"<p>Model: <code>{_esc(model.source)}</code> (recipe <code>{_esc(model.recipe_name)}</code>, "
             f"{len(model.pipeline.members)} model file(s) averaged), classes: {_esc(', '.join(model.labels))}.</p>")]
    if card.get("summary"):
        parts.append(f"<p>{_esc(card['summary'])}</p>")
    if card.get("headline"):  # what to expect for a person recorded anywhere: corpora never heard, trend fidelity
        parts.append("<p><b>What to expect:</b> " + " ".join(_esc(x) for x in card["headline"]) + "</p>")
    accuracy = card.get("accuracy") or []
    if accuracy:
        def fmt(value: Any) -> str:
            return _esc(f"{value:.3f}" if isinstance(value, (int, float)) else ("-" if value is None else value))

        rows = [[_esc(r.get("corpus", "?")), _esc(r.get("protocol", "?")), _esc(r.get("metric", "?")),
                 fmt(r.get("value")), fmt(r.get("std")), _esc(r.get("folds", "-"))] for r in accuracy]
        parts.append("<p>Measured accuracy on new speakers of the training corpora (from the model card; std over "
                     "folds):</p>"
                     + _table(["corpus", "protocol", "metric", "value", "std", "folds"], rows, left=3))
    else:
        parts.append("<p>Measured accuracy: <b>not recorded</b> (this model file carries no model card).</p>")
    limits = list(card.get("limits") or []) + GENERAL_LIMITS
    parts.append("<p>Limits:</p><ul>" + "".join(f"<li>{_esc(x)}</li>" for x in limits) + "</ul>")
    return "".join(parts)


def _session_section(a: RecordingAnalysis, plot: Path | None, max_segments: int = 150) -> str:
    s = a.summary()
    out = [f"<h2>{_esc(a.name)}</h2>"]
    meta = [["recording", _esc(a.path)], ["date", _esc(f"{s['date']} ({s['date_source']})" if s["date"] else "-")],
            ["length", _fmt_time(a.duration)], ["speech", f"{_fmt_time(a.speech_seconds)} ({_pct(s['speech_fraction'])})"],
            ["audio", f"{a.sample_rate} Hz, {a.channels} channel(s), peak {a.peak_dbfs:.1f} dBFS"],
            ["voice activity detection", _esc(a.vad)], ["windows / segments", f"{s['windows']} / {s['segments']}"]]
    out.append(_table(["", ""], meta, left=2))
    if not a.windows:
        found = "No speech was detected in this recording" if not a.regions else "Too little speech was detected"
        out.append(f'<p class="warn">{found} ({_esc(a.shortfall or "")}), so nothing was classified. '
                   "(If it does contain speech, try <code>--vad energy</code> or <code>--vad none</code>.)</p>")
        out.append(_img(plot, "timeline"))
        return "".join(out)
    rows = [[_esc(lab), _pct(s["share"][lab]), (f'<span class="bar" style="width:{200 * s["share"][lab]:.0f}px">'
             "</span>"), _pct(s["mean_proba"][lab])] for lab in a.labels]
    out.append("<h3>Share of speech time per emotion</h3>"
               + _table(["emotion", "share of speech time", "", "mean probability"], rows, left=1))
    neg = ", ".join(s["negative_labels"]) or "none of this model's classes"
    out.append(f"<p>Negative emotions ({_esc(neg)}): <b>{_pct(s['negative_share'])}</b> of speech time. "
               f"Estimated arousal <b>{_num(s['arousal'])}</b>, valence <b>{_num(s['valence'])}</b> "
               "(scale -1 to +1; see the method notes).</p>")
    if "speakers" in s:
        out.append(_speakers_section(a, s))
    if "adapted" in s:
        out.append(_adapted_section(a, s))
    out.append(f"<p>Model confidence: the top class has on average probability <b>{s['confidence']:.2f}</b> "
               f"(chance level with {len(a.labels)} classes: {s['chance']:.2f}); "
               f"{_pct(s['uncertain_share'])} of speech time is uncertain (top probability below "
               f"{s.get('min_confidence', LOW_CONFIDENCE):g}).</p>")
    out.append(_img(plot, f"timeline of {a.name}"))
    if len(s["over_time"]) > 1:
        rows = [[f"{_fmt_time(r['start_s'])} - {_fmt_time(r['end_s'])}", f"{r['speech_s']:.0f} s",
                 _pct(r["negative_share"]), f"{r['negative_proba']:.2f}"] for r in s["over_time"]]
        out.append(f"<h3>Negative emotions over time ({s['bin_seconds']:g} s bins)</h3>"
                   + _table(["time", "speech", "negative share", "mean P(negative)"], rows))
    shown = a.segments[:max_segments]
    who = a.window_speakers is not None
    rows = [[f"{_fmt_time(g.start)}", f"{_fmt_time(g.end)}", *([_esc(g.speaker)] if who else []), _esc(g.label),
             f"{g.proba.max():.2f}"] for g in shown]
    more = (f'<p class="muted">First {max_segments} of {len(a.segments)} segments; all are in timeline.csv.</p>'
            if len(a.segments) > max_segments else "")
    out.append("<h3>Timeline</h3>" + _table(["start", "end", *(["speaker"] if who else []), "emotion",
                                              "probability"], rows, left=4 if who else 3) + more)
    return "".join(out)


def _speakers_section(a: RecordingAnalysis, s: dict) -> str:
    """Who spoke, and each speaker's own shares: a clinician's calm voice no longer dilutes a patient's."""
    rows = []
    for name, p in s["speakers"].items():
        top = max(p["share"], key=p["share"].get)
        rows.append([_esc(name), f"{p['speech_s']:.0f} s", _esc(top), _pct(p["negative_share"]), _num(p["arousal"]),
                     _num(p["valence"])])
    missing = (f"<p class='warn'>Not heard in this recording: {_esc(', '.join(s['not_heard']))} (enrolled, but no "
               "voice here matches).</p>" if s.get("not_heard") else "")
    return ("<h3>Speakers</h3><p>The speech was split between voices (speaker diarization; enrolled people by "
            "name, other voices as S1, S2, ...). Each voice's figures are of its own speech only; the timeline "
            "plot has one lane per voice.</p>" + missing
            + _table(["speaker", "speech", "top emotion", "negative share", "arousal", "valence"], rows, left=3))


def _adapted_section(a: RecordingAnalysis, s: dict) -> str:
    """The adapted result beside the strict one: what it was adapted to, and both sets of shares."""
    ad = s["adapted"]
    rows = [[_esc(lab), _pct(s["share"][lab]), _pct(ad["share"][lab])] for lab in a.labels]
    rows.append(["<b>negative</b>", f"<b>{_pct(s['negative_share'])}</b>", f"<b>{_pct(ad['negative_share'])}</b>"])
    return (f"<h3>Adapted to the person: {_esc(ad['label'])}</h3>"
            "<p>The same windows scored by the model adapted to this person's own voice (their recordings standardise "
            "the features instead of the training data's statistics; labels unused). This is an <b>adapted</b> "
            "result, shown beside the <b>strict</b> one; on voices and recordings unlike the training corpora it "
            "follows the person's trend more faithfully (docs/benchmarks/trend.md).</p>"
            + _table(["emotion", "strict: share of speech time", "adapted: share of speech time"], rows, left=1))


def _trend_section(result: SessionsResult, trend: Path | None) -> str:
    frame = sessions_frame(result.analyses)
    adapted = "adapted_negative_share" in frame.columns
    rows = [[_esc(r["date"] or "-"), _esc(r["recording"]), f"{r['speech_s']:.0f} s", _pct(r["negative_share"]),
             *([_pct(_value(r["adapted_negative_share"])), _esc(_value(r["adapted"]) or "-")] if adapted else []),
             _num(r["arousal"]), _num(r["valence"]), "-" if r["confidence"] is None or
             (isinstance(r["confidence"], float) and math.isnan(r["confidence"])) else f"{r['confidence']:.2f}"]
            for r in frame.to_dict("records")]
    header = ["date", "recording", "speech", "negative share (strict)",
              *(["negative share (adapted)", "adapted to"] if adapted else []), "arousal", "valence", "confidence"]
    return ("<h2>Trend across sessions</h2>" + _img(trend, "trend across sessions") + _table(header, rows, left=2))


def _value(x: Any) -> Any:
    """None for a missing cell (NaN in a frame where only some sessions have an adapted result)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _method_section(result: SessionsResult) -> str:
    cfg = result.analyses[0].config if result.analyses else None
    av_rows = [[_esc(lab), f"{a:+.1f}", f"{v:+.1f}", "yes" if lab in NEGATIVE_LABELS else ""]
               for lab, (a, v) in AROUSAL_VALENCE.items()]
    settings = ""
    if cfg is not None:
        settings = (f"<p>Speech is found by voice activity detection ({_esc(result.analyses[0].vad)}); windows of "
                    f"{result.analyses[0].window_seconds:g} s start every {cfg.hop:g} s inside each stretch of "
                    f"speech and never cross a pause of {cfg.min_silence:g} s or more. Each window is classified; "
                    f"probabilities are averaged over {cfg.smoothing} neighbouring window(s); consecutive windows "
                    f"with the same top emotion form a segment (across pauses shorter than {cfg.merge_gap:g} s). "
                    "Shares are of speech time: each window stands for the stretch of speech nearest its "
                    "centre.</p>")
    return ("<h2>Method notes</h2>" + settings
            + "<p>Arousal and valence are the expectation, under the class probabilities, of a fixed position per "
              "emotion on Russell's circumplex model of affect (Russell 1980, <i>A circumplex model of affect</i>, "
              "J. Pers. Soc. Psychol. 39(6), 1161-1178). The positions are coarse placements made for serkit, not "
              "measurements, and the model was not trained to predict arousal or valence.</p>"
            + _table(["emotion", "arousal", "valence", "counted as negative"], av_rows))


def write_report(result: SessionsResult, path: str | Path, model: EmotionModel,
                 plots: dict[str, Path] | None = None, trend: Path | None = None) -> Path:
    """One self-contained HTML file: disclaimer, model accuracy and limits, trend, one section per session."""
    plots = plots or {}
    title = ("serkit emotion analysis: " + result.analyses[0].name if len(result.analyses) == 1
             else f"serkit emotion analysis: {len(result.analyses)} sessions")
    parts = [(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{_esc(title)}</h1>"),
             f'<p class="muted">Written {datetime.now():%Y-%m-%d %H:%M} by serkit {_esc(__version__)}.</p>',
             ('<div class="warn"><b>This is not a diagnosis.</b> It is an automatic estimate of which emotions the '
             "voice in these recordings sounds like, made by a machine-learning model with the accuracy and limits "
             "stated below. It says nothing reliable about a person's mental health or wellbeing; do not base "
             "medical, employment or other decisions about a person on it. If you are worried about someone's "
             "wellbeing, talk to them or to a professional.</div>"),
             "<h2>About the model</h2>", _model_section(model)]
    if len(result.analyses) > 1:
        parts.append(_trend_section(result, trend))
    for a in result.analyses:
        parts.append(_session_section(a, plots.get(a.path)))
    if result.failures:
        parts.append("<h2>Recordings that could not be analysed</h2><ul>"
                     + "".join(f"<li><code>{_esc(p)}</code>: {_esc(r)}</li>" for p, r in result.failures) + "</ul>")
    parts.append(_method_section(result))
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts))


def write_analysis(result: SessionsResult, out_dir: str | Path, model: EmotionModel, *,
                   force: bool = False) -> dict[str, Path]:
    """Write timelines, plots and the HTML report; ``out_dir`` then holds this run only.

    One recording: ``timeline.csv``, ``timeline.json``, ``timeline.png``, ``report.html`` in ``out_dir``. Several:
    one folder per session (``01_<name>/timeline.*``) plus ``sessions.csv``, ``trend.png`` and ``report.html``.
    The files are written into a new folder that replaces ``out_dir`` at the end: an earlier analysis there is
    replaced whole; a non-empty folder that serkit did not write is refused unless ``force``
    (:func:`serkit.utils.replace_output_dir`).
    """
    out_dir = Path(out_dir)
    with replace_output_dir(out_dir, kind="analyze", force=force) as tmp:
        written = _write_analysis_files(result, tmp, model)
    return {key: out_dir / path.relative_to(tmp) for key, path in written.items()}


def _write_analysis_files(result: SessionsResult, out_dir: Path, model: EmotionModel) -> dict[str, Path]:
    written: dict[str, Path] = {}
    plots: dict[str, Path] = {}
    several = len(result.analyses) > 1
    for k, a in enumerate(result.analyses, 1):
        folder = out_dir / f"{k:02d}_{Path(a.path).stem}" if several else out_dir
        for kind, path in write_timeline(a, folder).items():
            written[f"{a.path}:{kind}" if several else kind] = path
        plots[a.path] = plot_timeline(a, folder / "timeline.png")
        if not several:
            written["png"] = plots[a.path]
    trend = None
    if several:
        written["sessions"] = atomic_write_text(out_dir / "sessions.csv",
                                                sessions_frame(result.analyses).to_csv(index=False))
        trend = written["trend"] = plot_trend(result.analyses, out_dir / "trend.png")
    written["report"] = write_report(result, out_dir / "report.html", model, plots, trend)
    return written
