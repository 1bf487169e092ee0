"""Reading audio files: any format libsndfile reads, checked for the ways a file can be unusable."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from serkit.audio.processing import ChannelChoice, resample, select_channel
from serkit.errors import AudioError

#: A clip whose peak is below this level (dBFS) is treated as silent: below any recorded speech, and
#: above the dither/noise floor of a 16-bit file of digital silence (-90 dBFS is one LSB).
SILENCE_PEAK_DBFS = -70.0

# libsndfile logs a chunk whose declared size exceeds what the file holds as "data : 32000 (should be
# 21999)" (WAV/RF64/W64) or "SSND : ..." (AIFF), then quietly reads only what is there.
_SHORT_CHUNK = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers that cannot seek back leave these placeholders as the data size: not a truncation.
_UNKNOWN_SIZES = {0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF}

# Containers whose frame count is an estimate (MP3: from a Xing/LAME header or the bitrate, with encoder delay
# and padding; Ogg: from the last page's granule position), so decoding a few frames fewer is normal there.
_APPROXIMATE_LENGTH_FORMATS = frozenset({"MP3", "MPEG", "OGG"})


def header_length_is_exact(handle: sf.SoundFile) -> bool:
    """Whether ``handle.frames`` is exact (WAV, FLAC, AIFF, ...): then fewer decoded frames mean truncation."""
    return str(handle.format).upper() not in _APPROXIMATE_LENGTH_FORMATS


def _check_truncated(path: Path, extra_info: str) -> None:
    for match in _SHORT_CHUNK.finditer(extra_info):
        chunk, declared, present = match.group(1), int(match.group(2)), int(match.group(3))
        if declared > present and declared not in _UNKNOWN_SIZES:
            raise AudioError(
                path,
                f"truncated: the header declares a {declared}-byte '{chunk}' chunk but the file holds "
                f"only {present} bytes of it",
            )


def open_audio(path: str | Path) -> sf.SoundFile:
    """Open an audio file for reading (whole or in blocks) after the checks every reader needs.

    Raises :class:`AudioError` naming the file for: missing, a directory, not audio / unreadable, truncated
    (the header log says so), no frames. The caller closes the returned handle (use it as a context manager).
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file: 0 bytes")
    try:
        handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        detail = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(path, f"not an audio file or unreadable (libsndfile: {detail})") from None
    except OSError as exc:
        raise AudioError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        _check_truncated(path, handle.extra_info)
        if handle.frames <= 0:
            raise AudioError(path, "empty: the file holds no audio frames")
    except AudioError:
        handle.close()
        raise
    return handle


def read_audio(
    path: str | os.PathLike[str],
    *,
    sample_rate: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    allow_silent: bool = False,
    channel: ChannelChoice = "mean",
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32, optionally a segment of it, downmixed and resampled.

    The format comes from the file's content, not its extension (an AIFF or FLAC named ``.wav`` loads).

    Parameters
    ----------
    path : the file.
    sample_rate : resample to this rate (soxr HQ); None keeps the file's rate.
    mono : one channel out (see ``channel``); otherwise keep every channel.
    offset : seconds to skip at the start (an2021/islam read 3 s from 0.5 s).
    duration : seconds to read from ``offset``; None reads to the end. A file ending earlier gives a shorter
        signal (pad it with ``fix_length``).
    allow_silent : accept a silent segment instead of raising.
    channel : with ``mono``, how a multichannel file becomes one channel: ``"mean"`` (downmix), a channel
        index (0 first) or ``"louder"`` (the channel with the most energy in the segment read). Take one
        channel when the channels are microphones a little apart (EMOVO): their mean comb-filters the speech.

    Returns
    -------
    (y, sr): y of shape (n,) when ``mono`` else (channels, n), float32; sr the rate of y.

    Raises
    ------
    AudioError
        naming the file, for: missing file, not audio / unreadable, no frames, truncated or undecodable
        data, offset at or past the end, NaN or infinite samples, silence (peak below -70 dBFS) unless
        ``allow_silent``, a ``channel`` index the file does not have.
    """
    if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0):
        raise ValueError(f"sample_rate must be a positive integer or None, got {sample_rate!r}")
    if not (math.isfinite(offset) and offset >= 0):
        raise ValueError(f"offset must be a finite number of seconds >= 0, got {offset!r}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a finite number of seconds > 0 or None, got {duration!r}")
    path = Path(path)
    with open_audio(path) as handle:
        native_sr, total, exact = handle.samplerate, handle.frames, header_length_is_exact(handle)
        start = round(offset * native_sr)
        if start >= total:
            raise AudioError(
                path, f"offset {offset:g} s is at or beyond the end of the file ({total / native_sr:.3f} s long)"
            )
        count = total - start if duration is None else min(round(duration * native_sr), total - start)
        if count <= 0:
            raise AudioError(path, f"duration {duration:g} s is shorter than one sample at {native_sr} Hz")
        try:
            if start:
                handle.seek(start)
            data = handle.read(count, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            detail = getattr(exc, "error_string", None) or str(exc)
            raise AudioError(path, f"truncated or corrupt: decoding failed (libsndfile: {detail})") from None
    if data.shape[0] == 0 and count > 0:
        raise AudioError(path, f"truncated or corrupt: no frame could be decoded from {start / native_sr:.3f} s")
    if data.shape[0] < count and exact:
        raise AudioError(
            path,
            f"truncated: the header declares {total} frames but decoding stopped after {start + data.shape[0]}",
        )

    finite = np.isfinite(data)
    if not finite.all():
        raise AudioError(path, f"{int(data.size - finite.sum())} samples are NaN or infinite")
    if not allow_silent:
        peak = float(np.max(np.abs(data)))
        where = "" if start == 0 and duration is None else f" in the segment read (offset {offset:g} s)"
        if peak == 0.0:
            raise AudioError(path, f"silent: every sample is zero{where}")
        peak_db = 20.0 * math.log10(peak)
        if peak_db < SILENCE_PEAK_DBFS:
            raise AudioError(path, f"silent: peak {peak_db:.1f} dBFS is below {SILENCE_PEAK_DBFS:g} dBFS{where}")

    # Downmix before resampling: one channel to resample instead of several, same result (both linear).
    if mono:
        try:
            y = select_channel(data.T, channel)
        except ValueError as exc:
            raise AudioError(path, str(exc)) from None
    else:
        y = np.ascontiguousarray(data.T)
    sr = native_sr
    if sample_rate is not None and sample_rate != native_sr:
        y = resample(y, native_sr, int(sample_rate))
        sr = int(sample_rate)
    return y.astype(np.float32, copy=False), sr


def audio_suffixes() -> set[str]:
    """File name suffixes (lower case, with dot) of formats libsndfile reads."""
    return {"." + ext.lower() for ext in sf.available_formats()} | {".mp3", ".opus", ".oga", ".wave", ".aif"}


def _looks_like_audio(path: Path, suffixes: set[str]) -> bool:
    # By content (libsndfile reads its header), whatever the name; a broken file with an audio name is kept so
    # that reading it reports why it is broken.
    if path.suffix.lower() in suffixes:
        return True
    try:
        sf.info(str(path))
    except Exception:  # noqa: BLE001 - libsndfile raises several types for "not audio"
        return False
    return True


def find_audio_files(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                     extensions: Iterable[str] | None = None, allow_empty: bool = False) -> list[Path]:
    """Files as given, folders replaced by the audio files inside them, in input order.

    A folder is searched recursively (sorted; hidden files and folders skipped). With ``extensions`` (a corpus
    whose layout is known) a file is audio when its name ends with one of them; without, when libsndfile
    recognises its content or its name ends like an audio file's. ``inputs`` may be one path.

    Raises
    ------
    AudioError
        naming a folder that holds no audio file, unless ``allow_empty`` (a corpus loader reports what is
        missing itself).
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if extensions is None:
        suffixes = audio_suffixes()
        wanted = lambda f: _looks_like_audio(f, suffixes)
    else:
        names = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
        wanted = lambda f: f.suffix.lower() in names
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.is_dir():
            found.append(p)
            continue
        inside = []
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            inside += [f for f in (Path(dirpath) / n for n in filenames if not n.startswith(".")) if wanted(f)]
        if not inside and not allow_empty:
            raise AudioError(p, "no audio files in this folder")
        found += sorted(inside)
    return found
