"""RAVDESS (Livingstone & Russo 2018), audio part.

Reads the original release (48 kHz WAV in ``Actor_01/`` .. ``Actor_24/``, optionally inside the
``Audio_Speech_Actors_01-24`` / ``Audio_Song_Actors_01-24`` folders from the zips), a flat folder,
or a FLAC copy with the same file names (e.g. the 16 kHz ``ravdess-16k``). File name
``MM-VV-EE-II-SS-RR-AA``: modality, vocal channel (01 speech, 02 song), emotion (01 neutral,
02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), intensity (01 normal,
02 strong), statement (01, 02), repetition (01, 02), actor (01..24; odd male, even female).
"""

from __future__ import annotations

import re
from pathlib import Path

from serkit.corpora.base import Corpus, Problem, absolute, build_corpus, corpus_audio_files, register_corpus
from serkit.corpora.labels import RAVDESS_LABELS
from serkit.errors import CorpusError

RAVDESS_MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
RAVDESS_VOCAL_CHANNELS = {"01": "speech", "02": "song"}
RAVDESS_INTENSITIES = {"01": "normal", "02": "strong"}
RAVDESS_STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}

_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


@register_corpus("ravdess")
def load_ravdess(root: Path, vocal_channel: str = "speech") -> Corpus:
    """Load RAVDESS audio files under ``root`` (searched recursively).

    Parameters
    ----------
    root : Path
        Folder holding the ``Actor_XX`` folders (or the files themselves).
    vocal_channel : {"speech", "song", "all"}
        Which vocal channel to keep; the other files go to ``problems`` as
        "excluded vocal channel" (not an error).

    Columns beyond the core ones: ``actor`` (int), ``intensity`` ("normal"/"strong"),
    ``statement`` (1/2), ``text`` (the sentence), ``repetition`` (1/2), ``modality`` and
    ``vocal_channel`` ("speech"/"song").
    """
    if vocal_channel not in ("speech", "song", "all"):
        raise CorpusError(f"ravdess: vocal_channel must be 'speech', 'song' or 'all', got {vocal_channel!r}")
    records, problems = [], []
    for path in corpus_audio_files(Path(root)):
        match = _NAME.match(path.stem)
        if match is None:
            problems.append(Problem(absolute(path), "unlabelled: file name is not RAVDESS's MM-VV-EE-II-SS-RR-AA"))
            continue
        modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
        bad = [
            f"{what} code {code!r}"
            for what, code, known in (
                ("modality", modality, RAVDESS_MODALITIES),
                ("vocal channel", channel, RAVDESS_VOCAL_CHANNELS),
                ("emotion", emotion, RAVDESS_LABELS),
                ("intensity", intensity, RAVDESS_INTENSITIES),
            )
            if code not in known
        ]
        if not 1 <= int(actor) <= 24:
            bad.append(f"actor {actor!r}")
        if bad:
            problems.append(Problem(absolute(path), f"unlabelled: unknown {', '.join(bad)}"))
            continue
        channel_name = RAVDESS_VOCAL_CHANNELS[channel]
        if vocal_channel != "all" and channel_name != vocal_channel:
            problems.append(
                Problem(absolute(path), f"excluded vocal channel: {channel_name} (vocal_channel={vocal_channel!r})")
            )
            continue
        records.append(
            {
                "utterance_id": f"ravdess/{path.stem}",
                "path": absolute(path),
                "label": RAVDESS_LABELS[emotion],
                "raw_label": emotion,
                "speaker": f"ravdess-{actor}",
                "gender": "male" if int(actor) % 2 else "female",
                "actor": int(actor),
                "intensity": RAVDESS_INTENSITIES[intensity],
                "statement": int(statement),
                "text": RAVDESS_STATEMENTS.get(int(statement)),
                "repetition": int(repetition),
                "modality": RAVDESS_MODALITIES[modality],
                "vocal_channel": channel_name,
            }
        )
    return build_corpus("ravdess", root, records, problems)
