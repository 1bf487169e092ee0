"""Speakers in an analysis: who spoke when in a recording, and the timeline of each voice (``serkit analyze
--speakers``, ``--person``).

The emotion analysis finds the speech regions; the diarization (:mod:`serkit.speakers`) splits them between
voices, reading the file a second time block by block; each emotion window then belongs to the voice that holds
most of the speech it stands for (:func:`serkit.inference.analysis.with_speakers`). Enrolled people (a recording of
each alone) give their names to the voices that match them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serkit.audio import read_audio
from serkit.errors import AudioError, ConfigError
from serkit.inference.analysis import RecordingAnalysis, analyze_recording, with_speakers
from serkit.inference.api import EmotionModel
from serkit.inference.stream import AnalysisConfig
from serkit.speakers import DiarizationConfig, SpeakerEncoder, VoiceProfile, diarize_file, enrol, name_speakers

__all__ = ["SpeakerAnalysis", "attach_speakers", "enrol_people", "parse_person"]


@dataclass
class SpeakerAnalysis:
    """How an analysis tells its voices apart: the encoder, the diarization's settings, the enrolled people."""

    encoder: SpeakerEncoder
    config: DiarizationConfig = field(default_factory=DiarizationConfig)
    profiles: list[VoiceProfile] = field(default_factory=list)


def parse_person(spec: str) -> tuple[str, list[str]]:
    """``NAME=FILE[,FILE...]`` -> (name, files); an error naming the option when it is malformed."""
    name, sep, files = spec.partition("=")
    name = name.strip()
    paths = [f.strip() for f in files.split(",") if f.strip()]
    if not sep or not name or not paths:
        raise ConfigError(f"--person {spec!r}: expected NAME=FILE[,FILE...] (a recording of that person alone)")
    return name, paths


def enrol_people(people: Sequence[tuple[str, Sequence[str | Path]]], model: EmotionModel, encoder: SpeakerEncoder,
                 config: AnalysisConfig | None = None) -> list[VoiceProfile]:
    """A voice profile per person from their enrolment recordings (each of that person alone): the speech the
    analysis finds in them, embedded.

    Raises
    ------
    AudioError
        naming the enrolment: unreadable, too little speech, or two voices in it.
    ConfigError
        when two people are given the same name.
    """
    names = [n for n, _ in people]
    if len(set(names)) != len(names):
        raise ConfigError(f"--person: each name once (given: {', '.join(names)})")
    rate = encoder.sample_rate
    profiles = []
    for name, files in people:
        signals, regions, offset = [], [], 0.0
        for f in files:
            a = analyze_recording(f, model, config or AnalysisConfig())
            y, _ = read_audio(f, sample_rate=rate, mono=True)
            signals.append(y)
            regions += [(offset + s, offset + e) for s, e in a.regions]
            offset += len(y) / rate
        try:
            profiles.append(enrol(name, np.concatenate(signals), rate, regions, encoder))
        except AudioError as exc:
            raise AudioError(f"--person {name}", exc.reason) from None
    return profiles


def attach_speakers(a: RecordingAnalysis, path: str | Path, speakers: SpeakerAnalysis) -> RecordingAnalysis:
    """Diarize ``a``'s speech (read again from ``path``) and give its windows their voices. A recording without
    speech is left as it is (there is no one to tell apart)."""
    if not a.regions or not a.windows:
        return a
    diarization = diarize_file(path, a.regions, speakers.encoder, speakers.config)
    names = name_speakers(diarization, speakers.profiles)
    return with_speakers(a, diarization, names, [p.name for p in speakers.profiles])
