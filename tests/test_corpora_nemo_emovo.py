"""nEMO and EMOVO loaders, and per-corpus channel choice on the way to training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console
from typer.testing import CliRunner

from serkit.audio import AudioConfig, load_clip, load_clips, read_audio, select_channel
from serkit.cli import app
from serkit.corpora import combine, load_corpus
from serkit.corpora.info import print_corpus_info
from serkit.errors import AudioError, CorpusError
from serkit.training.experiment import table_channels

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"

NEMO_HEADER = "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"


def _speech(seconds: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def write_nemo(root: Path, *, fmt: str) -> Path:
    """A tiny nEMO tree: 2 speakers (leading spaces in data.tsv, as in the original), a row whose file is
    missing, a file no row names and a row with an unknown emotion."""
    samples = root / "samples"
    samples.mkdir(parents=True)
    rows = [
        ("AB0_anger_1.wav", "anger", "Ala ma kota.", "ala ma kota", "AB0", "male", "23"),
        ("AB0_surprised_2.wav", "surprised", "Naprawdę?", "naprawdę", "AB0", "male", "23"),
        ("CD0_sadness_1.wav", "sadness", "Pada deszcz.", "pada deszcz", "CD0", "female", "31"),
        ("CD0_fear_3.wav", "fear", "Kto tam?", "kto tam", "CD0", "female", "31"),
        ("CD0_happiness_4.wav", "happiness", "Hura!", "hura", "CD0", "female", "31"),
        ("CD0_neutral_5.wav", "neutral", "Dzień dobry.", "dzień dobry", "CD0", "female", "31"),
        ("CD0_missing_9.wav", "neutral", "Brak.", "brak", "CD0", "female", "31"),
        ("CD0_boredom_6.wav", "boredom", "Nuda.", "nuda", "CD0", "female", "31"),
    ]
    lines = [NEMO_HEADER]
    for i, (file_id, emotion, raw, norm, speaker, gender, age) in enumerate(rows):
        lines.append(f"{file_id}\t{emotion}\t{raw}\t{norm}\t        {speaker}\t{gender}\t{age}\n")
        if "missing" in file_id:
            continue
        stem = Path(file_id).stem
        if fmt == "wav":
            sf.write(samples / f"{stem}.wav", _speech(0.5, 24000, i), 24000, subtype="PCM_16")
        else:
            sf.write(samples / f"{stem}.ogg", _speech(0.5, 16000, i), 16000, format="OGG", subtype="OPUS")
    ext = "wav" if fmt == "wav" else "ogg"
    sf.write(samples / f"ZZ0_anger_1.{ext}", _speech(0.5, 16000 if ext == "ogg" else 24000, 9),
             16000 if ext == "ogg" else 24000, **({"format": "OGG", "subtype": "OPUS"} if ext == "ogg" else {}))
    (root / "data.tsv").write_text("".join(lines), encoding="utf-8")
    return root


def _stereo(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Two 'microphones': channel 1 is channel 0 delayed by 0.5 ms and at 0.5 of its level."""
    y = _speech(seconds, sr, seed)
    delay = round(0.0005 * sr)
    return np.stack([y, 0.5 * np.concatenate([np.zeros(delay, np.float32), y[:-delay]])], axis=1)


def write_emovo(root: Path, *, sr: int, ext: str) -> Path:
    """A tiny EMOVO tree: 2 speakers x 7 emotions, stereo, plus a badly named file and an unknown emotion."""
    codes = ["dis", "gio", "neu", "pau", "rab", "sor", "tri"]
    for s, speaker in enumerate(["f1", "m2"]):
        (root / speaker).mkdir(parents=True)
        for e, code in enumerate(codes):
            sf.write(root / speaker / f"{code}-{speaker}-b1.{ext}", _stereo(0.3, sr, s * 7 + e), sr, subtype="PCM_16")
    sf.write(root / "f1" / f"xyz-f1-b1.{ext}", _stereo(0.3, sr, 0), sr, subtype="PCM_16")
    sf.write(root / "f1" / f"readme-copy.{ext}", _stereo(0.3, sr, 0), sr, subtype="PCM_16")
    return root


@pytest.mark.parametrize("fmt", ["wav", "ogg"])
def test_nemo_original_wav_and_opus_copy(tmp_path, fmt):
    corpus = load_corpus("nemo", write_nemo(tmp_path / "nemo", fmt=fmt), with_durations=True)
    table = corpus.utterances.set_index("utterance_id")
    assert len(corpus) == 6
    assert corpus.speakers == ["nemo-AB0", "nemo-CD0"]  # leading spaces of data.tsv stripped
    assert corpus.labels == ["angry", "fearful", "happy", "neutral", "sad", "surprised"]
    row = table.loc["nemo/AB0_surprised_2"]
    assert (row["label"], row["raw_label"], row["gender"], row["text"], row["normalized_text"], row["age"]) == (
        "surprised", "surprised", "male", "Naprawdę?", "naprawdę", 23)
    assert row["path"].endswith(f"AB0_surprised_2.{fmt}")
    assert table["sample_rate"].iloc[0] == (24000 if fmt == "wav" else 16000)
    kinds = {Path(p.path).name: p.reason for p in corpus.problems}
    assert kinds["CD0_missing_9.wav"].startswith("missing file")
    assert kinds[f"ZZ0_anger_1.{fmt}"].startswith("unlabelled: not listed")
    assert "boredom" in kinds[f"CD0_boredom_6.{fmt}"]
    # the clips load and resample through the usual path
    y = load_clip(table.loc["nemo/CD0_sadness_1", "path"], AudioConfig(sample_rate=16000))
    assert abs(y.size - 8000) <= 2


def test_nemo_errors_name_the_file(tmp_path):
    with pytest.raises(CorpusError, match="data.tsv"):
        load_corpus("nemo", tmp_path)
    (tmp_path / "data.tsv").write_text("name\tlabel\nx.wav\tanger\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="lacks column"):
        load_corpus("nemo", tmp_path)


@pytest.mark.parametrize(("sr", "ext"), [(48000, "wav"), (16000, "flac")])
def test_emovo_layouts_labels_and_channel(tmp_path, sr, ext):
    root = write_emovo(tmp_path / "emovo", sr=sr, ext=ext)
    corpus = load_corpus("emovo", root)
    table = corpus.utterances.set_index("utterance_id")
    assert len(corpus) == 14 and corpus.speakers == ["emovo-f1", "emovo-m2"]
    assert dict(zip(table["raw_label"], table["label"])) == {
        "dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fearful", "rab": "angry", "sor": "surprised",
        "tri": "sad"}
    assert set(table.loc[table["speaker"] == "emovo-f1", "gender"]) == {"female"}
    assert set(table.loc[table["speaker"] == "emovo-m2", "gender"]) == {"male"}
    assert (table["channel"] == 0).all() and (table["sentence"] == "b1").all()
    reasons = sorted(p.reason.split(":")[0] for p in corpus.problems)
    assert reasons == ["unlabelled", "unlabelled"]

    path = table.loc["emovo/gio-m2-b1", "path"]
    raw, _ = sf.read(path, dtype="float32", always_2d=True)
    cfg = AudioConfig(sample_rate=sr)
    # channel 0 exactly, not the mean (the mean of two delayed microphones comb-filters)
    first = load_clip(path, cfg, channel=table.loc["emovo/gio-m2-b1", "channel"])
    np.testing.assert_allclose(first, raw[:, 0], atol=1e-6)
    assert not np.allclose(first, raw.mean(axis=1), atol=1e-3)
    np.testing.assert_allclose(load_clip(path, cfg, channel=1), raw[:, 1], atol=1e-6)
    np.testing.assert_allclose(load_clip(path, cfg, channel="louder"), raw[:, 0], atol=1e-6)  # channel 1 is at half
    np.testing.assert_allclose(load_clip(path, cfg), raw.mean(axis=1), atol=1e-6)  # no choice: the old downmix

    second = load_corpus("emovo", root, channel=1).utterances
    assert (second["channel"] == 1).all()
    assert (load_corpus("emovo", root, channel="louder").utterances["channel"] == "louder").all()


def test_emovo_rejects_the_mean_and_bad_channels(tmp_path):
    root = write_emovo(tmp_path / "emovo", sr=16000, ext="flac")
    for bad in ("mean", 2, -1, "left"):
        with pytest.raises(CorpusError, match="channel"):
            load_corpus("emovo", root, channel=bad)


def test_read_audio_channel_errors_and_louder(tmp_path):
    stereo = _stereo(0.2, 16000, 1)
    path = tmp_path / "s.wav"
    sf.write(path, stereo[:, ::-1], 16000)  # the louder microphone is now channel 1
    y, _ = read_audio(path, channel="louder")
    np.testing.assert_allclose(y, stereo[:, 0], atol=1e-4)
    with pytest.raises(AudioError, match="2 channel") as info:
        read_audio(path, channel=2)
    assert info.value.path == str(path)
    mono = tmp_path / "m.wav"
    sf.write(mono, stereo[:, 0], 16000)
    for choice in (0, 1, "louder"):  # a mono file among stereo ones (EMOVO has one) is its own channel
        np.testing.assert_array_equal(read_audio(mono, channel=choice)[0], read_audio(mono)[0])
    with pytest.raises(ValueError):
        select_channel(np.zeros((2, 4)), "left")


def test_pooled_table_keeps_channel_per_corpus(tmp_path):
    nemo = load_corpus("nemo", write_nemo(tmp_path / "nemo", fmt="ogg"))
    emovo = load_corpus("emovo", write_emovo(tmp_path / "emovo", sr=16000, ext="flac"))
    table = combine(nemo, emovo).utterances
    channels = table_channels(table)
    batch = load_clips(table["path"].tolist(), AudioConfig(sample_rate=16000), channels=channels, num_workers=1)
    assert not batch.failures and len(batch) == len(table)
    for signal, (_, row) in zip(batch.signals, table.iterrows()):
        raw, _ = sf.read(row["path"], dtype="float32", always_2d=True)
        np.testing.assert_allclose(signal, raw[:, 0], atol=1e-6)  # nEMO is mono; EMOVO takes microphone 0
    with pytest.raises(ValueError, match="one choice per path"):
        load_clips(table["path"].tolist(), AudioConfig(), channels=[0])


def test_corpus_info_shows_the_channel(tmp_path):
    corpus = load_corpus("emovo", write_emovo(tmp_path / "emovo", sr=16000, ext="flac"), with_durations=True)
    console = Console(record=True, width=200)
    print_corpus_info(corpus, console)
    text = console.export_text()
    assert "audio channel read: 0" in text and "14 with 2 channels" in text
    r = CliRunner().invoke(app, ["corpus", "info", str(tmp_path / "emovo"), "--corpus", "emovo"])
    assert r.exit_code == 0, r.output
    output = " ".join(r.output.split())
    assert "14 utterances" in output and "audio channel read: 0" in output
    r = CliRunner().invoke(app, ["corpus", "info", str(write_nemo(tmp_path / "nemo", fmt="ogg")), "--corpus", "nemo"])
    assert r.exit_code == 0, r.output
    output = " ".join(r.output.split())
    assert "6 utterances" in output and "surprised" in output


@pytest.mark.corpus
def test_nemo_and_emovo_shared_copies():
    nemo_root, emovo_root = CORPORA / "nemo", CORPORA / "emovo-16k"
    if not (nemo_root / "data.tsv").is_file() or not emovo_root.is_dir():
        pytest.skip("nEMO / EMOVO not found in ../shared/corpora")
    nemo = load_corpus("nemo", nemo_root)
    assert len(nemo) == 4481 and len(nemo.speakers) == 9 and not [p for p in nemo.problems if p.is_error]
    assert nemo.labels == ["angry", "fearful", "happy", "neutral", "sad", "surprised"]
    counts = nemo.utterances["speaker"].value_counts()
    assert counts["nemo-MP0"] == 256 and counts["nemo-MK0"] == 450
    assert nemo.utterances["text"].notna().all() and set(nemo.utterances["gender"]) == {"male", "female"}

    emovo = load_corpus("emovo", emovo_root, with_durations=True)
    assert len(emovo) == 588 and len(emovo.speakers) == 6 and not emovo.problems
    assert emovo.labels == ["angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]
    assert (emovo.utterances["channel"] == 0).all()
    assert emovo.utterances["channels"].value_counts().to_dict() == {2: 587, 1: 1}  # rab-f1-b1 is mono
    assert (emovo.utterances.groupby("label").size() == 84).all()
