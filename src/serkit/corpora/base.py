"""The corpus table, its problems list, the loader registry and audio header checks.

A loader (one module per corpus, like lhotse recipes) walks a corpus root, parses file names or
annotation files and returns a :class:`Corpus`: one row per utterance plus the list of files it
could not use and why. Nothing is skipped silently: a file whose name does not parse, whose label
is unknown or excluded, or (with ``check_audio=True``) whose audio is unreadable, empty or truncated
goes to ``Corpus.problems``. Hidden files and folders (names starting with ".", e.g. macOS "._x.wav"
copies) and files without an audio extension are not utterances and are not listed.
"""

from __future__ import annotations

import inspect
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from serkit.audio.io import find_audio_files, header_length_is_exact
from serkit.corpora.labels import remap_labels
from serkit.errors import AudioError, CorpusError

CORE_COLUMNS: tuple[str, ...] = ("utterance_id", "path", "label", "raw_label", "speaker", "gender", "corpus")

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".snd", ".w64", ".caf"}
)

# Frames read at the end of each file by check_audio: a cut-off FLAC/OGG fails here.
_TAIL_FRAMES = 256
# libsndfile logs "data : <declared> (should be <present>)" for a WAV/AIFF whose audio chunk
# runs past the end of the file; it then quietly reports the shorter length.
_CHUNK_SIZE_MISMATCH = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


@dataclass(frozen=True)
class Problem:
    """A file a loader could not use.

    ``reason`` starts with a kind, then a colon and the detail, e.g. ``"unlabelled: unknown emotion
    code 'X'"``. Kinds starting with "excluded" (a label or vocal channel left out on purpose) are
    not errors.
    """

    path: str
    reason: str

    @property
    def kind(self) -> str:
        """The part of ``reason`` before the first colon ("unlabelled", "truncated", ...)."""
        return self.reason.split(":", 1)[0].strip()

    @property
    def is_error(self) -> bool:
        """False for files excluded on purpose (label mapping, vocal channel), True otherwise."""
        return not self.kind.startswith("excluded")


@dataclass(eq=False, repr=False)
class Corpus:
    """A table of utterances and the problems met while building it.

    Attributes
    ----------
    name : str
        Corpus name ("emodb", "ravdess", ... or "a+b" after :func:`combine`).
    root : Path
        Folder (or manifest file) the corpus was read from.
    utterances : pandas.DataFrame
        One row per usable utterance: ``utterance_id`` (unique), ``path`` (absolute), ``label``
        (unified), ``raw_label`` (the corpus's own code), ``speaker`` (prefixed with the corpus,
        e.g. "emodb-03"; missing when unknown), ``gender`` ("male", "female" or missing),
        ``corpus``, then per-corpus metadata columns. Missing values are pandas NA/None (test with
        ``pd.isna``).
    problems : list of Problem
        Files left out, with the reason.
    """

    name: str
    root: Path
    utterances: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        missing = [c for c in CORE_COLUMNS if c not in self.utterances.columns]
        if missing:
            raise CorpusError(f"{self.name}: utterance table lacks column(s) {', '.join(missing)}")

    def __len__(self) -> int:
        return len(self.utterances)

    def __repr__(self) -> str:
        return (
            f"Corpus(name={self.name!r}, utterances={len(self)}, speakers={len(self.speakers)}, "
            f"labels={self.labels}, problems={len(self.problems)})"
        )

    @property
    def labels(self) -> list[str]:
        """Sorted list of the labels present."""
        return sorted(str(v) for v in self.utterances["label"].dropna().unique())

    @property
    def speakers(self) -> list[str]:
        """Sorted list of the known speakers present."""
        return sorted(str(v) for v in self.utterances["speaker"].dropna().unique())

    def _with(self, utterances: pd.DataFrame, extra_problems: Iterable[Problem] = ()) -> Corpus:
        return Corpus(
            name=self.name,
            root=self.root,
            utterances=utterances.reset_index(drop=True),
            problems=[*self.problems, *extra_problems],
        )

    def filter(self, **conditions: Any) -> Corpus:
        """Rows matching every condition, as a new corpus (problems kept).

        Each keyword names a column; its value is a scalar (equality; None matches missing), a
        list/tuple/set (membership) or a callable taking the column and returning a boolean mask,
        e.g. ``corpus.filter(gender="female", intensity=["normal"], duration=lambda d: d < 5)``.

        Raises
        ------
        CorpusError
            If a keyword is not a column (the message lists the columns).
        """
        table = self.utterances
        mask = pd.Series(True, index=table.index)
        for column, wanted in conditions.items():
            if column not in table.columns:
                raise CorpusError(
                    f"{self.name}: cannot filter on {column!r}, no such column; columns: {', '.join(table.columns)}"
                )
            values = table[column]
            if callable(wanted):
                hit = pd.Series(np.asarray(wanted(values), dtype=bool), index=table.index)
            elif isinstance(wanted, (list, tuple, set, frozenset, np.ndarray, pd.Index, pd.Series)):
                hit = values.isin(list(wanted))
            elif wanted is None:
                hit = values.isna()
            else:
                hit = values == wanted
            mask &= hit.fillna(False).astype(bool)
        return self._with(table[mask])

    def subset_labels(
        self, mapping: Mapping[str, str | None] | Sequence[str], *, keep_others: bool = True
    ) -> Corpus:
        """Restrict and/or merge labels (see :func:`serkit.corpora.labels.remap_labels`).

        A list keeps the labels it names; a dict merges (``{"calm": "neutral"}``) or drops
        (``{"calm": None}``) classes. Dropped rows go to ``problems`` as "excluded label".
        ``raw_label`` is unchanged.
        """
        table = self.utterances
        remap = remap_labels(table["label"], mapping, keep_others=keep_others)
        keep = remap.labels.notna().to_numpy()
        dropped = table[~keep]
        problems = [
            Problem(str(path), f"excluded label: {label} (label mapping)")
            for path, label in zip(dropped["path"], dropped["label"])
        ]
        kept = table[keep].copy()
        kept["label"] = remap.labels[keep].to_numpy()
        return self._with(kept, problems)

    def summary(self) -> dict[str, Any]:
        """Counts in a plain dict: utterances, speakers, per label, per gender, problems per kind.

        ``duration_s`` (total seconds) is present when the table has a ``duration`` column.
        """
        table = self.utterances
        out: dict[str, Any] = {
            "corpus": self.name,
            "root": str(self.root),
            "utterances": len(table),
            "speakers": len(self.speakers),
            "labels": {str(k): int(v) for k, v in table["label"].value_counts().sort_index().items()},
            "genders": {
                str(k): int(v) for k, v in table["gender"].fillna("unknown").value_counts().sort_index().items()
            },
            "problems": dict(sorted(Counter(p.kind for p in self.problems).items())),
        }
        if "duration" in table.columns:
            out["duration_s"] = float(table["duration"].sum())
        return out

    def check_audio(self) -> Corpus:
        """Open every file's header and move unreadable, empty or truncated files to ``problems``."""
        return probe_audio(self, check=True, durations=False)

    def add_durations(self) -> Corpus:
        """Add ``duration`` (seconds), ``sample_rate`` and ``channels`` columns from the headers."""
        return probe_audio(self, check=False, durations=True)


# ---------------------------------------------------------------------------------------------
# building and combining


def build_corpus(
    name: str,
    root: str | Path,
    records: Sequence[Mapping[str, Any]],
    problems: Iterable[Problem] = (),
) -> Corpus:
    """Make a :class:`Corpus` from a loader's parsed rows.

    Fills ``corpus`` and any missing core column, puts the core columns first, sorts by
    ``utterance_id`` and moves repeated ids to ``problems`` ("duplicate").

    Raises
    ------
    CorpusError
        If no usable utterance is left: names the root and counts the problems by kind.
    """
    root = Path(root)
    problems = list(problems)
    if not records:
        kinds = Counter(p.kind for p in problems)
        detail = "; ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        example = f" (first: {problems[0].path}: {problems[0].reason})" if problems else ""
        raise CorpusError(
            f"{name}: no usable utterances found under {root}"
            + (f"; problems: {detail}{example}" if problems else "")
        )
    table = pd.DataFrame.from_records(list(records))
    for column in CORE_COLUMNS:
        if column not in table.columns:
            table[column] = None
    table["corpus"] = name
    table = table.sort_values("utterance_id", kind="stable").reset_index(drop=True)
    repeated = table["utterance_id"].duplicated(keep="first")
    if repeated.any():
        first_path = table.drop_duplicates("utterance_id").set_index("utterance_id")["path"]
        for uid, path in zip(table.loc[repeated, "utterance_id"], table.loc[repeated, "path"]):
            problems.append(Problem(str(path), f"duplicate: same utterance id {uid!r} as {first_path[uid]}"))
        table = table[~repeated].reset_index(drop=True)
    metadata = [c for c in table.columns if c not in CORE_COLUMNS]
    return Corpus(name=name, root=root, utterances=table[[*CORE_COLUMNS, *metadata]], problems=problems)


def combine(*corpora: Corpus, name: str | None = None) -> Corpus:
    """Concatenate corpora into one (columns united, problems kept).

    Speakers stay distinct because every loader prefixes them with the corpus name.

    Raises
    ------
    CorpusError
        If no corpus is given or an utterance id occurs in two of them (e.g. the same corpus
        twice, or two folder corpora loaded under the same ``name``).
    """
    if not corpora:
        raise CorpusError("combine: no corpora given")
    table = pd.concat([c.utterances for c in corpora], ignore_index=True, sort=False)
    clash = table["utterance_id"][table["utterance_id"].duplicated()]
    if not clash.empty:
        raise CorpusError(
            f"combine: utterance id(s) occur in more than one corpus, e.g. {clash.iloc[0]!r} "
            f"({clash.size} in all); load corpora once each, under distinct names"
        )
    roots = [str(c.root.absolute()) for c in corpora]
    try:
        root = Path(os.path.commonpath(roots))
    except ValueError:  # different drives
        root = Path(roots[0])
    return Corpus(
        name=name or "+".join(c.name for c in corpora),
        root=root,
        utterances=table,
        problems=[p for c in corpora for p in c.problems],
    )


# ---------------------------------------------------------------------------------------------
# file helpers shared by the loaders


def corpus_audio_files(folder: Path, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Audio files under ``folder`` by their names (recursive, sorted, hidden ones skipped); none is no error."""
    return find_audio_files(folder, extensions=extensions, allow_empty=True)


def absolute(path: Path) -> str:
    """Absolute path as a string, symlinks kept (``Path.absolute``, not ``resolve``)."""
    return str(Path(path).absolute())


# ---------------------------------------------------------------------------------------------
# audio header checks


def inspect_audio_file(path: str | Path, *, check: bool = True) -> tuple[int, int, int]:
    """Frames, sample rate and channels of an audio file, checking that it is whole.

    With ``check`` the last frames are read too (cheap: one seek) so that a cut-off compressed
    file is caught, and libsndfile's header log is searched for an audio chunk larger than the
    file (a truncated WAV, which libsndfile would otherwise silently shorten).

    Raises
    ------
    AudioError
        Naming the file, with a reason "<kind>: <detail>", kind one of "missing file", "empty",
        "unreadable", "truncated".
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "missing file: no such file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty: file has 0 bytes")
    try:
        with sf.SoundFile(path) as handle:
            frames, rate, channels = handle.frames, handle.samplerate, handle.channels
            if not check:
                return frames, rate, channels
            if frames <= 0:
                raise AudioError(path, "empty: 0 audio frames")
            mismatch = _CHUNK_SIZE_MISMATCH.search(handle.extra_info)
            if mismatch and int(mismatch.group(2)) < int(mismatch.group(1)):
                raise AudioError(
                    path,
                    f"truncated: header declares {mismatch.group(1)} bytes of audio, "
                    f"file holds {mismatch.group(2)}",
                )
            tail = min(frames, _TAIL_FRAMES)
            handle.seek(frames - tail)
            got = len(handle.read(tail, dtype="int16", always_2d=True))
            if got < tail and (header_length_is_exact(handle) or got == 0):
                raise AudioError(path, f"truncated: read {got} of the last {tail} frames")
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        detail = getattr(exc, "error_string", None) or str(exc)  # libsndfile's message without the path
        kind = "truncated" if "seek" in detail.lower() else "unreadable"
        raise AudioError(path, f"{kind}: {detail}") from exc
    return frames, rate, channels


def probe_audio(corpus: Corpus, *, check: bool = True, durations: bool = True) -> Corpus:
    """Read every file's header once; see :meth:`Corpus.check_audio` and :meth:`Corpus.add_durations`.

    With ``check`` bad files leave the table for ``problems``. With ``durations`` only, a file whose
    header cannot be read keeps its row with missing duration.
    """
    table = corpus.utterances
    info = np.full((len(table), 3), np.nan)
    good = np.ones(len(table), dtype=bool)
    problems = []
    for i, path in enumerate(table["path"]):
        try:
            info[i] = inspect_audio_file(path, check=check)
        except AudioError as exc:
            if check:
                good[i] = False
                problems.append(Problem(str(path), exc.reason))
    out = table.copy()
    if durations:
        out["duration"] = info[:, 0] / info[:, 1]
        out["sample_rate"] = pd.array(info[:, 1], dtype="Int64")
        out["channels"] = pd.array(info[:, 2], dtype="Int64")
    return corpus._with(out[good], problems)


# ---------------------------------------------------------------------------------------------
# registry

CorpusLoader = Callable[..., Corpus]
_LOADERS: dict[str, CorpusLoader] = {}


def _key(name: str) -> str:
    # "CREMA-D", "crema_d" and "cremad" name the same corpus
    return re.sub(r"[-_\s]", "", name.lower())


def register_corpus(name: str) -> Callable[[CorpusLoader], CorpusLoader]:
    """Decorator registering ``loader(root: Path, **options) -> Corpus`` under ``name``.

    Names are matched case-insensitively, ignoring "-", "_" and spaces.
    """

    def decorate(loader: CorpusLoader) -> CorpusLoader:
        key = _key(name)
        if key in _LOADERS and _LOADERS[key] is not loader and _LOADERS[key].__qualname__ != loader.__qualname__:
            raise CorpusError(f"corpus {name!r} is already registered by {_LOADERS[key].__module__}")
        _LOADERS[key] = loader
        return loader

    return decorate


def list_corpora() -> list[str]:
    """Names of the registered corpus loaders, sorted."""
    return sorted(_LOADERS)


def corpus_options(name: str) -> dict[str, Any]:
    """The options a corpus loader takes, with their defaults."""
    loader = _get_loader(name)
    params = list(inspect.signature(loader).parameters.values())[1:]
    return {p.name: (None if p.default is inspect.Parameter.empty else p.default) for p in params}


def _get_loader(name: str) -> CorpusLoader:
    key = _key(name)
    if key not in _LOADERS:
        raise CorpusError(f"unknown corpus {name!r}; known corpora: {', '.join(list_corpora())}")
    return _LOADERS[key]


def load_corpus(
    name: str,
    root: str | Path,
    /,
    *,
    check_audio: bool = False,
    with_durations: bool = False,
    **options: Any,
) -> Corpus:
    """Load a registered corpus.

    Parameters
    ----------
    name : str
        Registered corpus name (see :func:`list_corpora`).
    root : str or Path
        The corpus folder (for "csv": the manifest file or its folder).
    check_audio : bool
        Open every file and move unreadable, empty (0 frames) or truncated files to ``problems``.
    with_durations : bool
        Add ``duration`` (s), ``sample_rate`` and ``channels`` columns from the file headers.
    **options
        Loader-specific options (see :func:`corpus_options`).

    Raises
    ------
    CorpusError
        Unknown corpus name or option (listing the known ones), missing root, or no usable
        utterance found.
    """
    loader = _get_loader(name)
    root = Path(root).expanduser()
    if not root.exists():
        raise CorpusError(f"{name}: corpus root {root} does not exist")
    accepted = corpus_options(name)
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise CorpusError(
            f"{name}: unknown option(s) {', '.join(unknown)}; options: {', '.join(accepted) or 'none'}"
        )
    corpus = loader(root, **options)
    if check_audio or with_durations:
        corpus = probe_audio(corpus, check=check_audio, durations=with_durations)
    return corpus
