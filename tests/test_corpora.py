"""Corpus loaders: real EmoDB/RAVDESS counts, synthetic trees for every layout, problems, labels, info."""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from rich.console import Console

from conftest import tone
from serkit.corpora import (
    CORE_COLUMNS,
    IEMOCAP_ALL,
    UNIFIED_LABELS,
    Corpus,
    Problem,
    combine,
    describe_corpus,
    list_corpora,
    load_corpus,
    map_labels,
    normalise_label,
    print_corpus_info,
    register_corpus,
    remap_labels,
)
from serkit.corpora.base import build_corpus
from serkit.errors import CorpusError


def write_tone(path: Path, seconds: float = 0.2, sr: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    signal = tone(seconds, sr)
    data = signal if channels == 1 else signal[:, None].repeat(channels, axis=1)
    sf.write(path, data, sr, format="FLAC" if path.suffix == ".flac" else "WAV")
    return path


def assert_table_invariants(corpus: Corpus) -> None:
    table = corpus.utterances
    assert list(table.columns[: len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    assert table["utterance_id"].is_unique
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in table["path"])
    assert (table["corpus"] == corpus.name).all()
    assert all(s.startswith(f"{corpus.name}-") for s in table["speaker"].dropna())


# ---------------------------------------------------------------------------------------------
# real corpora


@pytest.mark.corpus
def test_emodb_real(emodb_root):
    corpus = load_corpus("emodb", emodb_root)
    table = corpus.utterances
    assert len(corpus) == 535 and corpus.problems == []
    assert_table_invariants(corpus)
    assert len(corpus.speakers) == 10
    assert corpus.labels == sorted(["angry", "boredom", "disgust", "fearful", "happy", "neutral", "sad"])
    letters = Counter(name[5] for name in os.listdir(emodb_root / "wav") if name.endswith(".wav"))
    names = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
    assert table["label"].value_counts().to_dict() == {names[k]: v for k, v in letters.items()}
    assert (table["raw_label"].map(names) == table["label"]).all()
    genders = table.groupby("speaker")["gender"].first().to_dict()
    assert genders["emodb-03"] == "male" and genders["emodb-08"] == "female" and genders["emodb-16"] == "female"
    assert Counter(genders.values()) == {"male": 5, "female": 5}
    # erkennung.txt: the released utterances were recognised by at least 80% of listeners
    assert table["recognition"].min() >= 80.0
    assert set(table["text_code"].str[0]) == {"a", "b"}


@pytest.mark.corpus
def test_ravdess_real_with_header_check(ravdess_root):
    corpus = load_corpus("ravdess", ravdess_root, check_audio=True, with_durations=True)
    table = corpus.utterances
    assert len(corpus) == 1440 and corpus.problems == []
    assert_table_invariants(corpus)
    assert len(corpus.speakers) == 24 and len(corpus.labels) == 8
    counts = table["label"].value_counts()
    assert counts["neutral"] == 96
    assert (counts.drop("neutral") == 192).all()
    assert (table["gender"] == table["actor"].map(lambda a: "male" if a % 2 else "female")).all()
    assert (table["gender"] == "female").sum() == 720
    assert set(table.loc[table["label"] == "neutral", "intensity"]) == {"normal"}  # neutral has no strong take
    assert (table["sample_rate"] == 16000).all() and (table["channels"] == 2).sum() == 5
    assert table["duration"].between(2.0, 7.0).all()


# ---------------------------------------------------------------------------------------------
# synthetic layouts


def test_ravdess_48k_wav_layout_and_vocal_channel(tmp_path):
    base = tmp_path / "Audio_Speech_Actors_01-24"
    write_tone(base / "Actor_01" / "03-01-05-02-01-01-01.wav", sr=48000)
    write_tone(base / "Actor_02" / "03-01-02-01-02-02-02.wav", sr=48000)
    write_tone(base / "Actor_02" / "03-02-03-01-01-01-02.wav", sr=48000)  # song
    write_tone(base / "Actor_02" / "03-01-09-01-01-01-02.wav", sr=48000)  # emotion 09 does not exist
    corpus = load_corpus("ravdess", tmp_path, with_durations=True)
    table = corpus.utterances.set_index("utterance_id")
    assert list(table.index) == ["ravdess/03-01-02-01-02-02-02", "ravdess/03-01-05-02-01-01-01"]
    first = table.loc["ravdess/03-01-05-02-01-01-01"]
    assert first[["label", "speaker", "gender", "intensity"]].tolist() == ["angry", "ravdess-01", "male", "strong"]
    second = table.loc["ravdess/03-01-02-01-02-02-02"]
    assert (second["label"], second["gender"], second["statement"], second["repetition"]) == ("calm", "female", 2, 2)
    assert second["text"] == "Dogs are sitting by the door" and second["modality"] == "audio-only"
    assert (table["sample_rate"] == 48000).all()
    assert table["duration"].tolist() == pytest.approx([0.2, 0.2])
    kinds = {Path(p.path).name: (p.kind, p.is_error) for p in corpus.problems}
    assert kinds == {
        "03-02-03-01-01-01-02.wav": ("excluded vocal channel", False),
        "03-01-09-01-01-01-02.wav": ("unlabelled", True),
    }
    everything = load_corpus("ravdess", tmp_path, vocal_channel="all")
    assert sorted(everything.utterances["vocal_channel"]) == ["song", "speech", "speech"]
    with pytest.raises(CorpusError, match="vocal_channel"):
        load_corpus("ravdess", tmp_path, vocal_channel="singing")


def test_savee_nested_and_flat(tmp_path):
    nested = tmp_path / "nested"
    for speaker, name in [("DC", "a01"), ("DC", "sa02"), ("JE", "su03"), ("KL", "n30"), ("JK", "zz01")]:
        write_tone(nested / "AudioData" / speaker / f"{name}.wav")
    corpus = load_corpus("savee", nested)
    table = corpus.utterances.set_index("utterance_id")
    assert table["label"].to_dict() == {
        "savee/DC_a01": "angry",
        "savee/DC_sa02": "sad",
        "savee/JE_su03": "surprised",
        "savee/KL_n30": "neutral",
    }
    assert set(table["speaker"]) == {"savee-DC", "savee-JE", "savee-KL"} and set(table["gender"]) == {"male"}
    assert table.loc["savee/KL_n30", "sentence"] == 30
    assert [p.kind for p in corpus.problems] == ["unlabelled"]

    flat = tmp_path / "flat"
    for name in ["DC_a01", "JE_sa02", "KL_h15"]:
        write_tone(flat / f"{name}.wav")
    flat_table = load_corpus("savee", flat).utterances
    assert flat_table["label"].tolist() == ["angry", "sad", "happy"]
    assert flat_table["speaker"].tolist() == ["savee-DC", "savee-JE", "savee-KL"]


def test_tess_folders(tmp_path):
    write_tone(tmp_path / "OAF_angry" / "OAF_back_angry.wav")
    write_tone(tmp_path / "OAF_Fear" / "OAF_dog_fear.wav")
    write_tone(tmp_path / "YAF_pleasant_surprised" / "YAF_bite_ps.wav")
    write_tone(tmp_path / "YAF_sad" / "YAF_sad.wav")  # no word: cannot be an utterance name
    corpus = load_corpus("tess", tmp_path)
    table = corpus.utterances.set_index("utterance_id")
    assert table["label"].to_dict() == {
        "tess/OAF_back_angry": "angry",
        "tess/OAF_dog_fear": "fearful",
        "tess/YAF_bite_ps": "surprised",
    }
    assert table.loc["tess/YAF_bite_ps", "speaker"] == "tess-YAF"
    assert table.loc["tess/YAF_bite_ps", "raw_label"] == "ps"
    assert table.loc["tess/OAF_dog_fear", "word"] == "dog"
    assert set(table["gender"]) == {"female"}
    assert len(corpus.problems) == 1 and corpus.problems[0].reason.startswith("unlabelled:")


def test_cremad_with_and_without_demographics(tmp_path):
    for name in ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1002_TSI_NEU_LO", "1003_DFA_JOY_XX"]:
        write_tone(tmp_path / "AudioWAV" / f"{name}.wav")
    corpus = load_corpus("cremad", tmp_path)
    table = corpus.utterances.set_index("utterance_id")
    assert table["label"].tolist() == ["angry", "happy", "neutral"]
    assert table["gender"].isna().all()
    assert table.loc["cremad/1002_IEO_HAP_HI", "level"] == "high"
    assert table.loc["cremad/1002_IEO_HAP_HI", "text"] == "It's eleven o'clock"
    assert [p.reason for p in corpus.problems] == ["unlabelled: unknown emotion 'JOY'"]

    pd.DataFrame({"ActorID": [1001, 1002], "Age": [51, 21], "Sex": ["Male", "Female"]}).to_csv(
        tmp_path / "VideoDemographics.csv", index=False
    )
    table = load_corpus("cremad", tmp_path).utterances.set_index("speaker")
    assert table.loc["cremad-1001", "gender"] == "male"
    assert set(table.loc["cremad-1002", "gender"]) == {"female"}
    assert table.loc["cremad-1001", "age"] == 51


EVALUATION_IMPRO = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M001\texc\t[4.0000, 3.5000, 3.0000]

[14.8872 - 18.0175]\tSes01F_impro01_F002\tfru\t[2.0000, 3.5000, 3.5000]

[19.2900 - 20.7875]\tSes01F_impro01_M003\tang\t[1.5000, 4.0000, 4.5000]

[21.0000 - 22.0000]\tSes01F_impro01_M004\tneu\t[2.5000, 2.5000, 2.5000]
"""

EVALUATION_SCRIPT = """[1.0000 - 2.5000]\tSes01M_script01_1_F000\tsad\t[1.5000, 2.0000, 2.0000]
[3.0000 - 4.0000]\tSes01M_script01_1_M001\thap\t[4.0000, 3.0000, 3.0000]
[4.5000 - 5.0000]\tSes01M_script01_1_M002\txxx\t[3.0000, 3.0000, 3.0000]
[5.5000 - 6.0000]\tSes01M_script01_1_F003\tsur\t[3.5000, 4.0000, 3.0000]
"""


@pytest.fixture
def iemocap_root(tmp_path) -> Path:
    session = tmp_path / "Session1"
    evaluations = session / "dialog" / "EmoEvaluation"
    evaluations.mkdir(parents=True)
    (evaluations / "Ses01F_impro01.txt").write_text(EVALUATION_IMPRO)
    (evaluations / "Ses01M_script01_1.txt").write_text(EVALUATION_SCRIPT)
    wav = session / "sentences" / "wav"
    for utt in ["F000", "M001", "F002", "M003", "M999"]:  # M004 is listed but has no file; M999 is not listed
        write_tone(wav / "Ses01F_impro01" / f"Ses01F_impro01_{utt}.wav")
    for utt in ["F000", "M001", "M002", "F003"]:
        write_tone(wav / "Ses01M_script01_1" / f"Ses01M_script01_1_{utt}.wav")
    return tmp_path


def test_iemocap_four_class(iemocap_root):
    corpus = load_corpus("iemocap", iemocap_root)
    table = corpus.utterances.set_index("utterance_id")
    assert table["label"].to_dict() == {
        "iemocap/Ses01F_impro01_F000": "neutral",
        "iemocap/Ses01F_impro01_M001": "happy",  # exc merged into happy
        "iemocap/Ses01F_impro01_M003": "angry",
        "iemocap/Ses01M_script01_1_F000": "sad",
        "iemocap/Ses01M_script01_1_M001": "happy",
    }
    assert table.loc["iemocap/Ses01F_impro01_M001", "raw_label"] == "exc"
    assert table.loc["iemocap/Ses01F_impro01_M003", "speaker"] == "iemocap-Ses01M"
    assert table.loc["iemocap/Ses01M_script01_1_F000", "speaker"] == "iemocap-Ses01F"
    assert table.loc["iemocap/Ses01M_script01_1_F000", "gender"] == "female"
    assert table["improvised"].to_dict()["iemocap/Ses01F_impro01_F000"]
    assert not table.loc["iemocap/Ses01M_script01_1_M001", "improvised"]
    row = table.loc["iemocap/Ses01F_impro01_M003"]
    numbers = row[["start", "end", "valence", "activation", "dominance"]].tolist()
    assert numbers == [19.29, 20.7875, 1.5, 4.0, 4.5]
    assert row["dialog"] == "Ses01F_impro01" and row["session"] == "Ses01"

    problems = {Path(p.path).stem: p for p in corpus.problems}
    assert problems["Ses01F_impro01_F002"].reason == "excluded label: fru"
    assert not problems["Ses01F_impro01_F002"].is_error
    assert problems["Ses01M_script01_1_M002"].reason == "excluded label: xxx"
    assert problems["Ses01M_script01_1_F003"].reason == "excluded label: sur"
    assert problems["Ses01F_impro01_M004"].kind == "missing file"
    assert problems["Ses01F_impro01_M999"].kind == "unlabelled"
    assert corpus.summary()["problems"] == {"excluded label": 3, "missing file": 1, "unlabelled": 1}


def test_iemocap_all_categories_mapping(iemocap_root):
    corpus = load_corpus("iemocap", iemocap_root, mapping=IEMOCAP_ALL)
    assert corpus.utterances.set_index("utterance_id").loc["iemocap/Ses01M_script01_1_F003", "label"] == "surprised"
    assert sorted(p.reason for p in corpus.problems if not p.is_error) == ["excluded label: fru", "excluded label: xxx"]


def test_folder_per_label(tmp_path):
    write_tone(tmp_path / "Happiness" / "spk1_001.wav")
    write_tone(tmp_path / "excited" / "spk2_001.flac")
    write_tone(tmp_path / "anger" / "session1" / "spk1_002.wav")
    write_tone(tmp_path / "stray.wav")
    (tmp_path / "anger" / "notes.txt").write_text("not audio")
    corpus = load_corpus("folder", tmp_path, name="mine", speaker_pattern=r"(?P<speaker>spk\d+)_")
    table = corpus.utterances.set_index("utterance_id")
    assert table["label"].to_dict() == {
        "mine/Happiness/spk1_001": "happy",
        "mine/anger/session1/spk1_002": "angry",
        "mine/excited/spk2_001": "excited",  # not a known synonym: kept as-is
    }
    assert table.loc["mine/Happiness/spk1_001", "raw_label"] == "Happiness"
    assert set(table["speaker"]) == {"mine-spk1", "mine-spk2"}
    assert [(Path(p.path).name, p.kind) for p in corpus.problems] == [("stray.wav", "unlabelled")]

    no_speaker = load_corpus("folder", tmp_path)
    assert no_speaker.utterances["speaker"].isna().all() and no_speaker.speakers == []
    strict = load_corpus("folder", tmp_path, speaker_pattern=r"^excited/(spk\d)")
    assert len(strict) == 1 and sum(p.kind == "no speaker" for p in strict.problems) == 2
    with pytest.raises(CorpusError, match="speaker_pattern"):
        load_corpus("folder", tmp_path, speaker_pattern="(")


def test_csv_manifest(tmp_path):
    write_tone(tmp_path / "audio" / "a.wav")
    write_tone(tmp_path / "audio" / "b.wav")
    absolute_file = write_tone(tmp_path / "elsewhere" / "c.wav")
    manifest = tmp_path / "data" / "list.csv"
    manifest.parent.mkdir()
    pd.DataFrame(
        {
            "path": ["../audio/a.wav", str(absolute_file), "", "../audio/missing.wav", "../audio/b.wav"],
            "label": ["Joy", "frustrated", "sad", "sad", None],
            "speaker": ["007", "008", "007", "007", "008"],
            "gender": ["F", "m", None, None, "female"],
            "room": ["r1", "r2", "r1", "r1", "r2"],
        }
    ).to_csv(manifest, index=False)
    corpus = load_corpus("csv", manifest, name="lab")
    table = corpus.utterances
    assert table["label"].tolist() == ["happy", "frustrated"]
    assert table["raw_label"].tolist() == ["Joy", "frustrated"]
    assert table["speaker"].tolist() == ["lab-007", "lab-008"]  # kept as text, zero padding intact
    assert table["gender"].tolist() == ["female", "male"]
    assert table["room"].tolist() == ["r1", "r2"]
    assert table["path"].tolist() == [str((tmp_path / "data" / "../audio/a.wav").absolute()), str(absolute_file)]
    reasons = [p.reason for p in corpus.problems]
    assert reasons[0] == "missing path: line 4 has no 'path'" and corpus.problems[0].path.endswith("list.csv:4")
    assert reasons[1].startswith("missing file: listed on line 5")
    assert reasons[2] == "unlabelled: line 6 has no 'label'"

    bad = tmp_path / "bad.csv"
    pd.DataFrame({"file": ["audio/a.wav"], "label": ["sad"]}).to_csv(bad, index=False)
    with pytest.raises(CorpusError, match=r"lacks required column 'path'"):
        load_corpus("csv", bad)


# ---------------------------------------------------------------------------------------------
# problems and errors


def test_check_audio_moves_bad_files_to_problems(tmp_path):
    wav = tmp_path / "wav"
    write_tone(wav / "03a01Wa.wav")
    write_tone(wav / "08a01Nb.wav", seconds=0.5)
    write_tone(wav / "readme_copy.wav")  # name does not parse
    (wav / "09a01Fa.wav").write_bytes(b"")  # empty file
    sf.write(wav / "10a01Ta.wav", tone(0.0), 16000)  # valid header, no frames
    whole = (wav / "08a01Nb.wav").read_bytes()
    (wav / "11a01Aa.wav").write_bytes(whole[: len(whole) // 2])  # truncated
    (wav / "12a01La.wav").write_bytes(b"this is not audio at all" * 20)
    write_tone(wav / "13a01Ea.flac", seconds=1.0)
    flac = (wav / "13a01Ea.flac").read_bytes()
    (wav / "13a01Ea.flac").write_bytes(flac[: len(flac) // 2])  # truncated compressed file

    unchecked = load_corpus("emodb", tmp_path)
    assert len(unchecked) == 7 and [p.kind for p in unchecked.problems] == ["unlabelled"]

    corpus = load_corpus("emodb", tmp_path, check_audio=True)
    assert corpus.utterances["utterance_id"].tolist() == ["emodb/03a01Wa", "emodb/08a01Nb"]
    kinds = {Path(p.path).name: p.kind for p in corpus.problems}
    assert kinds == {
        "readme_copy.wav": "unlabelled",
        "09a01Fa.wav": "empty",
        "10a01Ta.wav": "empty",
        "11a01Aa.wav": "truncated",
        "12a01La.wav": "unreadable",
        "13a01Ea.flac": "truncated",
    }
    assert all(p.is_error for p in corpus.problems)

    durations = load_corpus("emodb", tmp_path, with_durations=True).utterances.set_index("utterance_id")
    assert durations.loc["emodb/08a01Nb", "duration"] == pytest.approx(0.5)
    assert pd.isna(durations.loc["emodb/12a01La", "duration"])  # kept, since only durations were asked


def test_registry_errors(tmp_path):
    assert {"emodb", "ravdess", "savee", "tess", "cremad", "iemocap", "folder", "csv"} <= set(list_corpora())
    with pytest.raises(CorpusError, match=r"unknown corpus 'emodbb'.*emodb.*ravdess"):
        load_corpus("emodbb", tmp_path)
    with pytest.raises(CorpusError, match=r"does not exist"):
        load_corpus("emodb", tmp_path / "nowhere")
    with pytest.raises(CorpusError, match=r"no usable utterances"):
        load_corpus("emodb", tmp_path)
    with pytest.raises(CorpusError, match=r"unknown option\(s\) vocal_channel"):
        load_corpus("emodb", tmp_path, vocal_channel="speech")
    write_tone(tmp_path / "wav" / "nonsense.wav")
    with pytest.raises(CorpusError, match=r"1 unlabelled"):
        load_corpus("emodb", tmp_path)
    with pytest.raises(CorpusError, match="no usable utterances"):
        load_corpus("CREMA-D", tmp_path)  # same loader as "cremad"


def test_register_custom_corpus(tmp_path, monkeypatch):
    from serkit.corpora import base

    monkeypatch.setattr(base, "_LOADERS", dict(base._LOADERS))  # keep the global registry clean
    write_tone(tmp_path / "x.wav")

    @register_corpus("unit-test-corpus")
    def load_unit_test(root: Path) -> Corpus:
        path = str(root / "x.wav")
        record = {"utterance_id": "u/x", "path": path, "label": "sad", "raw_label": "s", "speaker": "u-1"}
        return build_corpus("unit-test-corpus", root, [record, dict(record)])

    corpus = load_corpus("unit_test_corpus", tmp_path)
    assert len(corpus) == 1 and corpus.problems[0].kind == "duplicate"
    assert corpus.utterances["gender"].isna().all()
    assert "unittestcorpus" in list_corpora()


# ---------------------------------------------------------------------------------------------
# labels, filtering, combining, info


def test_label_vocabulary_and_mapping():
    assert UNIFIED_LABELS == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised", "boredom")
    names = ["Happiness", "JOY", "anger", "Fear", "pleasant_surprise", "Bored", "calm"]
    assert [normalise_label(n) for n in names] == [
        "happy", "happy", "angry", "fearful", "surprised", "boredom", "calm",
    ]
    assert normalise_label("excited") is None
    assert map_labels(["W", "L", "N"], {"W": "angry", "L": "boredom", "N": "neutral"}, corpus="emodb") == [
        "angry", "boredom", "neutral",
    ]
    series = map_labels(pd.Series(["a", "x"], index=[5, 7]), {"a": "angry", "x": None}, corpus="savee")
    assert series.index.tolist() == [5, 7] and series.tolist() == ["angry", None]
    with pytest.raises(CorpusError, match=r"ravdess: unknown label code\(s\) '09'"):
        map_labels(["01", "09"], {"01": "neutral"}, corpus="ravdess")


def test_remap_labels_merge_drop_and_restrict():
    labels = ["happy", "excited", "calm", "sad", "calm"]
    merged = remap_labels(labels, {"excited": "happy", "calm": None, "typo": "x"})
    assert merged.labels.tolist() == ["happy", "happy", None, "sad", None]
    assert merged.dropped == {"calm": 2} and merged.unused == ["typo"]
    assert remap_labels(labels, {"calm": "drop"}).dropped == {"calm": 2}
    only = remap_labels(labels, ["happy", "sad"])
    assert only.labels.tolist() == ["happy", None, None, "sad", None]
    assert only.dropped == {"calm": 2, "excited": 1}
    strict = remap_labels(labels, {"excited": "happy"}, keep_others=False)
    assert strict.labels.tolist() == [None, "happy", None, None, None]


@pytest.fixture
def two_corpora(tmp_path) -> tuple[Corpus, Corpus]:
    for name in ["03a01Wa", "03a02Lb", "08a01Na", "08a02Fa"]:
        write_tone(tmp_path / "emodb" / "wav" / f"{name}.wav")
    for name in ["03-01-01-01-01-01-03", "03-01-02-01-01-01-03", "03-01-05-02-01-01-03"]:
        write_tone(tmp_path / "ravdess" / "Actor_03" / f"{name}.wav")
    (tmp_path / "ravdess" / "Actor_03" / "junk.wav").write_bytes(b"x")
    return load_corpus("emodb", tmp_path / "emodb"), load_corpus("ravdess", tmp_path / "ravdess")


def test_filter_and_subset_labels(two_corpora):
    emodb, ravdess = two_corpora
    assert emodb.filter(gender="female").utterances["speaker"].unique().tolist() == ["emodb-08"]
    assert len(emodb.filter(label=["angry", "happy"])) == 2
    assert len(emodb.filter(text_code=lambda s: s == "a02", gender="male")) == 1
    assert len(ravdess.filter(intensity="strong")) == 1
    with pytest.raises(CorpusError, match="no such column"):
        emodb.filter(emotion="angry")

    merged = ravdess.subset_labels({"calm": "neutral"})
    assert merged.labels == ["angry", "neutral"] and merged.utterances["raw_label"].tolist() == ["01", "02", "05"]
    restricted = emodb.subset_labels(["angry", "neutral"])
    assert restricted.labels == ["angry", "neutral"] and len(restricted) == 2
    excluded = [p for p in restricted.problems if p.kind == "excluded label"]
    assert len(excluded) == 2 and not any(p.is_error for p in excluded)
    assert len(emodb) == 4 and emodb.problems == []  # the original is untouched


def test_combine_keeps_speakers_and_problems_apart(two_corpora):
    emodb, ravdess = two_corpora
    both = combine(emodb, ravdess)
    assert both.name == "emodb+ravdess" and len(both) == len(emodb) + len(ravdess) == 7
    assert both.speakers == ["emodb-03", "emodb-08", "ravdess-03"]  # "03" in both corpora, still distinct
    assert both.problems == ravdess.problems and len(both.problems) == 1
    assert both.utterances["text_code"].notna().sum() == 4 and both.utterances["intensity"].notna().sum() == 3
    assert set(both.utterances["corpus"]) == {"emodb", "ravdess"}
    with pytest.raises(CorpusError, match="more than one corpus"):
        combine(emodb, emodb)
    with pytest.raises(CorpusError):
        combine()


def test_describe_and_print(two_corpora):
    emodb, ravdess = two_corpora
    corpus = combine(emodb.add_durations(), ravdess.add_durations())
    tables = describe_corpus(corpus)
    assert tables["labels"].loc["angry", "utterances"] == 2 and tables["labels"]["share"].sum() == pytest.approx(1.0)
    assert tables["speaker_label"].loc["ravdess-03", "total"] == 3
    assert tables["speaker_label"].loc["emodb-08", "happy"] == 1
    assert tables["gender"].loc["male", "speakers"] == 2 and tables["gender"].loc["female", "utterances"] == 2
    assert tables["durations"].loc["all", "total_s"] == pytest.approx(7 * 0.2)
    assert tables["problems"].to_dict("records") == [{"kind": "unlabelled", "count": 1, "error": True}]
    assert "durations" not in describe_corpus(emodb)

    console = Console(file=io.StringIO(), width=200)
    print_corpus_info(corpus, console)
    text = console.file.getvalue()
    assert "emodb+ravdess" in text and "ravdess-03" in text and "junk.wav" in text and "unlabelled" in text
    summary = corpus.summary()
    assert summary["utterances"] == 7 and summary["labels"]["angry"] == 2 and summary["problems"] == {"unlabelled": 1}
    assert summary["duration_s"] == pytest.approx(1.4)


def test_problem_kinds():
    assert Problem("a.wav", "unlabelled: no code").kind == "unlabelled"
    assert Problem("a.wav", "excluded label: fru").is_error is False
    assert Problem("a.wav", "truncated: cut").is_error is True
