"""Audio in: reading any libsndfile format, resampling, fixed-length pad/crop, silence handling, normalisation."""

from __future__ import annotations

from serkit.audio.config import (
    AudioConfig,
    ClipBatch,
    check_channels,
    load_clip,
    load_clips,
    normalize_level,
    prepare_signal,
)
from serkit.audio.io import SILENCE_PEAK_DBFS, audio_suffixes, find_audio_files, open_audio, read_audio
from serkit.audio.processing import (
    ChannelChoice,
    fix_length,
    parse_channel,
    peak_normalize,
    remove_silence,
    resample,
    select_channel,
    speech_regions,
    trim_silence,
    z_normalize,
)

__all__ = [
    "SILENCE_PEAK_DBFS",
    "AudioConfig",
    "ChannelChoice",
    "ClipBatch",
    "audio_suffixes",
    "check_channels",
    "find_audio_files",
    "fix_length",
    "load_clip",
    "load_clips",
    "normalize_level",
    "open_audio",
    "parse_channel",
    "peak_normalize",
    "prepare_signal",
    "read_audio",
    "remove_silence",
    "resample",
    "select_channel",
    "speech_regions",
    "trim_silence",
    "z_normalize",
]
