"""Audio in: reading any libsndfile format, resampling, fixed-length pad/crop, silence handling, normalisation."""

from __future__ import annotations

from serkit.audio.config import AudioConfig, ClipBatch, load_clip, load_clips, prepare_signal
from serkit.audio.io import SILENCE_PEAK_DBFS, audio_suffixes, find_audio_files, open_audio, read_audio
from serkit.audio.processing import (
    fix_length,
    peak_normalize,
    remove_silence,
    resample,
    speech_regions,
    trim_silence,
    z_normalize,
)

__all__ = [
    "SILENCE_PEAK_DBFS",
    "AudioConfig",
    "ClipBatch",
    "audio_suffixes",
    "find_audio_files",
    "fix_length",
    "load_clip",
    "load_clips",
    "open_audio",
    "peak_normalize",
    "prepare_signal",
    "read_audio",
    "remove_silence",
    "resample",
    "speech_regions",
    "trim_silence",
    "z_normalize",
]
