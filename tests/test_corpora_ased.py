"""The ASED loader: the release's layout and quirks, and the shared copy."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from serkit.corpora import load_corpus
from serkit.errors import CorpusError
from test_corpora_nemo_emovo import CORPORA, _speech

FOLDERS = {"n": "01Neutral", "f": "02Fearful", "h": "03Happy", "s": "04Sad", "a": "05Angry"}


def write_ased(root, ext: str = "wav"):
    """Two speakers (07 with both gender codes, as five of the release's are), every emotion, sentences 01 and 03,
    one upper-case name, one second repetition holding the first's audio, one name that is not ASED's."""
    for letter, folder in FOLDERS.items():
        (root / folder).mkdir(parents=True)
    number = {"n": 1, "f": 2, "h": 3, "s": 4, "a": 5}
    for k, (letter, folder) in enumerate(FOLDERS.items()):
        for speaker, gender in (("07", "02"), ("12", "01")):
            for sentence in ("01", "03"):
                y = _speech(1.0, 16000, seed=k * 10 + int(speaker) + int(sentence))
                name = f"{letter}{number[letter]}-{sentence}-01-{gender}-{speaker}"
                sf.write(root / folder / f"{name}.{ext}", y, 16000)
    sf.write(root / "04Sad" / f"S4-01-02-01-12.{ext}", _speech(1.0, 16000, seed=99), 16000)  # upper case
    sf.write(root / "02Fearful" / f"f2-01-01-01-07.{ext}", _speech(1.0, 16000, seed=98), 16000)  # 07 as female
    # the second take holds the first's audio, as four of the release's do
    shutil.copyfile(root / "03Happy" / f"h3-03-01-02-07.{ext}", root / "03Happy" / f"h3-03-02-02-07.{ext}")
    sf.write(root / "01Neutral" / f"neutral_07.{ext}", _speech(1.0, 16000, seed=97), 16000)
    return root


@pytest.mark.parametrize("ext", ["wav", "ogg"])
def test_ased_layout_labels_and_quirks(tmp_path, ext):
    corpus = load_corpus("ased", write_ased(tmp_path / "ased", ext))
    table = corpus.utterances.set_index("utterance_id")
    assert corpus.labels == ["angry", "fearful", "happy", "neutral", "sad"]
    assert corpus.speakers == ["ased-07", "ased-12"]
    # speaker 07 is male in 10 of its 11 files: male in every row, whatever one file's gender code says
    assert set(table.loc[table["speaker"] == "ased-07", "gender"]) == {"male"}
    assert set(table.loc[table["speaker"] == "ased-12", "gender"]) == {"female"}
    assert table.loc["ased/s4-01-02-01-12", "label"] == "sad"  # the upper-case name, matched
    assert table.loc["ased/a5-03-01-01-12", ["sentence", "repetition", "raw_label"]].tolist() == ["03", "01", "a5"]
    kinds = {p.path.rsplit("/", 1)[-1]: p.kind for p in corpus.problems}
    assert kinds == {f"h3-03-02-02-07.{ext}": "duplicate", f"neutral_07.{ext}": "unlabelled"}
    assert len(corpus) == 2 * 5 * 2 + 2
    common = load_corpus("ased", tmp_path / "ased", sentences="common")
    assert set(common.utterances["sentence"]) == {"01"} and len(common) == 2 * 5 + 2
    assert sum(p.kind == "excluded" for p in common.problems) == 2 * 5 + 1  # the duplicate is sentence 03 too
    with pytest.raises(CorpusError, match="sentences must be 'all' or 'common'"):
        load_corpus("ased", tmp_path / "ased", sentences="some")


def test_ased_errors_name_the_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no usable utterances"):
        load_corpus("ased", tmp_path / "empty")


@pytest.mark.corpus
def test_ased_shared_copy():
    root = CORPORA / "ased"
    if not root.is_dir():
        pytest.skip("ASED not found in ../shared/corpora")
    corpus = load_corpus("ased", root)
    assert len(corpus) == 2470 and len(corpus.speakers) == 65
    assert [p.kind for p in corpus.problems] == ["duplicate"] * 4  # the release's four repeated takes
    assert corpus.labels == ["angry", "fearful", "happy", "neutral", "sad"]
    genders = corpus.utterances.groupby("speaker")["gender"].first().value_counts().to_dict()
    assert genders == {"male": 40, "female": 25}  # the authors' 40 male and 25 female volunteers
    assert np.isin(corpus.utterances["sentence"], ["01", "02", "03", "04", "05", "06", "07"]).all()
