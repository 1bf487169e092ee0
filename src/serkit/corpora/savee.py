"""SAVEE (Surrey Audio-Visual Expressed Emotion, Haq & Jackson 2009): four male speakers.

Layouts: the release's ``AudioData/<DC|JE|JK|KL>/<code><nn>.wav`` or a flat folder of
``DC_a01.wav``-style names (as in common re-packagings). Emotion codes: a anger, d disgust, f fear,
h happiness, n neutral, sa sadness, su surprise; nn is the sentence number.
"""

from __future__ import annotations

import re
from pathlib import Path

from serkit.corpora.base import Corpus, Problem, absolute, build_corpus, corpus_audio_files, register_corpus
from serkit.corpora.labels import SAVEE_LABELS

SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")

_CODE = r"(?P<emotion>sa|su|[a-z])(?P<number>\d{1,2})"
_NESTED = re.compile(rf"^{_CODE}$", re.IGNORECASE)
_FLAT = re.compile(rf"^(?P<speaker>[A-Za-z]{{2}})_{_CODE}$", re.IGNORECASE)


@register_corpus("savee")
def load_savee(root: Path) -> Corpus:
    """Load SAVEE from ``root`` (the folder holding ``AudioData/``, ``AudioData`` itself, or a flat folder).

    Every speaker is male. Extra column: ``sentence`` (the number in the file name).
    """
    root = Path(root)
    audio_dir = root / "AudioData" if (root / "AudioData").is_dir() else root
    records, problems = [], []
    for path in corpus_audio_files(audio_dir):
        flat = _FLAT.match(path.stem)
        nested = _NESTED.match(path.stem)
        if flat is not None:
            speaker, match = flat["speaker"].upper(), flat
        elif nested is not None:
            speaker, match = path.parent.name.upper(), nested
        else:
            problems.append(Problem(absolute(path), "unlabelled: file name is neither <code><nn> nor <SPK>_<code><nn>"))
            continue
        code = match["emotion"].lower()
        if speaker not in SAVEE_SPEAKERS:
            problems.append(Problem(absolute(path), f"unlabelled: unknown speaker {speaker!r} (known: DC, JE, JK, KL)"))
            continue
        if code not in SAVEE_LABELS:
            problems.append(Problem(absolute(path), f"unlabelled: unknown emotion code {code!r}"))
            continue
        number = int(match["number"])
        records.append(
            {
                "utterance_id": f"savee/{speaker}_{code}{number:02d}",
                "path": absolute(path),
                "label": SAVEE_LABELS[code],
                "raw_label": code,
                "speaker": f"savee-{speaker}",
                "gender": "male",
                "sentence": number,
            }
        )
    return build_corpus("savee", root, records, problems)
