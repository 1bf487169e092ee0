"""CREMA-D (Cao et al. 2014): 91 actors, 12 sentences, 6 emotions, up to 4 intensity levels.

Layout: ``root/AudioWAV/1001_DFA_ANG_XX.wav`` (or a flat folder of such files): actor id
(1001..1091), sentence code, emotion (ANG, DIS, FEA, HAP, NEU, SAD), level (LO, MD, HI, XX =
unspecified). Genders and ages come from the release's ``VideoDemographics.csv`` (columns ActorID,
Age, Sex, ...) when it is found in ``root``; otherwise they are missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from serkit.corpora.base import Corpus, Problem, absolute, build_corpus, corpus_audio_files, register_corpus
from serkit.corpora.labels import CREMAD_LABELS
from serkit.errors import CorpusError

CREMAD_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
CREMAD_SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}

_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Za-z]{3})_(?P<emotion>[A-Za-z]{3})_(?P<level>[A-Za-z]{2})$")


def read_demographics(path: Path) -> dict[str, dict[str, object]]:
    """Actor id -> {"gender", "age"} from CREMA-D's VideoDemographics.csv.

    Raises
    ------
    CorpusError
        If the file lacks the ActorID or Sex column.
    """
    table = pd.read_csv(path)
    for column in ("ActorID", "Sex"):
        if column not in table.columns:
            raise CorpusError(f"{path}: demographics table lacks column {column!r}")
    out = {}
    for _, row in table.iterrows():
        sex = str(row["Sex"]).strip().lower()
        age = row.get("Age")
        out[str(row["ActorID"]).strip()] = {
            "gender": sex if sex in ("male", "female") else None,
            "age": None if pd.isna(age) else int(age),
        }
    return out


@register_corpus("cremad")
def load_cremad(root: Path, demographics: str | Path | None = None) -> Corpus:
    """Load CREMA-D from ``root`` (the folder holding ``AudioWAV/``, or a flat folder).

    Parameters
    ----------
    root : Path
        Corpus folder.
    demographics : str or Path, optional
        VideoDemographics.csv; by default ``root/VideoDemographics.csv`` when present.

    Extra columns: ``sentence`` (code), ``text``, ``level`` (low/medium/high/unspecified) and
    ``age`` (when demographics are known).
    """
    root = Path(root)
    audio_dir = root / "AudioWAV" if (root / "AudioWAV").is_dir() else root
    if demographics is None and (root / "VideoDemographics.csv").is_file():
        demographics = root / "VideoDemographics.csv"
    if demographics is not None and not Path(demographics).is_file():
        raise CorpusError(f"cremad: demographics file {demographics} does not exist")
    people = read_demographics(Path(demographics)) if demographics is not None else {}
    records, problems = [], []
    for path in corpus_audio_files(audio_dir):
        match = _NAME.match(path.stem)
        if match is None:
            problems.append(Problem(absolute(path), "unlabelled: file name is not CREMA-D's AAAA_SSS_EEE_LL"))
            continue
        emotion, level = match["emotion"].upper(), match["level"].upper()
        if emotion not in CREMAD_LABELS or level not in CREMAD_LEVELS:
            bad = f"emotion {emotion!r}" if emotion not in CREMAD_LABELS else f"level {level!r}"
            problems.append(Problem(absolute(path), f"unlabelled: unknown {bad}"))
            continue
        actor, sentence = match["actor"], match["sentence"].upper()
        person = people.get(actor, {})
        record = {
            "utterance_id": f"cremad/{actor}_{sentence}_{emotion}_{level}",
            "path": absolute(path),
            "label": CREMAD_LABELS[emotion],
            "raw_label": emotion,
            "speaker": f"cremad-{actor}",
            "gender": person.get("gender"),
            "sentence": sentence,
            "text": CREMAD_SENTENCES.get(sentence),
            "level": CREMAD_LEVELS[level],
        }
        if people:
            record["age"] = person.get("age")
        records.append(record)
    return build_corpus("cremad", root, records, problems)
