"""Degradations a user's recordings bring: coloured noise, babble, room reverberation, telephone band, lossy
codecs and gain.

Each is a function on a 1-D float waveform that returns a new float32 waveform of the same length and takes its
randomness from an explicit :class:`numpy.random.Generator`, so that training copies are reproducible and a
robustness benchmark can apply one fixed condition (an SNR, a room, a codec level) to every test clip.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Literal

import numpy as np
import soundfile as sf
from scipy import signal as sps

from serkit.errors import AudioError, ConfigError

__all__ = [
    "NOISE_COLOURS",
    "apply_gain",
    "babble_noise",
    "codec_round_trip",
    "coloured_noise",
    "mix_at_snr",
    "reverberate",
    "room_impulse_response",
    "telephone_band",
]

NoiseColour = Literal["white", "pink", "brown"]
#: Power spectral density slope of each colour: PSD ~ 1 / f**exponent.
NOISE_COLOURS: dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0}

# The rates each encoder takes; other rates go through 48 kHz for the round trip.
_CODEC_RATES = {
    "opus": (8000, 12000, 16000, 24000, 48000),
    "mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
}
_CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}


def _signal(y: np.ndarray, what: str = "signal") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(None, f"{what} must be a 1-D waveform, got shape {y.shape}")
    if y.size == 0:
        raise AudioError(None, f"{what} is empty")
    return y.astype(np.float32, copy=False)


def _power(y: np.ndarray) -> float:
    return float(np.mean(np.square(y, dtype=np.float64)))


def coloured_noise(n: int, colour: NoiseColour, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of Gaussian noise with power spectral density ~ 1/f**k (white 0, pink 1, brown 2), unit
    mean power.

    White noise is shaped in the frequency domain (amplitude ~ f**(-k/2), the DC bin zeroed), the usual exact
    way to colour a finite sequence.
    """
    if colour not in NOISE_COLOURS:
        raise ConfigError(f"noise colour must be one of {', '.join(NOISE_COLOURS)}, got {colour!r}")
    if n < 1:
        raise ConfigError(f"noise length must be >= 1 sample, got {n}")
    white = rng.standard_normal(n)
    exponent = NOISE_COLOURS[colour]
    if exponent == 0.0 or n < 3:
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n)
        scale = np.zeros_like(freqs)
        scale[1:] = freqs[1:] ** (-exponent / 2.0)
        noise = np.fft.irfft(spectrum * scale, n)
    noise = noise - noise.mean() if exponent > 0 else noise
    return (noise / np.sqrt(_power(noise))).astype(np.float32)


def mix_at_snr(y: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``y`` plus ``noise`` scaled so that ``10 log10(power(y) / power(scaled noise))`` is exactly ``snr_db``.

    Raises
    ------
    AudioError
        If ``y`` or ``noise`` is silent (zero power) or their lengths differ.
    """
    y, noise = _signal(y), _signal(noise, "noise")
    if noise.size != y.size:
        raise AudioError(None, f"noise has {noise.size} samples, the signal {y.size}")
    signal_power, noise_power = _power(y), _power(noise)
    if signal_power <= 0.0:
        raise AudioError(None, "cannot add noise at a given SNR to a silent signal (zero power)")
    if noise_power <= 0.0:
        raise AudioError(None, "the noise is silent (zero power)")
    gain = np.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (y + gain * noise).astype(np.float32)


def babble_noise(others: Sequence[np.ndarray], n: int, talkers: int, rng: np.random.Generator) -> np.ndarray:
    """Babble of ``talkers`` voices: random stretches of distinct clips from ``others``, each at unit power,
    looped when shorter than ``n`` samples, summed (unit mean power overall).

    Raises
    ------
    ConfigError
        If fewer than ``talkers`` non-silent clips are given.
    """
    usable = [np.asarray(o, dtype=np.float32) for o in others if np.asarray(o).size and _power(np.asarray(o)) > 0]
    if talkers < 1 or len(usable) < talkers:
        raise ConfigError(f"babble needs {talkers} talker(s) from other speakers, only {len(usable)} clip(s) given")
    mix = np.zeros(n, dtype=np.float64)
    for k in rng.choice(len(usable), size=talkers, replace=False):
        voice = usable[int(k)]
        if voice.size < n:
            voice = np.tile(voice, int(np.ceil(n / voice.size)) + 1)
        start = int(rng.integers(0, voice.size - n + 1))
        piece = voice[start : start + n].astype(np.float64)
        power = _power(piece)
        mix += piece / np.sqrt(power) if power > 0 else 0.0
    power = _power(mix)
    return (mix / np.sqrt(power) if power > 0 else mix).astype(np.float32)


def room_impulse_response(
    sample_rate: int,
    room_dim: Sequence[float],
    rt60: float,
    rng: np.random.Generator,
    *,
    max_order: int = 40,
) -> np.ndarray:
    """Impulse response of a simulated shoebox room (pyroomacoustics' image-source method).

    Wall absorption and reflection order come from Sabine's formula for ``rt60`` seconds
    (``pyroomacoustics.inverse_sabine``), the order capped at ``max_order`` for speed; source and microphone
    are placed at random at least 0.5 m from the walls, heights 1-2 m.

    Raises
    ------
    ConfigError
        If pyroomacoustics is not installed, or the room cannot give that RT60 (too large for the room).
    """
    try:
        import pyroomacoustics as pra
    except ImportError:
        raise ConfigError("reverberation needs pyroomacoustics: pip install 'serkit[augment]'") from None
    dims = np.asarray(room_dim, dtype=float)
    if dims.shape != (3,) or (dims < 1.5).any():
        raise ConfigError(f"room_dim must be 3 lengths of at least 1.5 m, got {list(room_dim)}")
    try:
        absorption, order = pra.inverse_sabine(float(rt60), dims)
    except ValueError as exc:
        raise ConfigError(f"rt60={rt60} s in a {dims.tolist()} m room: {exc}") from None
    room = pra.ShoeBox(dims, fs=int(sample_rate), materials=pra.Material(absorption),
                       max_order=int(min(order, max_order)))
    low, high = np.array([0.5, 0.5, 1.0]), np.array([dims[0] - 0.5, dims[1] - 0.5, min(2.0, dims[2] - 0.5)])
    room.add_source(rng.uniform(low, high))
    room.add_microphone(rng.uniform(low, high))
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float32)


def reverberate(y: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``y`` convolved with a room impulse response, aligned on the direct path (the RIR's peak) and scaled
    back to ``y``'s mean power, same length as ``y``."""
    y, rir = _signal(y), _signal(rir, "impulse response")
    onset = int(np.argmax(np.abs(rir)))
    wet = sps.fftconvolve(y.astype(np.float64), rir[onset:].astype(np.float64))[: y.size]
    power = _power(wet)
    if power > 0:
        wet *= np.sqrt(_power(y) / power)
    return wet.astype(np.float32)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if y.size >= n else np.pad(y, (0, n - y.size))


def telephone_band(
    y: np.ndarray, sample_rate: int, *, low_hz: float = 300.0, high_hz: float = 3400.0, rate: int = 8000
) -> np.ndarray:
    """A telephone line: band-pass ``low_hz``-``high_hz`` (8th-order Butterworth, zero phase), then down to
    ``rate`` Hz and back up with soxr, same length as ``y``."""
    import soxr

    y = _signal(y)
    if not 0 < low_hz < high_hz < sample_rate / 2:
        raise ConfigError(f"telephone band {low_hz}-{high_hz} Hz does not fit below {sample_rate / 2:g} Hz")
    sos = sps.butter(8, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    # sosfiltfilt pads by 3 * (2 * sections + 1) samples by default; a clip shorter than that pads less
    padlen = min(3 * (2 * len(sos) + 1), y.size - 1)
    band = sps.sosfiltfilt(sos, y.astype(np.float64), padlen=padlen)
    if rate < sample_rate:
        narrow = soxr.resample(band, sample_rate, rate)
        band = soxr.resample(narrow, rate, sample_rate)
    return _fit(np.asarray(band, dtype=np.float32), y.size)


def codec_round_trip(y: np.ndarray, sample_rate: int, codec: Literal["mp3", "opus"],
                     compression_level: float = 0.9) -> np.ndarray:
    """Encode with libsndfile's MP3 (LAME) or Ogg Opus encoder and decode again, same length as ``y``.

    ``compression_level`` (0-0.99) is libsndfile's: higher is a lower bitrate. Measured on 16 kHz speech:
    MP3 0.5 ~ 42, 0.9 ~ 31, 0.99 ~ 26 kbit/s; Opus 0.75 ~ 74, 0.9 ~ 35, 0.95 ~ 23, 0.99 ~ 12 kbit/s. MP3 is
    variable bitrate (libsndfile's default, which also keeps it free of encoder delay). A rate the encoder does
    not take (Opus: 8/12/16/24/48 kHz; MP3: the MPEG rates 8-48 kHz) goes through 48 kHz.

    Raises
    ------
    ConfigError
        For an unknown codec or level, or a libsndfile without that encoder.
    """
    import soxr

    y = _signal(y)
    if codec not in _CODECS:
        raise ConfigError(f"codec must be one of {', '.join(_CODECS)}, got {codec!r}")
    if not 0.0 <= compression_level <= 0.99:
        raise ConfigError(f"compression_level must be in [0, 0.99], got {compression_level}")
    fmt, subtype = _CODECS[codec]
    if subtype not in sf.available_subtypes(fmt):
        raise ConfigError(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {codec}")
    rate = sample_rate
    data = y
    if sample_rate not in _CODEC_RATES[codec]:
        rate = 48000
        data = soxr.resample(y, sample_rate, rate).astype(np.float32)
    # Clip to the range an encoder takes; a copy louder than full scale would be clipped by any real codec.
    data = np.clip(data, -1.0, 1.0)
    buffer = io.BytesIO()
    try:
        sf.write(buffer, data, rate, format=fmt, subtype=subtype, compression_level=compression_level)
        buffer.seek(0)
        decoded, _ = sf.read(buffer, dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ConfigError(f"{codec} round trip at {rate} Hz failed: {exc}") from None
    if decoded.ndim > 1:
        decoded = decoded[:, 0]
    if rate != sample_rate:
        decoded = soxr.resample(decoded, rate, sample_rate)
    return _fit(np.asarray(decoded, dtype=np.float32), y.size)


def apply_gain(y: np.ndarray, gain_db: float) -> np.ndarray:
    """``y`` times ``10**(gain_db / 20)`` (no clipping: the audio config's normalisation decides the level)."""
    return (_signal(y) * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
