"""benchmarks/trend.py and benchmarks/adaptation.py at tiny size: a leave-one-corpus-out run over three tone
corpora, each in a 'voice' of its own (its tones shifted), trained here; and serkit.evaluation.heldout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import write_tone_corpus
from serkit.errors import ConfigError
from serkit.evaluation.heldout import read_run_material
from test_api import TONE_LABELS
from test_bench_robustness import _script

trend = _script("trend")
adaptation = _script("adaptation")


@pytest.fixture(scope="module")
def loco_run(tmp_path_factory):
    from serkit.cli import app

    base = tmp_path_factory.mktemp("trend")
    manifests = []
    for name, shift in (("alpha", 1.0), ("beta", 1.08), ("gamma", 0.93)):
        root = base / name
        root.mkdir()
        freqs = {lab: f * shift for lab, f in TONE_LABELS.items()}
        manifests.append(write_tone_corpus(root, clips_per_label=6, freqs=freqs))
    recipe = {
        "name": "tiny_trend_loco",
        "corpus": [{"name": "csv", "root": str(m), "options": {"name": m.parent.name}} for m in manifests],
        "audio": {"sample_rate": 8000, "duration": 0.5},
        "frontend": {"name": "mfcc", "n_mfcc": 13, "n_fft": 256, "hop_length": 80, "n_mels": 26},
        "pooling": "mean",
        "model": {"name": "logreg", "C": [1.0]},
        "protocol": {"name": "leave_one_corpus_out", "val_size": 0.34},
        "calibration": "temperature",
    }
    path = base / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(base / "run"), "--quiet",
                                      "--cache-dir", str(base / "cache")])
    assert result.exit_code == 0, result.output
    return base / "run", base / "cache"


def test_heldout_material_matches_the_run(loco_run):
    run, cache = loco_run
    material = read_run_material(run, cache_dir=cache)
    assert len(material.folds) == 3 and len(material.X) == len(material.table) == 3 * 3 * 4 * 6
    for fold in material.folds:
        corpus = set(material.corpus_of(fold.split.test))
        assert len(corpus) == 1 and fold.split.name.endswith(f"test={corpus.pop()}")
        # the fold's model file holds the training classes' means, for adaptation
        assert sorted(fold.pipeline.members[0].normalizer.class_mean) == sorted(TONE_LABELS)
    with pytest.raises(ConfigError, match="not a serkit run folder"):
        read_run_material(run / "folds", cache_dir=cache)


def test_trend_benchmark_scores_every_held_out_speaker(loco_run, tmp_path):
    run, cache = loco_run
    out = tmp_path / "trend.md"
    report = trend.main(["--run", f"loco={run}", "--per-share", "2", "--size", "10", "--enrol", "3",
                         "--cache-dir", str(cache), "--out", str(out)])
    loco = report["runs"][0]
    assert sorted(loco["corpora"]) == ["alpha", "beta", "gamma"]
    assert len(loco["speakers"]) == 9 and all(s["sessions"] == 22 for s in loco["speakers"])
    for c in loco["corpora"].values():
        for key in ("strict/mean", "strict/argmax", "adapted/mean", "enrolled/mean"):
            f = c[key]["negative"]
            assert f["rho"] is None or -1 <= f["rho"] <= 1
            assert 0 <= f["mae"] <= 1
            assert set(c[key]["emotions"]) == set(TONE_LABELS)
    md = out.read_text()
    assert "## Targets (issue 26)" in md and "Estimator used by serkit" in md
    assert out.with_suffix(".png").stat().st_size > 1000
    assert json.loads(out.with_suffix(".json").read_text())["runs"][0]["kind"] == "loco"
    # a tone model hears its own tones well: the strict trend follows the truth
    assert np.mean([c["strict/mean"]["negative"]["rho"] for c in loco["corpora"].values()]) > 0.8


def test_adaptation_benchmark_chooses_on_validation_speakers_only(loco_run, tmp_path):
    run, cache = loco_run
    out = tmp_path / "adaptation.md"
    report = adaptation.main(["--run", str(run), "--draws", "1", "--cache-dir", str(cache), "--out", str(out)])
    names = [adaptation.AdaptationConfig(**c).describe() for c in report["candidates"]]
    assert report["chosen"] in names and not report["chosen"].startswith("neutral")
    assert report["calm_reading"] in names
    # the validation speakers come from the training corpora of each fold: every corpus appears among them
    assert {k.split("|")[0] for k in report["validation"]} == {"alpha", "beta", "gamma"}
    assert all(k.split("|")[1] in adaptation.MIXES for k in report["held_out"])
    assert "## Corpora never heard" in out.read_text()
