"""serkit analyze: timelines of joined recordings, reports, sessions, extreme and bad inputs."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from serkit.cli import app
from serkit.errors import ConfigError
from serkit.inference.analysis import AROUSAL_VALENCE, analyze_recording, arousal_valence, recording_date, time_bins
from serkit.inference.stream import AnalysisConfig
from test_api import SR, build_tiny_bundle
from test_stream import PLAN, joined_tones

runner = CliRunner()
CONFIG = AnalysisConfig(vad="energy", hop=0.5)




def _flat(text: str) -> str:
    """Output without rich's table layout (cells wrap over lines)."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in "│┃")


def _cli(*args: str):
    return runner.invoke(app, ["analyze", *args], catch_exceptions=False, env={"COLUMNS": "250"})


def test_joined_recording_recovers_segment_times_and_labels(tiny_model, tmp_path):
    y, truth = joined_tones(PLAN * 2, sr=48000, gap=1.5)
    path = tmp_path / "joined.wav"
    sf.write(path, np.stack([y, y], axis=1), 48000)  # stereo 48 kHz
    a = analyze_recording(path, tiny_model, CONFIG, block_seconds=2.0)
    assert [s.label for s in a.segments] == [lab for _, _, lab in truth]
    for seg, (t0, t1, _) in zip(a.segments, truth):  # boundaries within VAD padding + one frame
        assert abs(seg.start - t0) <= 0.08 and abs(seg.end - t1) <= 0.08
    s = a.summary()
    assert sum(s["share"].values()) == pytest.approx(1.0)
    pad = 2 * CONFIG.speech_pad  # regions are padded on both sides
    speech = sum(t1 - t0 + pad for t0, t1, _ in truth)
    assert s["speech_s"] == pytest.approx(speech, abs=0.03 * len(truth))
    assert s["share"]["sad"] == pytest.approx(2 * (3.3 + pad) / speech, abs=0.02)
    assert s["negative_share"] == pytest.approx(s["share"]["sad"] + s["share"]["angry"], abs=1e-9)
    assert s["confidence"] > 0.8 and a.channels == 2 and a.sample_rate == 48000


def test_min_confidence_sets_what_counts_as_uncertain(tiny_model, tmp_path):
    t = np.arange(4 * 16000) / 16000
    # a clear tone of a class (450 Hz), then one between two classes' tones (300 Hz): sure, then unsure windows
    y = 0.3 * np.concatenate([np.sin(2 * np.pi * 450.0 * t), np.sin(2 * np.pi * 300.0 * t)])
    path = tmp_path / "sure_then_unsure.wav"
    sf.write(path, y.astype(np.float32), 16000)
    a = analyze_recording(path, tiny_model, CONFIG)
    confidence = np.array([w.proba.max() for w in a.windows])
    weight = a.cells[:, 1] - a.cells[:, 0]
    assert confidence.min() < confidence.max()  # windows at the tones' edges are less sure
    threshold = float(confidence.min() + confidence.max()) / 2
    strict = analyze_recording(path, tiny_model, CONFIG.model_copy(update={"min_confidence": threshold}))
    assert strict.summary()["min_confidence"] == threshold
    assert strict.summary()["uncertain_share"] == pytest.approx(weight[confidence < threshold].sum() / weight.sum())
    assert 0 < strict.summary()["uncertain_share"] < 1
    lenient = analyze_recording(path, tiny_model, CONFIG.model_copy(update={"min_confidence": 0.0}))
    assert lenient.summary()["uncertain_share"] == 0.0


def test_smoothing_merging_and_cells(tiny_model):
    y, _ = joined_tones([("sad", 4.0), ("happy", 3.0)], gap=0.4)
    a_merged = analyze_recording_from(y, tiny_model, AnalysisConfig(vad="energy", hop=0.5, merge_gap=1.0))
    # a 0.4 s pause separates regions; different labels stay apart even when merging is allowed
    assert [s.label for s in a_merged.segments] == ["sad", "happy"]
    y2, _ = joined_tones([("sad", 2.0), ("sad", 2.0)], gap=0.4)
    merged = analyze_recording_from(y2, tiny_model, AnalysisConfig(vad="energy", hop=0.5, merge_gap=1.0))
    apart = analyze_recording_from(y2, tiny_model, AnalysisConfig(vad="energy", hop=0.5, merge_gap=0.2))
    assert len(merged.segments) == 1 and len(apart.segments) == 2
    # cells partition each region
    for a in (a_merged, apart):
        for k, (start, end) in enumerate(a.regions):
            cells = a.cells[[w.region == k for w in a.windows]]
            assert cells[0, 0] == pytest.approx(start) and cells[-1, 1] == pytest.approx(end)
            np.testing.assert_allclose(cells[1:, 0], cells[:-1, 1])


def analyze_recording_from(y, model, config):
    from serkit.inference.analysis import analyze_signal

    return analyze_signal(y, SR, model, config)


def test_arousal_valence_mapping_and_bins():
    labels = ["angry", "sad", "neutral"]
    av = arousal_valence(labels, np.array([[1.0, 0, 0], [0, 1.0, 0], [0.5, 0.5, 0]]))
    np.testing.assert_allclose(av[0], AROUSAL_VALENCE["angry"])
    np.testing.assert_allclose(av[2], (np.array(AROUSAL_VALENCE["angry"]) + AROUSAL_VALENCE["sad"]) / 2)
    assert all(-1 <= v <= 1 for pair in AROUSAL_VALENCE.values() for v in pair)
    assert time_bins(120) == 10 and time_bins(3600) == 60 and time_bins(10 * 3600) == 600


def test_cli_writes_timeline_plot_and_self_contained_report(tiny_model_path, tmp_path):
    y, truth = joined_tones(PLAN)
    rec = tmp_path / "rec.flac"
    sf.write(rec, y, SR)
    out = tmp_path / "out"
    result = _cli(str(rec), "--model", str(tiny_model_path), "--vad", "energy", "--out", str(out))
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "timeline.csv")
    assert list(frame["label"]) == [lab for _, _, lab in truth]
    assert {"start", "end", "label", "p_sad", "p_happy"} <= set(frame.columns)
    data = json.loads((out / "timeline.json").read_text())
    assert [s["label"] for s in data["segments"]] == list(frame["label"])
    assert set(data["windows"][0]["probabilities"]) == {"neutral", "angry", "sad", "happy"}
    assert (out / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "This is not a diagnosis" in html and "not recorded" in html and "acted" in html
    assert "data:image/png;base64," in html and "<script" not in html and "http" not in html.replace(
        "https://", "")  # nothing fetched from the web
    assert "Russell" in html and "arousal" in html


def test_cli_adapt_gives_the_adapted_result_beside_the_strict_one(tiny_model_path, tmp_path):
    y, _ = joined_tones(PLAN)
    rec = tmp_path / "rec.flac"
    sf.write(rec, y, SR)
    result = _cli(str(rec), "--model", str(tiny_model_path), "--vad", "energy", "--adapt", "--out",
                  str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "adapted to these 1 recording(s)" in flat and "warning: adaptation too small to trust" in flat
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Adapted to the person: adapted to these 1 recording(s)" in html
    assert "strict: share of speech time" in html and "adapted: share of speech time" in html
    timeline = json.loads((tmp_path / "out" / "timeline.json").read_text())
    assert timeline["adapted"]["label"] == "adapted to these 1 recording(s)"
    assert len(timeline["adapted"]["windows"]) == len(timeline["windows"]) > 0
    assert timeline["summary"]["adapted"]["label"] == "adapted to these 1 recording(s)"
    # the strict result is the one the model gives without adaptation
    strict = _cli(str(rec), "--model", str(tiny_model_path), "--vad", "energy", "--out", str(tmp_path / "s"))
    assert strict.exit_code == 0
    plain = json.loads((tmp_path / "s" / "timeline.json").read_text())
    assert plain["windows"] == timeline["windows"] and "adapted" not in plain


def _person(folder, shift: float, plan, n: int = 3):
    """``n`` recordings of a 'person' whose every tone is ``shift`` times higher than the training tones."""
    from test_api import TONE_LABELS, tone

    folder.mkdir()
    for k in range(n):
        parts = [np.concatenate([tone(2.5, SR, TONE_LABELS[lab] * shift, amp=0.3, seed=10 * k + i),
                                 np.zeros(SR // 2, np.float32)]) for i, lab in enumerate(plan)]
        sf.write(folder / f"2024-01-0{k + 1}.wav", np.concatenate(parts), SR)
    return folder


def test_cli_baseline_and_enrolment_adapt_to_the_persons_other_recordings(tiny_model_path, tmp_path):
    baseline = _person(tmp_path / "baseline", 1.06, ["neutral", "sad", "angry", "happy"] * 2)
    rec = _person(tmp_path / "today", 1.06, ["sad", "neutral"], n=1) / "2024-01-01.wav"
    out = tmp_path / "out"
    result = _cli(str(rec), "--model", str(tiny_model_path), "--vad", "energy", "--baseline", str(baseline),
                  "--out", str(out))
    assert result.exit_code == 0, result.output
    label = "adapted to this person's 3 baseline recording(s)"
    assert label in " ".join(result.output.split()) and "sounds unlike" not in result.output
    timeline = json.loads((out / "timeline.json").read_text())
    assert timeline["summary"]["adapted"]["label"] == label
    assert len(timeline["adapted"]["windows"]) == len(timeline["windows"]) > 0
    calm = _person(tmp_path / "calm", 1.06, ["neutral"] * 3, n=2)
    enrolled = _cli(str(rec), "--model", str(tiny_model_path), "--vad", "energy", "--enrol", str(calm), "--out",
                    str(tmp_path / "enrolled"))
    assert enrolled.exit_code == 0, enrolled.output
    assert "adapted to this person's calm reading (2 recording(s))" in " ".join(enrolled.output.split())
    from serkit.inference.api import NEUTRAL_ENROLMENT

    assert f"({NEUTRAL_ENROLMENT.describe()})" in enrolled.output  # the calm reading's own method


def test_adapted_windows_are_the_strict_windows_scored_by_the_adapted_model(tiny_model, tmp_path):
    from serkit.inference.analysis import with_adaptation

    baseline = _person(tmp_path / "baseline", 1.06, ["neutral", "sad", "angry", "happy"] * 2)
    rec = _person(tmp_path / "today", 1.06, ["sad", "neutral"], n=1) / "2024-01-01.wav"
    a = analyze_recording(rec, tiny_model, CONFIG, keep_features=True)
    assert a.features is not None and len(a.features) == len(a.windows)
    adapted = tiny_model.adapted(sorted(baseline.iterdir()))
    assert tiny_model.adaptation is None and adapted.adaptation.inputs == 3  # the strict model is untouched
    with_adaptation(a, adapted, "adapted to 3")
    strict_p = np.stack([w.proba for w in a.windows])
    adapted_p = np.stack([w.proba for w in a.adapted.windows])
    # the same windows, other probabilities: exactly what the adapted model says of those windows' features
    assert [(w.start, w.end) for w in a.windows] == [(w.start, w.end) for w in a.adapted.windows]
    np.testing.assert_allclose(adapted_p, adapted.proba_of_features(a.features), rtol=1e-6)
    assert np.abs(np.log(adapted_p + 1e-30) - np.log(strict_p + 1e-30)).max() > 0.5
    s = a.summary()
    assert s["adapted"]["label"] == "adapted to 3" and set(s["adapted"]["share"]) == set(a.labels)
    plain = analyze_recording(rec, tiny_model, CONFIG)
    with pytest.raises(ConfigError, match="features were not kept"):
        with_adaptation(plain, adapted, "x")


def test_cli_baseline_errors_and_warnings(tiny_model_path, tmp_path, monkeypatch):
    from serkit.features import adaptation

    rec = _person(tmp_path / "today", 1.0, ["sad", "neutral"], n=1) / "2024-01-01.wav"
    (tmp_path / "empty").mkdir()
    base = ["--model", str(tiny_model_path), "--vad", "energy", "--out"]
    empty = _cli(str(rec), *base, str(tmp_path / "o1"), "--baseline", str(tmp_path / "empty"))
    assert empty.exit_code != 0 and "--baseline:" in empty.output and "no audio files in" in empty.output
    both = _cli(str(rec), *base, str(tmp_path / "o2"), "--adapt", "--baseline", str(rec))
    assert both.exit_code != 0 and "--adapt and --baseline: choose one way to adapt" in " ".join(both.output.split())
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()  # nothing half-written
    # a baseline with an unreadable file goes on with the rest, and says which was left out
    folder = _person(tmp_path / "mixed", 1.0, ["neutral", "sad", "angry", "happy"] * 2, n=2)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    mixed = _cli(str(rec), *base, str(tmp_path / "o3"), "--baseline", str(folder))
    flat = " ".join(mixed.output.split())
    assert mixed.exit_code == 0, mixed.output
    assert "warning: the baseline:" in flat and "broken.wav" in flat and "(left out)" in flat
    # a baseline of another voice (noise, not this person's tones) is warned about. The threshold is measured on
    # the Whisper features of the shipped model; the tiny MFCC model's tones lie closer together, so it is set
    # between this person's distance to their own baseline (0.72) and to the noise (0.90) here
    monkeypatch.setattr(adaptation, "UNLIKE_DISTANCE", 0.8)
    same = _cli(str(rec), *base, str(tmp_path / "o5"), "--baseline", str(folder))
    assert same.exit_code == 0 and "sounds unlike" not in same.output
    other = tmp_path / "other"
    other.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        sf.write(other / f"n{k}.wav", (0.2 * rng.standard_normal(10 * SR)).astype(np.float32), SR)
    unlike = _cli(str(rec), *base, str(tmp_path / "o4"), "--baseline", str(other))
    assert unlike.exit_code == 0, unlike.output
    assert "sounds unlike the material the model was adapted to" in " ".join(unlike.output.split())


def test_report_quotes_model_card(tmp_path):
    card = {"summary": "A test model.", "accuracy": [{"corpus": "emodb", "protocol": "loso (SI)", "metric": "UA",
                                                      "value": 0.6213}], "limits": ["Only tones."]}
    model = build_tiny_bundle(tmp_path / "carded.pt", card=card)
    rec = tmp_path / "rec.wav"
    sf.write(rec, joined_tones(PLAN[:1])[0], SR)
    result = _cli(str(rec), "--model", str(model), "--vad", "energy", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    html = (tmp_path / "o" / "report.html").read_text()
    assert "0.621" in html and "loso (SI)" in html and "Only tones." in html and "not recorded" not in html


def test_sessions_folder_trend_and_failures(tiny_model_path, tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir()
    plans = {"2024-03-15_evening.wav": [("happy", 2.0)], "session_20240301.wav": [("sad", 2.0), ("angry", 1.5)],
             "2024-03-08.flac": [("neutral", 2.0), ("sad", 1.0)]}
    for name, plan in plans.items():
        sf.write(folder / name, joined_tones(plan)[0], SR)
    (folder / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    (folder / "notes.txt").write_text("not audio, and not listed")
    out = tmp_path / "out"
    result = _cli(str(folder), "--model", str(tiny_model_path), "--vad", "energy", "--out", str(out))
    assert result.exit_code == 1  # one recording failed; the others are reported
    assert "broken.wav" in result.output
    sessions = pd.read_csv(out / "sessions.csv")
    assert list(sessions["recording"]) == ["session_20240301.wav", "2024-03-08.flac", "2024-03-15_evening.wav"]
    assert sessions["share_happy"].iloc[-1] == pytest.approx(1.0)
    assert (out / "trend.png").is_file()
    assert len([p for p in out.iterdir() if p.is_dir()]) == 3
    html = (out / "report.html").read_text()
    assert "Trend across sessions" in html and "broken.wav" in html


def test_recording_dates(tmp_path):
    assert recording_date(tmp_path / "call_2023-11-05_14-30.wav")[0].isoformat() == "2023-11-05T14:30:00"
    assert recording_date(tmp_path / "20230102.wav") == (recording_date(tmp_path / "2023_01_02.wav")[0],
                                                         "file name")
    undated = tmp_path / "x99999999.wav"
    undated.write_bytes(b"")
    os.utime(undated, (1_700_000_000, 1_700_000_000))
    assert recording_date(undated)[1] == "file modified time"


def test_extreme_and_bad_inputs(tiny_model_path, tmp_path):
    model = str(tiny_model_path)
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(5 * SR, np.float32), SR)
    result = _cli(str(silent), "--model", model, "--vad", "energy", "--out", str(tmp_path / "s"))
    assert result.exit_code == 0, result.output
    assert _flat("too little speech: 0 s detected, needs 0.5 s") in _flat(result.output)
    assert "No speech was detected" in (tmp_path / "s" / "report.html").read_text()
    assert pd.read_csv(tmp_path / "s" / "timeline.csv").empty

    one_second = tmp_path / "short.wav"
    sf.write(one_second, joined_tones([("angry", 0.6)], lead=0.2, gap=0.2)[0], SR)
    result = _cli(str(one_second), "--model", model, "--vad", "energy", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "o" / "timeline.csv")["label"]) == ["angry"]

    text = tmp_path / "letter.wav"
    text.write_text("Dear diary")
    result = _cli(str(text), "--model", model, "--out", str(tmp_path / "t"))
    assert result.exit_code == 2
    assert re.search(r"letter\.wav: not an audio file", result.output.replace("\n", ""))

    result = _cli(str(one_second), "--model", model, "--hop", "0", "--out", str(tmp_path / "h"))
    assert result.exit_code == 2 and "--hop" in result.output
    result = _cli(str(tmp_path / "missing.wav"), "--model", model, "--out", str(tmp_path / "m"))
    assert result.exit_code == 2 and "file not found" in result.output


@pytest.mark.slow
def test_hour_long_recording_streams_in_bounded_memory(tiny_model, tmp_path):
    """An hour of audio (mostly silence, speech every 5 minutes) is read block by block."""
    path = tmp_path / "hour.wav"
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        burst = joined_tones([("happy", 2.0)], lead=0.0, gap=0.0)[0]
        for minute in range(60):
            if minute % 5 == 0:
                f.write(burst)
            f.write(np.zeros(60 * SR - (len(burst) if minute % 5 == 0 else 0), np.float32))
    a = analyze_recording(path, tiny_model, AnalysisConfig(vad="energy"), block_seconds=30.0)
    assert a.duration == pytest.approx(3600.0)
    assert [s.label for s in a.segments] == ["happy"] * 12
    assert a.segments[-1].start == pytest.approx(55 * 60, abs=0.1)


def test_too_short_follows_the_rule_of_predict(tiny_model_path, tmp_path):
    """Issue 15.5: a 0.2 s clip is "too short: 0.2 s, needs 0.5 s" in analyze as in predict, with no label."""
    clip = tmp_path / "blip.wav"
    sf.write(clip, joined_tones([("happy", 0.2)], lead=0.0, gap=0.0)[0], SR)
    result = _cli(str(clip), "--model", str(tiny_model_path), "--vad", "energy", "--out", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert _flat("too short: 0.2 s, needs 0.5 s") in _flat(result.output)
    assert pd.read_csv(tmp_path / "a" / "timeline.csv").empty
    predicted = runner.invoke(app, ["predict", "--model", str(tiny_model_path), str(clip)], env={"COLUMNS": "250"})
    assert predicted.exit_code == 1 and _flat("too short: 0.2 s, needs 0.5 s") in _flat(predicted.output)


def test_out_folder_holds_one_run(tiny_model_path, tmp_path):
    """Issue 15.7: a second run replaces serkit's own earlier output whole; a folder of other files is refused
    (nothing analysed, nothing touched) unless --force."""
    model = str(tiny_model_path)
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    for name, plan in (("2024-01-01.wav", [("sad", 2.0)]), ("2024-02-01.wav", [("happy", 2.0)])):
        sf.write(sessions / name, joined_tones(plan)[0], SR)
    out = tmp_path / "out"
    assert _cli(str(sessions), "--model", model, "--vad", "energy", "--out", str(out)).exit_code == 0
    assert (out / "sessions.csv").is_file() and (out / "trend.png").is_file()
    result = _cli(str(sessions / "2024-01-01.wav"), "--model", model, "--vad", "energy", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "report.html", "timeline.csv", "timeline.json", "timeline.png"]
    assert _flat(f"wrote {out}") in _flat(result.output)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary folders left

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("months of work")
    result = _cli(str(sessions), "--model", model, "--vad", "energy", "--out", str(mine))
    assert result.exit_code == 2 and _flat("not written by serkit") in _flat(result.output)
    assert [p.name for p in mine.iterdir()] == ["thesis.docx"]
    result = _cli(str(sessions), "--model", model, "--vad", "energy", "--out", str(mine), "--force")
    assert result.exit_code == 0 and not (mine / "thesis.docx").exists() and (mine / "report.html").is_file()
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    result = _cli(str(sessions), "--model", model, "--out", str(afile))
    assert result.exit_code == 2 and _flat("is a file") in _flat(result.output)
