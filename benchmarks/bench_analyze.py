"""Benchmark ``serkit analyze`` on long recordings made of joined EmoDB clips, and make the user guide's example.

1. Example: one clip per emotion (twice) of a speaker the model never saw, joined with 1.5 s silences; the
   analysis must recover each clip's time and label. Writes ``docs/analyze/example_*`` (timeline PNG, CSV, report).
2. Timeline against whole clips: for every speaker the model never saw in training (the validation speakers of
   ``--recipe``, which are never trained on), all their clips in a seeded random order joined with 0.5-3 s
   silences into one recording. Each clip's label in the timeline (the label of most of its time) is compared with what
   ``serkit predict`` says of the clip file alone: UA per speaker for both, so any loss the timeline's VAD,
   windows and smoothing add shows up.
3. Speed and memory: recordings of ``--minutes`` minutes (clips of that speaker in random order, 0.5-3 s
   silences), each analysed in a fresh process: real-time factor (analysis time / audio length) and peak
   resident memory, against the memory the process had before the analysis started.

Writes ``docs/benchmarks/analyze.md``. Run it on an otherwise idle machine:

    python benchmarks/bench_analyze.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpora" / "emodb" / "wav"
# serkit's default model: EmoDB speaker 03 was held out of its training (recipes/serkit_default.yaml)
MODEL = REPO / "src" / "serkit" / "pretrained" / "default.pt"
EMODB_CODES = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
SR = 16000


def speaker_clips(speaker: str) -> list[tuple[Path, str]]:
    return [(p, EMODB_CODES[p.stem[5]]) for p in sorted(CORPUS.glob(f"{speaker}*.wav"))]


def join_clips(clips: list[tuple[Path, str]], path: Path, silences: list[float], lead: float = 1.0) -> list[dict]:
    """Write clips with the given silences after each to ``path`` (streamed, 16 kHz); returns their truth."""
    truth, t = [], lead
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as out:
        out.write(np.zeros(round(lead * SR), np.float32))
        for (clip, label), gap in zip(clips, silences):
            y, sr = sf.read(clip, dtype="float32")
            assert sr == SR, clip
            out.write(y)
            truth.append({"clip": clip.name, "label": label, "start": t, "end": t + len(y) / SR})
            t += len(y) / SR
            out.write(np.zeros(round(gap * SR), np.float32))
            t += gap
    return truth


def example(model_path: Path, speaker: str, vad: str, work: Path, docs: Path) -> dict:
    from serkit.inference import load_model
    from serkit.inference.analysis import SessionsResult, analyze_recording, timeline_frame
    from serkit.inference.report import write_analysis
    from serkit.inference.stream import AnalysisConfig

    model = load_model(model_path)
    by_label: dict[str, list[Path]] = {}
    for clip, label in speaker_clips(speaker):
        if label in model.labels:  # emotions the model cannot name (e.g. boredom for the default) are left out
            by_label.setdefault(label, []).append(clip)
    order = sorted(by_label)
    clips = [(by_label[lab][k], lab) for k in (0, 1) for lab in order if len(by_label[lab]) > k]
    recording = work / f"example_speaker{speaker}.wav"
    truth = join_clips(clips, recording, [1.5] * len(clips))
    start = time.perf_counter()
    analysis = analyze_recording(recording, model, AnalysisConfig(vad=vad))
    seconds = time.perf_counter() - start
    out = work / "example"
    if out.exists():
        shutil.rmtree(out)
    write_analysis(SessionsResult([analysis]), out, model)
    docs.mkdir(parents=True, exist_ok=True)
    for name in ("timeline.png", "timeline.csv", "report.html"):
        shutil.copy(out / name, docs / f"example_{name}")
    frame = timeline_frame(analysis)
    rows = []
    for t in truth:  # the segment at the clip's midpoint, and the speech region overlapping the clip most
        mid = (t["start"] + t["end"]) / 2
        seg = frame[(frame.start <= mid) & (frame.end >= mid)]
        overlaps = [max(0.0, min(e, t["end"]) - max(s, t["start"])) for s, e in analysis.regions]
        region = analysis.regions[int(np.argmax(overlaps))] if overlaps and max(overlaps) > 0 else None
        rows.append({**t, "found": seg["label"].iloc[0] if len(seg) else "(no speech)",
                     "region": region})
    found_regions = sum(r["region"] is not None for r in rows)
    return {"recording_s": analysis.duration, "clips": len(truth), "rows": rows, "regions": len(analysis.regions),
            "clips_with_region": found_regions, "correct": sum(r["found"] == r["label"] for r in rows),
            "seconds": seconds, "vad": analysis.vad, "window": analysis.window_seconds,
            "n_labels": len(model.labels), "card": model.card}


def timeline_label(frame, start: float, end: float) -> str:
    """The timeline's label for the span [start, end): the label its segments give most of the span's time."""
    overlap = (np.minimum(frame["end"], end) - np.maximum(frame["start"], start)).clip(lower=0)
    if not (overlap > 0).any():
        return "(no speech)"
    return str(overlap.groupby(frame["label"]).sum().idxmax())


def heldout_timeline(model_path: Path, recipe_path: Path, vad: str, seed: int = 0) -> dict:
    """Per held-out speaker: UA of the timeline's label over each clip's time and of the clip judged alone."""
    from sklearn.metrics import recall_score

    from serkit.audio import AudioConfig, load_clips
    from serkit.inference import load_model
    from serkit.inference.analysis import analyze_signal, timeline_frame
    from serkit.inference.stream import AnalysisConfig
    from serkit.recipe import Recipe
    from serkit.training.experiment import load_recipe_corpus, table_channels

    model = load_model(model_path)
    recipe = Recipe.from_yaml(recipe_path)
    table = load_recipe_corpus(recipe, recipe_file=recipe_path).utterances
    speakers = list(recipe.protocol.val_speakers or [])
    if not speakers:
        raise SystemExit(f"{recipe_path}: protocol.val_speakers names no held-out speakers")
    rows = []
    for speaker in speakers:
        clips = table[(table["speaker"] == speaker) & table["label"].isin(model.labels)]
        clips = clips.sample(frac=1.0, random_state=seed)
        # the files as a user has them: mono (the corpus's channel choice), 16 kHz, levels untouched
        batch = load_clips(clips["path"].tolist(), AudioConfig(sample_rate=SR), channels=table_channels(clips))
        if batch.failures:
            raise SystemExit(f"{speaker}: unreadable clips {batch.failures[:3]}")
        rng = np.random.default_rng(seed)
        parts, spans, t = [np.zeros(SR, np.float32)], [], 1.0
        for y in batch.signals:
            gap = float(rng.uniform(0.5, 3.0))
            parts += [y, np.zeros(round(gap * SR), np.float32)]
            spans.append((t, t + len(y) / SR))
            t += len(y) / SR + gap
        recording = np.concatenate(parts)
        start = time.perf_counter()
        frame = timeline_frame(analyze_signal(recording, SR, model, AnalysisConfig(vad=vad), name=speaker))
        seconds = time.perf_counter() - start
        alone = [model.labels[i] for i in model.predict_proba(batch.signals, sample_rate=SR).argmax(axis=1)]
        in_timeline = [timeline_label(frame, a, b) for a, b in spans]
        truth = clips["label"].tolist()
        present = sorted(set(truth))
        rows.append({"speaker": speaker, "clips": len(truth), "audio_s": len(recording) / SR, "seconds": seconds,
                     "ua_alone": recall_score(truth, alone, labels=present, average="macro", zero_division=0),
                     "ua_timeline": recall_score(truth, in_timeline, labels=present, average="macro",
                                                 zero_division=0),
                     "no_speech": in_timeline.count("(no speech)")})
        print(rows[-1], flush=True)
    return {"recipe": recipe_path, "rows": rows}


def child(recording: str, model_path: str, vad: str) -> None:
    """Runs in a fresh process: analyse one recording, print timing and memory as JSON."""
    from serkit.inference import load_model
    from serkit.inference.analysis import analyze_recording
    from serkit.inference.stream import AnalysisConfig

    model = load_model(model_path)
    analyze_recording(CORPUS / "03a01Wa.wav", model, AnalysisConfig(vad=vad))  # warm-up: lazy imports, VAD model
    before = _status_mb("VmRSS")
    try:  # reset the kernel's high-water mark to the current RSS, so VmHWM is the peak of the analysis alone
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    start = time.perf_counter()
    analysis = analyze_recording(recording, model, AnalysisConfig(vad=vad))
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"audio_s": analysis.duration, "seconds": seconds, "rss_before_mb": before,
                      "rss_peak_mb": peak, "peak_is_analysis_only": reset, "windows": len(analysis.windows),
                      "segments": len(analysis.segments), "speech_s": analysis.speech_seconds,
                      "vad": analysis.vad}))


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def long_recording(speaker: str, minutes: float, path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    clips = speaker_clips(speaker)
    chosen, total = [], 1.0
    while total < minutes * 60:
        clip = clips[rng.integers(len(clips))]
        gap = float(rng.uniform(0.5, 3.0))
        chosen.append((clip, gap))
        total += sf.info(clip[0]).duration + gap
    join_clips([c for c, _ in chosen], path, [g for _, g in chosen])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--speaker", default="03", help="EmoDB speaker the model never saw in training")
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "serkit_default.yaml",
                        help="the model's recipe: its validation speakers were never trained on")
    parser.add_argument("--minutes", default="10,60")
    parser.add_argument("--vad", default="auto")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench_analyze")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "analyze.md")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "analyze")
    parser.add_argument("--child", nargs=3, metavar=("RECORDING", "MODEL", "VAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    ex = example(args.model, args.speaker, args.vad, args.work, args.docs)
    heldout = heldout_timeline(args.model, args.recipe, args.vad)
    runs = []
    for minutes in [float(m) for m in args.minutes.split(",") if m.strip()]:
        path = args.work / f"long_{minutes:g}min.wav"
        long_recording(args.speaker, minutes, path)
        proc = subprocess.run([sys.executable, __file__, "--child", str(path), str(args.model), args.vad],
                              capture_output=True, text=True, check=True)
        runs.append({"minutes": minutes, **json.loads(proc.stdout.strip().splitlines()[-1])})
        path.unlink()  # an hour of 16-bit audio is 115 MB
        print(runs[-1], flush=True)
    write_markdown(args, ex, heldout, runs)


def write_markdown(args, ex: dict, heldout: dict, runs: list[dict]) -> None:
    command = "python benchmarks/bench_analyze.py" + (
        f" --minutes {args.minutes}" if args.minutes != "10,60" else "")
    rel_model = os.path.relpath(args.model, REPO)
    lines = [
        "# `serkit analyze`: speed, memory and segment recovery",
        "",
        f"Command: `{command}` (the machine was shared with other jobs).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}.",
        (f"Model: `{rel_model}`" + (f" ({ex['card']['summary']}; speaker {args.speaker} was held out of its "
         "training, see docs/model_card.md)" if ex["card"] else f" (check that speaker {args.speaker} was not in "
         "its training data)") + f". Windows of {ex['window']:g} s, hop 1 s; VAD: {ex['vad']}."),
        "",
        "## Segment recovery (joined clips of known labels)",
        "",
        (f"{ex['clips']} EmoDB clips of speaker {args.speaker} (up to two per emotion the model knows) joined with "
        "1.5 s of digital "
        f"silence ({ex['recording_s']:.1f} s). The VAD found {ex['regions']} speech regions; "
        f"{ex['clips_with_region']} of {ex['clips']} clips overlap one. The segment at each clip's midpoint has "
        f"the clip's label for **{ex['correct']} of {ex['clips']}** clips (chance 1/{ex['n_labels']}; the model's accuracy "
        "on this "
        "speaker, not the timeline, limits this). Analysis took "
        f"{ex['seconds']:.1f} s."),
        "",
        "| clip | true label | clip start-end (s) | speech region found (s) | label at midpoint |",
        "|---|---|---|---|---|",
    ]
    for r in ex["rows"]:
        region = "-" if r["region"] is None else f"{r['region'][0]:.2f}-{r['region'][1]:.2f}"
        lines.append(f"| {r['clip']} | {r['label']} | {r['start']:.2f}-{r['end']:.2f} | {region} | {r['found']} |")
    lines += [
        "",
        "Region bounds include the VAD's 50 ms padding; EmoDB clips begin and end with a little silence.",
        "",
        "## Timeline against whole clips, on every held-out speaker",
        "",
        (f"Every clip of each validation speaker of `{os.path.relpath(heldout['recipe'], REPO)}` (never trained on; "
         "they only fitted the temperature), in a seeded random order, joined with 0.5-3 s silences into one "
         "recording per speaker. *Timeline*: the label that `serkit analyze`'s timeline gives most of each clip's "
         "time; *alone*: what `serkit predict` says of the clip file by itself. UA over the emotions the "
         "speaker has (SI: these speakers are not in the model's training data); the mean weighs every speaker "
         "the same."),
        "",
        "| speaker | clips | recording | UA alone | UA timeline | clips the VAD missed | analysis time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in heldout["rows"]:
        lines.append(f"| {r['speaker']} | {r['clips']} | {r['audio_s'] / 60:.1f} min | {100 * r['ua_alone']:.1f} | "
                     f"{100 * r['ua_timeline']:.1f} | {r['no_speech']} | {r['seconds']:.0f} s |")
    hr = heldout["rows"]
    lines += [
        (f"| **mean** | {sum(r['clips'] for r in hr)} | | **{100 * np.mean([r['ua_alone'] for r in hr]):.1f}** | "
         f"**{100 * np.mean([r['ua_timeline'] for r in hr]):.1f}** | {sum(r['no_speech'] for r in hr)} | |"),
        "",
        "## Real-time factor and memory",
        "",
        ("Recordings of the given length: clips of the same speaker in random order with 0.5-3 s silences "
        "(written to a temporary WAV, 16 kHz, 16 bit). Each is analysed in a fresh process; the real-time factor "
        "is analysis time / audio length (lower is faster). Memory: the process's resident set size once Python, "
        "torch and the model are loaded and one clip has been analysed (warm-up), and the peak resident set size "
        "during the analysis of the long recording (the kernel's high-water mark, reset just before it)."),
        "",
        ("| audio | windows | speech | analysis time | real-time factor | RSS before | peak RSS during analysis "
        "| growth |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(f"| {r['audio_s'] / 60:.1f} min | {r['windows']} | {r['speech_s'] / 60:.1f} min | "
                     f"{r['seconds']:.0f} s | {r['seconds'] / r['audio_s']:.3f} | {r['rss_before_mb']:.0f} MB | "
                     f"{r['rss_peak_mb']:.0f} MB | {r['rss_peak_mb'] - r['rss_before_mb']:.0f} MB |")
    if runs:
        lines += ["", ("For scale: the longest recording as float32 in memory would be "
                      f"{max(r['audio_s'] for r in runs) * SR * 4 / 2**20:.0f} MB at 16 kHz; the analysis reads "
                      "10 s blocks and keeps only window results.")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
