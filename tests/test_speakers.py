"""Who is speaking: windows, clustering, turns, enrolment and naming (serkit.speakers) with an encoder whose
embeddings are known, the streamed file path against the in-memory one, the analysis' lanes per speaker, and
Resemblyzer itself on two real voices of the shared corpora."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from serkit.errors import AudioError, ConfigError
from serkit.speakers import DiarizationConfig, VoiceProfile, diarize, diarize_file, enrol, name_speakers
from serkit.speakers.diarization import speaker_windows
from test_corpora_nemo_emovo import CORPORA

SR = 16000


class PitchEncoder:
    """A stand-in speaker encoder: a window's embedding says which of a few pitches it holds (a 'voice' per pitch),
    with a little noise, so that the truth of every test is known."""

    sample_rate = SR
    window_seconds = 1.6
    voices = (150.0, 300.0, 600.0, 1200.0)

    def embed(self, windows):
        out = []
        for k, y in enumerate(windows):
            spectrum = np.abs(np.fft.rfft(y, n=SR))
            e = np.array([spectrum[int(f) - 5:int(f) + 5].sum() for f in self.voices]) + 1e-3
            e = e / np.linalg.norm(e) + 0.02 * np.random.default_rng(k).standard_normal(len(self.voices))
            out.append(e / np.linalg.norm(e))
        return np.array(out, np.float32)


def voice(seconds: float, pitch: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * pitch * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def conversation(plan, gap: float = 0.5):
    """(pitch, seconds) turns separated by ``gap`` s of silence: the signal, its speech regions and the truth."""
    parts, regions, truth, t = [np.zeros(int(0.5 * SR), np.float32)], [], [], 0.5
    for k, (pitch, seconds) in enumerate(plan):
        parts += [voice(seconds, pitch, k), np.zeros(int(gap * SR), np.float32)]
        regions.append((t, t + seconds))
        truth.append((t, t + seconds, pitch))
        t += seconds + gap
    return np.concatenate(parts), regions, truth


PLAN = [(150.0, 4.0), (600.0, 3.0), (150.0, 2.0), (600.0, 5.0), (1200.0, 3.0), (150.0, 2.5)]


def test_windows_cover_every_region():
    spans = speaker_windows([(0.0, 1.0), (2.0, 5.0)], 1.6, 0.8)
    assert spans[0] == (0.0, 1.0)  # a region shorter than a window gives one
    assert spans[1][0] == 2.0 and spans[-1] == (3.4, 5.0) and all(e - s == pytest.approx(1.6) for s, e in spans[1:])


@pytest.mark.parametrize("speakers", [3, "auto"])
def test_turns_follow_the_voices_and_speakers_are_named_in_order(speakers):
    y, regions, truth = conversation(PLAN)
    d = diarize(y, SR, regions, PitchEncoder(),
                DiarizationConfig(speakers=speakers, min_speaker_seconds=2.0))
    assert d.speakers == ["S1", "S2", "S3"]
    assert [t.speaker for t in d.turns] == ["S1", "S2", "S1", "S2", "S3", "S1"]
    for turn, (start, end, _) in zip(d.turns, truth):
        assert turn.start == pytest.approx(start, abs=0.11) and turn.end == pytest.approx(end, abs=0.11)
    assert d.speaker_at(truth[3][0], truth[3][1]) == "S2"
    assert sum(d.seconds().values()) == pytest.approx(sum(e - s for s, e, _ in truth), abs=0.5)


def test_auto_gives_a_cluster_of_too_little_speech_to_the_nearest_speaker():
    y, regions, _ = conversation([(150.0, 8.0), (600.0, 1.6), (150.0, 8.0), (300.0, 9.0)])
    blip = DiarizationConfig(speakers="auto", min_speaker_seconds=0.0)
    assert len(diarize(y, SR, regions, PitchEncoder(), blip).speakers) == 3  # the 1.6 s voice as a speaker
    d = diarize(y, SR, regions, PitchEncoder(), DiarizationConfig(speakers="auto"))
    assert d.speakers == ["S1", "S2"]  # the default (2 s): the blip joins a speaker; the two real voices stay
    assert d.speaker_at(regions[3][0], regions[3][1]) == "S2" and d.speaker_at(*regions[0]) == "S1"


def test_one_voice_gives_one_speaker_and_neighbouring_turns_merge():
    y, regions, _ = conversation([(300.0, 3.0), (300.0, 2.0), (300.0, 4.0)], gap=0.4)
    d = diarize(y, SR, regions, PitchEncoder(), DiarizationConfig(speakers="auto", merge_gap=0.5))
    assert d.speakers == ["S1"] and len(d.turns) == 1


def test_a_short_turn_joins_the_longer_neighbour_it_touches():
    from serkit.speakers.diarization import _absorb_short

    pieces = [[0.0, 3.0, 0], [3.0, 3.3, 1], [3.3, 6.0, 0], [7.0, 7.2, 1], [8.0, 9.0, 1]]
    # the 0.3 s blip of 1 inside 0's speech becomes 0's, and 0's three pieces become one; the lone 0.2 s piece
    # touches no one (silence on both sides) and stays
    assert _absorb_short(pieces, 0.6) == [[0.0, 6.0, 0], [7.0, 7.2, 1], [8.0, 9.0, 1]]


def test_the_file_is_read_as_a_stream_with_the_same_turns(tmp_path):
    y, regions, _ = conversation(PLAN)
    path = tmp_path / "talk.flac"
    sf.write(path, np.stack([y, y], axis=1), 48000 // 3 * 3)  # stereo, another rate: resampled as a stream
    sf.write(path, np.stack([y, y], axis=1), SR)
    cfg = DiarizationConfig(speakers=3)
    streamed = diarize_file(path, regions, PitchEncoder(), cfg, block_seconds=1.3)
    whole = diarize(y, SR, regions, PitchEncoder(), cfg)
    assert [(t.start, t.end, t.speaker) for t in streamed.turns] == [(t.start, t.end, t.speaker) for t in whole.turns]


def test_errors_name_what_is_wrong():
    y, regions, _ = conversation(PLAN[:2])
    with pytest.raises(AudioError, match="no speech"):
        diarize(y, SR, [], PitchEncoder())
    with pytest.raises(ConfigError, match="--speakers 40"):
        diarize(y, SR, regions, PitchEncoder(), DiarizationConfig(speakers=40))
    with pytest.raises(ValueError, match="at least 1"):
        DiarizationConfig(speakers=0)


def test_enrolment_names_the_matching_voice_and_refuses_two_voices_or_too_little():
    enc = PitchEncoder()
    y, regions, _ = conversation(PLAN)
    d = diarize(y, SR, regions, enc, DiarizationConfig(speakers=3))
    calm = voice(4.0, 600.0, seed=9)
    ann = enrol("Ann", calm, SR, [(0.0, 4.0)], enc)
    absent = enrol("Bo", voice(4.0, 300.0, seed=3), SR, [(0.0, 4.0)], enc)
    assert isinstance(ann, VoiceProfile) and ann.seconds == 4.0
    names = name_speakers(d, [ann, absent], threshold=0.9)
    assert names == {"S1": "S1", "S2": "Ann", "S3": "S3"}  # Bo's voice is not in the recording
    with pytest.raises(AudioError, match="enrolment too short"):
        enrol("Cy", voice(1.0, 150.0), SR, [(0.0, 1.0)], enc)
    two = np.concatenate([voice(3.0, 150.0), voice(3.0, 1200.0)])
    with pytest.raises(AudioError, match="two voices"):
        enrol("Di", two, SR, [(0.0, 6.0)], enc)


def test_analysis_gets_a_lane_per_speaker(tiny_model, tmp_path, monkeypatch):
    from serkit.inference import voices
    from serkit.inference.analysis import analyze_recording, write_timeline
    from serkit.inference.stream import AnalysisConfig
    from test_api import TONE_LABELS

    # two 'voices' saying the tiny model's tones: voice A at 150 Hz beneath, voice B at 1200 Hz beneath
    parts = [np.zeros(SR // 2, np.float32)]
    plan = [("A", "sad"), ("B", "happy"), ("A", "angry"), ("B", "neutral")]
    for who, label in plan:
        base = voice(3.0, 150.0 if who == "A" else 1200.0)
        tone = 0.3 * np.sin(2 * np.pi * TONE_LABELS[label] * np.arange(3 * SR) / SR)
        parts += [(0.5 * base + tone).astype(np.float32), np.zeros(SR // 2, np.float32)]
    path = tmp_path / "two.wav"
    sf.write(path, np.concatenate(parts), SR)
    a = analyze_recording(path, tiny_model, AnalysisConfig(vad="energy", hop=0.5))
    voices.attach_speakers(a, path, voices.SpeakerAnalysis(PitchEncoder(), DiarizationConfig(speakers=2)))
    assert a.speakers.speakers == ["S1", "S2"] and set(a.window_speakers) == {"S1", "S2"}
    assert [s.speaker for s in a.segments] == ["S1", "S2", "S1", "S2"]  # a speaker change always splits
    summary = a.summary()
    assert set(summary["speakers"]) == {"S1", "S2"}
    assert summary["speakers"]["S1"]["share"]["sad"] > 0.3 and summary["speakers"]["S2"]["share"]["happy"] > 0.3
    written = write_timeline(a, tmp_path / "out")
    turns = (tmp_path / "out" / "speakers.csv").read_text().splitlines()
    assert turns[0] == "start,end,speaker" and len(turns) == 5 and written["speakers"].name == "speakers.csv"
    assert "speaker" in (tmp_path / "out" / "timeline.csv").read_text().splitlines()[0]
    timeline = json.loads((tmp_path / "out" / "timeline.json").read_text())
    assert {w["speaker"] for w in timeline["windows"]} == {"S1", "S2"} and len(timeline["turns"]) == 4
    from serkit.inference.analysis import SessionsResult
    from serkit.inference.report import write_analysis

    files = write_analysis(SessionsResult([a]), tmp_path / "report", tiny_model)
    html = files["report"].read_text()
    assert "<h3>Speakers</h3>" in html and "one lane per voice" in html
    assert (tmp_path / "report" / "speakers.csv").is_file() and files["png"].stat().st_size > 1000


def test_cli_speakers_option_errors(tiny_model_path, tmp_path):
    from serkit.cli import app

    path = tmp_path / "one.wav"
    sf.write(path, voice(3.0, 300.0), SR)
    for bad, message in (("0", "at least one speaker"), ("two", "expected auto or a number")):
        r = CliRunner().invoke(app, ["analyze", str(path), "--model", str(tiny_model_path), "--speakers", bad,
                                     "--out", str(tmp_path / "o")])
        assert r.exit_code != 0 and message in " ".join(r.output.split()), r.output
        assert not (tmp_path / "o").exists()
    r = CliRunner().invoke(app, ["analyze", str(path), "--model", str(tiny_model_path), "--person", "Ann",
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "NAME=FILE" in r.output


def _resemblyzer():
    try:
        from serkit.speakers import ResemblyzerEncoder

        return ResemblyzerEncoder()
    except ConfigError as exc:
        pytest.skip(str(exc))


def test_batched_mel_spectrogram_equals_resemblyzers():
    enc = _resemblyzer()
    rng = np.random.default_rng(0)
    ys = [(0.1 * rng.standard_normal(25600)).astype(np.float32) for _ in range(3)]
    ours = enc.mel_batch(__import__("torch").from_numpy(np.stack(ys))).numpy()
    for y, mel in zip(ys, ours):
        ref = enc._mel(y)[:160]
        np.testing.assert_allclose(mel, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())


@pytest.mark.corpus
@pytest.mark.slow
def test_resemblyzer_tells_two_real_voices_apart():
    import librosa

    emodb, ravdess = CORPORA / "emodb" / "wav", CORPORA / "ravdess-16k" / "Actor_02"
    if not emodb.is_dir() or not ravdess.is_dir():
        pytest.skip("EmoDB / RAVDESS not found in ../shared/corpora")
    enc = _resemblyzer()
    a, b = sorted(emodb.glob("03*.wav"))[:5], sorted(ravdess.glob("*.flac"))[:5]
    parts, regions, truth, t = [np.zeros(SR // 2, np.float32)], [], [], 0.5
    for fa, fb in zip(a, b):
        for f, who in ((fa, "A"), (fb, "B")):
            y, _ = librosa.load(f, sr=SR)
            y, _ = librosa.effects.trim(y, top_db=30)
            parts += [y.astype(np.float32), np.zeros(SR // 2, np.float32)]
            regions.append((t, t + len(y) / SR))
            truth.append(who)
            t += len(y) / SR + 0.5
    y = np.concatenate(parts)
    d = diarize(y, SR, regions, enc, DiarizationConfig(speakers=2))
    assert [t.speaker for t in d.turns] == ["S1", "S2"] * 5
    # the weights file is the pinned one, and an enrolment of one of them is recognised as that voice
    assert "resemblyzer 0.1.4" in enc.source
    first = np.concatenate(parts[1:2] + parts[5:6])
    ann = enrol("EmoDB-03", first, SR, [(0.0, len(first) / SR)], enc)
    assert name_speakers(d, [ann])["S1"] == "EmoDB-03"
    assert Path(enc.model.__class__.__module__.replace(".", "/")).name == "voice_encoder"
