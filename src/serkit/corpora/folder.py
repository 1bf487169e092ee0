"""A user's own data as a folder per label: ``root/<label>/**/*.wav`` (any libsndfile format).

Folder names that are known emotion words ("Happiness", "anger", "pleasant_surprise", ...) are mapped
to the unified label set; any other name is kept as it is (stripped), so a user's own classes
("excited", "frustrated") survive. ``raw_label`` always holds the folder name. Speakers are unknown
unless ``speaker_pattern`` extracts them from each file's path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from serkit.corpora.base import (
    AUDIO_EXTENSIONS,
    Corpus,
    Problem,
    absolute,
    build_corpus,
    corpus_audio_files,
    register_corpus,
)
from serkit.corpora.labels import normalise_label
from serkit.errors import CorpusError


def check_corpus_name(name: str) -> str:
    """A corpus name usable as a speaker / utterance id prefix (letters, digits, ``-``, ``_``, ``.``)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(name)):
        raise CorpusError(f"corpus name {name!r} must be letters, digits, '-', '_' or '.'")
    return str(name)


def compile_speaker_pattern(pattern: str | None) -> re.Pattern[str] | None:
    """Compile a speaker regex, naming the option in the error."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CorpusError(f"speaker_pattern {pattern!r} is not a valid regular expression: {exc}") from exc


def match_speaker(pattern: re.Pattern[str], text: str) -> str | None:
    """The speaker a regex finds in ``text``: group "speaker", else group 1, else the whole match."""
    match = pattern.search(text)
    if match is None:
        return None
    if "speaker" in pattern.groupindex:
        return match["speaker"]
    return match.group(1) if pattern.groups else match.group(0)


@register_corpus("folder")
def load_folder(
    root: Path,
    name: str = "folder",
    speaker_pattern: str | None = None,
    extensions: Iterable[str] | None = None,
) -> Corpus:
    """Load a folder-per-label tree.

    Parameters
    ----------
    root : Path
        Folder whose sub-folders are the labels (files may sit deeper inside them).
    name : str
        Corpus name, the prefix of speakers and utterance ids; give each of your corpora its own
        name before combining them.
    speaker_pattern : str, optional
        Regular expression searched in each file's path relative to ``root`` (e.g.
        ``r"(?P<speaker>spk\\d+)"``); the speaker is its group "speaker", else group 1, else the
        match. A file it does not match goes to ``problems`` ("no speaker"). Without it the speaker
        is missing, so only speaker-dependent protocols apply.
    extensions : iterable of str, optional
        File extensions to read (default: the common libsndfile formats).

    Extra column: ``relative_path``.
    """
    root = Path(root)
    name = check_corpus_name(name)
    pattern = compile_speaker_pattern(speaker_pattern)
    records, problems = [], []
    for path in corpus_audio_files(root, AUDIO_EXTENSIONS if extensions is None else extensions):
        relative = path.relative_to(root)
        if len(relative.parts) < 2:
            problems.append(Problem(absolute(path), "unlabelled: file is not inside a label folder"))
            continue
        folder = relative.parts[0].strip()
        speaker = None
        if pattern is not None:
            speaker = match_speaker(pattern, relative.as_posix())
            if not speaker:
                reason = f"no speaker: speaker_pattern {speaker_pattern!r} does not match"
                problems.append(Problem(absolute(path), reason))
                continue
        records.append(
            {
                "utterance_id": f"{name}/{relative.with_suffix('').as_posix()}",
                "path": absolute(path),
                "label": normalise_label(folder) or folder,
                "raw_label": folder,
                "speaker": None if speaker is None else f"{name}-{speaker}",
                "gender": None,
                "relative_path": relative.as_posix(),
            }
        )
    return build_corpus(name, root, records, problems)
