"""Speakers: who is speaking. Speaker embeddings behind a small interface (Resemblyzer's GE2E encoder by default,
``pip install serkit[speakers]``), diarization of a recording's speech, and voices recognised by enrolment."""

from serkit.speakers.diarization import (
    Diarization,
    DiarizationConfig,
    Turn,
    VoiceProfile,
    diarize,
    diarize_file,
    enrol,
    name_speakers,
)
from serkit.speakers.embeddings import ResemblyzerEncoder, SpeakerEncoder, cosine

__all__ = [
    "Diarization",
    "DiarizationConfig",
    "ResemblyzerEncoder",
    "SpeakerEncoder",
    "Turn",
    "VoiceProfile",
    "cosine",
    "diarize",
    "diarize_file",
    "enrol",
    "name_speakers",
]
