"""Robustness card: UA of a model on held-out speakers' clips, clean and under degradations a user's recordings bring.

Usage::

    .venv/bin/python benchmarks/robustness.py --corpus emodb=../shared/corpora/emodb \\
        --corpus ravdess=../shared/corpora/ravdess-16k --corpus nemo=../shared/corpora/nemo \\
        --corpus emovo=../shared/corpora/emovo-16k                  # the default model, its held-out speakers
    .venv/bin/python benchmarks/robustness.py --model runs/loco/folds/fold04-test=nemo/model.pt \\
        --corpus nemo=../shared/corpora/nemo --max-clips 200        # a LOCO fold model on its unseen corpus

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

Held-out speakers: ``--speakers`` (comma-separated speaker ids, corpus names meaning all their speakers, or
``all``); without it, the model card's ``held_out_speakers`` (a list of ids, or corpus -> ids) or
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
sys.path.insert(0, str(ROOT / "src"))

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
    target = report["target_10db"]
    target_line = ", ".join(f"{k} {_fmt(v, True)}" for k, v in target["drops"].items())
    if target.get("beside"):
        target_line += "; beside the target's noises, " + ", ".join(
            f"{TALKER if k == 'talker' else k} {_fmt(v, True)}" for k, v in target["beside"].items())
    return f"""# Robustness card

UA (unweighted average recall, %) of **{model['source']}** ({model['recipe']}, labels {', '.join(model['labels'])})
on held-out speakers' clips, clean and degraded; in brackets the change against clean in UA points.

- Speakers: {report['speakers_source']}.
{chr(10).join(corpus_lines)}
- Seed {report['seed']} (every noise, babble, room placement and clip subset is drawn from it and the condition's
  and clip's names: reruns give the same numbers){f"; at most {report['max_clips']} clips per corpus" if
  report['max_clips'] else ''}.
- Clips are read at the model's rate ({model['sample_rate']} Hz) and degraded there. SNR is over the whole clip.
  Babble: {report['babble_talkers']} talkers at once, one clip each of other held-out speakers of every corpus;
  the competing talker: one such clip.
- Rooms (shoebox, image-source method, {report['rirs_per_room']} placements each): {rooms}.
- Codecs (libsndfile, bitrate measured on these clips): {codecs}.
- Clip length: a longer clip is cropped to its centre, a shorter one looped from its start ({lengths}).
- "no label": clips the model gave no label (counted as misses), summed over corpora.

{chr(10).join(lines)}

At 10 dB SNR{' (mean over corpora)' if several else ''}: {target_line} UA points against clean (issue 14's target:
no more than {TARGET_DROP_10DB:g} points lost).

![UA under each degradation]({report['plot']})

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
        cond = by_key[key]
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


# -- main ------------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="anything serkit.load_model accepts (default: serkit's "
                        "default model)")
    parser.add_argument("--corpus", action="append", required=True, metavar="NAME=ROOT",
                        help="a corpus (serkit.corpora loader name) and its folder; repeatable")
    parser.add_argument("--speakers", default=None, help="held-out speakers: comma-separated speaker ids, corpus "
                        "names (all their speakers) or 'all' (default: those the model names as held out)")
    parser.add_argument("--max-clips", type=int, default=None, help="at most this many clips per corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--babble-talkers", type=int, default=3)
    parser.add_argument("--rirs-per-room", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="clips per model call")
    parser.add_argument("--vad", default="auto", help="the model's voice activity detection for clips longer than "
                        "its window (as serkit predict --vad)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "robustness.md")
    args = parser.parse_args(argv)
    if args.max_clips is not None and args.max_clips < 1:
        parser.error("--max-clips must be >= 1")
    return args


def _model_sha256(model_arg: str | None) -> str | None:
    """sha256 of the model file measured: a shipped model by name (None: the default) or a model file path."""
    from serkit.inference.api import SHIPPED_MODELS, shipped_model_path

    path = shipped_model_path(model_arg or "default") if (model_arg or "default") in SHIPPED_MODELS else Path(model_arg)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


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

    try:
        model = serkit.load_model(args.model, vad=args.vad)
    except SerkitError as exc:
        raise SystemExit(f"--model: {exc}") from None
    labels = list(model.labels)
    sample_rate = int(model.sample_rate)
    offset = float(getattr(getattr(model, "audio", None), "offset", 0.0) or 0.0)

    tables = {}
    for name, (loader, root) in corpora.items():
        try:
            table = load_corpus(loader, root).utterances
        except SerkitError as exc:
            raise SystemExit(f"--corpus {name}: {exc}") from None
        tables[name] = table[table["label"].isin(labels)]
        if tables[name].empty:
            raise SystemExit(f"{name}: no clip has a label the model knows ({', '.join(labels)})")
    speakers, speakers_source = held_out_speakers(args.speakers, getattr(model, "card", None), args.model, tables)
    console.print(f"held-out speakers ({speakers_source}): {', '.join(sorted(speakers))}")

    all_conditions = conditions()
    degrader = Degrader(sample_rate, seed=args.seed, babble_talkers=args.babble_talkers,
                        rirs_per_room=args.rirs_per_room)
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
    clips: dict[str, list[Clip]] = {}
    corpus_info: dict[str, dict] = {}
    with Progress(*columns, console=console) as progress:
        for name, table in tables.items():
            table = pick_clips(table[table["speaker"].astype(str).isin(speakers)], args.max_clips, args.seed, name)
            if table.empty:
                console.print(f"[yellow]{name}: none of its speakers is held out; left out[/]")
                continue
            clips[name], failures = read_clips(table, name, sample_rate, offset, progress)
            for path, reason in failures:
                console.print(f"[yellow]{reason}[/] (left out)")
            if not clips[name]:
                raise SystemExit(f"{name}: no clip could be read")
            corpus_info[name] = {
                "root": corpora[name][1], "n_clips": len(clips[name]),
                "speakers": sorted({c.speaker for c in clips[name]}),
                "n_speakers": len({c.speaker for c in clips[name]}),
                "classes": sorted({c.label for c in clips[name]}),
                "clips_per_class": {lab: sum(c.label == lab for c in clips[name])
                                    for lab in sorted({c.label for c in clips[name]})},
                "read_failures": [{"path": p, "reason": r} for p, r in failures],
            }
        if not clips:
            raise SystemExit("no held-out speaker's clip in any corpus")

        # Babble of a clip: the other held-out speakers of every corpus (the same talker count for every corpus).
        for clip_list in clips.values():
            for clip in clip_list:
                degrader.babble_pool.setdefault(clip.speaker, []).append(clip.y)
        babble_of: dict[str, list[str]] = {}
        for name in clips:
            babble_of[name] = sorted(degrader.babble_pool)
            corpus_info[name]["babble_source"] = "the other held-out speakers of every corpus"

        total = sum(len(v) for v in clips.values()) * len(all_conditions)
        task = progress.add_task("evaluating", total=total)
        results: dict[str, dict[str, Any]] = {c.key: {} for c in all_conditions}
        length_notes: dict[str, dict[str, int]] = {f"{s:g}": {"cropped": 0, "looped": 0} for s in CLIP_SECONDS}
        for cond in all_conditions:
            progress.update(task, description=cond.key)
            for name, clip_list in clips.items():
                preds: list[str | None] = []
                unlabelled_ids: list[str] = []
                available = True
                for start in range(0, len(clip_list), args.batch_size):
                    batch = clip_list[start : start + args.batch_size]
                    signals = []
                    for clip in batch:
                        if cond.noise in SPEECH_NOISES and not set(babble_of[name]) - {clip.speaker}:
                            available = False
                            break
                        y, note = degrader.apply(cond, clip.y, f"{name}/{clip.clip_id}", clip.speaker,
                                                 babble_of[name])
                        if cond.group == "length" and note in ("cropped", "looped"):
                            length_notes[f"{cond.seconds:g}"][note] += 1
                        signals.append(y)
                    if not available:
                        break
                    batch_preds = predict_labels(model, signals, sample_rate)
                    unlabelled_ids += [c.clip_id for c, p in zip(batch, batch_preds, strict=True) if p is None]
                    preds += batch_preds
                    progress.advance(task, len(batch))
                if not available:  # babble needs another held-out speaker, and there is none
                    results[cond.key][name] = None
                    progress.advance(task, len(clip_list))
                    continue
                ua, recalls = unweighted_average_recall([c.label for c in clip_list], preds)
                results[cond.key][name] = {"ua": ua, "per_class_recall": recalls, "n": len(clip_list),
                                           "n_unlabelled": len(unlabelled_ids), "unlabelled": unlabelled_ids}

    rooms = {name: {"dims_m": list(dims), "rt60_nominal_s": rt60,
                    "rt60_measured_s": measured_rt60(degrader.room_rirs(name), sample_rate)}
             for name, (dims, rt60) in ROOMS.items()}
    sample = [c.y for clip_list in clips.values() for c in clip_list][:20]
    codecs = [{"codec": codec, "level": level, "kbps": measured_kbps(sample, sample_rate, codec, level)}
              for codec, level in CODEC_LEVELS]
    details = {f"reverb_{name}": f" ({'x'.join(f'{d:g}' for d in r['dims_m'])} m, RT60 {r['rt60_nominal_s']:g} s)"
               for name, r in rooms.items()}
    details |= {f"{c['codec']}_{c['level']:g}": f", {c['kbps']:.0f} kbit/s" for c in codecs}
    clean = results["clean"]
    cond_rows = []
    for cond in all_conditions:
        row = {**{k: v for k, v in asdict(cond).items() if v is not None}, "results": {}}
        if cond.key in details:
            row["detail"] = details[cond.key]
        for name in clips:
            r = results[cond.key][name]
            if r is not None:
                r = {**r, "drop": 100 * (r["ua"] - clean[name]["ua"])}
            row["results"][name] = r
        values = [r["ua"] for r in row["results"].values() if r is not None]
        row["mean_ua"] = float(np.mean(values)) if len(values) == len(clips) else None
        clean_mean = float(np.mean([clean[n]["ua"] for n in clips]))
        row["mean_drop"] = None if row["mean_ua"] is None else 100 * (row["mean_ua"] - clean_mean)
        cond_rows.append(row)
    by_key = {r["key"]: r for r in cond_rows}
    several = len(clips) > 1

    def drop_at_10(noise: str) -> float | None:
        r = by_key[f"{noise}_snr10"]
        return r["mean_drop"] if several else (r["results"][next(iter(clips))] or {}).get("drop")

    out_md = args.out
    report = {
        "command": command, "argv": list(sys.argv if argv is None else argv),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "model": {"source": str(model.source if hasattr(model, "source") else args.model or "default"),
                  "recipe": str(getattr(model, "recipe_name", "?")), "labels": labels, "sample_rate": sample_rate},
        # which model file was measured, so that the model card quotes these figures only for that file
        "model_sha256": _model_sha256(args.model),
        "speakers_source": speakers_source, "speakers": sorted({c.speaker for v in clips.values() for c in v}),
        "seed": args.seed, "max_clips": args.max_clips, "babble_talkers": args.babble_talkers,
        "rirs_per_room": args.rirs_per_room, "rooms": rooms, "codecs": codecs, "lengths": length_notes,
        "length_policy": "longer clips cropped to their centre, shorter ones looped from their start",
        "snr_definition": "10 log10 of clip power over noise power, both over the whole clip",
        "corpora": corpus_info, "conditions": cond_rows,
        "target_10db": {"max_drop_points": TARGET_DROP_10DB, "drops": {n: drop_at_10(n) for n in TARGET_NOISES},
                        "beside": {n: drop_at_10(n) for n in NOISES if n not in TARGET_NOISES}},
        "plot": out_md.with_suffix(".png").name,
    }
    atomic_write_bytes(out_md.with_suffix(".png"), plot(report))
    atomic_write_text(out_md.with_suffix(".json"), json.dumps(report, indent=2))
    atomic_write_text(out_md, markdown(report))
    console.print(f"wrote {out_md}, {out_md.with_suffix('.json').name} and {out_md.with_suffix('.png').name}")
    return report


if __name__ == "__main__":
    main()
