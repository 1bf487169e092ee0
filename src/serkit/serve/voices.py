"""Voices in the service: each session's speakers, a person's voice profile, and their turns alone in their trend.

When the speaker encoder is installed (``serkit[speakers]``) every analysed session is diarized: its timeline
gets a speaker per window and its speakers' mean embeddings are kept beside it (``voices.npz``; personal data,
never served, deleted with the session). A person's **voice profile** (``people.voice``, made from a recording
of them alone, or from one of their sessions' speakers the user confirms) names the voice in each session that
matches it; the person's report and trend then use only that voice's turns, the other voices show as "other",
and a session where no voice matches is flagged and left out of the trend, never silently added to it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from serkit.errors import AudioError, ConfigError
from serkit.inference.analysis import RecordingAnalysis, analyze_recording, with_speakers
from serkit.inference.api import EmotionModel
from serkit.inference.stream import AnalysisConfig
from serkit.speakers import DiarizationConfig, VoiceProfile, enrol, name_speakers
from serkit.speakers.diarization import SAME_VOICE, Diarization, Turn, diarize_file
from serkit.utils import atomic_write_bytes

#: A session's speakers' mean embeddings, beside its timeline.
VOICES_FILE = "voices.npz"

#: How a session's voice that is not the person's is named.
OTHER = "other"


class Voices:
    """The service's speaker encoder, loaded on first use; ``available`` is False without ``serkit[speakers]``
    (sessions are then analysed as one voice, as before)."""

    def __init__(self):
        self._encoder = None
        self.error: str | None = None

    @property
    def encoder(self):
        if self._encoder is None and self.error is None:
            from serkit.speakers import ResemblyzerEncoder

            try:
                self._encoder = ResemblyzerEncoder()
            except ConfigError as exc:
                self.error = str(exc)
        return self._encoder

    @property
    def available(self) -> bool:
        return self.encoder is not None

    def enrol_file(self, path: Path, model: EmotionModel, name: str, vad: str = "auto") -> VoiceProfile:
        """A voice profile from a recording of the person alone (its speech as the analysis finds it)."""
        from serkit.audio import read_audio

        a = analyze_recording(path, model, AnalysisConfig(vad=vad))
        y, _ = read_audio(path, sample_rate=self.encoder.sample_rate, mono=True)
        return enrol(name, y, self.encoder.sample_rate, a.regions, self.encoder)

    def diarize(self, a: RecordingAnalysis, audio: Path, profile: np.ndarray | None, person: str) -> dict[str, Any]:
        """Split ``a`` between its voices (read again from ``audio``); with the person's ``profile``, the voice
        that matches it is named ``person`` and the others ``other 1``, ``other 2``... Returns the session's voice
        record (what ``sessions.voice`` stores)."""
        if not a.regions or not a.windows:
            return {"speakers": 0, "matched": None}
        d = diarize_file(audio, a.regions, self.encoder, DiarizationConfig())
        names = _names(d, profile, person)
        with_speakers(a, d, names)
        return voice_record(d, names, profile, person)


def _names(d: Diarization, profile: np.ndarray | None, person: str) -> dict[str, str]:
    if profile is None:
        return {s: s for s in d.speakers}
    matched = name_speakers(d, [VoiceProfile(person, profile, 0.0)])
    others = [s for s in d.speakers if matched[s] != person]
    names = {s: f"{OTHER} {k + 1}" for k, s in enumerate(others)}
    names.update({s: person for s in d.speakers if matched[s] == person})
    return names


def voice_record(d: Diarization, names: dict[str, str], profile: np.ndarray | None, person: str) -> dict[str, Any]:
    """What a session says of its voices: how many, and whether one is the person's (None: no profile)."""
    from serkit.speakers import cosine

    record: dict[str, Any] = {"speakers": len(d.speakers), "matched": None}
    if profile is not None:
        scores = {names[s]: float(cosine(c, profile)[0]) for s, c in d.centroids.items()}
        record.update(matched=person in names.values(), best_score=round(max(scores.values()), 4),
                      threshold=SAME_VOICE)
    return record


def save_voices(a: RecordingAnalysis, folder: Path) -> Path | None:
    """The session's speakers' mean embeddings (named as in its timeline) into ``folder``."""
    if a.speakers is None:
        return None
    buf = io.BytesIO()
    names = [a.speaker_names.get(s, s) for s in a.speakers.speakers]
    np.savez_compressed(buf, names=np.array(names), centroids=np.stack([a.speakers.centroids[s]
                                                                       for s in a.speakers.speakers]))
    return atomic_write_bytes(folder / VOICES_FILE, buf.getvalue())


def load_voices(results_dir: Path, sid: str) -> dict[str, np.ndarray] | None:
    """A session's speakers' mean embeddings by name, or None (not diarized, or unreadable)."""
    try:
        with np.load(results_dir / sid / VOICES_FILE) as data:
            return {str(n): c.astype(np.float32) for n, c in zip(data["names"], data["centroids"])}
    except (OSError, ValueError, KeyError):
        return None


def diarization_from_timeline(timeline: dict[str, Any], centroids: dict[str, np.ndarray]) -> Diarization | None:
    """A stored session's diarization (its turns and its speakers' embeddings), or None when it has none."""
    if "turns" not in timeline or not centroids:
        return None
    turns = [Turn(float(t["start"]), float(t["end"]), str(t["speaker"])) for t in timeline["turns"]]
    return Diarization(turns, dict(centroids), 0)


def person_speaker(centroids: dict[str, np.ndarray] | None, profile: np.ndarray | None, person: str,
                   stored: str | None = None) -> tuple[str | None, str | None]:
    """Which of a session's voices is the person's, by their current profile: (speaker name, None) or (None, why
    the session is left out). Without a profile the session is the person's whole (None, None)."""
    if profile is None:
        return None, None
    if not centroids:
        return None, None  # analysed before voices were kept: the whole session, as before
    names = list(centroids)
    from serkit.speakers import cosine

    scores = cosine(np.stack([centroids[n] for n in names]), profile)
    best = int(np.argmax(scores))
    if scores[best] < SAME_VOICE:
        return None, (f"no voice in it matches {person}'s voice profile (best cosine {scores[best]:.2f}, needs "
                      f"{SAME_VOICE:g}): flagged, not added to the trend")
    return names[best], None


def enrol_from_session(centroids: dict[str, np.ndarray] | None, speaker: str) -> np.ndarray:
    """The profile a user confirms: one of a session's voices."""
    if not centroids:
        raise AudioError(None, "this session's voices were not kept (analysed without the speaker encoder)")
    if speaker not in centroids:
        raise AudioError(None, f"speaker {speaker!r}: not one of this session's voices ({', '.join(centroids)})")
    return centroids[speaker]
