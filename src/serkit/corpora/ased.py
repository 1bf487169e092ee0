"""ASED v1 (Retta et al. 2022, ACM TALLIP): Amharic emotional speech, 65 volunteers recorded at home.

Layout: the authors' emotion folders ``01Neutral/ 02Fearful/ 03Happy/ 04Sad/ 05Angry/`` (searched recursively)
of ``xn-yy-aa-gg-bb.wav`` (original, 16 kHz) or another audio extension (e.g. the shared Ogg Opus copy):
emotion letter and folder number (n1 neutral, f2 fearful, h3 happy, s4 sad, a5 angry), sentence (01-02 are
spoken in every emotion; 03-07 are emotion-specific, so their words give the emotion away), repetition (01, 02),
gender (01 female, 02 male), speaker (01..65).

Quirks of the release the loader handles: the speaker is the last field only (five speakers appear with both
gender codes, so their gender is the code most of their files carry); names are matched case-insensitively (one
is upper case); four second repetitions hold the same audio as the first (byte-identical in the original) and
are reported as duplicates, not counted twice.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from serkit.corpora.base import Corpus, Problem, absolute, build_corpus, corpus_audio_files, register_corpus
from serkit.corpora.labels import ASED_LABELS
from serkit.errors import CorpusError

#: Sentences spoken in every emotion; the others are emotion-specific (their words carry the emotion).
ASED_COMMON_SENTENCES: tuple[str, ...] = ("01", "02")

_NAME = re.compile(r"^(?P<emotion>[a-z])(?P<folder>[1-5])-(?P<sentence>\d{2})-(?P<repetition>\d{2})-"
                   r"(?P<gender>\d{2})-(?P<speaker>\d{2})$", re.IGNORECASE)
_GENDERS = {"01": "female", "02": "male"}
_FOLDER_OF = {"n": "1", "f": "2", "h": "3", "s": "4", "a": "5"}


def _same_audio(a: Path, b: Path) -> bool:
    """Whether two files hold the same samples (the lossy copies differ in bytes where the originals did not)."""
    try:
        if sf.info(a).frames != sf.info(b).frames:
            return False
        # every ASED clip lasts 3 s, so compare the start first: two takes of a sentence differ within it
        if not np.array_equal(sf.read(a, frames=2000, dtype="int16")[0], sf.read(b, frames=2000, dtype="int16")[0]):
            return False
        return bool(np.array_equal(sf.read(a, dtype="int16")[0], sf.read(b, dtype="int16")[0]))
    except (sf.LibsndfileError, RuntimeError):
        return False  # an unreadable file is reported by the audio check, not here


@register_corpus("ased")
def load_ased(root: Path, sentences: str = "all") -> Corpus:
    """Load ASED audio files under ``root`` (searched recursively).

    Parameters
    ----------
    root : Path
        Folder holding the five emotion folders (or the files themselves).
    sentences : "all" or "common"
        ``common`` keeps only sentences 01-02, which every speaker says in every emotion (the others are
        emotion-specific, so a model that understood Amharic could read the emotion off the words); the rest are
        left out as "excluded" problems.

    Columns beyond the core ones: ``sentence`` ("01".."07"), ``repetition`` ("01", "02").
    """
    if sentences not in ("all", "common"):
        raise CorpusError(f"ased: sentences must be 'all' or 'common', got {sentences!r}")
    parsed, problems = [], []
    for path in corpus_audio_files(Path(root)):
        match = _NAME.match(path.stem)
        if match is None:
            problems.append(Problem(absolute(path), "unlabelled: file name is not ASED's xn-yy-aa-gg-bb pattern"))
            continue
        emotion = match["emotion"].lower()
        if emotion not in ASED_LABELS or _FOLDER_OF[emotion] != match["folder"]:
            problems.append(Problem(absolute(path), f"unlabelled: unknown emotion code "
                                                    f"{match['emotion'] + match['folder']!r}"))
            continue
        if match["gender"] not in _GENDERS:
            problems.append(Problem(absolute(path), f"unlabelled: unknown gender code {match['gender']!r}"))
            continue
        if sentences == "common" and match["sentence"] not in ASED_COMMON_SENTENCES:
            problems.append(Problem(absolute(path), f"excluded: sentence {match['sentence']} is emotion-specific "
                                                    "(sentences: common)"))
            continue
        parsed.append((path, match))
    # A speaker's gender: the code most of their files carry (the release gives five speakers both).
    codes: dict[str, Counter] = {}
    for _, match in parsed:
        codes.setdefault(match["speaker"], Counter())[match["gender"]] += 1
    gender = {spk: _GENDERS[c.most_common(1)[0][0]] for spk, c in codes.items()}
    first_take: dict[tuple, Path] = {}  # (emotion, sentence, speaker) -> the first repetition kept
    records = []
    for path, match in parsed:
        take = (match["emotion"].lower(), match["sentence"], match["speaker"])
        if take in first_take and _same_audio(first_take[take], path):
            problems.append(Problem(absolute(path), f"duplicate: the same audio as {absolute(first_take[take])}"))
            continue
        first_take.setdefault(take, path)
        emotion = match["emotion"].lower()
        records.append({
            "utterance_id": f"ased/{path.stem.lower()}",
            "path": absolute(path),
            "label": ASED_LABELS[emotion],
            "raw_label": emotion + match["folder"],
            "speaker": f"ased-{match['speaker']}",
            "gender": gender[match["speaker"]],
            "sentence": match["sentence"],
            "repetition": match["repetition"],
        })
    return build_corpus("ased", root, records, problems)
