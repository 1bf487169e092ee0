"""EmoDB (Berlin Database of Emotional Speech, Burkhardt et al. 2005).

Layout: ``root/wav/SSTTTEV.wav`` (a flat folder of such files is accepted too): speaker SS (03..16),
text code TTT (a01..b10), emotion letter E (W anger, L boredom, E disgust, A fear, F happiness,
T sadness, N neutral) and version letter V. When ``root/erkennung.txt`` is present its listener
recognition and naturalness rates (percent) become columns.
"""

from __future__ import annotations

import re
from pathlib import Path

from serkit.corpora.base import Corpus, Problem, absolute, build_corpus, corpus_audio_files, register_corpus
from serkit.corpora.labels import EMODB_LABELS

# From the EmoDB documentation: five female and five male speakers.
EMODB_GENDERS: dict[str, str] = {
    "03": "male",
    "08": "female",
    "09": "female",
    "10": "male",
    "11": "male",
    "12": "male",
    "13": "female",
    "14": "female",
    "15": "male",
    "16": "female",
}

_NAME = re.compile(r"^(?P<speaker>\d{2})(?P<text>[ab]\d{2})(?P<emotion>[A-Za-z])(?P<version>[a-z])$")


def _read_ratings(path: Path) -> dict[str, tuple[float, float]]:
    """File name -> (recognition %, naturalness %) from erkennung.txt (Latin-1, decimal commas)."""
    ratings = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) >= 4 and fields[1].lower().endswith(".wav"):
            try:
                ratings[Path(fields[1]).stem] = (
                    float(fields[2].replace(",", ".")),
                    float(fields[3].replace(",", ".")),
                )
            except ValueError:
                continue
    return ratings


@register_corpus("emodb")
def load_emodb(root: Path) -> Corpus:
    """Load EmoDB from ``root`` (the folder holding ``wav/``).

    Columns beyond the core ones: ``text_code`` (a01..b10), ``version`` and, when erkennung.txt is
    present, ``recognition`` and ``naturalness`` (percent of 20 listeners).
    """
    root = Path(root)
    audio_dir = root / "wav" if (root / "wav").is_dir() else root
    ratings_file = root / "erkennung.txt"
    ratings = _read_ratings(ratings_file) if ratings_file.is_file() else {}
    records, problems = [], []
    for path in corpus_audio_files(audio_dir):
        match = _NAME.match(path.stem)
        if match is None:
            problems.append(Problem(absolute(path), "unlabelled: file name is not EmoDB's SSTTTEV pattern"))
            continue
        code = match["emotion"].upper()
        if code not in EMODB_LABELS:
            problems.append(Problem(absolute(path), f"unlabelled: unknown emotion letter {match['emotion']!r}"))
            continue
        speaker = match["speaker"]
        record = {
            "utterance_id": f"emodb/{path.stem}",
            "path": absolute(path),
            "label": EMODB_LABELS[code],
            "raw_label": code,
            "speaker": f"emodb-{speaker}",
            "gender": EMODB_GENDERS.get(speaker),
            "text_code": match["text"],
            "version": match["version"],
        }
        if ratings:
            recognition, naturalness = ratings.get(path.stem, (float("nan"), float("nan")))
            record["recognition"] = recognition
            record["naturalness"] = naturalness
        records.append(record)
    return build_corpus("emodb", root, records, problems)
