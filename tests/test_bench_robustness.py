"""benchmarks/robustness.py and benchmarks/loco_table.py at tiny size: tone corpora, the tiny tone model, tiny
leave-one-corpus-out runs trained here."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import REPO, tone, write_tone_corpus
from test_api import TONE_LABELS

SR = 16000


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


robustness = _script("robustness")
loco_table = _script("loco_table")


def _power(y: np.ndarray) -> float:
    return float(np.mean(np.square(y, dtype=np.float64)))


@pytest.fixture(scope="module")
def tone_manifest(tmp_path_factory) -> Path:
    """3 speakers (csv-s1..s3) x the tiny model's 4 classes x 2 clips of half-second tones."""
    return write_tone_corpus(tmp_path_factory.mktemp("tones"), clips_per_label=2, freqs=TONE_LABELS)


# -- degradations ----------------------------------------------------------------------------------------------
def test_noise_rows_mix_at_the_snr_they_name():
    y = tone(1.0, SR, 450.0, amp=0.3)
    degrader = robustness.Degrader(SR, seed=3, babble_pool={"b": [tone(0.7, SR, 500.0, seed=1)],
                                                            "c": [tone(1.3, SR, 800.0, seed=2)]})
    noise_rows = [c for c in robustness.conditions() if c.group == "noise"]
    assert {(c.noise, c.snr_db) for c in noise_rows} == {(n, s) for n in ("white", "pink", "babble", "talker")
                                                        for s in (20.0, 10.0, 5.0)}
    for cond in noise_rows:
        out, _ = degrader.apply(cond, y, "corpus/clip1", "a", ["a", "b", "c"])
        assert out.shape == y.shape
        snr = 10 * np.log10(_power(y) / _power(out.astype(np.float64) - y))
        assert snr == pytest.approx(cond.snr_db, abs=0.01), cond.key
        assert f"SNR {cond.snr_db:g} dB" in cond.label
        # seeded: the same clip gets the same noise, another clip other noise
        np.testing.assert_array_equal(out, degrader.apply(cond, y, "corpus/clip1", "a", ["a", "b", "c"])[0])
        assert not np.array_equal(out, degrader.apply(cond, y, "corpus/clip2", "a", ["a", "b", "c"])[0])


def test_babble_comes_from_other_speakers_only():
    y = tone(1.0, SR, 450.0, amp=0.3)
    own = tone(1.0, SR, 3000.0, seed=5)  # the clip's own speaker, at a pitch no other speaker has
    degrader = robustness.Degrader(SR, babble_pool={"a": [own], "b": [tone(1.0, SR, 500.0, seed=1)],
                                                    "c": [tone(1.0, SR, 800.0, seed=2)]})
    cond = next(c for c in robustness.conditions() if c.key == "babble_snr5")
    noise = degrader.apply(cond, y, "x/1", "a", ["a", "b", "c"])[0] - y
    spectrum = np.abs(np.fft.rfft(noise))
    freqs = np.fft.rfftfreq(noise.size, 1 / SR)

    def band(f: float) -> float:
        return spectrum[(freqs > f - 50) & (freqs < f + 50)].max()

    assert band(500.0) > 100 * band(3000.0) and band(800.0) > 100 * band(3000.0)
    with pytest.raises(ValueError, match="babble needs another held-out speaker"):
        degrader.apply(cond, y, "x/1", "a", ["a"])
    # one competing talker: a single voice, never the clip's own speaker (with "a" and "b" to choose from, every
    # one of 20 clips must hear b alone), and each of the other speakers in turn when there are several
    talker = next(c for c in robustness.conditions() if c.key == "talker_snr5")

    def heard(out: np.ndarray) -> dict[float, float]:
        spectrum = np.abs(np.fft.rfft(out - y))
        return {f: spectrum[(freqs > f - 50) & (freqs < f + 50)].max() for f in (500.0, 800.0, 3000.0)}

    for k in range(20):
        out, note = degrader.apply(talker, y, f"x/{k}", "a", ["a", "b"])
        h = heard(out)
        assert note == "1 talker(s)" and h[500.0] > 100 * h[3000.0] and h[500.0] > 100 * h[800.0]
    voices = set()
    for k in range(20):
        h = heard(degrader.apply(talker, y, f"x/{k}", "a", ["a", "b", "c"])[0])
        assert h[3000.0] * 100 < max(h[500.0], h[800.0])
        assert min(h[500.0], h[800.0]) * 100 < max(h[500.0], h[800.0])  # one voice, not both
        voices.add(500.0 if h[500.0] > h[800.0] else 800.0)
    assert voices == {500.0, 800.0}


def test_clip_lengths_crop_the_centre_or_loop():
    y = np.arange(10, dtype=np.float32)
    cropped, how = robustness.fit_length(y, 4)
    assert how == "cropped" and cropped.tolist() == [3, 4, 5, 6]
    looped, how = robustness.fit_length(y, 25)
    assert how == "looped" and looped.tolist() == list(range(10)) * 2 + [0, 1, 2, 3, 4]
    cond = next(c for c in robustness.conditions() if c.key == "length_0.5s")
    out, how = robustness.Degrader(SR).apply(cond, tone(2.0, SR), "x/1")
    assert out.size == SR // 2 and how == "cropped"


# -- held-out speakers ------------------------------------------------------------------------------------------
def test_held_out_speakers_from_option_card_or_run_folder(tmp_path):
    tables = {"emodb": pd.DataFrame({"speaker": ["emodb-03", "emodb-08"]}),
              "nemo": pd.DataFrame({"speaker": ["nemo-SB0", "nemo-SB1"]})}
    chosen, source = robustness.held_out_speakers("emodb-03,nemo", None, None, tables)
    assert chosen == {"emodb-03", "nemo-SB0", "nemo-SB1"} and "--speakers" in source
    chosen, source = robustness.held_out_speakers(None, {"held_out_speakers": {"emodb": ["emodb-08"]}}, None,
                                                  tables)
    assert chosen == {"emodb-08"} and "model card" in source
    assert robustness.held_out_speakers(None, {"held_out_corpora": ["nemo"]}, None, tables)[0] == {"nemo-SB0",
                                                                                                   "nemo-SB1"}
    run = tmp_path / "run"
    (run / "folds" / "fold02-test=nemo").mkdir(parents=True)
    pd.DataFrame([{"name": "fold01-test=emodb", "tag": "SI", "test_speakers": "emodb-03,emodb-08"},
                  {"name": "fold02-test=nemo", "tag": "SI", "test_speakers": "nemo-SB0,nemo-SB1"}]
                 ).to_csv(run / "splits.csv", index=False)
    chosen, source = robustness.held_out_speakers(None, None, str(run / "folds" / "fold02-test=nemo" / "model.pt"),
                                                  tables)
    assert chosen == {"nemo-SB0", "nemo-SB1"} and "fold02-test=nemo" in source
    with pytest.raises(SystemExit, match="is neither a speaker"):
        robustness.held_out_speakers("emodb-99", None, None, tables)


def test_refuses_a_model_that_names_no_held_out_speakers(tiny_model_path, tone_manifest, tmp_path):
    out = tmp_path / "card.md"
    with pytest.raises(SystemExit, match="not a robustness result. Pass --speakers"):
        robustness.main(["--model", str(tiny_model_path), "--corpus", f"csv={tone_manifest}", "--out", str(out)])
    assert not out.exists() and not out.with_suffix(".json").exists()


# -- the whole card ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_card_clean_row_is_the_models_ua_and_files_are_written(tiny_model, tiny_model_path, tone_manifest,
                                                                tmp_path):
    from sklearn.metrics import balanced_accuracy_score

    out = tmp_path / "bench" / "robustness.md"
    argv = ["--model", str(tiny_model_path), "--corpus", f"csv={tone_manifest}", "--speakers", "csv-s2,csv-s3",
            "--vad", "energy", "--batch-size", "5", "--seed", "7", "--out", str(out)]
    report = robustness.main(argv)
    manifest = pd.read_csv(tone_manifest)
    held = manifest[manifest["speaker"].isin(["s2", "s3"])]
    proba = tiny_model.predict_proba([str(tone_manifest.parent / p) for p in held["path"]])
    direct = balanced_accuracy_score(held["label"], [tiny_model.labels[i] for i in proba.argmax(1)])
    rows = {c["key"]: c for c in report["conditions"]}
    assert rows["clean"]["results"]["csv"]["ua"] == pytest.approx(direct, abs=1e-12)
    assert rows["clean"]["results"]["csv"]["n"] == len(held) == 16
    assert set(rows) == {c.key for c in robustness.conditions()}
    # the drops are against clean, in points
    white = rows["white_snr10"]["results"]["csv"]
    assert white["drop"] == pytest.approx(100 * (white["ua"] - rows["clean"]["results"]["csv"]["ua"]))
    assert report["speakers"] == ["csv-s2", "csv-s3"]

    md = out.read_text()
    saved = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saved["argv"] == argv and "--speakers csv-s2,csv-s3" in saved["command"]
    assert saved["seed"] == 7 and saved["corpora"]["csv"]["n_clips"] == 16
    # the model file measured is named by its sha256, so that a model card quotes these figures for it only
    import hashlib

    assert saved["model_sha256"] == hashlib.sha256(tiny_model_path.read_bytes()).hexdigest()
    clean_line = next(line for line in md.splitlines() if line.startswith("| clean |"))
    assert clean_line.split("|")[2].strip() == f"{direct * 100:.1f}"
    white_line = next(line for line in md.splitlines() if line.startswith("| white noise, SNR 10 dB |"))
    assert f"{white['ua'] * 100:.1f} ({white['drop']:+.1f})" in white_line
    assert "csv-s2, csv-s3" in md and "Seed 7" in md and "RT60" in md and "kbit/s" in md
    assert len(saved["rooms"]) == 3 and all(r["rt60_measured_s"] for r in saved["rooms"].values())

    # a rerun gives the same numbers
    again = robustness.main(argv[:-1] + [str(tmp_path / "again.md")])
    assert [c["results"] for c in again["conditions"]] == [c["results"] for c in report["conditions"]]


@pytest.fixture(scope="module")
def speaker_fold_run(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, manifest): eGeMAPS + SVM in 2 speaker folds over 4 tone speakers (each fold tests 2 of them,
    trains on 1)."""
    import soundfile as sf

    from serkit.cli import app

    base = tmp_path_factory.mktemp("folds")
    rows = []
    for s, speaker in enumerate(["s1", "s2", "s3", "s4"]):
        for label, freq in TONE_LABELS.items():
            for k in range(3):  # the SVM's 3-fold calibration needs 3 clips of a class
                name = f"{speaker}_{label}_{k}.wav"
                sf.write(base / name, tone(0.6, 8000, freq * (1 + 0.02 * s + 0.01 * k), amp=0.3, seed=10 * s + k),
                         8000)
                rows.append({"path": name, "label": label, "speaker": speaker})
    pd.DataFrame(rows).to_csv(base / "manifest.csv", index=False)
    recipe = {"name": "tiny_folds", "corpus": {"name": "csv", "root": str(base / "manifest.csv")},
              "audio": {"sample_rate": 8000}, "frontend": {"name": "egemaps"}, "model": {"name": "svm", "C": [1.0]},
              "protocol": {"name": "speaker_folds", "speaker_groups": 2, "n_val_speakers": 1, "seeds": [0]}}
    (base / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["train", str(base / "recipe.yaml"), "--out", str(base / "run"), "--quiet",
                                      "--cache-dir", str(base / "cache")])
    assert result.exit_code == 0, result.output
    return base / "run", base / "manifest.csv"


@pytest.mark.slow
def test_run_mode_pools_each_fold_model_on_its_own_test_speakers(speaker_fold_run, tmp_path):
    from sklearn.metrics import balanced_accuracy_score

    from serkit.inference import load_model

    run, manifest = speaker_fold_run
    out = tmp_path / "folds.md"
    report = robustness.main(["--run", str(run), "--corpus", f"csv={manifest}", "--conditions",
                              "white_snr10,babble_snr10", "--vad", "energy", "--out", str(out)])
    assert [c["key"] for c in report["conditions"]] == ["clean", "white_snr10", "babble_snr10"]
    members = report["members"]
    assert len(members) == 2 and all(m["fold"] and m["model_sha256"] for m in members)
    tested = [set(m["speakers"]) for m in members]
    assert tested[0].isdisjoint(tested[1]) and tested[0] | tested[1] == {f"csv-s{k}" for k in range(1, 5)}
    # the clean row is the UA of every fold model's answers on its own test speakers, pooled
    table = pd.read_csv(manifest)
    true, pred = [], []
    for m in members:
        model = load_model(m["model"], vad="energy")
        clips = table[("csv-" + table["speaker"]).isin(m["speakers"])]
        proba = model.predict_proba([str(manifest.parent / p) for p in clips["path"]])
        true += clips["label"].tolist()
        pred += [model.labels[i] for i in proba.argmax(1)]
    clean = report["conditions"][0]["results"]["csv"]
    assert clean["n"] == len(table) == 48
    assert clean["ua"] == pytest.approx(balanced_accuracy_score(true, pred), abs=1e-12)
    # babble comes from the other test speakers of the same fold: every fold has one
    assert report["conditions"][2]["results"]["csv"]["n"] == 48
    assert report["model_sha256"] is None and report["run"] == str(run)
    md = out.read_text()
    assert "pooled per corpus over the 2 folds" in md and "same fold" in md and "babble -" in md.replace("+", "-")
    assert "Rooms" not in md and "RT60" not in md  # reverberation was not asked for
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_mode_refuses_model_and_speakers_and_unknown_conditions(tmp_path):
    with pytest.raises(SystemExit):
        robustness.parse_args(["--run", str(tmp_path), "--model", "default", "--corpus", "csv=x"])
    with pytest.raises(SystemExit, match="no splits.csv"):
        robustness.run_folds(tmp_path)
    with pytest.raises(SystemExit, match="unknown babble_snr11"):
        robustness.select_conditions("babble_snr11")
    assert [c.key for c in robustness.select_conditions("reverb,telephone")] == [
        "clean", "reverb_small", "reverb_medium", "reverb_large", "telephone"]


# -- LOCO table ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loco_runs(tmp_path_factory) -> dict[str, Path]:
    """Two finished LOCO runs over three tone corpora: eGeMAPS + SVM with one seed, and with two seeds."""
    from serkit.cli import app

    base = tmp_path_factory.mktemp("loco")
    manifests = []
    for name in ("alpha", "beta", "gamma"):
        root = base / name
        root.mkdir()
        manifests.append(write_tone_corpus(root, clips_per_label=2))
    runs = {}
    for label, seeds in (("one_seed", [0]), ("two_seeds", [0, 1])):
        recipe = {
            "name": f"tiny_loco_{label}",
            "corpus": [{"name": "csv", "root": str(m), "options": {"name": m.parent.name}} for m in manifests],
            "audio": {"sample_rate": 8000},
            "frontend": {"name": "egemaps"},
            "model": {"name": "svm", "C": [1.0]},
            "protocol": {"name": "leave_one_corpus_out", "val_size": 0.34, "seeds": seeds},
        }
        path = base / f"{label}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        result = CliRunner().invoke(app, ["train", str(path), "--out", str(base / label), "--quiet",
                                          "--cache-dir", str(base / "cache")])
        assert result.exit_code == 0, result.output
        runs[label] = base / label
    return runs


def _table_rows(md: str, section: str) -> dict[str, list[str]]:
    """The first table after ``## section``: first cell -> the other cells."""
    text = md.split(f"## {section}\n", 1)[1]
    rows = {}
    for line in text.splitlines():
        if line.startswith("## "):
            break
        if line.startswith("| ") and not line.startswith("| held-out") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("*")] = [c.strip("*") for c in cells[1:]]
    return rows


@pytest.mark.slow
def test_loco_table_rows_and_mean(loco_runs, tmp_path):
    out = tmp_path / "results" / "loco.md"
    runs = loco_table.main([str(loco_runs["one_seed"]), f"two seeds={loco_runs['two_seeds']}", "--out", str(out)])
    md = out.read_text()
    saved = json.loads(out.with_suffix(".json").read_text())
    assert [r["label"] for r in saved["runs"]] == ["tiny_loco_one_seed", "two seeds"]

    results = pd.read_csv(loco_runs["one_seed"] / "results.csv")
    rows = _table_rows(md, "tiny_loco_one_seed")
    assert set(rows) == {"alpha", "beta", "gamma", "mean"}
    for corpus in ("alpha", "beta", "gamma"):
        fold = results[results["fold"] == next(f for f in results["fold"] if f.endswith(f"test={corpus}"))]
        assert rows[corpus][0] == f"{fold['ua'].iloc[0] * 100:.1f}"
        assert rows[corpus][3] == str(fold["n_test"].iloc[0])
    per_corpus = [r["ua"] for r in runs[0]["rows"]]
    assert runs[0]["mean"]["ua"] == pytest.approx(np.mean(per_corpus))
    assert rows["mean"][0] == f"{np.mean(per_corpus) * 100:.1f}"
    for metric in ("wa", "macro_f1"):
        assert runs[0]["mean"][metric] == pytest.approx(results[metric].mean())

    # two seeds: each corpus is the mean over its seeds' folds, with their std
    two = pd.read_csv(loco_runs["two_seeds"] / "results.csv")
    alpha = two[two["fold"].str.contains("test=alpha")]
    assert len(alpha) == 2
    row = next(r for r in runs[1]["rows"] if r["corpus"] == "alpha")
    assert row["ua"] == pytest.approx(alpha["ua"].mean()) and row["seeds"] == [0, 1]
    assert row["ua_std"] == pytest.approx(alpha["ua"].std(ddof=1))
    assert runs[1]["mean"]["ua"] == pytest.approx(np.mean([r["ua"] for r in runs[1]["rows"]]))

    below = [r["corpus"] for r in runs[0]["rows"] if r["ua"] < 0.45]
    assert f"Below 45 % UA: {', '.join(below) if below else 'none'}." in md
    assert "leave_one_corpus_out (SI), seeds 0, 1." in md
    comparison = _table_rows(md, "UA by run")
    delta = (runs[1]["mean"]["ua"] - runs[0]["mean"]["ua"]) * 100
    assert comparison["mean"][1].endswith(f"({delta:+.1f})")


def test_loco_table_refuses_other_protocols_and_unfinished_runs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SystemExit, match="no summary.json"):
        loco_table.main([str(run), "--out", str(tmp_path / "t.md")])
    (run / "summary.json").write_text(json.dumps({"protocol": "speaker_folds"}))
    pd.DataFrame([{"fold": "fold01", "seed": 0, "ua": 0.5, "wa": 0.5, "macro_f1": 0.5}]).to_csv(
        run / "results.csv", index=False)
    with pytest.raises(SystemExit, match="protocol is 'speaker_folds', not leave_one_corpus_out"):
        loco_table.main([str(run), "--out", str(tmp_path / "t.md")])
    assert not (tmp_path / "t.md").exists()
    assert re.match(loco_table.FOLD_NAME, "fold03-test=emovo-seed1")["corpus"] == "emovo"


def test_loco_table_labels_may_hold_an_equals_sign_and_run_past_a_path_length(tmp_path):
    run = tmp_path / "run=with-equals"
    run.mkdir()
    assert loco_table._label_and_run(str(run)) == ("", str(run))  # an existing folder: no label
    assert loco_table._label_and_run("trimmed (--set audio.trim_silence_db=30)=runs/x") == (
        "trimmed (--set audio.trim_silence_db=30)", "runs/x")
    long_label = "a label far longer than any file name may be " * 10
    assert loco_table._label_and_run(f"{long_label}=runs/x") == (long_label, "runs/x")


def test_loco_table_collapse_is_the_largest_share_over_true_share():
    true = pd.Series(["sad"] * 20 + ["happy"] * 40 + ["angry"] * 40)
    pred = pd.Series(["sad"] * 50 + ["happy"] * 30 + ["surprised"] * 20)  # half the answers sad, a fifth absent
    c = loco_table.collapse_of(true, pred)
    assert c["collapse_class"] == "sad" and c["collapse_ratio"] == pytest.approx(2.5)
    assert c["collapse_share"] == pytest.approx(0.5) and c["absent_share"] == pytest.approx(0.2)
    even = loco_table.collapse_of(true, true)
    assert even["collapse_ratio"] == pytest.approx(1.0) and even["absent_share"] == 0.0
