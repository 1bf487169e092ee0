"""IEMOCAP (Busso et al. 2008): five dyadic sessions, one female and one male actor each.

Layout: ``root/Session1..5/sentences/wav/<dialog>/<utterance>.wav`` with the categorical labels in
``root/Session*/dialog/EmoEvaluation/<dialog>.txt``, one line per turn such as
``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`` (start, end,
utterance id, consensus category, [valence, activation, dominance]). The root may also be the
folder that holds ``IEMOCAP_full_release/``.

The default mapping is the usual 4-class protocol: ang -> angry, sad -> sad, hap and exc ->
happy, neu -> neutral. Turns with another category (fru, sur, fea, dis, oth, xxx) go to
``problems`` as "excluded label" (not an error). The speaker is the session plus the gender letter
of the utterance (the last part of its id): ``Ses01F_impro01_M003`` is spoken by "iemocap-Ses01M",
whatever the dialog name's letter says (that one names who wore the motion-capture markers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from serkit.corpora.base import Corpus, Problem, absolute, build_corpus, corpus_audio_files, register_corpus
from serkit.corpora.labels import IEMOCAP_4CLASS
from serkit.errors import CorpusError

_LINE = re.compile(
    r"^\[\s*(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\s*\]\s+(?P<utt>Ses\S+)\s+(?P<code>\S+)\s+\[(?P<vad>[^\]]*)\]"
)
_UTT = re.compile(r"^(?P<session>Ses\d{2})[FM]_(?P<kind>impro|script)\S*_(?P<gender>[FM])\d+$")


def _sessions(root: Path) -> list[Path]:
    for base in (root, root / "IEMOCAP_full_release"):
        found = sorted(p for p in base.glob("Session*") if p.is_dir())
        if found:
            return found
    raise CorpusError(f"iemocap: no Session1..Session5 folders under {root}")


def _read_evaluation(path: Path) -> list[dict[str, object]]:
    turns = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        try:
            valence, activation, dominance = (float(v) for v in match["vad"].split(","))
        except ValueError:
            valence = activation = dominance = float("nan")
        turns.append(
            {
                "utt": match["utt"],
                "code": match["code"].lower(),
                "start": float(match["start"]),
                "end": float(match["end"]),
                "valence": valence,
                "activation": activation,
                "dominance": dominance,
            }
        )
    return turns


@register_corpus("iemocap")
def load_iemocap(root: Path, mapping: Mapping[str, str | None] | None = None) -> Corpus:
    """Load the IEMOCAP utterances that have a kept category.

    Parameters
    ----------
    root : Path
        Folder holding ``Session1`` .. ``Session5``.
    mapping : dict, optional
        IEMOCAP code (ang, hap, exc, sad, neu, fru, sur, fea, dis, oth, xxx) -> unified label, None
        to exclude; codes it does not name are excluded. Default
        :data:`serkit.corpora.labels.IEMOCAP_4CLASS`; ``IEMOCAP_ALL`` keeps every category that
        has a unified counterpart.

    Extra columns: ``session`` ("Ses01"), ``dialog``, ``improvised`` (bool; False = scripted),
    ``start`` and ``end`` (s, within the dialog), ``valence``, ``activation``, ``dominance``.
    """
    table = dict(IEMOCAP_4CLASS if mapping is None else mapping)
    records, problems = [], []
    for session_dir in _sessions(Path(root)):
        wavs = {p.stem: p for p in corpus_audio_files(session_dir / "sentences" / "wav")}
        evaluation_dir = session_dir / "dialog" / "EmoEvaluation"
        labelled = set()
        for evaluation in sorted(evaluation_dir.glob("*.txt")):
            if evaluation.name.startswith("."):
                continue
            for turn in _read_evaluation(evaluation):
                utt, code = str(turn["utt"]), str(turn["code"])
                labelled.add(utt)
                dialog = utt.rsplit("_", 1)[0]
                path = wavs.get(utt)
                where = absolute(path) if path else absolute(session_dir / "sentences" / "wav" / dialog / f"{utt}.wav")
                if path is None:
                    problems.append(Problem(where, f"missing file: listed in {evaluation.name}"))
                    continue
                parsed = _UTT.match(utt)
                if parsed is None:
                    problems.append(Problem(where, f"unlabelled: utterance id {utt!r} does not parse"))
                    continue
                if code in table:
                    label = table[code]
                elif code in IEMOCAP_4CLASS:
                    label = None
                else:
                    problems.append(Problem(where, f"unlabelled: unknown category {code!r} in {evaluation.name}"))
                    continue
                if label is None or label == "drop":
                    problems.append(Problem(where, f"excluded label: {code}"))
                    continue
                speaker = f"{parsed['session']}{parsed['gender']}"
                records.append(
                    {
                        "utterance_id": f"iemocap/{utt}",
                        "path": where,
                        "label": label,
                        "raw_label": code,
                        "speaker": f"iemocap-{speaker}",
                        "gender": "female" if parsed["gender"] == "F" else "male",
                        "session": parsed["session"],
                        "dialog": dialog,
                        "improvised": parsed["kind"] == "impro",
                        "start": turn["start"],
                        "end": turn["end"],
                        "valence": turn["valence"],
                        "activation": turn["activation"],
                        "dominance": turn["dominance"],
                    }
                )
        for stem, path in wavs.items():
            if stem not in labelled:
                problems.append(Problem(absolute(path), "unlabelled: no entry in dialog/EmoEvaluation"))
    return build_corpus("iemocap", root, records, problems)
