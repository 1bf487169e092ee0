"""Evaluation protocols: disjoint, covering splits; speakers kept apart; SI/SD tags from the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from serkit.errors import ConfigError
from serkit.training.protocols import ProtocolConfig, Split, make_splits, split_summary

EMOTIONS = ["anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"]


def emodb_like_table(seed: int = 0) -> pd.DataFrame:
    """10 speakers x 7 labels with EmoDB-like uneven counts; speaker 'emodb-16' never shows disgust."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]:
        gender = "male" if s in ("03", "10", "11", "12", "15") else "female"
        for label in EMOTIONS:
            if s == "16" and label == "disgust":
                continue
            for j in range(int(rng.integers(4, 11))):
                uid = f"{s}{label[:2]}{j}"
                rows.append({"path": f"/x/{uid}.wav", "label": label, "speaker": f"emodb-{s}",
                             "corpus": "emodb", "utterance_id": uid, "gender": gender})
    return pd.DataFrame(rows)


def ravdess_like_table(n_actors: int = 6) -> pd.DataFrame:
    rows = []
    labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    for a in range(1, n_actors + 1):
        for label in labels:
            for intensity in (["normal"] if label == "neutral" else ["normal", "strong"]):
                for rep in range(4):
                    uid = f"{a:02d}-{label}-{intensity}-{rep}"
                    rows.append({"path": f"/r/{uid}.wav", "label": label, "speaker": f"ravdess-{a:02d}",
                                 "corpus": "ravdess", "utterance_id": uid, "intensity": intensity,
                                 "gender": "male" if a % 2 else "female"})
    return pd.DataFrame(rows)


def assert_valid(split: Split, n_rows: int, covering: bool = True) -> None:
    parts = [split.train, split.val, split.test]
    assert all(p.dtype == np.int64 for p in parts)
    assert not set(split.train) & set(split.val)
    assert not set(split.train) & set(split.test)
    assert not set(split.val) & set(split.test)
    if covering:
        assert sorted(np.concatenate(parts)) == list(range(n_rows))
    assert split.train.size > 0 and split.test.size > 0


def speakers_of(table: pd.DataFrame, rows: np.ndarray) -> set[str]:
    return set(table["speaker"].to_numpy()[rows])


# ---------------------------------------------------------------------------------------- LOSO


def test_loso_tests_each_speaker_once_with_a_held_out_validation_speaker():
    table = emodb_like_table()
    splits = make_splits(table, ProtocolConfig())  # loso is the default
    speakers = sorted(table["speaker"].unique())
    assert len(splits) == 10
    assert [s.test_speakers for s in splits] == [(spk,) for spk in speakers]
    assert sorted(s.val_speakers[0] for s in splits) == speakers  # every speaker validates once
    for split in splits:
        assert_valid(split, len(table))
        assert speakers_of(table, split.test) == set(split.test_speakers)
        assert len(split.val_speakers) == 1
        assert not speakers_of(table, split.train) & (set(split.val_speakers) | set(split.test_speakers))
        assert split.speaker_independent and split.tag == "SI"
        assert len(split.train_speakers) == 8
    assert splits[0].name == "fold01-test=emodb-03"
    assert splits[0].val_speakers == ("emodb-08",)
    assert splits[-1].val_speakers == ("emodb-03",)  # cyclic


def test_loso_without_validation_and_with_seeds():
    table = emodb_like_table()
    splits = make_splits(table, ProtocolConfig(name="loso", n_val_speakers=0, seeds=[0, 1]))
    assert len(splits) == 20
    assert all(s.val.size == 0 and len(s.train_speakers) == 9 for s in splits)
    assert len({s.name for s in splits}) == 20
    assert {s.seed for s in splits} == {0, 1}
    # Seeds repeat the same folds.
    by_name = {s.name.replace("-seed1", "").replace("-seed0", ""): s for s in splits if s.seed == 0}
    for s in splits:
        if s.seed == 1:
            np.testing.assert_array_equal(s.test, by_name[s.name.replace("-seed1", "")].test)


def test_loso_too_few_speakers():
    table = emodb_like_table()
    two = table[table["speaker"].isin(["emodb-03", "emodb-08"])]
    with pytest.raises(ConfigError, match="n_val_speakers"):
        make_splits(two, ProtocolConfig(name="loso", n_val_speakers=1))
    assert len(make_splits(two, ProtocolConfig(name="loso", n_val_speakers=0))) == 2


# ------------------------------------------------------------------------------- speaker folds


def test_speaker_folds_groups_of_speakers():
    table = emodb_like_table()
    splits = make_splits(table, ProtocolConfig(name="speaker_folds", speaker_groups=5, n_val_speakers=1))
    assert len(splits) == 5
    tested = [spk for s in splits for spk in s.test_speakers]
    assert sorted(tested) == sorted(table["speaker"].unique())  # every speaker tested exactly once
    for split in splits:
        assert_valid(split, len(table))
        assert len(split.test_speakers) == 2 and len(split.val_speakers) == 1
        assert not set(split.val_speakers) & set(split.test_speakers)
        assert not set(split.train_speakers) & set(split.val_speakers)
        assert split.tag == "SI"


def test_speaker_folds_akalya_8_1_1():
    table = emodb_like_table()
    splits = make_splits(table, ProtocolConfig(name="speaker_folds", n_val_speakers=1, seeds=[0, 1, 2]))
    assert len(splits) == 30
    assert all((len(s.train_speakers), len(s.val_speakers), len(s.test_speakers)) == (8, 1, 1) for s in splits)


def test_speaker_folds_too_many_groups():
    table = emodb_like_table()
    with pytest.raises(ConfigError, match="speaker_groups"):
        make_splits(table, ProtocolConfig(name="speaker_folds", speaker_groups=11))


# ------------------------------------------------------------------------------------ hold-out


def test_holdout_is_stratified_covering_and_speaker_dependent():
    table = emodb_like_table()
    (split,) = make_splits(table, ProtocolConfig(name="holdout", test_size=0.2))
    assert_valid(split, len(table))
    assert split.val.size == 0
    assert abs(split.test.size - 0.2 * len(table)) <= 1
    assert split.tag == "SD" and not split.speaker_independent
    overall = table["label"].value_counts(normalize=True)
    in_test = table["label"].iloc[split.test].value_counts(normalize=True)
    assert (overall - in_test).abs().max() < 0.03
    assert split.name == "seed0"


def test_select_on_test_is_the_papers_protocol_and_only_where_it_makes_sense():
    table = emodb_like_table()
    (plain,) = make_splits(table, ProtocolConfig(name="holdout", test_size=0.2))
    (paper,) = make_splits(table, ProtocolConfig(name="holdout", test_size=0.2, select_on_test=True))
    np.testing.assert_array_equal(paper.test, plain.test)  # the same split...
    np.testing.assert_array_equal(paper.val, paper.test)  # ...whose test part also chooses the model
    folds = make_splits(table, ProtocolConfig(name="kfold", k=3, select_on_test=True))
    assert all(np.array_equal(f.val, f.test) for f in folds)
    with pytest.raises(ValidationError, match="select_on_test"):
        ProtocolConfig(name="loso", select_on_test=True)
    with pytest.raises(ValidationError, match="select_on_test"):
        ProtocolConfig(name="holdout", val_size=0.1, select_on_test=True)


def test_holdout_80_10_10_stratified_on_three_columns():
    table = ravdess_like_table()
    cfg = ProtocolConfig(name="holdout", test_size=0.1, val_size=0.1, stratify_by=["label", "intensity", "gender"])
    (split,) = make_splits(table, cfg)
    assert_valid(split, len(table))
    n = len(table)
    assert abs(split.val.size - 0.1 * n) <= 1 and abs(split.test.size - 0.1 * n) <= 1
    strata = table[["label", "intensity", "gender"]].astype(str).agg("|".join, axis=1)
    overall = strata.value_counts(normalize=True)
    for part in (split.val, split.test):
        # Stratified: every stratum's count is its proportional share, up to rounding.
        counts = strata.iloc[part].value_counts().reindex(overall.index, fill_value=0)
        assert (counts - overall * part.size).abs().max() <= 1
    assert split.tag == "SD"


def test_holdout_seeds_change_and_reproduce():
    table = emodb_like_table()
    cfg = ProtocolConfig(name="holdout", seeds=[0, 1])
    a0, a1 = make_splits(table, cfg)
    b0, b1 = make_splits(table, cfg)
    np.testing.assert_array_equal(a0.test, b0.test)
    np.testing.assert_array_equal(a1.test, b1.test)
    assert not np.array_equal(a0.test, a1.test)
    assert (a0.seed, a1.seed) == (0, 1)


def test_holdout_grouped_by_speaker_is_speaker_independent():
    table = emodb_like_table()
    (split,) = make_splits(table, ProtocolConfig(name="holdout", test_size=0.2, val_size=0.1, group_by_speaker=True))
    assert_valid(split, len(table))
    assert len(split.test_speakers) == 2 and len(split.val_speakers) == 1 and len(split.train_speakers) == 7
    assert split.tag == "SI"


def test_single_speaker_holdout_is_sd():
    table = emodb_like_table()
    one = table[table["speaker"] == "emodb-03"].reset_index(drop=True)
    (split,) = make_splits(one, ProtocolConfig(name="holdout", test_size=0.3))
    assert split.tag == "SD"


def test_holdout_stratum_too_small():
    table = emodb_like_table()
    table.loc[0, "label"] = "rare"
    with pytest.raises(ConfigError, match="stratify_by.*rare"):
        make_splits(table, ProtocolConfig(name="holdout"))
    with pytest.raises(ConfigError, match="stratify_by.*nope"):
        make_splits(emodb_like_table(), ProtocolConfig(name="holdout", stratify_by=["nope"]))


# -------------------------------------------------------------------------------------- k-fold


def test_kfold_tests_every_row_once():
    table = emodb_like_table()
    splits = make_splits(table, ProtocolConfig(name="kfold", k=5, val_size=0.1))
    assert len(splits) == 5
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested) == list(range(len(table)))
    for split in splits:
        assert_valid(split, len(table))
        assert split.tag == "SD"
        assert abs(split.val.size - 0.1 * len(table)) <= 1
        overall = table["label"].value_counts(normalize=True)
        share = table["label"].iloc[split.test].value_counts(normalize=True)
        assert (overall - share).abs().max() < 0.03


def test_kfold_grouped_by_speaker_is_si():
    table = emodb_like_table()
    splits = make_splits(table, ProtocolConfig(name="kfold", k=5, group_by_speaker=True, val_size=0.1, seeds=[3]))
    assert sorted(np.concatenate([s.test for s in splits])) == list(range(len(table)))
    for split in splits:
        assert_valid(split, len(table))
        assert split.tag == "SI"
        assert len(split.val_speakers) == 1
        assert not set(split.val_speakers) & set(split.train_speakers)
    with pytest.raises(ConfigError, match="k=11"):
        make_splits(table, ProtocolConfig(name="kfold", k=11, group_by_speaker=True))


def test_kfold_stratum_smaller_than_k():
    table = emodb_like_table().iloc[:60]
    counts = table["label"].value_counts()
    k = int(counts.min()) + 1
    with pytest.raises(ConfigError, match=f"k={k}"):
        make_splits(table, ProtocolConfig(name="kfold", k=k))


# -------------------------------------------------------------------------------- cross-corpus


def test_cross_corpus_uses_shared_labels_only():
    emodb = emodb_like_table()
    emodb["label"] = emodb["label"].replace({"anger": "angry", "happiness": "happy", "sadness": "sad"})
    ravdess = ravdess_like_table(4)
    table = pd.concat([emodb, ravdess], ignore_index=True)
    cfg = ProtocolConfig(name="cross_corpus", train_corpus="emodb", test_corpus="ravdess", n_val_speakers=2)
    (split,) = make_splits(table, cfg)
    assert_valid(split, len(table), covering=False)
    shared = {"angry", "happy", "sad", "neutral", "disgust"}
    for part in (split.train, split.val, split.test):
        assert set(table["label"].iloc[part]) <= shared
    assert set(table["label"].iloc[split.test]) == shared
    assert set(table["corpus"].iloc[split.train]) == {"emodb"} == set(table["corpus"].iloc[split.val])
    assert set(table["corpus"].iloc[split.test]) == {"ravdess"}
    assert len(split.val_speakers) == 2 and not set(split.val_speakers) & set(split.train_speakers)
    assert split.tag == "SI"
    # All rows of shared labels are used.
    usable = table["label"].isin(shared)
    assert split.train.size + split.val.size + split.test.size == int(usable.sum())


def test_cross_corpus_errors():
    table = pd.concat([emodb_like_table(), ravdess_like_table(2).assign(label="x")], ignore_index=True)
    with pytest.raises(ConfigError, match="share no label"):
        make_splits(table, ProtocolConfig(name="cross_corpus", train_corpus="emodb", test_corpus="ravdess"))
    with pytest.raises(ConfigError, match="test_corpus='savee'"):
        make_splits(table, ProtocolConfig(name="cross_corpus", train_corpus="emodb", test_corpus="savee"))
    with pytest.raises(ValidationError, match="train_corpus"):
        ProtocolConfig(name="cross_corpus", test_corpus="emodb")


# ------------------------------------------------------------------------- config and summary


def test_protocol_config_rejects_typos_and_bad_values():
    with pytest.raises(ValidationError, match="n_val_speaker"):
        ProtocolConfig(n_val_speaker=1)
    with pytest.raises(ValidationError, match="name"):
        ProtocolConfig(name="leave_one_out")
    with pytest.raises(ValidationError, match="test_size"):
        ProtocolConfig(name="holdout", test_size=0.6, val_size=0.5)
    with pytest.raises(ValidationError, match="k"):
        ProtocolConfig(k=1)


def test_missing_columns_named():
    with pytest.raises(ConfigError, match="speaker"):
        make_splits(emodb_like_table().drop(columns=["speaker"]), ProtocolConfig())


def test_sd_detected_from_data_even_for_a_speaker_protocol_name():
    table = emodb_like_table()
    split = Split.from_table("manual", np.arange(0, 100), np.empty(0, np.int64), np.arange(100, 120), 0, table)
    # Rows 0..119 all belong to the first speakers: the test speaker also trains.
    assert split.test_speakers[0] in split.train_speakers
    assert split.tag == "SD"


def test_split_summary():
    table = emodb_like_table()
    splits = make_splits(table, ProtocolConfig(name="loso"))
    summary = split_summary(splits, table)
    assert len(summary) == 10
    assert (summary["n_train"] + summary["n_val"] + summary["n_test"] == len(table)).all()
    assert (summary["tag"] == "SI").all()
    assert summary.loc[9, "test_speakers"] == "emodb-16"
    assert "disgust" not in summary.loc[9, "test_labels"]


def test_unknown_speakers_allow_holdout_but_never_claim_si():
    table = pd.DataFrame({"label": ["a", "b"] * 20, "speaker": [pd.NA] * 40})
    splits = make_splits(table, ProtocolConfig(name="holdout", test_size=0.25))
    assert splits[0].tag == "SD"
    with pytest.raises(ConfigError, match="without a speaker"):
        make_splits(table, ProtocolConfig(name="loso"))


# ---------------------------------------------------------------------------------------- combined corpora, final fit


def test_interleaved_speaker_folds_mix_corpora():
    table = pd.concat([emodb_like_table(), ravdess_like_table(6)], ignore_index=True)
    cfg = ProtocolConfig(name="speaker_folds", speaker_groups=4, interleave_speakers=True, n_val_speakers=1)
    splits = make_splits(table, cfg)
    tested = sorted(spk for s in splits for spk in s.test_speakers)
    assert tested == sorted(table["speaker"].unique())
    for split in splits:
        assert_valid(split, len(table))
        assert split.tag == "SI"
        # round-robin over 16 sorted speakers (10 emodb, then 6 ravdess): each group gets both corpora
        assert {spk.split("-")[0] for spk in split.test_speakers} == {"emodb", "ravdess"}
    contiguous = make_splits(table, cfg.model_copy(update={"interleave_speakers": False}))
    assert {spk.split("-")[0] for spk in contiguous[0].test_speakers} == {"emodb"}


def test_final_protocol_trains_on_all_but_the_validation_speakers():
    table = emodb_like_table()
    (split,) = make_splits(table, ProtocolConfig(name="final", val_speakers=["emodb-03", "emodb-08"]))
    assert split.name == "final" and split.tag == "SD"  # a selection check, never claimed as SI
    assert set(split.val_speakers) == {"emodb-03", "emodb-08"} and split.test_speakers == split.val_speakers
    assert not set(split.train_speakers) & {"emodb-03", "emodb-08"}
    assert split.train.size + split.val.size == len(table)
    (everything,) = make_splits(table, ProtocolConfig(name="final"))
    assert everything.train.size == len(table) and everything.val.size == 0
    with pytest.raises(ConfigError, match="val_speakers"):
        make_splits(table, ProtocolConfig(name="final", val_speakers=["nobody"]))


# ---------------------------------------------------------------------------------------- train_only


def test_train_only_corpora_join_every_training_split_and_are_never_tested():
    emodb, ravdess = emodb_like_table(), ravdess_like_table()
    table = pd.concat([ravdess, emodb], ignore_index=True)  # the extra corpus first: positions must map back
    alone = make_splits(emodb, ProtocolConfig(name="loso", n_val_speakers=1))
    cfg = ProtocolConfig(name="loso", n_val_speakers=1, train_only=["ravdess"])
    splits = make_splits(table, cfg)
    extra = np.flatnonzero(table["corpus"] == "ravdess")
    assert [s.name for s in splits] == [s.name for s in alone]  # the folds of EmoDB alone
    for split, ref in zip(splits, alone):
        assert_valid(split, len(table))
        assert set(extra) <= set(split.train) and not set(extra) & (set(split.val) | set(split.test))
        # the same EmoDB utterances in each part as EmoDB alone gives
        ids = table["utterance_id"].to_numpy()
        assert set(ids[split.test]) == set(emodb["utterance_id"].to_numpy()[ref.test])
        assert set(ids[split.val]) == set(emodb["utterance_id"].to_numpy()[ref.val])
        assert split.tag == "SI" and speakers_of(table, split.test) == set(ref.test_speakers)


def test_train_only_is_checked():
    table = pd.concat([emodb_like_table(), ravdess_like_table()], ignore_index=True)
    with pytest.raises(ConfigError, match="train_only: no corpus 'crema'"):
        make_splits(table, ProtocolConfig(name="loso", train_only=["crema"]))
    with pytest.raises(ConfigError, match="every corpus of the table is train-only"):
        make_splits(table, ProtocolConfig(name="loso", train_only=["emodb", "ravdess"]))
    with pytest.raises(ValidationError, match="train_only"):
        ProtocolConfig(name="leave_one_corpus_out", train_only=["emodb"])
    with pytest.raises(ConfigError, match="belong to a train_only corpus"):
        make_splits(table, ProtocolConfig(name="final", val_speakers=["ravdess-01"], train_only=["ravdess"]))
    final = make_splits(table, ProtocolConfig(name="final", val_speakers=["emodb-03"], train_only=["ravdess"]))[0]
    assert set(np.flatnonzero(table["corpus"] == "ravdess")) <= set(final.train)
    # an extra corpus that shares a speaker with the test speakers makes that fold SD, as the data say
    shared = table.copy()
    shared.loc[shared["corpus"] == "ravdess", "speaker"] = "emodb-03"
    tags = {s.name: s.tag for s in make_splits(shared, ProtocolConfig(name="loso", train_only=["ravdess"]))}
    assert tags["fold01-test=emodb-03"] == "SD" and tags["fold02-test=emodb-08"] == "SI"
