"""nEMO (Christop 2024, LREC-COLING): Polish emotional speech, 9 actors, CC BY-NC-SA 4.0.

Layout: ``root/data.tsv`` (the authors' metadata, tab-separated, UTF-8: ``file_id, emotion, raw_text,
normalized_text, speaker_id, gender, age``) and ``root/samples/`` with one audio file per ``file_id``. The
original release stores 24 kHz WAV (``file_id`` as written); a copy in another format with the same stem
(e.g. the shared 16 kHz Ogg Opus ``samples/<stem>.ogg``) is found as well. Emotions: anger, fear, happiness,
neutral, sadness, surprised (no disgust). ``speaker_id`` values carry leading spaces in the original file;
they are stripped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from serkit.corpora.base import Corpus, Problem, absolute, build_corpus, corpus_audio_files, register_corpus
from serkit.corpora.labels import NEMO_LABELS
from serkit.errors import CorpusError

NEMO_COLUMNS: tuple[str, ...] = ("file_id", "emotion", "raw_text", "normalized_text", "speaker_id", "gender", "age")


def _read_metadata(path: Path) -> pd.DataFrame:
    """data.tsv as strings, surrounding spaces stripped (the original has them in ``speaker_id``)."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE,
                            encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CorpusError(f"nemo: cannot read {path}: {exc}") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("file_id", "emotion", "speaker_id") if c not in table.columns]
    if missing:
        raise CorpusError(f"nemo: {path} lacks column(s) {', '.join(missing)}; found {', '.join(table.columns)}")
    return table.apply(lambda column: column.str.strip())


@register_corpus("nemo")
def load_nemo(root: Path) -> Corpus:
    """Load nEMO from ``root`` (the folder holding ``data.tsv`` and ``samples/``).

    Every ``data.tsv`` row becomes an utterance when ``samples/`` holds a file of its stem (any audio
    extension); a row without one is a "missing file" problem, an audio file no row names is "unlabelled".

    Columns beyond the core ones: ``text`` (the sentence as spoken, ``raw_text``), ``normalized_text``
    (lower case, no punctuation) and ``age`` (years, Int64).

    Raises
    ------
    CorpusError
        If ``data.tsv`` is missing or unreadable, or lacks ``file_id``, ``emotion`` or ``speaker_id``.
    """
    root = Path(root)
    metadata_file = root / "data.tsv"
    if not metadata_file.is_file():
        raise CorpusError(f"nemo: {metadata_file} not found; root must be the folder holding data.tsv and samples/")
    table = _read_metadata(metadata_file)
    audio_dir = root / "samples" if (root / "samples").is_dir() else root
    files: dict[str, list[Path]] = {}
    for path in corpus_audio_files(audio_dir):
        files.setdefault(path.stem, []).append(path)

    records, problems = [], []
    listed = set()
    for row in table.to_dict("records"):
        stem = Path(row["file_id"]).stem
        listed.add(stem)
        found = files.get(stem)
        if not found:
            problems.append(Problem(absolute(audio_dir / row["file_id"]),
                                    f"missing file: listed in {metadata_file.name} but not in {audio_dir}"))
            continue
        emotion = row["emotion"].lower()
        if emotion not in NEMO_LABELS:
            for path in found:
                problems.append(Problem(absolute(path), f"unlabelled: unknown emotion {row['emotion']!r} in "
                                                        f"{metadata_file.name}"))
            continue
        speaker = row["speaker_id"]
        gender = row.get("gender", "").lower()
        age = row.get("age", "")
        for path in found:  # two copies of one clip (x.wav and x.ogg) leave the second as a "duplicate"
            records.append({
                "utterance_id": f"nemo/{stem}",
                "path": absolute(path),
                "label": NEMO_LABELS[emotion],
                "raw_label": emotion,
                "speaker": f"nemo-{speaker}" if speaker else None,
                "gender": gender if gender in ("male", "female") else None,
                "text": row.get("raw_text") or None,
                "normalized_text": row.get("normalized_text") or None,
                "age": int(age) if age.isdigit() else None,
            })
    for stem in sorted(set(files) - listed):
        for path in files[stem]:
            problems.append(Problem(absolute(path), f"unlabelled: not listed in {metadata_file.name}"))
    corpus = build_corpus("nemo", root, records, problems)
    corpus.utterances["age"] = corpus.utterances["age"].astype("Int64")
    return corpus
