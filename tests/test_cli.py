"""Command-line entry points on bad input: clear errors that name the file or field, exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from serkit.cli import app

runner = CliRunner()


def test_models_and_corpus_list():
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0 and "mountzouris2023_cnn_atn" in r.output and "svm" in r.output
    r = runner.invoke(app, ["corpus", "list"])
    assert r.exit_code == 0 and "emodb" in r.output and "iemocap" in r.output


def test_corpus_info_real_emodb(emodb_root):
    r = runner.invoke(app, ["corpus", "info", str(emodb_root), "--corpus", "emodb"])
    assert r.exit_code == 0, r.output
    for word in ("angry", "boredom", "emodb-03", "535"):
        assert word in r.output


def test_corpus_info_reports_broken_files(tmp_path):
    root = tmp_path / "corpus"
    for label in ("angry", "sad"):
        (root / label).mkdir(parents=True)
        sf.write(root / label / "ok.wav", np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), 8000)
    (root / "sad" / "empty.wav").write_bytes(b"")
    (root / "angry" / "text.wav").write_text("not audio")
    r = runner.invoke(app, ["corpus", "info", str(root), "--corpus", "folder", "--check-audio"])
    assert r.exit_code == 0, r.output
    # Rich folds long paths over several lines of its table: compare without the layout.
    flat = "".join(ch for ch in r.output if not ch.isspace() and ch not in "│┃")
    assert "sad/empty.wav" in flat and "angry/text.wav" in flat
    assert "empty:filehas0bytes" in flat and "unreadable" in flat


def test_errors_name_what_is_wrong(tmp_path):
    r = runner.invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "missing.yaml" in r.output and "not found" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    r = runner.invoke(app, ["train", str(bad)])
    assert r.exit_code == 2 and "not valid YAML" in r.output
    twice = tmp_path / "twice.yaml"  # a key given twice is refused, not silently overwritten by the last one
    twice.write_text("name: baseline\ndescription: x\nname: other\nmodel: {name: logreg}\n")
    r = runner.invoke(app, ["train", str(twice)])
    assert r.exit_code == 2 and "'name' given twice (first on line 1)" in " ".join(r.output.split())
    r = runner.invoke(app, ["corpus", "info", str(tmp_path / "nowhere"), "--corpus", "emodb"])
    assert r.exit_code == 2 and "nowhere" in r.output
    r = runner.invoke(app, ["corpus", "info", str(tmp_path), "--corpus", "no-such-corpus"])
    assert r.exit_code == 2 and "no-such-corpus" in r.output
    r = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert r.exit_code == 2 and "not a serkit run folder" in r.output
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "model.pt"), str(tmp_path / "a.wav")])
    assert r.exit_code == 2 and "model.pt" in r.output
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"garbage")
    r = runner.invoke(app, ["predict", "--model", str(fake), str(tmp_path / "a.wav")])
    assert r.exit_code == 2 and "fake.pt" in r.output and "serkit model" in r.output


def _tone_file(path, seconds: float = 0.8, freq: float = 450.0, sr: int = 16000, format: str = "WAV"):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format=format)
    return path


def test_model_is_an_explicit_option_and_an_unusable_one_is_an_error(tmp_path, tiny_model_path):
    """Issue 15.2: a mistyped or unusable model never falls back to the default model; nothing is predicted."""
    clip = _tone_file(tmp_path / "a.wav")
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "runs" / "nonexist"), str(clip)])
    assert r.exit_code == 2 and "nonexist" in r.output and "no such model" in r.output
    assert "serkit predict" not in r.output  # no table
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"junk")
    for model_like in (onnx, tiny_model_path, tmp_path / "runs" / "nonexist.pt"):
        r = runner.invoke(app, ["predict", str(model_like), str(clip)])
        assert r.exit_code == 2 and "a model, not audio" in r.output and "--model" in r.output, r.output
        assert "serkit predict" not in r.output
    run = tmp_path / "run"
    (run / "folds" / "f1").mkdir(parents=True)
    (run / "folds" / "f1" / "model.pt").write_bytes(tiny_model_path.read_bytes())
    r = runner.invoke(app, ["predict", str(run), str(clip)])
    assert r.exit_code == 2 and "a model, not audio" in r.output
    r = runner.invoke(app, ["predict", "--model", str(run), str(clip), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["predictions"][0]["label"] == "angry"
    r = runner.invoke(app, ["predict", "--model", str(onnx), str(clip)])
    assert r.exit_code == 2 and "model.onnx" in r.output and "serkit predict" not in r.output
    r = runner.invoke(app, ["analyze", str(clip), "--model", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "nope.pt" in r.output and not (tmp_path / "x").exists()
    r = runner.invoke(app, ["export", "--model", str(tmp_path / "nope.pt")])
    assert r.exit_code == 2 and "nope.pt" in r.output


def test_predict_covers_a_long_file_and_lists_its_windows(tmp_path, tiny_model_path):
    """Issue 15.1 and 15.5 through the command line: windows in --json, too-short files as failures."""
    t = np.arange(6 * 16000) / 16000
    y = np.concatenate([0.3 * np.sin(2 * np.pi * 200.0 * t[:14400]), 0.3 * np.sin(2 * np.pi * 450.0 * t)])
    sf.write(tmp_path / "long.wav", y.astype(np.float32), 16000)
    short = _tone_file(tmp_path / "short.wav", 0.2)
    r = runner.invoke(app, ["predict", "--model", str(tiny_model_path), "--vad", "energy", "--json",
                            str(tmp_path / "long.wav"), str(short)])
    assert r.exit_code == 1
    payload = json.loads(r.stdout)
    (pred,) = payload["predictions"]
    assert pred["label"] == "angry" and len(pred["windows"]) >= 6
    assert payload["failures"] == [{"path": str(short), "reason": "too short: 0.2 s, needs 0.5 s"}]
    r = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    assert "windows" in r.output and "whole" in r.output


def test_min_confidence_answers_uncertain_below_it(tmp_path, tiny_model_path):
    clip = _tone_file(tmp_path / "a.wav", freq=320.0)  # between two classes' tones: not a sure answer
    args = ["predict", "--model", str(tiny_model_path), "--json", str(clip)]
    r = runner.invoke(app, args)
    (pred,) = json.loads(r.stdout)["predictions"]
    assert pred["label"] != "uncertain" and pred["confidence"] < 0.999
    r = runner.invoke(app, [*args, "--min-confidence", str(pred["confidence"] + 1e-6)])
    assert r.exit_code == 0, r.output
    (abstained,) = json.loads(r.stdout)["predictions"]
    assert abstained["label"] == "uncertain" and abstained["confidence"] == pred["confidence"]
    r = runner.invoke(app, [*args, "--min-confidence", str(pred["confidence"] - 1e-6)])
    assert json.loads(r.stdout)["predictions"][0]["label"] == pred["label"]


def test_folders_of_audio_are_accepted_and_a_folder_for_a_file_is_one_line(tmp_path, tiny_model_path):
    """Issue 15.6: predict takes folders (recursively, audio by content); train on a folder is a one-line error."""
    folder = tmp_path / "clips"
    (folder / "deeper").mkdir(parents=True)
    _tone_file(folder / "a.wav")
    _tone_file(folder / "deeper" / "recording", format="FLAC")  # no extension: audio by its content
    (folder / "notes.txt").write_text("not audio, not a clip")
    (folder / ".hidden.wav").write_bytes(b"")
    r = runner.invoke(app, ["predict", "--model", str(tiny_model_path), str(folder), "--json"])
    assert r.exit_code == 0, r.output
    paths = [p["path"] for p in json.loads(r.stdout)["predictions"]]
    assert paths == [str(folder / "a.wav"), str(folder / "deeper" / "recording")]
    empty = tmp_path / "nothing"
    empty.mkdir()
    r = runner.invoke(app, ["predict", "--model", str(tiny_model_path), str(empty)])
    assert r.exit_code == 2 and "no audio files in this folder" in r.output

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    r = runner.invoke(app, ["train", str(recipes)])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)  # no traceback
    assert "is a folder" in r.output and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["predict", "--model", str(tiny_model_path), str(folder / "a.wav"), "--out", str(empty)])
    assert r.exit_code == 2 and "is a folder" in r.output


def test_corpus_info_and_training_leave_broken_files_out_by_default(tmp_path):
    """Issue 15.8: an empty file, a text file named .wav and a 300-byte truncated WAV are reported by name with
    the reason, without --check-audio, and are neither counted nor given to training."""
    from serkit.recipe import Recipe
    from serkit.training.experiment import load_recipe_corpus

    root = tmp_path / "corpus"
    for label in ("angry", "sad"):
        (root / label).mkdir(parents=True)
        sf.write(root / label / "ok.wav", np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), 8000)
    (root / "sad" / "empty.wav").write_bytes(b"")
    (root / "angry" / "text.wav").write_text("not audio")
    (root / "angry" / "cut.wav").write_bytes((root / "angry" / "ok.wav").read_bytes()[:300])
    r = runner.invoke(app, ["corpus", "info", str(root), "--corpus", "folder"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "2 utterances" in r.output and "No problems" not in r.output
    flat = "".join(ch for ch in r.output if not ch.isspace() and ch not in "│┃")
    for name, reason in (("sad/empty.wav", "empty"), ("angry/text.wav", "unreadable"), ("angry/cut.wav", "truncated")):
        assert f"{name}{reason}:" in flat, (name, flat)
    recipe = Recipe.from_dict({"name": "broken", "corpus": {"name": "folder", "root": str(root)},
                               "frontend": {"name": "mfcc"}, "model": {"name": "svm"}})
    corpus = load_recipe_corpus(recipe)
    assert len(corpus) == 2 and sorted(p.kind for p in corpus.problems) == ["empty", "truncated", "unreadable"]


def test_small_rough_edges_of_the_first_hour(tmp_path, tiny_model):
    """Issue 15.9: --version, help without "<bool>" and with a plain usage line, "empty file", arrays named by
    position, plots of CJK file names without glyph warnings."""
    import warnings

    from serkit import __version__
    from serkit.errors import AudioError
    from serkit.inference.analysis import analyze_signal
    from serkit.inference.report import plot_timeline
    from serkit.inference.stream import AnalysisConfig

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"serkit {__version__}"
    for command in ("predict", "analyze", "train", "export", "corpus info", "evaluate", "fuse"):
        r = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0 and "<bool>" not in r.output, command
    usage = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200"}).output
    assert "predict [OPTIONS] FILES..." in usage and "{" not in usage.split("\n\n")[0]

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: empty file"):
        tiny_model.predict(empty)
    ok = np.sin(np.arange(16000) / 5).astype(np.float32)
    with pytest.raises(AudioError) as info:
        tiny_model.predict_proba([ok, np.zeros(16000, np.float32), np.full(10, np.nan, np.float32)], sample_rate=16000)
    assert str(info.value).startswith("2 of 3 inputs failed: <array 1>: silent") and "<array 2>: " in str(info.value)
    with pytest.raises(AudioError, match=r"^take-3: stream chunk"):
        analyze_signal(np.full(100, np.nan, np.float32), 16000, tiny_model, AnalysisConfig(vad="energy"), name="take-3")

    analysis = analyze_signal(ok, 16000, tiny_model, AnalysisConfig(vad="energy"), name="面接の録音.wav")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_timeline(analysis, tmp_path / "cjk.png")
    assert (tmp_path / "cjk.png").stat().st_size > 0
