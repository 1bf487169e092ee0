"""Voices in the service: a person's voice profile picks their turns; a session without their voice is flagged
and left out of their trend; the profile is never returned and goes with the person. The speaker encoder is the
pitch stand-in of test_speakers (each pitch a 'voice'), so the truth is known."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from test_serve import finished, person, start
from test_speakers import PitchEncoder, voice

SR = 16000


def recording(path, plan):
    """(pitch, seconds) turns with 0.5 s pauses."""
    parts = [np.zeros(SR // 2, np.float32)]
    for k, (pitch, seconds) in enumerate(plan):
        parts += [voice(seconds, pitch, seed=k), np.zeros(SR // 2, np.float32)]
    sf.write(path, np.concatenate(parts), SR)
    return path


def upload(s, pid, path, route="sessions", date="2026-03-01"):
    with open(path, "rb") as fh:
        return s.client.post(f"/api/v1/people/{pid}/{route}", headers=s.a, files={"file": (path.name, fh)},
                             data={"date": date, "vad": "energy"})


def test_a_voice_profile_picks_the_persons_turns_and_flags_sessions_without_them(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model, speakers=True)
    s.service.voices._encoder = PitchEncoder()
    try:
        pid = person(s, name="Ann")
        r = upload(s, pid, recording(tmp_path / "ann.wav", [(150.0, 3.0), (150.0, 3.0)]), route="voice")
        assert r.status_code == 200, r.text
        assert r.json()["has_voice"] is True and r.json()["voice_seconds"] > 4 and "voice" not in r.json()
        # a conversation of Ann (150 Hz) and someone else (1200 Hz); then a session of someone else only
        both = upload(s, pid, recording(tmp_path / "both.wav", [(150.0, 4.0), (1200.0, 3.0), (150.0, 3.0)]))
        other = upload(s, pid, recording(tmp_path / "other.wav", [(600.0, 4.0), (600.0, 4.0)]), date="2026-03-02")
        for r in (both, other):
            assert finished(s, r.json()["job"]["id"])["state"] == "done"
        sid_both, sid_other = both.json()["session"]["id"], other.json()["session"]["id"]
        first = s.client.get(f"/api/v1/sessions/{sid_both}", headers=s.a).json()
        assert first["voice"]["matched"] is True and first["voice"]["speakers"] == 2
        timeline = s.client.get(f"/api/v1/sessions/{sid_both}/files/timeline.json", headers=s.a).json()
        assert {w["speaker"] for w in timeline["windows"]} == {"Ann", "other 1"}
        assert s.client.get(f"/api/v1/sessions/{sid_other}", headers=s.a).json()["voice"]["matched"] is False
        trend = s.client.get(f"/api/v1/people/{pid}/trend", headers=s.a).json()
        assert [r["session_id"] for r in trend["sessions"]] == [sid_both]  # the one without Ann is left out
        assert trend["excluded"][0]["flag"] == "voice" and "no voice in it matches Ann" in trend["excluded"][0]["reason"]
        assert trend["sessions"][0]["speech_s"] < 8.0  # only Ann's 7 s of the session's 10 s of speech
        # the voices themselves are never served
        for name in ("voices.npz", "features.npz"):
            assert s.client.get(f"/api/v1/sessions/{sid_both}/files/{name}", headers=s.a).status_code == 404
        # without the profile, every session counts whole again
        assert s.client.delete(f"/api/v1/people/{pid}/voice", headers=s.a).json()["has_voice"] is False
        assert len(s.client.get(f"/api/v1/people/{pid}/trend", headers=s.a).json()["sessions"]) == 2
        # a voice the user confirms from a session becomes the profile: now only the 600 Hz sessions count
        named = s.client.get(f"/api/v1/sessions/{sid_other}/files/timeline.json", headers=s.a).json()["turns"]
        assert {t["speaker"] for t in named} == {"other 1"}  # analysed while Ann had a profile: not hers
        r = s.client.post(f"/api/v1/people/{pid}/voice/from-session", headers=s.a,
                          json={"session_id": sid_other, "speaker": "other 1"})
        assert r.status_code == 200 and r.json()["has_voice"] is True, r.text
        trend = s.client.get(f"/api/v1/people/{pid}/trend", headers=s.a).json()
        assert [r["session_id"] for r in trend["sessions"]] == [sid_other]
        bad = s.client.post(f"/api/v1/people/{pid}/voice/from-session", headers=s.a,
                            json={"session_id": sid_other, "speaker": "S9"})
        assert bad.status_code == 422 and "not one of this session's voices" in bad.json()["detail"]
        # the profile goes with the person
        assert s.client.delete(f"/api/v1/people/{pid}", headers=s.a).status_code == 200
        assert s.service.store.voice_of(pid) is None
    finally:
        s.client.__exit__(None, None, None)


def test_enrolment_errors_are_clear(tmp_path, tiny_model):
    s = start(tmp_path, tiny_model, speakers=True)
    s.service.voices._encoder = PitchEncoder()
    try:
        pid = person(s)
        short = upload(s, pid, recording(tmp_path / "short.wav", [(150.0, 1.0)]), route="voice")
        assert short.status_code == 422 and "enrolment too short" in short.json()["detail"]
        two = upload(s, pid, recording(tmp_path / "two.wav", [(150.0, 3.0), (1200.0, 3.0)]), route="voice")
        assert two.status_code == 422 and "two voices" in two.json()["detail"]
        assert s.client.get(f"/api/v1/people/{pid}", headers=s.a).json()["has_voice"] is False
    finally:
        s.client.__exit__(None, None, None)
    off = start(tmp_path / "off", tiny_model)  # --no-speakers: no profiles
    try:
        pid = person(off)
        r = upload(off, pid, recording(tmp_path / "ann.wav", [(150.0, 4.0)]), route="voice")
        assert r.status_code == 501 and "--no-speakers" in r.json()["detail"]
    finally:
        off.client.__exit__(None, None, None)
