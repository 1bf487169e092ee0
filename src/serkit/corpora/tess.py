"""TESS (Toronto Emotional Speech Set, Dupuis & Pichora-Fuller 2010): two female speakers.

Layout: folders such as ``OAF_angry/OAF_back_angry.wav`` and ``YAF_pleasant_surprised/YAF_bite_ps.wav``
(the folder names vary in case and spelling between copies, so the file name decides; the folder is
used only when the file name lacks the emotion). File name ``<speaker>_<word>_<emotion>``: speaker
OAF (older, 64 years) or YAF (younger, 26 years), one of 200 target words, emotion angry, disgust,
fear, happy, neutral, ps (pleasant surprise) or sad. A few files in circulating copies start with
"OA_"/"YA_"; they are read as OAF/YAF. Some TESS files are AIFF data under a ``.wav`` name;
libsndfile reads them by content, so this does not matter here or in ``serkit.audio``.
"""

from __future__ import annotations

from pathlib import Path

from serkit.corpora.base import Corpus, Problem, absolute, build_corpus, corpus_audio_files, register_corpus
from serkit.corpora.labels import TESS_LABELS

TESS_SPEAKERS = {"OAF": "older", "YAF": "younger"}
_SPEAKER_ALIASES = {"OAF": "OAF", "YAF": "YAF", "OA": "OAF", "YA": "YAF"}


def _emotion_code(text: str) -> str | None:
    code = text.strip().lower().replace(" ", "_")
    return code if code in TESS_LABELS else None


@register_corpus("tess")
def load_tess(root: Path) -> Corpus:
    """Load TESS from ``root`` (searched recursively).

    Every speaker is female. Extra columns: ``word`` (the target word) and ``age_group``
    ("older"/"younger").
    """
    records, problems = [], []
    for path in corpus_audio_files(Path(root)):
        parts = path.stem.split("_")
        folder_parts = path.parent.name.split("_")
        speaker = _SPEAKER_ALIASES.get(parts[0].upper()) or _SPEAKER_ALIASES.get(folder_parts[0].upper())
        code = _emotion_code("_".join(parts[2:]))
        if code is None:
            code = _emotion_code("_".join(folder_parts[1:]))
        if len(parts) < 3:
            reason = f"unlabelled: name {path.stem!r} is not <speaker>_<word>_<emotion>"
            problems.append(Problem(absolute(path), reason))
            continue
        if speaker is None or code is None:
            what = "speaker (OAF/YAF)" if speaker is None else "emotion"
            problems.append(Problem(absolute(path), f"unlabelled: no {what} in name {path.stem!r} or folder"))
            continue
        word = parts[1].lower()
        records.append(
            {
                "utterance_id": f"tess/{speaker}_{word}_{code}",
                "path": absolute(path),
                "label": TESS_LABELS[code],
                "raw_label": code,
                "speaker": f"tess-{speaker}",
                "gender": "female",
                "word": word,
                "age_group": TESS_SPEAKERS[speaker],
            }
        )
    return build_corpus("tess", root, records, problems)
