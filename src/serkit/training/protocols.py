"""Evaluation protocols: which utterances train, validate and test, fold by fold.

Splits are made on the utterance table before anything is augmented or normalised, and are
given as row positions (0..n-1) of that table. Whether a split is speaker-independent (SI) is
computed from the data, never assumed: a split is SI when no test speaker has any utterance in
train or validation.

========================  ==========================================================  =====
protocol                  what it does                                                tag
========================  ==========================================================  =====
``holdout``               one stratified random split per seed (80/20, 80/10/10)      SD
``kfold``                 stratified k-fold over utterances, per seed                 SD
``loso``                  leave one speaker out; the next speaker validates           SI
``speaker_folds``         k groups of speakers; one group tests, the next speaker(s)  SI
                          after it validate (akalya2022: 8 train, 1 val, 1 test)
``cross_corpus``          train on one corpus, test on another, shared labels only    SI
``leave_one_corpus_out``  one fold per corpus: train on every other corpus,          SI
                          validate on ``val_size`` of each training corpus's
                          speakers, test on the whole held-out corpus
``final``                 the model to ship: train on every speaker but the listed    SD
                          ``val_speakers``, which pick the epoch and are scored (a
                          selection check, not an evaluation: evaluate with the others)
========================  ==========================================================  =====

``holdout`` and ``kfold`` with ``group_by_speaker=True`` keep speakers apart and become SI.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.model_selection import (
    GroupShuffleSplit,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
)

from serkit.errors import ConfigError

__all__ = ["ProtocolConfig", "Split", "make_splits", "split_summary"]


@dataclass
class Split:
    """One train/validation/test split, as row positions of the utterance table.

    Build it with :meth:`Split.from_table` so that the speaker fields are computed from the data.

    Attributes
    ----------
    name : e.g. ``"fold03-test=emodb-03"`` or ``"seed0"``.
    train, val, test : sorted int64 row positions (``val`` may be empty).
    seed : the seed of this split (and of the run trained on it).
    speaker_independent : no test speaker has an utterance in train or val.
    train_speakers, val_speakers, test_speakers : sorted speaker ids of each part.
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int
    speaker_independent: bool
    train_speakers: tuple[str, ...] = field(default=())
    val_speakers: tuple[str, ...] = field(default=())
    test_speakers: tuple[str, ...] = field(default=())

    @classmethod
    def from_table(
        cls, name: str, train: np.ndarray, val: np.ndarray, test: np.ndarray, seed: int, table: pd.DataFrame
    ) -> Split:
        """Make a split and compute its speaker sets and SI flag from ``table['speaker']``."""
        parts = [np.sort(np.asarray(p, dtype=np.int64)) for p in (train, val, test)]
        unknown = table["speaker"].isna().to_numpy()
        speakers = table["speaker"].astype(str).to_numpy()
        train_spk, val_spk, test_spk = (tuple(sorted(set(speakers[p]))) for p in parts)
        # A test item of unknown speaker may share its speaker with training: never claim SI for it.
        independent = not (set(test_spk) & (set(train_spk) | set(val_spk))) and not unknown[parts[2]].any()
        return cls(name, *parts, seed=int(seed), speaker_independent=independent,
                   train_speakers=train_spk, val_speakers=val_spk, test_speakers=test_spk)

    @property
    def tag(self) -> str:
        """``"SI"`` (speaker-independent) or ``"SD"`` (speaker-dependent)."""
        return "SI" if self.speaker_independent else "SD"


class ProtocolConfig(BaseModel):
    """How to split an utterance table (see the module docstring for the protocols).

    Fields
    ------
    name : the protocol; ``"loso"`` (speaker-independent) by default.
    test_size, val_size : fractions of the whole table for holdout (0.2 / 0.0 is 80/20,
        0.1 / 0.1 is 80/10/10); for kfold only ``val_size`` is used (taken from the training
        folds). With ``group_by_speaker`` they are fractions of the speakers. leave_one_corpus_out:
        ``val_size`` is the fraction of each training corpus's speakers that validates (at least one per
        corpus when > 0; 0 = no validation set).
    k : folds of ``kfold``.
    n_val_speakers : loso / speaker_folds / cross_corpus: validation speakers per fold. In
        loso and speaker_folds they are the speakers that follow the test group's last speaker
        in sorted order (cyclically), so in loso every speaker validates once; in cross_corpus
        they are drawn with the seed from the training corpus. 0 = no validation set.
    speaker_groups : speaker_folds: number of speaker groups (contiguous runs of the sorted
        speaker ids); ``None`` makes one group per speaker.
    interleave_speakers : speaker_folds: deal the sorted speakers round-robin into the groups
        instead of contiguous runs, so that every group mixes the corpora of a combined table.
    stratify_by : holdout / kfold: stratify on the combination of these columns.
    group_by_speaker : holdout / kfold: keep each speaker on one side (SI). kfold then uses
        StratifiedGroupKFold (stratified as far as the speakers allow); holdout draws whole
        speakers with GroupShuffleSplit (``stratify_by`` is not applied).
    seeds : holdout / kfold draw one split set per seed; the speaker protocols repeat each
        fold once per seed (the seed then only changes training).
    train_corpus, test_corpus : cross_corpus: values of the ``corpus`` column.
    val_speakers : final: the speakers held out of training to choose the epoch (none: train on
        everything for ``training.max_epochs`` epochs).
    select_on_test : holdout / kfold: the test split also chooses the model (early stopping and the best epoch
        watch it): some papers' protocol, replicated to show that an implementation reaches their figure. It
        leaks the test split into the model's selection; every result of it is labelled so (``serkit train``
        writes it into results.md), and the honest figure needs ``val_size`` instead.
    train_only : values of the ``corpus`` column whose utterances join the training split of every fold
        and are never validated or tested on: extra training data for an evaluation on the other corpora
        (e.g. EmoDB leave-one-speaker-out with RAVDESS, nEMO and EMOVO added). The protocol splits the
        rest of the table as it would alone; the folds stay SI when the extra corpora share no speaker
        with the test speakers (checked from the data, as always).
    """

    model_config = ConfigDict(extra="forbid")

    name: Literal["holdout", "kfold", "loso", "speaker_folds", "cross_corpus", "leave_one_corpus_out",
                  "final"] = "loso"
    test_size: float = Field(0.2, gt=0, lt=1)
    val_size: float = Field(0.0, ge=0, lt=1)
    k: int = Field(5, ge=2)
    n_val_speakers: int = Field(1, ge=0)
    speaker_groups: int | None = Field(None, ge=2)
    interleave_speakers: bool = False
    stratify_by: list[str] = Field(default_factory=lambda: ["label"], min_length=1)
    group_by_speaker: bool = False
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    train_corpus: str | None = None
    test_corpus: str | None = None
    val_speakers: list[str] = Field(default_factory=list)
    train_only: list[str] = Field(default_factory=list)
    select_on_test: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ProtocolConfig:
        if self.select_on_test and (self.name not in ("holdout", "kfold") or self.val_size > 0):
            raise ValueError("select_on_test: for holdout or kfold without a validation part (val_size 0): the test "
                             "split is the validation split")
        if self.train_only and self.name in ("cross_corpus", "leave_one_corpus_out"):
            raise ValueError(f"train_only: {self.name} chooses its training corpora itself; give train_only only "
                             "with holdout, kfold, loso, speaker_folds or final")
        if self.name == "holdout" and self.test_size + self.val_size >= 1:
            raise ValueError(f"test_size + val_size must be < 1, got {self.test_size} + {self.val_size}")
        if self.name == "cross_corpus":
            if not self.train_corpus or not self.test_corpus:
                raise ValueError("cross_corpus needs both train_corpus and test_corpus")
            if self.train_corpus == self.test_corpus:
                raise ValueError(f"train_corpus and test_corpus are both {self.train_corpus!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        return self


# --------------------------------------------------------------------------------------------
# helpers


def _check_table(table: pd.DataFrame, columns: list[str], field_name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"{field_name}: column(s) {missing} not in the utterance table "
                          f"(columns: {list(table.columns)})")
    if len(table) == 0:
        raise ConfigError("the utterance table is empty")


def _strata(table: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One string per row naming its stratum, e.g. ``"angry|strong|female"``."""
    return table[columns].astype(str).agg("|".join, axis=1).to_numpy()


def _require_stratum_size(strata: np.ndarray, minimum: int, cfg: ProtocolConfig, why: str) -> None:
    values, counts = np.unique(strata, return_counts=True)
    small = {str(v): int(c) for v, c in zip(values, counts) if c < minimum}
    if small:
        raise ConfigError(f"stratify_by={cfg.stratify_by}: stratum/strata {small} have fewer than "
                          f"{minimum} utterances, {why}")


def _suffix(seed: int, cfg: ProtocolConfig) -> str:
    return f"-seed{seed}" if len(cfg.seeds) > 1 else ""


def _stratified_pick(
    positions: np.ndarray, strata: np.ndarray, size: float, seed: int, cfg: ProtocolConfig, field_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``positions`` into (rest, picked) with ``picked`` a stratified fraction ``size``."""
    sub = strata[positions]
    _require_stratum_size(sub, 2, cfg, f"so {field_name}={size} cannot keep them on both sides")
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=size, random_state=seed)
    try:
        rest, picked = next(splitter.split(positions, sub))
    except ValueError as err:  # e.g. fewer picked rows than strata
        raise ConfigError(f"{field_name}={size} with stratify_by={cfg.stratify_by}: {err}") from None
    return positions[rest], positions[picked]


def _grouped_pick(
    positions: np.ndarray, speakers: np.ndarray, fraction: float, n_total_speakers: int, seed: int,
    field_name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``positions`` into (rest, picked); ``picked`` holds ``round(fraction * n_total_speakers)``
    speakers (at least one), drawn with the seed."""
    n_here = np.unique(speakers[positions]).size
    n_pick = max(1, int(round(fraction * n_total_speakers)))
    if n_pick >= n_here:
        raise ConfigError(f"{field_name}={fraction} with group_by_speaker takes {n_pick} of the {n_here} "
                          "remaining speakers and leaves none for training")
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_pick, random_state=seed)
    rest, picked = next(splitter.split(positions, groups=speakers[positions]))
    return positions[rest], positions[picked]


def _pick_val(
    positions: np.ndarray, fraction: float, table: pd.DataFrame, seed: int, cfg: ProtocolConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Take a validation set (``fraction`` of the whole table, or of its speakers with
    ``group_by_speaker``) out of the training positions."""
    if fraction <= 0:
        return positions, np.empty(0, dtype=np.int64)
    if cfg.group_by_speaker:
        speakers = table["speaker"].astype(str).to_numpy()
        return _grouped_pick(positions, speakers, fraction, np.unique(speakers).size, seed, "val_size")
    relative = fraction * len(table) / positions.size
    if relative >= 1:
        raise ConfigError(f"val_size={fraction} leaves no training data")
    return _stratified_pick(positions, _strata(table, cfg.stratify_by), relative, seed, cfg, "val_size")


# --------------------------------------------------------------------------------------------
# protocols


def _holdout(table: pd.DataFrame, cfg: ProtocolConfig) -> list[Split]:
    everything = np.arange(len(table))
    splits = []
    for seed in cfg.seeds:
        if cfg.group_by_speaker:
            speakers = table["speaker"].astype(str).to_numpy()
            train, test = _grouped_pick(everything, speakers, cfg.test_size, np.unique(speakers).size, seed,
                                        "test_size")
        else:
            train, test = _stratified_pick(everything, _strata(table, cfg.stratify_by), cfg.test_size, seed,
                                           cfg, "test_size")
        train, val = _pick_val(train, cfg.val_size, table, seed, cfg)
        if cfg.select_on_test:  # the paper's protocol: the test split chooses the model (a leak, labelled)
            val = test
        splits.append(Split.from_table(f"seed{seed}", train, val, test, seed, table))
    return splits


def _kfold(table: pd.DataFrame, cfg: ProtocolConfig) -> list[Split]:
    strata = _strata(table, cfg.stratify_by)
    speakers = table["speaker"].astype(str).to_numpy()
    if cfg.group_by_speaker:
        n_speakers = np.unique(speakers).size
        if cfg.k > n_speakers:
            raise ConfigError(f"k={cfg.k} is larger than the number of speakers ({n_speakers}) "
                              "with group_by_speaker")
    else:
        _require_stratum_size(strata, cfg.k, cfg, f"so k={cfg.k} folds cannot each hold one")
    splits = []
    for seed in cfg.seeds:
        if cfg.group_by_speaker:
            folds = StratifiedGroupKFold(n_splits=cfg.k, shuffle=True, random_state=seed).split(
                strata, strata, groups=speakers)
        else:
            folds = StratifiedKFold(n_splits=cfg.k, shuffle=True, random_state=seed).split(strata, strata)
        for i, (train, test) in enumerate(folds):
            train, val = _pick_val(train, cfg.val_size, table, seed, cfg)
            if cfg.select_on_test:
                val = test
            splits.append(Split.from_table(f"fold{i + 1:02d}{_suffix(seed, cfg)}", train, val, test, seed, table))
    return splits


def _speaker_groups(speakers: list[str], cfg: ProtocolConfig) -> list[list[str]]:
    if cfg.name == "loso" or cfg.speaker_groups is None:
        return [[s] for s in speakers]
    if cfg.speaker_groups > len(speakers):
        raise ConfigError(f"speaker_groups={cfg.speaker_groups} is larger than the number of speakers "
                          f"({len(speakers)})")
    if cfg.interleave_speakers:
        return [speakers[i :: cfg.speaker_groups] for i in range(cfg.speaker_groups)]
    return [list(g) for g in np.array_split(np.asarray(speakers, dtype=object), cfg.speaker_groups)]


def _speaker_folds(table: pd.DataFrame, cfg: ProtocolConfig) -> list[Split]:
    speaker_of_row = table["speaker"].astype(str).to_numpy()
    speakers = sorted(set(speaker_of_row))
    groups = _speaker_groups(speakers, cfg)
    largest = max(len(g) for g in groups)
    if len(speakers) - largest - cfg.n_val_speakers < 1:
        raise ConfigError(f"n_val_speakers={cfg.n_val_speakers}: with {len(speakers)} speakers and test groups of "
                          f"up to {largest}, no speaker is left for training")
    splits = []
    for seed in cfg.seeds:
        for i, group in enumerate(groups):
            # Validation: the speakers that follow the test group in sorted order, cyclically.
            after = speakers.index(group[-1]) + 1
            cycle = [speakers[(after + j) % len(speakers)] for j in range(len(speakers))]
            val_speakers = [s for s in cycle if s not in group][: cfg.n_val_speakers]
            test = np.flatnonzero(np.isin(speaker_of_row, group))
            val = np.flatnonzero(np.isin(speaker_of_row, val_speakers))
            train = np.flatnonzero(~np.isin(speaker_of_row, group + val_speakers))
            name = f"fold{i + 1:02d}-test={'+'.join(group)}{_suffix(seed, cfg)}"
            splits.append(Split.from_table(name, train, val, test, seed, table))
    return splits


def _cross_corpus(table: pd.DataFrame, cfg: ProtocolConfig) -> list[Split]:
    _check_table(table, ["corpus"], "name=cross_corpus")
    corpus = table["corpus"].astype(str).to_numpy()
    labels = table["label"].astype(str).to_numpy()
    for field_name, value in (("train_corpus", cfg.train_corpus), ("test_corpus", cfg.test_corpus)):
        if value not in set(corpus):
            raise ConfigError(f"{field_name}={value!r} is not in the table's corpus column "
                              f"(found {sorted(set(corpus))})")
    shared = set(labels[corpus == cfg.train_corpus]) & set(labels[corpus == cfg.test_corpus])
    if not shared:
        raise ConfigError(f"train_corpus={cfg.train_corpus!r} and test_corpus={cfg.test_corpus!r} share no label")
    usable = np.isin(labels, sorted(shared))
    source = np.flatnonzero(usable & (corpus == cfg.train_corpus))
    test = np.flatnonzero(usable & (corpus == cfg.test_corpus))
    speakers = table["speaker"].astype(str).to_numpy()
    source_speakers = sorted(set(speakers[source]))
    if cfg.n_val_speakers >= len(source_speakers):
        raise ConfigError(f"n_val_speakers={cfg.n_val_speakers} leaves no training speaker in "
                          f"train_corpus={cfg.train_corpus!r} ({len(source_speakers)} speakers)")
    splits = []
    for seed in cfg.seeds:
        rng = np.random.default_rng(seed)
        val_speakers = list(rng.choice(source_speakers, size=cfg.n_val_speakers, replace=False))
        in_val = np.isin(speakers[source], val_speakers)
        name = f"train={cfg.train_corpus}-test={cfg.test_corpus}{_suffix(seed, cfg)}"
        splits.append(Split.from_table(name, source[~in_val], source[in_val], test, seed, table))
    return splits


def _leave_one_corpus_out(table: pd.DataFrame, cfg: ProtocolConfig) -> list[Split]:
    _check_table(table, ["corpus"], "name=leave_one_corpus_out")
    corpus = table["corpus"].astype(str).to_numpy()
    labels = table["label"].astype(str).to_numpy()
    speakers = table["speaker"].astype(str).to_numpy()
    names = sorted(set(corpus))
    if len(names) < 2:
        raise ConfigError(f"name=leave_one_corpus_out needs at least two corpora in the table, found {names}")
    val_speakers_of: dict[tuple[int, str], list[str]] = {}
    for seed in cfg.seeds:
        for name in names:
            own = sorted(set(speakers[corpus == name]))
            n_val = max(1, int(round(cfg.val_size * len(own)))) if cfg.val_size > 0 else 0
            if n_val >= len(own):
                raise ConfigError(f"val_size={cfg.val_size} takes {n_val} of the {len(own)} speakers of corpus "
                                  f"{name!r} and leaves none of them for training")
            # Seeded by the corpus name, so a corpus validates with the same speakers in every fold it trains in.
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            val_speakers_of[seed, name] = sorted(rng.choice(own, size=n_val, replace=False).tolist())
    splits = []
    for seed in cfg.seeds:
        for i, held in enumerate(names):
            source = corpus != held
            # The held-out corpus is tested on the classes the training corpora know (a class no training corpus
            # has cannot be predicted).
            test = np.flatnonzero(~source & np.isin(labels, sorted(set(labels[source]))))
            if test.size == 0:
                raise ConfigError(f"leave_one_corpus_out: corpus {held!r} shares no label with the other corpora")
            val_speakers = [s for name in names if name != held for s in val_speakers_of[seed, name]]
            in_val = source & np.isin(speakers, val_speakers)
            name = f"fold{i + 1:02d}-test={held}{_suffix(seed, cfg)}"
            splits.append(Split.from_table(name, np.flatnonzero(source & ~in_val), np.flatnonzero(in_val), test,
                                           seed, table))
    return splits


def _final(table: pd.DataFrame, cfg: ProtocolConfig) -> list[Split]:
    speakers = table["speaker"].astype(str).to_numpy()
    unknown = sorted(set(cfg.val_speakers) - set(speakers))
    if unknown:
        raise ConfigError(f"val_speakers: {unknown} not among the table's speakers")
    held = np.isin(speakers, cfg.val_speakers)
    if held.all():
        raise ConfigError("val_speakers: every speaker is held out; none is left for training")
    train, val = np.flatnonzero(~held), np.flatnonzero(held)
    # With no validation speakers the "test" part is the training data itself: a fit check, tagged SD.
    test = val if len(val) else train
    return [Split.from_table(f"final-seed{seed}" if len(cfg.seeds) > 1 else "final", train, val, test, seed, table)
            for seed in cfg.seeds]


_PROTOCOLS = {
    "holdout": _holdout,
    "kfold": _kfold,
    "loso": _speaker_folds,
    "speaker_folds": _speaker_folds,
    "cross_corpus": _cross_corpus,
    "leave_one_corpus_out": _leave_one_corpus_out,
    "final": _final,
}


def make_splits(table: pd.DataFrame, cfg: ProtocolConfig) -> list[Split]:
    """Split an utterance table according to ``cfg``.

    Parameters
    ----------
    table : utterance table with at least ``label`` and ``speaker`` (and ``corpus`` for
        cross_corpus and leave_one_corpus_out, and the ``stratify_by`` columns for holdout/kfold).
    cfg : the protocol.

    Returns
    -------
    list of :class:`Split`, in fold order then seed order (speaker protocols: seed-major).
    Raises :class:`~serkit.errors.ConfigError` naming the field when the config cannot be met.
    """
    needed = ["label", "speaker"]
    if cfg.name in ("holdout", "kfold"):
        needed += [c for c in cfg.stratify_by if c not in needed]
        _check_table(table, needed, "stratify_by")
    else:
        _check_table(table, needed, f"name={cfg.name}")
    speaker_based = cfg.name not in ("holdout", "kfold") or cfg.group_by_speaker
    if speaker_based and table["speaker"].isna().any():
        raise ConfigError(
            f"name={cfg.name}: the utterance table has rows without a speaker (column 'speaker'); speaker-based "
            "protocols need one (e.g. the folder corpus's speaker_pattern), or use holdout/kfold (reported SD)"
        )
    table = table.reset_index(drop=True)
    if not cfg.train_only:
        return _PROTOCOLS[cfg.name](table, cfg)
    _check_table(table, ["corpus"], "train_only")
    corpus = table["corpus"].astype(str).to_numpy()
    unknown = sorted(set(cfg.train_only) - set(corpus))
    if unknown:
        raise ConfigError(f"train_only: no corpus {', '.join(map(repr, unknown))} in the table (corpora: "
                          f"{', '.join(sorted(set(corpus)))})")
    is_extra = np.isin(corpus, cfg.train_only)
    extra = np.flatnonzero(is_extra)
    in_extra = sorted(set(cfg.val_speakers) & set(table["speaker"].astype(str).to_numpy()[extra]))
    if in_extra:
        raise ConfigError(f"val_speakers: {in_extra} belong to a train_only corpus, which never validates")
    evaluated = np.flatnonzero(~is_extra)
    if not evaluated.size:
        raise ConfigError("train_only: every corpus of the table is train-only; leave at least one to evaluate on")
    # the protocol splits the evaluated corpora alone; positions are mapped back and the extra rows join training
    return [Split.from_table(s.name, np.concatenate([evaluated[s.train], extra]), evaluated[s.val],
                             evaluated[s.test], s.seed, table)
            for s in _PROTOCOLS[cfg.name](table.iloc[evaluated].reset_index(drop=True), cfg)]


def split_summary(splits: list[Split], table: pd.DataFrame) -> pd.DataFrame:
    """One row per split: name, seed, tag, sizes, speaker counts and the test/val speakers."""
    rows = []
    for split in splits:
        rows.append({
            "name": split.name,
            "seed": split.seed,
            "tag": split.tag,
            "n_train": split.train.size,
            "n_val": split.val.size,
            "n_test": split.test.size,
            "n_train_speakers": len(split.train_speakers),
            "n_val_speakers": len(split.val_speakers),
            "n_test_speakers": len(split.test_speakers),
            "test_speakers": ",".join(split.test_speakers),
            "val_speakers": ",".join(split.val_speakers),
            "test_labels": ",".join(sorted(set(table["label"].astype(str).to_numpy()[split.test]))),
        })
    return pd.DataFrame(rows)
