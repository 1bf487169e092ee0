"""A user's own data as a CSV manifest (corpus name "csv").

Columns: ``path`` (relative to the manifest's folder, or absolute) and ``label`` are required;
``speaker``, ``gender`` and ``utterance_id`` are optional; every other column is kept as metadata
(renamed ``<column>_manifest`` if it collides with a core column). Labels that are known emotion words
map to the unified set, others are kept as they are; ``raw_label`` holds the manifest's value.
Rows without a path or label, or whose file does not exist, go to ``problems``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from serkit.corpora.base import CORE_COLUMNS, Corpus, Problem, absolute, build_corpus, register_corpus
from serkit.corpora.folder import check_corpus_name
from serkit.corpora.labels import normalise_label
from serkit.errors import CorpusError

_GENDERS = {"m": "male", "male": "male", "man": "male", "f": "female", "female": "female", "woman": "female"}


def _find_manifest(root: Path) -> Path:
    if root.is_file():
        return root
    if (root / "manifest.csv").is_file():
        return root / "manifest.csv"
    candidates = sorted(p for p in root.glob("*.csv") if not p.name.startswith("."))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise CorpusError(f"csv: {root} is a folder; give the manifest file itself (CSV files there: {found})")
    return candidates[0]


def _text(value: object) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


@register_corpus("csv")
def load_csv_manifest(
    root: Path,
    name: str = "csv",
    path_column: str = "path",
    label_column: str = "label",
    speaker_column: str = "speaker",
    gender_column: str = "gender",
) -> Corpus:
    """Load a CSV manifest.

    Parameters
    ----------
    root : Path
        The manifest file, or a folder holding ``manifest.csv`` (or exactly one ``.csv``).
    name : str
        Corpus name, the prefix of speakers and utterance ids.
    path_column, label_column, speaker_column, gender_column : str
        Column names (the speaker and gender columns are optional).

    Raises
    ------
    CorpusError
        If the file cannot be parsed or lacks the path or label column (named).
    """
    manifest = _find_manifest(Path(root))
    name = check_corpus_name(name)
    try:
        header = list(pd.read_csv(manifest, nrows=0).columns)
        named = (path_column, label_column, speaker_column, gender_column, "utterance_id")
        text_columns = [c for c in named if c in header]
        table = pd.read_csv(manifest, dtype={c: str for c in text_columns})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise CorpusError(f"{manifest}: cannot read the manifest: {exc}") from exc
    for column in (path_column, label_column):
        if column not in table.columns:
            raise CorpusError(
                f"{manifest}: manifest lacks required column {column!r}; columns: {', '.join(map(str, table.columns))}"
            )
    special = {path_column, label_column, speaker_column, gender_column, "utterance_id"}
    extra = {c: (f"{c}_manifest" if c in CORE_COLUMNS else c) for c in table.columns if c not in special}
    base = manifest.parent
    records, problems = [], []
    for index, row in enumerate(table.to_dict("records")):
        line = index + 2  # 1-based, after the header line
        where = f"{manifest}:{line}"
        raw_path = _text(row[path_column])
        if raw_path is None:
            problems.append(Problem(where, f"missing path: line {line} has no {path_column!r}"))
            continue
        path = Path(raw_path).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            problems.append(Problem(absolute(path), f"missing file: listed on line {line} of {manifest.name}"))
            continue
        raw_label = _text(row[label_column])
        if raw_label is None:
            problems.append(Problem(absolute(path), f"unlabelled: line {line} has no {label_column!r}"))
            continue
        speaker = _text(row.get(speaker_column))
        gender = _text(row.get(gender_column))
        given_id = _text(row.get("utterance_id"))
        try:
            stem = path.relative_to(base).with_suffix("").as_posix()
        except ValueError:
            stem = path.with_suffix("").as_posix().lstrip("/")
        record = {
            "utterance_id": f"{name}/{given_id or stem}",
            "path": absolute(path),
            "label": normalise_label(raw_label) or raw_label,
            "raw_label": raw_label,
            "speaker": None if speaker is None else f"{name}-{speaker}",
            "gender": None if gender is None else _GENDERS.get(gender.lower()),
        }
        record.update({new: row[old] for old, new in extra.items()})
        records.append(record)
    return build_corpus(name, manifest, records, problems)
