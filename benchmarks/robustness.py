"""Robustness card: UA of a model on held-out speakers' clips, clean and under degradations a user's recordings bring.

Usage::

    .venv/bin/python benchmarks/robustness.py --corpus emodb=../shared/corpora/emodb \\
        --corpus ravdess=../shared/corpora/ravdess-16k --corpus nemo=../shared/corpora/nemo \\
        --corpus emovo=../shared/corpora/emovo-16k                  # the default model, its held-out speakers
    .venv/bin/python benchmarks/robustness.py --model runs/loco/folds/fold04-test=nemo/model.pt \\
        --corpus nemo=../shared/corpora/nemo --max-clips 200        # a LOCO fold model on its unseen corpus
    .venv/bin/python benchmarks/robustness.py --run runs/serkit_default --corpus ... \\
        --conditions white_snr10,pink_snr10,babble_snr10,talker_snr10 --max-clips 120   # every speaker

``--run`` scores a finished speaker-independent run instead of one model: each fold's model on that fold's own
test speakers (the model never heard them), the answers pooled per corpus over the folds (the run's first seed).
The default model holds out only 5 speakers; a run of 6 speaker folds covers all 49, so its figures rest on ten
times the speakers (written to docs/benchmarks/robustness_folds.md by default). ``--conditions`` keeps the card
to some conditions (keys, or groups such as ``noise``; clean is always measured).

Conditions (every clip of every corpus goes through each; the clips' own sample rate is the model's, so that
every degradation acts on what the model hears):

- clean: the clip as read;
- white, pink and babble noise at SNR 20, 10 and 5 dB, the SNR over the whole clip
  (:func:`serkit.augment.robustness.mix_at_snr`). Babble (``--babble-talkers`` voices at once,
  :func:`~serkit.augment.robustness.babble_noise`) is made from clips of the OTHER held-out speakers of every
  corpus evaluated, one clip per speaker, so every corpus hears the same number of talkers (a corpus with two
  held-out speakers would otherwise hear a single voice, which is another condition);
- one competing talker at SNR 20, 10 and 5 dB: one clip of another held-out speaker (any corpus), the hardest
  kind of background speech for a model that pools over the whole clip;
- reverberation in three simulated shoebox rooms (pyroomacoustics' image-source method, nominal RT60 by Sabine's
  formula; the RT60 measured on the simulated impulse responses is written beside it), ``--rirs-per-room``
  source/microphone placements per room, each clip convolved with one of them;
- telephone band (300-3400 Hz, through 8 kHz);
- MP3 and Opus round trips at low bitrates (libsndfile compression levels; the bitrate measured on the clips is
  written beside them);
- clip length 0.5, 1, 2, 4 and 8 s: a longer clip is cropped to its centre stretch, a shorter one is looped
  (repeated from its start) up to the length; the counts cropped and looped are written.

Clips: the labels the model knows only; UA is the unweighted average recall over the classes present among a
corpus's evaluated clips. A clip the model gives no label under a condition (e.g. too little speech once cut to
0.5 s) counts as a miss and is counted in the table's "no label" column.

Held-out speakers (a single model): ``--speakers`` (comma-separated speaker ids, corpus names meaning all their
speakers, or ``all``); without it, the model card's ``held_out_speakers`` (a list of ids, or corpus -> ids) or
``held_out_corpora``, or, for a fold's ``model.pt`` inside a run folder, that fold's test speakers from the run's
``splits.csv`` (speaker-independent folds only). A model that names none is refused: scoring a model on the
speakers it was trained on says nothing about robustness.

Every random choice (noise, babble talkers and stretches, room placements, the ``--max-clips`` subset) comes from
``--seed`` and the condition's and clip's names, so a rerun gives the same numbers. Writes ``--out`` (Markdown),
and beside it a ``.json`` with every number and the command line and a ``.png`` plot, atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import shlex
import sys
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.metrics import recall_score

ROOT = Path(__file__).resolve().parents[1]

import serkit
from serkit.audio import parse_channel, read_audio
from serkit.augment.robustness import (
    babble_noise,
    codec_round_trip,
    coloured_noise,
    mix_at_snr,
    reverberate,
    room_impulse_response,
    telephone_band,
)
from serkit.corpora import load_corpus
from serkit.errors import SerkitError
from serkit.utils import atomic_write_bytes, atomic_write_text

SNRS_DB = (20.0, 10.0, 5.0)
NOISES = ("white", "pink", "babble", "talker")
#: the noises issue 14's 10 dB target names (the competing talker is reported beside them)
TARGET_NOISES = ("white", "pink", "babble")
#: the noises made of other held-out speakers' clips (they need another speaker than the clip's own)
SPEECH_NOISES = ("babble", "talker")
#: how the card names the competing-talker noise (the others: "white noise", ...)
TALKER = "one competing talker"
#: name -> (length x width x height in m, nominal RT60 in s)
ROOMS: dict[str, tuple[tuple[float, float, float], float]] = {
    "small": ((3.0, 4.0, 2.5), 0.3),
    "medium": ((6.0, 5.0, 3.0), 0.6),
    "large": ((10.0, 8.0, 3.5), 0.9),
}
#: (codec, libsndfile compression level): the lowest bitrates of each encoder (about 31 and 26 kbit/s for MP3,
#: 23 and 12 kbit/s for Opus on 16 kHz speech, see codec_round_trip)
CODEC_LEVELS = (("mp3", 0.9), ("mp3", 0.99), ("opus", 0.95), ("opus", 0.99))
CLIP_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)
#: where a clip's babble comes from: the held-out speakers of a single model, or the test speakers of a run's fold
BABBLE_SOURCE = {"model": "other held-out speakers of every corpus",
                 "run": "other test speakers of the same fold, of every corpus"}
#: the target of issue 14: at 10 dB SNR at most this many UA points below clean
TARGET_DROP_10DB = 10.0


@dataclass(frozen=True)
class Condition:
    """One degradation applied to every clip. ``key`` names it in the JSON and seeds its randomness."""

    key: str
    group: str  # clean, noise, reverb, telephone, codec, length
    label: str
    noise: str | None = None
    snr_db: float | None = None
    room: str | None = None
    codec: str | None = None
    level: float | None = None
    seconds: float | None = None


def conditions() -> list[Condition]:
    """Every condition of the card, in table order."""
    out = [Condition("clean", "clean", "clean")]
    out += [Condition(f"{noise}_snr{snr:g}", "noise",
                      f"{TALKER if noise == 'talker' else noise + ' noise'}, SNR {snr:g} dB",
                      noise=noise, snr_db=snr)
            for noise in NOISES for snr in SNRS_DB]
    out += [Condition(f"reverb_{room}", "reverb", f"reverberation, {room} room", room=room) for room in ROOMS]
    out.append(Condition("telephone", "telephone", "telephone band (300-3400 Hz, 8 kHz)"))
    out += [Condition(f"{codec}_{level:g}", "codec", f"{codec.upper() if codec == 'mp3' else 'Opus'} "
                      f"(level {level:g})", codec=codec, level=level) for codec, level in CODEC_LEVELS]
    out += [Condition(f"length_{s:g}s", "length", f"clip length {s:g} s", seconds=s) for s in CLIP_SECONDS]
    return out


def clip_rng(seed: int, condition_key: str, clip_id: str) -> np.random.Generator:
    """The generator of one clip under one condition: the same whatever else is evaluated, or in which order."""
    return np.random.default_rng([seed, zlib.crc32(condition_key.encode()), zlib.crc32(clip_id.encode())])


def fit_length(y: np.ndarray, n: int) -> tuple[np.ndarray, str]:
    """``y`` at ``n`` samples: its centre stretch when longer ("cropped"), looped from its start when shorter
    ("looped")."""
    if y.size >= n:
        start = (y.size - n) // 2
        return y[start : start + n], "cropped" if y.size > n else "kept"
    return np.tile(y, math.ceil(n / y.size))[:n], "looped"


@dataclass
class Degrader:
    """Applies a :class:`Condition` to clips at ``sample_rate``, seeded by ``seed`` and the clip's id.

    ``babble_pool`` maps a speaker to its clean clips: a clip's babble is made from one clip of each of the other
    speakers (at most ``babble_talkers`` of them are heard at once); ``rirs`` holds each room's impulse
    responses once computed.
    """

    sample_rate: int
    seed: int = 0
    babble_talkers: int = 3
    rirs_per_room: int = 4
    babble_pool: dict[str, list[np.ndarray]] = field(default_factory=dict)
    rirs: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def room_rirs(self, room: str) -> list[np.ndarray]:
        """The room's impulse responses (computed once, seeded by the room's name)."""
        if room not in self.rirs:
            dims, rt60 = ROOMS[room]
            self.rirs[room] = [
                room_impulse_response(self.sample_rate, dims, rt60,
                                      np.random.default_rng([self.seed, zlib.crc32(f"room-{room}".encode()), k]))
                for k in range(self.rirs_per_room)]
        return self.rirs[room]

    def apply(self, condition: Condition, y: np.ndarray, clip_id: str, speaker: str = "",
              babble_speakers: Sequence[str] = ()) -> tuple[np.ndarray, str | None]:
        """``y`` (a clip of ``speaker``) under ``condition``, and a note ("looped" / "cropped" for lengths, the
        talkers for babble). Babble (and the competing talker) comes from one clip of each of ``babble_speakers``
        other than ``speaker``."""
        rng = clip_rng(self.seed, condition.key, clip_id)
        if condition.group == "clean":
            return y, None
        if condition.group == "noise":
            if condition.noise in SPEECH_NOISES:
                others = [s for s in babble_speakers if s != speaker]
                if not others:
                    raise ValueError(f"{clip_id}: babble needs another held-out speaker than {speaker}")
                voices = [self.babble_pool[s][int(rng.integers(len(self.babble_pool[s])))] for s in others]
                talkers = 1 if condition.noise == "talker" else min(self.babble_talkers, len(voices))
                noise = babble_noise(voices, y.size, talkers, rng)
                return mix_at_snr(y, noise, condition.snr_db), f"{talkers} talker(s)"
            return mix_at_snr(y, coloured_noise(y.size, condition.noise, rng), condition.snr_db), None
        if condition.group == "reverb":
            bank = self.room_rirs(condition.room)
            return reverberate(y, bank[int(rng.integers(len(bank)))]), None
        if condition.group == "telephone":
            return telephone_band(y, self.sample_rate), None
        if condition.group == "codec":
            return codec_round_trip(y, self.sample_rate, condition.codec, condition.level), None
        if condition.group == "length":
            return fit_length(y, round(condition.seconds * self.sample_rate))
        raise ValueError(f"unknown condition group {condition.group!r}")


def measured_rt60(rirs: Sequence[np.ndarray], sample_rate: int) -> float | None:
    """Mean RT60 (s) of simulated impulse responses, extrapolated from their first 30 dB of decay."""
    import pyroomacoustics as pra

    values = []
    for rir in rirs:
        try:
            values.append(float(pra.experimental.measure_rt60(rir, fs=sample_rate, decay_db=30)))
        except (ValueError, IndexError):  # a response too short to decay 30 dB has no measurable RT60
            continue
    return float(np.mean(values)) if values else None


def measured_kbps(clips: Sequence[np.ndarray], sample_rate: int, codec: str, level: float) -> float:
    """Mean bitrate (kbit/s) of ``clips`` encoded as codec_round_trip encodes them (libsndfile, same level)."""
    fmt, subtype = {"mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}[codec]
    bits = seconds = 0.0
    for y in clips:
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(y, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype, compression_level=level)
        bits += 8 * buffer.tell()
        seconds += y.size / sample_rate
    return bits / seconds / 1000.0


# -- speakers --------------------------------------------------------------------------------------------------
def _card_held_out(card: dict | None) -> tuple[list[str], list[str]]:
    """(speaker ids, corpus names) the model card says were held out of training."""
    if not isinstance(card, dict):
        return [], []
    speakers = card.get("held_out_speakers") or []
    if isinstance(speakers, dict):
        speakers = [s for ids in speakers.values() for s in ids]
    return [str(s) for s in speakers], [str(c) for c in card.get("held_out_corpora") or []]


def _run_folder_held_out(model_path: str | None) -> tuple[list[str], str] | None:
    """Test speakers of a fold's model.pt inside a run folder (from the run's splits.csv), when the fold is SI."""
    if not model_path:
        return None
    path = Path(model_path)
    if path.is_dir() or path.parent.parent.name != "folds":
        return None
    splits = path.parent.parent.parent / "splits.csv"
    if not splits.is_file():
        return None
    table = pd.read_csv(splits, dtype=str, keep_default_na=False)
    row = table[table["name"] == path.parent.name]
    if len(row) != 1 or row["tag"].iloc[0] != "SI":
        return None
    return row["test_speakers"].iloc[0].split(","), f"test speakers of fold {path.parent.name} in {splits}"


def held_out_speakers(spec: str | None, card: dict | None, model_path: str | None,
                      tables: dict[str, pd.DataFrame]) -> tuple[set[str], str]:
    """The speakers to evaluate and where the choice comes from.

    Raises
    ------
    SystemExit
        When neither ``spec`` nor the model names held-out speakers, or none of them is in the corpora.
    """
    present = {name: set(t["speaker"].astype(str)) for name, t in tables.items()}
    everyone = set().union(*present.values())
    if spec:
        chosen: set[str] = set()
        for token in (t.strip() for t in spec.split(",") if t.strip()):
            if token == "all":
                chosen |= everyone
            elif token in present:
                chosen |= present[token]
            elif token in everyone:
                chosen.add(token)
            else:
                raise SystemExit(f"--speakers: {token!r} is neither a speaker of the given corpora nor a corpus name "
                                 f"({', '.join(sorted(present))}); speakers are e.g. {', '.join(sorted(everyone)[:5])}")
        source = f"--speakers {spec}" + (" (all speakers: not checked against the model's training data)"
                                         if "all" in spec.split(",") else "")
    else:
        ids, corpora = _card_held_out(card)
        if ids or corpora:
            chosen = set(ids) | {s for c in corpora for s in present.get(c, ())}
            source = "the model card's " + " and ".join(
                k for k, v in (("held_out_speakers", ids), ("held_out_corpora", corpora)) if v)
        elif (fold := _run_folder_held_out(model_path)) is not None:
            chosen, source = set(fold[0]), fold[1]
        else:
            raise SystemExit(
                "the model does not say which speakers were held out of its training (no held_out_speakers or "
                "held_out_corpora in its model card, and it is not a speaker-independent fold of a run folder): "
                "scoring it on speakers it was trained on is not a robustness result. Pass --speakers with "
                "speakers (or corpora) the model never heard, e.g. --speakers emovo,nemo for a model trained on "
                "EmoDB and RAVDESS, or --speakers all to evaluate every speaker knowingly.")
    chosen &= everyone
    if not chosen:
        raise SystemExit(f"none of the held-out speakers ({source}) is in the given corpora "
                         f"({', '.join(sorted(present))})")
    return chosen, source


# -- data ------------------------------------------------------------------------------------------------------
@dataclass
class Clip:
    corpus: str
    clip_id: str
    speaker: str
    label: str
    y: np.ndarray


def pick_clips(table: pd.DataFrame, max_clips: int | None, seed: int, corpus: str) -> pd.DataFrame:
    """At most ``max_clips`` rows, dealt round-robin over the labels from a seeded shuffle (so every class
    stays in a small subset), in utterance order."""
    table = table.sort_values("utterance_id").reset_index(drop=True)
    if max_clips is None or len(table) <= max_clips:
        return table
    order = np.random.default_rng([seed, zlib.crc32(f"subset-{corpus}".encode())]).permutation(len(table))
    queues = {lab: [i for i in order if table["label"].iloc[i] == lab] for lab in sorted(table["label"].unique())}
    picked: list[int] = []
    while len(picked) < max_clips:
        for queue in queues.values():
            if queue and len(picked) < max_clips:
                picked.append(queue.pop(0))
    return table.iloc[sorted(picked)].reset_index(drop=True)


def read_clips(table: pd.DataFrame, corpus: str, sample_rate: int, offset: float,
               progress: Progress) -> tuple[list[Clip], list[tuple[str, str]]]:
    """The table's clips as mono float32 at ``sample_rate`` (its ``channel`` column honoured); failures listed."""
    clips, failures = [], []
    task = progress.add_task(f"reading {corpus}", total=len(table))
    channels = table["channel"] if "channel" in table.columns else [None] * len(table)
    for row, channel in zip(table.itertuples(index=False), channels, strict=True):
        choice = parse_channel(channel)
        try:
            y, _ = read_audio(row.path, sample_rate=sample_rate, mono=True, offset=offset,
                              channel="mean" if choice is None else choice)
            clips.append(Clip(corpus, str(row.utterance_id), str(row.speaker), str(row.label), y))
        except SerkitError as exc:
            failures.append((str(row.path), str(exc)))
        progress.advance(task)
    progress.remove_task(task)
    return clips, failures


def predict_labels(model, signals: list[np.ndarray], sample_rate: int) -> list[str | None]:
    """The model's label of each signal (one batched call), None for a signal it gives no label."""
    try:
        proba = model.predict_proba(signals, sample_rate=sample_rate)
        return [model.labels[int(i)] for i in np.asarray(proba).argmax(1)]
    except SerkitError:
        # Some inputs cannot be labelled (too little speech): go one by one to find which.
        out: list[str | None] = []
        for y in signals:
            try:
                out.append(model.labels[int(np.asarray(model.predict_proba(y, sample_rate=sample_rate)).argmax())])
            except SerkitError:
                out.append(None)
        return out


def unweighted_average_recall(true: Sequence[str], pred: Sequence[str | None]) -> tuple[float, dict[str, float]]:
    """UA over the classes present in ``true`` (a missing prediction is a miss) and the recall of each."""
    classes = sorted(set(true))
    pred = ["\0no label" if p is None else p for p in pred]
    recalls = recall_score(list(true), pred, labels=classes, average=None, zero_division=0)
    return float(np.mean(recalls)), {c: float(r) for c, r in zip(classes, recalls, strict=True)}


# -- report ----------------------------------------------------------------------------------------------------
def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def markdown(report: dict) -> str:
    corpora = list(report["corpora"])
    several = len(corpora) > 1
    head = "| condition | " + " | ".join(f"{c} UA % (Δ)" for c in corpora) + (" | mean UA % (Δ)" if several else "")
    head += " | no label |"
    lines = [head, "|---" * (len(corpora) + 2 + several) + "|"]
    for cond in report["conditions"]:
        cells = []
        for c in corpora:
            r = cond["results"].get(c)
            cells.append("n/a" if r is None or r["ua"] is None else
                         f"{r['ua'] * 100:.1f}" + ("" if cond["key"] == "clean" else f" ({_fmt(r['drop'], True)})"))
        if several:
            mean = cond["mean_ua"]
            cells.append("n/a" if mean is None else f"{mean * 100:.1f}"
                         + ("" if cond["key"] == "clean" else f" ({_fmt(cond['mean_drop'], True)})"))
        unlabelled = sum((r or {}).get("n_unlabelled", 0) for r in cond["results"].values())
        lines.append(f"| {cond['label']}{cond.get('detail', '')} | " + " | ".join(cells) + f" | {unlabelled} |")
    model = report["model"]
    corpus_lines = [f"- **{name}** (`{c['root']}`): {c['n_clips']} clips of {c['n_speakers']} held-out speakers "
                    f"({', '.join(c['speakers'])}); classes {', '.join(c['classes'])} (chance "
                    f"{100 / len(c['classes']):.1f} % UA)"
                    + (f"; {len(c['read_failures'])} file(s) unreadable, left out" if c["read_failures"] else "")
                    + (f"; babble from {c['babble_source']}" if c.get("babble_source") else "")
                    for name, c in report["corpora"].items()]
    rooms = "; ".join(f"{name} {'x'.join(f'{d:g}' for d in r['dims_m'])} m, RT60 {r['rt60_nominal_s']:g} s nominal"
                      + (f" ({r['rt60_measured_s']:.2f} s measured)" if r["rt60_measured_s"] else "")
                      for name, r in report["rooms"].items())
    codecs = "; ".join(f"{c['codec']} level {c['level']:g}: {c['kbps']:.0f} kbit/s" for c in report["codecs"])
    lengths = "; ".join(f"{s} s: {n['cropped']} cropped, {n['looped']} looped" for s, n in report["lengths"].items())
    optional = "".join(line + "\n" for line, present in (
        (f"- Rooms (shoebox, image-source method, {report['rirs_per_room']} placements each): {rooms}.", rooms),
        (f"- Codecs (libsndfile, bitrate measured on these clips): {codecs}.", codecs),
        (f"- Clip length: a longer clip is cropped to its centre, a shorter one looped from its start ({lengths}).",
         lengths)) if present)
    target = report["target_10db"]
    target_line = ", ".join(f"{k} {_fmt(v, True)}" for k, v in target["drops"].items())
    if target.get("beside"):
        target_line += "; beside the target's noises, " + ", ".join(
            f"{TALKER if k == 'talker' else k} {_fmt(v, True)}" for k, v in target["beside"].items())
    babble_from = BABBLE_SOURCE["run" if report.get("run") else "model"]
    clip_limit = (f"; at most {report['max_clips']} clips per {report.get('max_clips_per', 'corpus')}"
                  if report["max_clips"] else "")
    target_paragraph = "" if not target["drops"] and not target.get("beside") else (
        f"At 10 dB SNR{' (mean over corpora)' if several else ''}: {target_line} UA points against clean "
        f"(issue 14's target:\nno more than {TARGET_DROP_10DB:g} points lost).\n\n")
    return f"""# Robustness card

UA (unweighted average recall, %) of **{model['source']}** ({model['recipe']}, labels {', '.join(model['labels'])})
on held-out speakers' clips, clean and degraded; in brackets the change against clean in UA points.

- Speakers: {report['speakers_source']}.
{chr(10).join(corpus_lines)}
- Seed {report['seed']} (every noise, babble, room placement and clip subset is drawn from it and the condition's
  and clip's names: reruns give the same numbers){clip_limit}.
- Clips are read at the model's rate ({model['sample_rate']} Hz) and degraded there. SNR is over the whole clip.
  Babble: {report['babble_talkers']} talkers at once, one clip each of {babble_from};
  the competing talker: one such clip.
{optional}- "no label": clips the model gave no label (counted as misses), summed over corpora.

{chr(10).join(lines)}

{target_paragraph}![UA under each degradation]({report['plot']})

Command: `{report['command']}` ({report['date']}).
"""


def plot(report: dict) -> bytes:
    """Three panels: UA against SNR per noise, bars for the other degradations, UA against clip length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = list(report["corpora"])
    by_key = {c["key"]: c for c in report["conditions"]}

    def ua(key: str, corpus: str | None) -> float:
        cond = by_key.get(key)
        if cond is None:  # a condition left out with --conditions
            return np.nan
        value = cond["mean_ua"] if corpus is None else (cond["results"].get(corpus) or {}).get("ua")
        return np.nan if value is None else 100 * value

    series = [(None, "mean")] if len(corpora) > 1 else [(corpora[0], corpora[0])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    for noise in NOISES:
        for corpus, name in series:
            ax.plot(SNRS_DB, [ua(f"{noise}_snr{s:g}", corpus) for s in SNRS_DB], marker="o", label=noise)
    ax.axhline(ua("clean", series[0][0]), color="k", linestyle="--", label="clean")
    ax.set(xlabel="SNR (dB)", ylabel="UA (%)", title=f"noise ({series[0][1]})", xticks=SNRS_DB)
    ax.invert_xaxis()
    ax.legend()
    ax = axes[1]
    keys = ["clean"] + [c["key"] for c in report["conditions"] if c["group"] in ("reverb", "telephone", "codec")]
    width = 0.8 / len(corpora)
    for j, corpus in enumerate(corpora):
        ax.bar(np.arange(len(keys)) + j * width, [ua(k, corpus) for k in keys], width, label=corpus)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys, rotation=45, ha="right")
    ax.set(ylabel="UA (%)", title="reverberation, telephone, codecs")
    ax.legend()
    ax = axes[2]
    for corpus in corpora:
        ax.plot(CLIP_SECONDS, [ua(f"length_{s:g}s", corpus) for s in CLIP_SECONDS], marker="o", label=corpus)
    ax.set_xscale("log", base=2)
    ax.set_xticks(CLIP_SECONDS, [f"{s:g}" for s in CLIP_SECONDS])
    ax.set(xlabel="clip length (s)", ylabel="UA (%)", title="clip length")
    ax.legend()
    for ax in axes:
        ax.set_ylim(0, 100)
    fig.suptitle(f"{report['model']['source']}: UA on held-out speakers")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


# -- evaluation ------------------------------------------------------------------------------------------------
@dataclass
class Member:
    """One model and the speakers it is scored on: the model alone, or one fold of a run folder."""

    model: Any
    source: str  # what load_model was given
    speakers: set[str]
    speakers_source: str
    fold: str | None = None


def run_folds(run: Path) -> list[tuple[str, Path, list[str]]]:
    """(fold name, model file, test speakers) of each speaker-independent fold of a finished run folder, for the
    run's first seed only (a second seed's models would score the same speakers twice).

    Raises
    ------
    SystemExit
        When the folder has no splits.csv, no speaker-independent fold, or a fold without its model.pt.
    """
    splits = run / "splits.csv"
    if not splits.is_file():
        raise SystemExit(f"--run {run}: no splits.csv (not a finished `serkit train` run folder)")
    table = pd.read_csv(splits, dtype=str, keep_default_na=False)
    table = table[table["tag"] == "SI"]
    if table.empty:
        raise SystemExit(f"--run {run}: no speaker-independent fold in {splits}")
    table = table[table["seed"] == min(table["seed"], key=int)]
    out = []
    for name, speakers in zip(table["name"], table["test_speakers"], strict=True):
        model = run / "folds" / name / "model.pt"
        if not model.is_file():
            raise SystemExit(f"--run {run}: fold {name} has no model file ({model})")
        out.append((name, model, speakers.split(",")))
    return out


@dataclass
class Outcome:
    """A model's answers on one corpus's clips under one condition (pooled over a run's folds)."""

    true: list[str] = field(default_factory=list)
    pred: list[str | None] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)


def gather_clips(tables: dict[str, pd.DataFrame], speakers: set[str], max_clips: int | None, seed: int,
                 sample_rate: int, offset: float, progress: Progress,
                 console: Console) -> tuple[dict[str, list[Clip]], dict[str, dict]]:
    """The held-out speakers' clips of every corpus (at most ``max_clips`` each) and what the card says of them."""
    clips: dict[str, list[Clip]] = {}
    info: dict[str, dict] = {}
    for name, table in tables.items():
        table = pick_clips(table[table["speaker"].astype(str).isin(speakers)], max_clips, seed, name)
        if table.empty:
            console.print(f"[yellow]{name}: none of its speakers is held out; left out[/]")
            continue
        clips[name], failures = read_clips(table, name, sample_rate, offset, progress)
        for _path, reason in failures:
            console.print(f"[yellow]{reason}[/] (left out)")
        if not clips[name]:
            raise SystemExit(f"{name}: no clip could be read")
        info[name] = {
            "n_clips": len(clips[name]),
            "speakers": sorted({c.speaker for c in clips[name]}),
            "classes": sorted({c.label for c in clips[name]}),
            "clips_per_class": {lab: sum(c.label == lab for c in clips[name])
                                for lab in sorted({c.label for c in clips[name]})},
            "read_failures": [{"path": p, "reason": r} for p, r in failures],
        }
    return clips, info


def merge_corpus_info(into: dict[str, dict], info: dict[str, dict]) -> None:
    """Add one member's corpus description to the pooled one (clip counts summed, speakers joined)."""
    for name, c in info.items():
        if name not in into:
            into[name] = {**c, "clips_per_class": dict(c["clips_per_class"])}
            continue
        pooled = into[name]
        pooled["n_clips"] += c["n_clips"]
        pooled["speakers"] = sorted(set(pooled["speakers"]) | set(c["speakers"]))
        pooled["classes"] = sorted(set(pooled["classes"]) | set(c["classes"]))
        for lab, n in c["clips_per_class"].items():
            pooled["clips_per_class"][lab] = pooled["clips_per_class"].get(lab, 0) + n
        pooled["read_failures"] += c["read_failures"]


def evaluate(member: Member, clips: dict[str, list[Clip]], conds: Sequence[Condition], degrader: Degrader,
             batch_size: int, outcomes: dict[str, dict[str, Outcome | None]],
             length_notes: dict[str, dict[str, int]], progress: Progress, task: Any) -> None:
    """Score ``member`` on ``clips`` under every condition, adding to ``outcomes`` (condition -> corpus).

    Babble (and the competing talker) of a clip comes from the member's other held-out speakers of every corpus;
    where a corpus's clips have no other speaker to take it from, its outcome under that noise is None."""
    for clip_list in clips.values():
        for clip in clip_list:
            degrader.babble_pool.setdefault(clip.speaker, []).append(clip.y)
    babble_speakers = sorted(degrader.babble_pool)
    sample_rate = degrader.sample_rate
    for cond in conds:
        progress.update(task, description=cond.key + (f" ({member.fold})" if member.fold else ""))
        for name, clip_list in clips.items():
            if cond.noise in SPEECH_NOISES and any(not set(babble_speakers) - {c.speaker} for c in clip_list):
                outcomes[cond.key][name] = None
                progress.advance(task, len(clip_list))
                continue
            outcome = outcomes[cond.key].setdefault(name, Outcome())
            if outcome is None:  # an earlier member could not hear this noise on this corpus
                progress.advance(task, len(clip_list))
                continue
            for start in range(0, len(clip_list), batch_size):
                batch = clip_list[start : start + batch_size]
                signals = []
                for clip in batch:
                    y, note = degrader.apply(cond, clip.y, f"{name}/{clip.clip_id}", clip.speaker, babble_speakers)
                    if cond.group == "length" and note in ("cropped", "looped"):
                        length_notes[f"{cond.seconds:g}"][note] += 1
                    signals.append(y)
                preds = predict_labels(member.model, signals, sample_rate)
                outcome.true += [c.label for c in batch]
                outcome.pred += preds
                outcome.unlabelled += [c.clip_id for c, p in zip(batch, preds, strict=True) if p is None]
                progress.advance(task, len(batch))


def select_conditions(spec: str | None) -> list[Condition]:
    """Every condition, or those ``spec`` names (comma-separated keys or groups; clean always comes first)."""
    every = conditions()
    if not spec:
        return every
    wanted = {t.strip() for t in spec.split(",") if t.strip()}
    known = {c.key for c in every} | {c.group for c in every}
    if unknown := sorted(wanted - known):
        raise SystemExit(f"--conditions: unknown {', '.join(unknown)}; known are the groups "
                         f"{', '.join(dict.fromkeys(c.group for c in every))} and the keys "
                         f"{', '.join(c.key for c in every)}")
    return [c for c in every if c.key == "clean" or c.key in wanted or c.group in wanted]


# -- main ------------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="anything serkit.load_model accepts (default: serkit's "
                        "default model)")
    parser.add_argument("--run", type=Path, default=None, help="instead of --model: a finished speaker-independent "
                        "run folder; each fold's model is scored on that fold's test speakers and the answers are "
                        "pooled per corpus")
    parser.add_argument("--corpus", action="append", required=True, metavar="NAME=ROOT",
                        help="a corpus (serkit.corpora loader name) and its folder; repeatable")
    parser.add_argument("--speakers", default=None, help="held-out speakers: comma-separated speaker ids, corpus "
                        "names (all their speakers) or 'all' (default: those the model names as held out)")
    parser.add_argument("--conditions", default=None, help="only these conditions (comma-separated keys such as "
                        "babble_snr10, or groups: noise, reverb, telephone, codec, length); clean is always in")
    parser.add_argument("--max-clips", type=int, default=None, help="at most this many clips per corpus (with "
                        "--run: per corpus and fold)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--babble-talkers", type=int, default=3)
    parser.add_argument("--rirs-per-room", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="clips per model call")
    parser.add_argument("--vad", default="auto", help="the model's voice activity detection for clips longer than "
                        "its window (as serkit predict --vad)")
    parser.add_argument("--out", type=Path, default=None, help="the card (default: docs/benchmarks/robustness.md; "
                        "with --run: docs/benchmarks/robustness_folds.md)")
    args = parser.parse_args(argv)
    if args.max_clips is not None and args.max_clips < 1:
        parser.error("--max-clips must be >= 1")
    if args.run is not None and (args.model is not None or args.speakers is not None):
        parser.error("--run scores each fold's model on its own test speakers: it takes neither --model nor "
                     "--speakers")
    if args.out is None:
        args.out = ROOT / "docs" / "benchmarks" / ("robustness_folds.md" if args.run else "robustness.md")
    return args


def _model_sha256(model_arg: str | None) -> str | None:
    """sha256 of the model file measured: a shipped model by name (None: the default) or a model file path."""
    from serkit.inference.api import SHIPPED_MODELS, shipped_model_path

    path = shipped_model_path(model_arg or "default") if (model_arg or "default") in SHIPPED_MODELS else Path(model_arg)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _load(model_arg: str | None, vad: str) -> Any:
    try:
        return serkit.load_model(model_arg, vad=vad)
    except SerkitError as exc:
        raise SystemExit(f"--model: {exc}") from None


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/robustness.py", *(sys.argv[1:] if argv is None else argv)])
    console = Console(stderr=True)
    corpora: dict[str, tuple[str, str]] = {}
    for item in args.corpus:
        name, sep, root = item.partition("=")
        if not sep or not name or not root:
            raise SystemExit(f"--corpus: expected NAME=ROOT, got {item!r}")
        if name in corpora:
            raise SystemExit(f"--corpus: {name} given twice")
        corpora[name] = (name, root)

    folds = run_folds(args.run) if args.run is not None else None
    first = _load(str(folds[0][1]) if folds else args.model, args.vad)
    labels = list(first.labels)
    sample_rate = int(first.sample_rate)
    offset = float(getattr(getattr(first, "audio", None), "offset", 0.0) or 0.0)

    tables = {}
    for name, (loader, root) in corpora.items():
        try:
            table = load_corpus(loader, root).utterances
        except SerkitError as exc:
            raise SystemExit(f"--corpus {name}: {exc}") from None
        tables[name] = table[table["label"].isin(labels)]
        if tables[name].empty:
            raise SystemExit(f"{name}: no clip has a label the model knows ({', '.join(labels)})")
    everyone = set().union(*(set(t["speaker"].astype(str)) for t in tables.values()))

    def members():
        """The models to score, loaded one at a time (a run's folds need not all sit in memory)."""
        if folds is None:
            speakers, source = held_out_speakers(args.speakers, getattr(first, "card", None), args.model, tables)
            yield Member(first, args.model or "default", speakers, source)
            return
        for k, (fold, path, speakers) in enumerate(folds):
            model = first if k == 0 else _load(str(path), args.vad)
            if list(model.labels) != labels or int(model.sample_rate) != sample_rate:
                raise SystemExit(f"--run {args.run}: fold {fold}'s model has other labels or another sample rate "
                                 f"than fold {folds[0][0]}'s")
            yield Member(model, str(path), set(speakers) & everyone, f"test speakers of fold {fold}", fold)

    all_conditions = select_conditions(args.conditions)
    rirs: dict[str, list[np.ndarray]] = {}  # every member hears the same rooms
    degrader = Degrader(sample_rate, seed=args.seed, babble_talkers=args.babble_talkers,
                        rirs_per_room=args.rirs_per_room, rirs=rirs)
    # Rooms and codecs fail here, not after an hour of evaluation (pyroomacoustics missing, a libsndfile
    # without an encoder).
    try:
        for room in ROOMS:
            degrader.room_rirs(room)
        probe = np.sin(np.linspace(0, 400, sample_rate)).astype(np.float32) * 0.1
        for codec, level in CODEC_LEVELS:
            codec_round_trip(probe, sample_rate, codec, level)
    except SerkitError as exc:
        raise SystemExit(str(exc)) from None
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    corpus_info: dict[str, dict] = {}
    outcomes: dict[str, dict[str, Outcome | None]] = {c.key: {} for c in all_conditions}
    length_notes: dict[str, dict[str, int]] = {f"{s:g}": {"cropped": 0, "looped": 0} for s in CLIP_SECONDS}
    sample: list[np.ndarray] = []
    scored: list[dict[str, Any]] = []
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("evaluating", total=None)
        total = 0
        for member in members():
            console.print(f"held-out speakers ({member.speakers_source}): {', '.join(sorted(member.speakers))}")
            if not member.speakers:
                raise SystemExit(f"none of the held-out speakers ({member.speakers_source}) is in the given corpora "
                                 f"({', '.join(tables)})")
            clips, info = gather_clips(tables, member.speakers, args.max_clips, args.seed, sample_rate, offset,
                                       progress, console)
            if not clips:
                raise SystemExit(f"no held-out speaker's clip in any corpus ({member.speakers_source})")
            merge_corpus_info(corpus_info, info)
            sample += [c.y for clip_list in clips.values() for c in clip_list][: 20 - len(sample)]
            total += sum(len(v) for v in clips.values()) * len(all_conditions)
            progress.update(task, total=total)
            evaluate(member, clips, all_conditions,
                     Degrader(sample_rate, seed=args.seed, babble_talkers=args.babble_talkers,
                              rirs_per_room=args.rirs_per_room, rirs=rirs),
                     args.batch_size, outcomes, length_notes, progress, task)
            scored.append({"fold": member.fold, "model": member.source, "speakers": sorted(member.speakers),
                           "speakers_source": member.speakers_source,
                           "model_sha256": _model_sha256(member.source if folds else args.model)})
    for name, info in corpus_info.items():
        info["root"] = corpora[name][1]
        info["n_speakers"] = len(info["speakers"])
        info["babble_source"] = "the " + BABBLE_SOURCE["model" if folds is None else "run"]
    results: dict[str, dict[str, Any]] = {}
    for cond in all_conditions:
        results[cond.key] = {}
        for name in corpus_info:
            outcome = outcomes[cond.key].get(name)
            if outcome is None:
                results[cond.key][name] = None
                continue
            ua, recalls = unweighted_average_recall(outcome.true, outcome.pred)
            results[cond.key][name] = {"ua": ua, "per_class_recall": recalls, "n": len(outcome.true),
                                       "n_unlabelled": len(outcome.unlabelled), "unlabelled": outcome.unlabelled}

    groups = {c.group for c in all_conditions}
    rooms = {name: {"dims_m": list(dims), "rt60_nominal_s": rt60,
                    "rt60_measured_s": measured_rt60(degrader.room_rirs(name), sample_rate)}
             for name, (dims, rt60) in ROOMS.items()} if "reverb" in groups else {}
    codecs = [{"codec": codec, "level": level, "kbps": measured_kbps(sample, sample_rate, codec, level)}
              for codec, level in CODEC_LEVELS] if "codec" in groups else []
    details = {f"reverb_{name}": f" ({'x'.join(f'{d:g}' for d in r['dims_m'])} m, RT60 {r['rt60_nominal_s']:g} s)"
               for name, r in rooms.items()}
    details |= {f"{c['codec']}_{c['level']:g}": f", {c['kbps']:.0f} kbit/s" for c in codecs}
    clean = results["clean"]
    cond_rows = []
    for cond in all_conditions:
        row = {**{k: v for k, v in asdict(cond).items() if v is not None}, "results": {}}
        if cond.key in details:
            row["detail"] = details[cond.key]
        for name in corpus_info:
            r = results[cond.key][name]
            if r is not None:
                r = {**r, "drop": 100 * (r["ua"] - clean[name]["ua"])}
            row["results"][name] = r
        values = [r["ua"] for r in row["results"].values() if r is not None]
        row["mean_ua"] = float(np.mean(values)) if len(values) == len(corpus_info) else None
        clean_mean = float(np.mean([clean[n]["ua"] for n in corpus_info]))
        row["mean_drop"] = None if row["mean_ua"] is None else 100 * (row["mean_ua"] - clean_mean)
        cond_rows.append(row)
    by_key = {r["key"]: r for r in cond_rows}
    several = len(corpus_info) > 1

    def drop_at_10(noise: str) -> float | None:
        r = by_key.get(f"{noise}_snr10")
        if r is None:
            return None
        return r["mean_drop"] if several else (r["results"][next(iter(corpus_info))] or {}).get("drop")

    out_md = args.out
    source = f"{args.run} (each fold's model)" if folds else str(first.source if hasattr(first, "source")
                                                                   else args.model or "default")
    speakers_source = ("each fold's test speakers, scored by the model of that fold (trained without them), "
                       f"answers pooled per corpus over the {len(folds)} folds of {args.run}"
                       if folds else scored[0]["speakers_source"])
    report = {
        "command": command, "argv": list(sys.argv if argv is None else argv),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "model": {"source": source, "recipe": str(getattr(first, "recipe_name", "?")), "labels": labels,
                  "sample_rate": sample_rate},
        # which model file was measured, so that the model card quotes these figures only for that file
        "model_sha256": None if folds else scored[0]["model_sha256"],
        "run": None if folds is None else str(args.run), "members": scored,
        "speakers_source": speakers_source,
        "speakers": sorted({s for c in corpus_info.values() for s in c["speakers"]}),
        "seed": args.seed, "max_clips": args.max_clips, "max_clips_per": "corpus and fold" if folds else "corpus",
        "babble_talkers": args.babble_talkers, "rirs_per_room": args.rirs_per_room, "rooms": rooms,
        "codecs": codecs, "lengths": length_notes if "length" in groups else {},
        "length_policy": "longer clips cropped to their centre, shorter ones looped from their start",
        "snr_definition": "10 log10 of clip power over noise power, both over the whole clip",
        "corpora": corpus_info, "conditions": cond_rows,
        "target_10db": {"max_drop_points": TARGET_DROP_10DB,
                        "drops": {n: drop_at_10(n) for n in TARGET_NOISES if f"{n}_snr10" in by_key},
                        "beside": {n: drop_at_10(n) for n in NOISES
                                   if n not in TARGET_NOISES and f"{n}_snr10" in by_key}},
        "plot": out_md.with_suffix(".png").name,
    }
    atomic_write_bytes(out_md.with_suffix(".png"), plot(report))
    atomic_write_text(out_md.with_suffix(".json"), json.dumps(report, indent=2))
    atomic_write_text(out_md, markdown(report))
    console.print(f"wrote {out_md}, {out_md.with_suffix('.json').name} and {out_md.with_suffix('.png').name}")
    return report


if __name__ == "__main__":
    main()
