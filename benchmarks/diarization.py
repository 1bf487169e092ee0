"""Who is speaking: diarization error, speaker counting, verification and emotion per speaker on conversations
built from the corpora's held-out speakers.

Usage::

    .venv/bin/python benchmarks/diarization.py --run runs/serkit_default

Conversations: for each of ``--conversations`` (50, plus ``--dev`` 10 that choose the clustering's ``refine`` share and are
never scored), 2-4 speakers drawn from the test speakers of ONE fold of the speaker-fold run ``--run`` (so that
fold's model, which never heard any of them, scores their emotions), of different corpora (languages) and both
sexes where the fold has them. Turns of 1-8 s, each one or more of the speaker's clips with their leading and
trailing silence trimmed (30 dB), the speakers taking turns at random (never the same twice in a row); gaps of
0.1-1.0 s, and a fifth of the turns start 0.2-1.0 s before the previous one ends (overlap, both voices mixed).
2-5 minutes each. The reference turns are the clips' positions. Every draw comes from ``--seed``.

Each conversation is analysed as ``serkit analyze --speakers`` does (the fold model's windows over silero-vad's
speech, then :mod:`serkit.speakers`), with the speaker count given and with ``auto``:

- **diarization error rate** (pyannote.metrics, 0.25 s collar, overlaps scored), overall, by the number of
  speakers and by turn length; speaker-count accuracy with ``auto``;
- **emotion per speaker**: every clip's label against the speaker's own timeline at the clip's place (the label
  of the window nearest the clip's centre among that speaker's windows) and against the one shared timeline of
  today's analysis; UA per speaker, then the mean;
- **speaker verification** (enrolment): each held-out speaker enrolled with 3 of their clips, tested against
  their other clips and other speakers' clips: equal error rate and its threshold;
- **speed**: the whole analysis with diarization on 2 cores (real-time factor) and the process's peak memory.

Writes ``--out`` (Markdown) and a ``.json`` beside it, atomically.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from serkit.audio import read_audio
from serkit.inference.analysis import analyze_signal, with_speakers
from serkit.inference.api import load_model
from serkit.inference.stream import AnalysisConfig
from serkit.metrics import compute_metrics
from serkit.speakers import DiarizationConfig, ResemblyzerEncoder, cosine, diarize, enrol
from serkit.speakers.diarization import cluster
from serkit.utils import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
REFINES = (0.1, 0.15, 0.2, 0.25, 0.3)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a finished speaker-fold run (recipes/serkit_default.yaml)")
    p.add_argument("--conversations", type=int, default=50)
    p.add_argument("--dev", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "diarization.md")
    return p.parse_args(argv)


def _clip(path: str, channel) -> np.ndarray:
    y, _ = read_audio(path, sample_rate=SR, mono=True, channel="mean" if channel is None else channel)
    y, _ = librosa.effects.trim(np.asarray(y, np.float32), top_db=30)
    return y / max(float(np.abs(y).max()), 1e-6) * 0.5  # every voice at one level: the mix is not a loudness cue


def pick_speakers(pool: list[str], n: int, gender: dict, rng: np.random.Generator) -> list[str]:
    """``n`` speakers of ``pool``: each new one of a corpus (language) not yet chosen while there is one, and of
    the sex chosen less so far."""
    chosen: list[str] = []
    for _ in range(min(n, len(pool))):
        left = [s for s in pool if s not in chosen]
        corpora = {c.split("-")[0] for c in chosen}
        fresh = [s for s in left if s.split("-")[0] not in corpora] or left
        counts = {g: sum(gender.get(c) == g for c in chosen) for g in ("female", "male")}
        rarer = min(counts, key=counts.get)
        same = [s for s in fresh if gender.get(s) == rarer] or fresh
        chosen.append(str(rng.choice(same)))
    return chosen


def build_conversation(table: pd.DataFrame, speakers: list[str], rng: np.random.Generator) -> dict:
    """A conversation of ``speakers``' clips (see the module docstring): the mixed signal, the reference turns
    (start, end, speaker) and the clips (start, end, speaker, label)."""
    seconds = rng.uniform(120, 300)
    pools = {s: table[table["speaker"] == s].sample(frac=1, random_state=int(rng.integers(1 << 31))) for s in speakers}
    used = dict.fromkeys(speakers, 0)
    out = np.zeros(int(seconds * SR) + 20 * SR, np.float32)
    tracks = {s: np.zeros_like(out) for s in speakers}  # each voice alone, at its place (what mixing costs)
    t, last, turns, clips = 0.5, None, [], []
    while t < seconds:
        speaker = rng.choice([s for s in speakers if s != last])
        target = rng.uniform(1.0, 8.0)
        start = t
        if last is not None and rng.random() < 0.2:
            start = max(0.0, t - rng.uniform(0.2, 1.0))  # overlap the previous turn's end
        pos, length = start, 0.0
        while length < target or length == 0:
            rows = pools[speaker]
            row = rows.iloc[used[speaker] % len(rows)]
            used[speaker] += 1
            y = _clip(row["path"], row.get("channel") if pd.notna(row.get("channel", None)) else None)
            if length and length + len(y) / SR > 8.0:
                break
            a = int(pos * SR)
            out[a:a + len(y)] += y[: len(out) - a]
            tracks[speaker][a:a + len(y)] += y[: len(out) - a]
            clips.append((pos, pos + len(y) / SR, speaker, row["label"]))
            pos += len(y) / SR
            length += len(y) / SR
        turns.append((start, pos, speaker))
        last, t = speaker, pos + rng.uniform(0.1, 1.0)
    end = int((t + 0.5) * SR)
    return {"signal": out[:end], "turns": turns, "clips": clips, "speakers": speakers,
            "tracks": {s: y[:end] for s, y in tracks.items()}}


def der(reference: list[tuple], hypothesis: list, *, by_turn: tuple[float, float] | None = None) -> tuple[float, dict]:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = Annotation(), Annotation()
    for k, (s, e, spk) in enumerate(reference):
        ref[Segment(s, e), k] = spk
    for k, t in enumerate(hypothesis):
        hyp[Segment(t.start, t.end), k] = t.speaker
    metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
    detail = metric(ref, hyp, detailed=True)
    return float(detail["diarization error rate"]), {k: float(v) for k, v in detail.items()}


def main(argv: Sequence[str] | None = None) -> dict:
    import warnings

    warnings.filterwarnings("ignore", message=".*'uem' was approximated.*")
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/diarization.py", *(sys.argv[1:] if argv is None else argv)])
    from serkit.evaluation.heldout import read_run_material

    material = read_run_material(args.run)
    table = material.table
    encoder = ResemblyzerEncoder()
    gender = table.groupby("speaker")["gender"].first().to_dict() if "gender" in table else {}
    rng = np.random.default_rng(args.seed)
    total = args.dev + args.conversations
    plans = []
    for k in range(total):
        fold = material.folds[k % len(material.folds)]
        pool = sorted(set(table["speaker"].iloc[fold.split.test]))
        n = int(rng.integers(2, 5))
        chosen = pick_speakers(pool, n, gender, rng)
        plans.append((fold, chosen))
    started_all = time.perf_counter()
    rows, dev_rows = [], []
    model_cache: dict = {}
    analyse_seconds = audio_seconds = diarization_seconds = 0.0
    for k, (fold, speakers) in enumerate(plans):
        conv = build_conversation(table, speakers, np.random.default_rng([args.seed, k]))
        model = model_cache.setdefault(fold.split.name, load_model(fold.model_path, vad="silero"))
        t0 = time.perf_counter()
        a = analyze_signal(conv["signal"], SR, model, AnalysisConfig(vad="silero"), name=f"conversation {k}")
        t1 = time.perf_counter()
        known = diarize(conv["signal"], SR, a.regions, encoder, DiarizationConfig(speakers=len(speakers)))
        elapsed = time.perf_counter() - t0
        diarize_seconds = time.perf_counter() - t1
        from serkit.speakers.diarization import speaker_windows

        spans = speaker_windows(a.regions, encoder.window_seconds, DiarizationConfig().hop)
        X = encoder.embed([conv["signal"][round(s * SR):round(e * SR)] for s, e in spans])
        entry = {"conversation": k, "fold": fold.split.name, "speakers": speakers, "seconds": len(conv["signal"]) / SR,
                 "turns": len(conv["turns"]), "turn_lengths": [e - s for s, e, _ in conv["turns"]],
                 "der_known": der(conv["turns"], known.turns)[0], "elapsed": elapsed,
                 "elapsed_diarization": diarize_seconds}
        auto = {}
        for thr in REFINES:
            cfg = DiarizationConfig(speakers="auto", refine=thr)
            labels = cluster(X, cfg, spans)
            from serkit.speakers.diarization import _turns

            d = _turns(spans, labels, X, [(float(s), float(e)) for s, e in a.regions], cfg)
            auto[f"{thr:g}"] = {"der": der(conv["turns"], d.turns)[0], "count": len(d.speakers)}
        entry["auto"] = auto
        if k >= args.dev:
            analyse_seconds += elapsed
            diarization_seconds += diarize_seconds
            audio_seconds += entry["seconds"]
            solo = {spk: analyze_signal(track, SR, model, AnalysisConfig(vad="silero"), name=f"{k} {spk} alone")
                    for spk, track in conv["tracks"].items()}
            entry["emotion"] = emotion_scores(a, known, conv, solo)
            entry["by_turn"] = turn_length_der(conv, known)
            rows.append(entry)
        else:
            dev_rows.append(entry)
        print(f"conversation {k}: {len(speakers)} speakers, DER known {entry['der_known']:.3f}", file=sys.stderr)
    chosen_thr = min(REFINES, key=lambda t: np.mean([r["auto"][f"{t:g}"]["der"] for r in dev_rows]))
    verification = verify(material, encoder, args.seed)
    report = {"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "run": str(args.run), "seed": args.seed, "dev": args.dev, "refine": chosen_thr,
              "shipped_refine": DiarizationConfig().refine,
              "dev_der_by_refine": {f"{t:g}": float(np.mean([r["auto"][f"{t:g}"]["der"] for r in dev_rows]))
                                    for t in REFINES},
              "conversations": rows, "verification": verification,
              "rtf": analyse_seconds / max(audio_seconds, 1e-9),
              "rtf_diarization": diarization_seconds / max(audio_seconds, 1e-9),
              "threads": __import__("torch").get_num_threads(),
              "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "seconds": round(time.perf_counter() - started_all, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1, default=float))
    atomic_write_text(args.out, markdown(report))
    return report


def turn_length_der(conv: dict, hyp) -> dict:
    """DER of the reference turns of each length bin alone (against the hypothesis over the same span)."""
    from serkit.speakers import Turn

    out = {}
    for lo, hi in ((1, 3), (3, 5), (5, 8.01)):
        ref = [t for t in conv["turns"] if lo <= t[1] - t[0] < hi]
        if not ref:
            continue
        spans = [(s, e) for s, e, _ in ref]
        clipped = [Turn(max(t.start, s), min(t.end, e), t.speaker) for s, e in spans for t in hyp.turns
                   if min(t.end, e) > max(t.start, s)]
        out[f"{lo:g}-{min(hi, 8):g} s"] = der(ref, clipped)[0]
    return out


def _nearest_top(analysis, mid: float) -> str | None:
    if not len(analysis.windows):
        return None
    centres = (analysis.cells[:, 0] + analysis.cells[:, 1]) / 2
    return analysis.labels[int(analysis.smoothed[int(np.argmin(np.abs(centres - mid)))].argmax())]


def emotion_scores(a, diarization, conv: dict, solo: dict | None = None) -> dict:
    """Per speaker: UA of their clips' labels against their own timeline, against the shared one, and (``solo``:
    each speaker's analysis of their voice alone at the same places) without any other voice."""
    shared_top = [a.labels[i] for i in a.smoothed.argmax(1)] if len(a.windows) else []
    centres = (a.cells[:, 0] + a.cells[:, 1]) / 2 if len(a.windows) else np.zeros(0)
    split = with_speakers(_copy(a), diarization)
    own_top = [split.labels[i] for i in split.smoothed.argmax(1)] if len(split.windows) else []
    # the reference speaker of each diarized speaker: the one it overlaps most (for "their own timeline")
    match = {}
    for spk in diarization.speakers:
        held = {}
        for t in diarization.turns:
            if t.speaker != spk:
                continue
            for s, e, ref in conv["turns"]:
                held[ref] = held.get(ref, 0.0) + max(0.0, min(e, t.end) - max(s, t.start))
        match[spk] = max(held, key=held.get) if held else None
    out = {}
    for ref in conv["speakers"]:
        clips = [c for c in conv["clips"] if c[2] == ref]
        mine = np.array([match.get(w) == ref for w in split.window_speakers]) if split.window_speakers else None
        true, shared, own, alone = [], [], [], []
        for s, e, _, label in clips:
            mid = (s + e) / 2
            if not len(centres):
                continue
            true.append(label)
            if solo is not None:
                alone.append(_nearest_top(solo[ref], mid) or "none")
            shared.append(shared_top[int(np.argmin(np.abs(centres - mid)))])
            if mine is not None and mine.any():
                idx = np.flatnonzero(mine)
                own.append(own_top[idx[int(np.argmin(np.abs(centres[idx] - mid)))]])
            else:
                own.append(shared[-1])
        if true:
            labels = sorted(set(true) | set(shared) | set(own) | set(alone))
            out[ref] = {"clips": len(true), "ua_shared": compute_metrics(true, shared, labels)["ua"],
                        "ua_own": compute_metrics(true, own, labels)["ua"]}
            if alone:
                out[ref]["ua_alone"] = compute_metrics(true, alone, labels)["ua"]
    return out


def _copy(a):
    import copy

    return copy.copy(a)


def verify(material, encoder, seed: int) -> dict:
    """Speaker verification on the run's speakers: enrol 3 clips, test on the rest; EER and its threshold."""
    from sklearn.metrics import roc_curve

    table = material.table
    rng = np.random.default_rng([seed, 7])
    profiles, tests = {}, []
    for speaker, part in table.groupby("speaker"):
        rows = part.sample(n=min(len(part), 9), random_state=int(rng.integers(1 << 31)))
        if len(rows) < 5:
            continue
        clips = [_clip(r["path"], r.get("channel") if pd.notna(r.get("channel", None)) else None)
                 for _, r in rows.iterrows()]
        y = np.concatenate(clips[:3])
        regions = [(0.0, len(y) / SR)]
        try:
            profiles[speaker] = enrol(speaker, y, SR, regions, encoder)
        except Exception:  # noqa: BLE001 - a speaker whose clips cannot enrol is left out, and counted
            continue
        for c in clips[3:]:
            tests.append((speaker, encoder.embed([c])[0]))
    scores, target = [], []
    names = list(profiles)
    P = np.stack([profiles[n].embedding for n in names])
    for speaker, e in tests:
        sims = cosine(P, e)
        for n, sim in zip(names, sims):
            scores.append(float(sim))
            target.append(n == speaker)
    fpr, tpr, thr = roc_curve(target, scores)
    k = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return {"speakers": len(profiles), "target_trials": int(sum(target)), "impostor_trials": int(len(target) - sum(target)),
            "eer": float((fpr[k] + 1 - tpr[k]) / 2), "threshold": float(thr[k])}


def markdown(report: dict) -> str:
    rows = report["conversations"]
    thr = report["shipped_refine"]
    n_spk = sorted({len(r["speakers"]) for r in rows})
    der_known = np.mean([r["der_known"] for r in rows])
    key = f"{thr:g}"
    der_auto = np.mean([r["auto"][key]["der"] for r in rows])
    count_acc = np.mean([r["auto"][key]["count"] == len(r["speakers"]) for r in rows])
    lines = ["# Who is speaking: diarization, counting, verification and emotion per speaker", "",
             f"Command: `{report['command']}` ({report['date'][:10]}, {report['seconds']:.0f} s). "
             f"{len(rows)} conversations (and {report['dev']} more that chose the clustering's `refine`, never scored) of "
             "2-4 held-out speakers of one speaker fold of `" + report["run"] + "`, of different corpora and languages, "
             "turns of 1-8 s with gaps and a fifth of them overlapping the previous turn by 0.2-1 s, 2-5 min each "
             f"(benchmarks/diarization.py's docstring). Seed {report['seed']}. DER: pyannote.metrics, 0.25 s collar, "
             "overlaps scored (the diarization gives each moment one speaker, so an overlap's second voice is a "
             "miss).", "",
             "| | measured | target |", "|---|---:|---|",
             f"| DER, speaker count given | {100 * der_known:.1f} % | <= 10 % |",
             f"| DER, `--speakers auto` (serkit's default, refine {thr:g}) | {100 * der_auto:.1f} % | <= 15 % |",
             f"| speaker-count accuracy, `auto` | {100 * count_acc:.0f} % | >= 90 % |",
             f"| speaker verification EER (enrolment of 3 clips) | {100 * report['verification']['eer']:.1f} % at cosine "
             f"{report['verification']['threshold']:.3f} | |",
             f"| analysis with diarization, real-time factor ({report.get('threads', 2)} threads) | {report['rtf']:.3f} "
             f"(diarization alone {report.get('rtf_diarization', float('nan')):.3f}) | < 0.05 |",
             f"| peak memory of the benchmark process | {report['peak_memory_mb']:.0f} MB | |", "",
             "## DER by number of speakers", "", "| speakers | conversations | DER given | DER auto | count right |",
             "|---:|---:|---:|---:|---:|"]
    for n in n_spk:
        sel = [r for r in rows if len(r["speakers"]) == n]
        auto = [r["auto"][key] for r in sel]
        lines.append(f"| {n} | {len(sel)} | {100 * np.mean([r['der_known'] for r in sel]):.1f} % | "
                     f"{100 * np.mean([a['der'] for a in auto]):.1f} % | "
                     f"{100 * np.mean([a['count'] == n for a in auto]):.0f} % |")
    bins = sorted({b for r in rows for b in r["by_turn"]})
    lines += ["", "## DER by turn length (speaker count given)", "", "| turns of | DER |", "|---|---:|"]
    for b in bins:
        lines.append(f"| {b} | {100 * np.mean([r['by_turn'][b] for r in rows if b in r['by_turn']]):.1f} % |")
    emo = [v for r in rows for v in r["emotion"].values()]
    lines += ["", "## Emotion per speaker", "",
              "Every clip's label against the timeline at its place: the one shared timeline (today's analysis, every "
              "voice mixed) and the speaker's own (with diarization, speaker count given); UA per speaker, mean over "
              f"{len(emo)} speaker-conversations; each scored by the fold model that never heard them (strict, SI).", "",
              "| timeline | UA |", "|---|---:|",
              *([f"| the speaker's voice alone (no other voice in the recording) | "
                 f"{100 * np.mean([e['ua_alone'] for e in emo]):.1f} |"] if all("ua_alone" in e for e in emo) else []),
              f"| shared (no diarization, every voice mixed) | {100 * np.mean([e['ua_shared'] for e in emo]):.1f} |",
              f"| the speaker's own (diarization, count given) | {100 * np.mean([e['ua_own'] for e in emo]):.1f} |",
              "",
              "What mixing costs: alone minus shared; what diarization wins back: own minus shared.", "",
              f"Clustering: spectral, each window's strongest links kept (`refine`, the share of windows; serkit's "
              f"default {report['shipped_refine']:g}), speakers of less than "
              f"{DiarizationConfig().min_speaker_seconds:g} s of speech joining the nearest other. `refine` on the "
              f"{report['dev']} dev conversations (mean DER with `auto`): "
              + ", ".join(f"{t}: {100 * v:.1f} %" for t, v in report["dev_der_by_refine"].items())
              + f"; the dev conversations chose {report['refine']:g}.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
