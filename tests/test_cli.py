"""Command-line entry points on bad input: clear errors that name the file or field, exit code 2."""

from __future__ import annotations

import numpy as np
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
    r = runner.invoke(app, ["corpus", "info", str(tmp_path / "nowhere"), "--corpus", "emodb"])
    assert r.exit_code == 2 and "nowhere" in r.output
    r = runner.invoke(app, ["corpus", "info", str(tmp_path), "--corpus", "no-such-corpus"])
    assert r.exit_code == 2 and "no-such-corpus" in r.output
    r = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert r.exit_code == 2 and "not a serkit run folder" in r.output
    r = runner.invoke(app, ["predict", str(tmp_path / "model.pt"), str(tmp_path / "a.wav")])
    assert r.exit_code == 2 and "model.pt" in r.output
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"garbage")
    r = runner.invoke(app, ["predict", str(fake), str(tmp_path / "a.wav")])
    assert r.exit_code == 2 and "fake.pt" in r.output and "serkit model" in r.output
