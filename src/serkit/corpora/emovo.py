"""EMOVO (Costantini et al. 2014, LREC): Italian emotional speech, 6 actors, free for research use.

Layout: speaker folders ``f1/ f2/ f3/ m1/ m2/ m3/`` (searched recursively, so the release's enclosing folder
may be the root) of ``EMO-SPK-SENT.wav`` (original: 48 kHz stereo WAV) or ``.flac`` (e.g. the shared 16 kHz
copy): emotion code (dis disgust, gio joy, neu neutral, pau fear, rab anger, sor surprise, tri sadness),
speaker (f1..f3 female, m1..m3 male), sentence code (b1..b3, d1, d2, l1..l4, n1..n5).

The two channels are two microphones about 0.5 ms apart: their mean cancels the frequencies where that delay
is half a period (a notch near 1 kHz), so the loader writes a ``channel`` column (one microphone, or the louder
one per clip) that training and ``serkit corpus info`` follow instead of downmixing.
"""

from __future__ import annotations

import re
from pathlib import Path

from serkit.audio.processing import parse_channel
from serkit.corpora.base import Corpus, Problem, absolute, build_corpus, corpus_audio_files, register_corpus
from serkit.corpora.labels import EMOVO_LABELS
from serkit.errors import CorpusError

EMOVO_SPEAKERS: dict[str, str] = {
    "f1": "female",
    "f2": "female",
    "f3": "female",
    "m1": "male",
    "m2": "male",
    "m3": "male",
}

_NAME = re.compile(r"^(?P<emotion>[a-z]{3})-(?P<speaker>[fm]\d)-(?P<sentence>[a-z]\d)$", re.IGNORECASE)


def emovo_channel(channel: object) -> int | str:
    """Validate EMOVO's ``channel`` option: 0, 1 or "louder", never the mean (it comb-filters the speech)."""
    try:
        choice = parse_channel(channel)
    except ValueError as exc:
        raise CorpusError(f"emovo: {exc}") from None
    if choice is None or choice == "mean" or (isinstance(choice, int) and choice > 1):
        raise CorpusError(
            f"emovo: channel must be 0, 1 or 'louder', got {channel!r} (EMOVO's two channels are microphones "
            "0.5 ms apart; their mean notches the speech near 1 kHz)"
        )
    return choice


@register_corpus("emovo")
def load_emovo(root: Path, channel: int | str = 0) -> Corpus:
    """Load EMOVO audio files under ``root`` (searched recursively).

    Parameters
    ----------
    root : Path
        Folder holding the speaker folders (or the files themselves).
    channel : 0, 1 or "louder"
        Which microphone to read (0 is the first channel), or the one with more energy in each clip.

    Columns beyond the core ones: ``sentence`` (b1..n5), ``channel`` (the choice above, for every row).
    """
    choice = emovo_channel(channel)
    records, problems = [], []
    for path in corpus_audio_files(Path(root)):
        match = _NAME.match(path.stem)
        if match is None:
            problems.append(Problem(absolute(path), "unlabelled: file name is not EMOVO's EMO-SPK-SENT pattern"))
            continue
        emotion, speaker, sentence = (match[k].lower() for k in ("emotion", "speaker", "sentence"))
        bad = [f"{what} code {code!r}" for what, code, known in
               (("emotion", emotion, EMOVO_LABELS), ("speaker", speaker, EMOVO_SPEAKERS)) if code not in known]
        if bad:
            problems.append(Problem(absolute(path), f"unlabelled: unknown {', '.join(bad)}"))
            continue
        records.append({
            "utterance_id": f"emovo/{emotion}-{speaker}-{sentence}",
            "path": absolute(path),
            "label": EMOVO_LABELS[emotion],
            "raw_label": emotion,
            "speaker": f"emovo-{speaker}",
            "gender": EMOVO_SPEAKERS[speaker],
            "sentence": sentence,
            "channel": choice,
        })
    corpus = build_corpus("emovo", root, records, problems)
    corpus.utterances["channel"] = corpus.utterances["channel"].astype(object)
    return corpus
