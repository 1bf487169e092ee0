"""The unified emotion label vocabulary and each corpus's mapping onto it.

Every corpus loader writes the corpus's own code to ``raw_label`` and the unified name to
``label``, so corpora can be combined and compared (cross-corpus protocols). The rules:
happy = happiness = joy, angry = anger, fearful = fear, surprised = surprise (TESS's "pleasant
surprise" included); calm (RAVDESS) and boredom (EmoDB) stay apart from neutral unless a user
mapping merges them (:func:`remap_labels`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from serkit.errors import CorpusError

UNIFIED_LABELS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
    "boredom",
)

# Written names of emotions (any case, "_"/"-"/" " alike) -> unified label. Used for folder
# names, CSV manifests and TESS, whose labels are words rather than codes.
LABEL_SYNONYMS: dict[str, str] = {
    "neutral": "neutral",
    "neu": "neutral",
    "calm": "calm",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "hap": "happy",
    "sad": "sad",
    "sadness": "sad",
    "angry": "angry",
    "anger": "angry",
    "ang": "angry",
    "fear": "fearful",
    "fearful": "fearful",
    "afraid": "fearful",
    "fea": "fearful",
    "disgust": "disgust",
    "disgusted": "disgust",
    "dis": "disgust",
    "surprise": "surprised",
    "surprised": "surprised",
    "sur": "surprised",
    "ps": "surprised",
    "pleasant surprise": "surprised",
    "pleasant surprised": "surprised",
    "boredom": "boredom",
    "bored": "boredom",
}

# Per-corpus code -> unified label. A value of None marks a code the corpus uses but that is
# excluded by default (reported as "excluded label", not as an error).
EMODB_LABELS: dict[str, str | None] = {
    "W": "angry",  # Wut
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fearful",  # Angst
    "F": "happy",  # Freude
    "T": "sad",  # Trauer
    "N": "neutral",
}

RAVDESS_LABELS: dict[str, str | None] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}

SAVEE_LABELS: dict[str, str | None] = {
    "a": "angry",
    "d": "disgust",
    "f": "fearful",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprised",
}

TESS_LABELS: dict[str, str | None] = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprised",
    "pleasant_surprise": "surprised",
    "pleasant_surprised": "surprised",
    "sad": "sad",
}

CREMAD_LABELS: dict[str, str | None] = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}

# nEMO's data.tsv emotion words (no disgust in the corpus).
NEMO_LABELS: dict[str, str | None] = {
    "anger": "angry",
    "fear": "fearful",
    "happiness": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprised": "surprised",
}

# EMOVO's Italian codes in the file names.
EMOVO_LABELS: dict[str, str | None] = {
    "dis": "disgust",  # disgusto
    "gio": "happy",  # gioia
    "neu": "neutral",
    "pau": "fearful",  # paura
    "rab": "angry",  # rabbia
    "sor": "surprised",  # sorpresa
    "tri": "sad",  # tristezza
}

# ASED's emotion letters, the first field of its file names (n1 neutral, f2 fearful, h3 happy, s4 sad, a5 angry).
ASED_LABELS: dict[str, str | None] = {
    "n": "neutral",
    "f": "fearful",
    "h": "happy",
    "s": "sad",
    "a": "angry",
}

# IEMOCAP's usual 4-class protocol: excited merged into happy, the rest excluded.
IEMOCAP_4CLASS: dict[str, str | None] = {
    "ang": "angry",
    "hap": "happy",
    "exc": "happy",
    "sad": "sad",
    "neu": "neutral",
    "fru": None,
    "sur": None,
    "fea": None,
    "dis": None,
    "oth": None,
    "xxx": None,
}

# Every IEMOCAP category that has a unified counterpart; frustration, other and no-agreement
# (xxx) have none and stay excluded.
IEMOCAP_ALL: dict[str, str | None] = {
    **IEMOCAP_4CLASS,
    "sur": "surprised",
    "fea": "fearful",
    "dis": "disgust",
}

CORPUS_LABELS: dict[str, dict[str, str | None]] = {
    "emodb": EMODB_LABELS,
    "ravdess": RAVDESS_LABELS,
    "savee": SAVEE_LABELS,
    "tess": TESS_LABELS,
    "cremad": CREMAD_LABELS,
    "iemocap": IEMOCAP_4CLASS,
    "nemo": NEMO_LABELS,
    "emovo": EMOVO_LABELS,
    "ased": ASED_LABELS,
}


def normalise_label(name: str) -> str | None:
    """Unified label for a written emotion name (``"Happiness"`` -> ``"happy"``), or None if unknown."""
    key = " ".join(str(name).strip().lower().replace("_", " ").replace("-", " ").split())
    return LABEL_SYNONYMS.get(key)


def map_labels(
    values: Iterable[str] | pd.Series, mapping: Mapping[str, str | None], *, corpus: str
) -> list[str | None] | pd.Series:
    """Map a corpus's own label codes to unified labels.

    Parameters
    ----------
    values : iterable of str or pandas.Series
        The corpus's codes (e.g. ``"W"`` for EmoDB).
    mapping : mapping
        Code -> unified label; a value of None marks an excluded code (mapped to None).
    corpus : str
        Corpus name, for the error message.

    Returns
    -------
    list or pandas.Series
        Unified labels (None for excluded codes); a Series with the same index when given one.

    Raises
    ------
    CorpusError
        If a code is not in ``mapping``: names the corpus, the unknown codes and the known ones.
    """
    items = list(values)
    unknown = sorted({str(v) for v in items if v not in mapping})
    if unknown:
        raise CorpusError(
            f"{corpus}: unknown label code(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(map(repr, mapping))}"
        )
    mapped = [mapping[v] for v in items]
    if isinstance(values, pd.Series):
        return pd.Series(mapped, index=values.index, name=values.name, dtype=object)
    return mapped


@dataclass
class LabelRemap:
    """Result of :func:`remap_labels`.

    Attributes
    ----------
    labels : pandas.Series
        New labels, None where the row is dropped.
    dropped : dict
        Original label -> number of rows dropped.
    unused : list
        Keys of the mapping (or entries of the list) that matched no row: often a typo.
    """

    labels: pd.Series
    dropped: dict[str, int] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)


_DROP = (None, "drop")


def remap_labels(
    labels: Iterable[str] | pd.Series,
    mapping: Mapping[str, str | None] | Iterable[str],
    *,
    keep_others: bool = True,
) -> LabelRemap:
    """Restrict and/or merge labels with a user mapping, reporting what was dropped.

    Parameters
    ----------
    labels : iterable of str or pandas.Series
        Current labels.
    mapping : mapping or iterable of str
        A dict renames or merges (``{"excited": "happy"}``) and drops classes mapped to None or
        ``"drop"`` (``{"calm": None}``); labels not in the dict are kept unless ``keep_others`` is
        False. A list keeps exactly the labels it names and drops every other.
    keep_others : bool
        For a dict: keep labels the dict does not mention (default) or drop them.

    Returns
    -------
    LabelRemap
        The new labels (None for dropped rows), counts of dropped rows per original label and the
        mapping entries that matched nothing.
    """
    series = labels if isinstance(labels, pd.Series) else pd.Series(list(labels), dtype=object)
    if isinstance(mapping, str):
        raise CorpusError(f"label mapping must be a dict or a list of labels, got the string {mapping!r}")
    if isinstance(mapping, Mapping):
        table = dict(mapping)
        keep_unlisted = keep_others
    else:
        table = {str(name): str(name) for name in mapping}
        keep_unlisted = False

    def convert(value: str) -> str | None:
        if value in table:
            target = table[value]
            return None if target in _DROP else target
        return value if keep_unlisted else None

    new = pd.Series([convert(v) for v in series], index=series.index, name=series.name, dtype=object)
    dropped = Counter(str(old) for old, new_value in zip(series, new) if new_value is None)
    present = set(series)
    unused = [key for key in table if key not in present]
    return LabelRemap(labels=new, dropped=dict(sorted(dropped.items())), unused=unused)
