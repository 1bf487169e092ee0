"""Speaker embeddings: who is speaking, as a vector per stretch of speech.

:class:`SpeakerEncoder` is the small interface the diarization and the voice enrolment use; another encoder
(ECAPA, WeSpeaker) fits behind it. :class:`ResemblyzerEncoder` is the one serkit ships with: Resemblyzer's GE2E
speaker encoder (Apache-2.0; a 3-layer LSTM over 40 mel bands, 256-d L2-normalised embeddings), whose weights
travel inside its PyPI wheel (``pip install serkit[speakers]``), so nothing is downloaded at run time. The version
is pinned and the weights file's sha256 is checked before it is loaded.

Why the windows are cut, and their mel spectrograms computed, here rather than by ``VoiceEncoder.embed_utterance``:
that call embeds one utterance at a time through librosa's mel spectrogram; the diarization embeds hundreds of
windows of a recording, whose spectrograms are computed as one torch batch (equal to Resemblyzer's
``wav_to_mel_spectrogram`` to float32 rounding: ``tests/test_speakers.py``) and run as one batch through the
network.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from serkit.errors import ConfigError

__all__ = ["RESEMBLYZER_SHA256", "RESEMBLYZER_VERSION", "ResemblyzerEncoder", "SpeakerEncoder", "cosine"]

#: The Resemblyzer release serkit was measured with, and the sha256 of the weights its wheel holds.
RESEMBLYZER_VERSION = "0.1.4"
RESEMBLYZER_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"


class SpeakerEncoder(Protocol):
    """What diarization and enrolment need of a speaker encoder."""

    #: the rate of the audio it takes (Hz)
    sample_rate: int
    #: the length of audio one embedding covers (s): the diarization's window
    window_seconds: float

    def embed(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) L2-normalised embeddings of mono float waveforms at :attr:`sample_rate` (any lengths)."""
        ...


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows of ``a`` with those of ``b`` (or with the vector ``b``)."""
    a = np.atleast_2d(a) / np.linalg.norm(np.atleast_2d(a), axis=1, keepdims=True).clip(1e-12)
    b2 = np.atleast_2d(b) / np.linalg.norm(np.atleast_2d(b), axis=1, keepdims=True).clip(1e-12)
    out = a @ b2.T
    return out[:, 0] if np.ndim(b) == 1 else out


class ResemblyzerEncoder:
    """Resemblyzer's GE2E speaker encoder behind :class:`SpeakerEncoder`.

    Each window is brought to -30 dBFS (as Resemblyzer's own preprocessing does, so that a quiet voice and a loud
    one are the same voice), turned into the 40-band mel spectrogram Resemblyzer computes (25 ms windows, 10 ms
    hop) and cut or zero-padded to 160 frames (1.6 s, the length the encoder was trained on); the batch runs through
    the network at once.

    Raises
    ------
    ConfigError
        when resemblyzer is not installed (``pip install serkit[speakers]``), is another version than
        :data:`RESEMBLYZER_VERSION`, or its weights file does not have :data:`RESEMBLYZER_SHA256`.
    """

    sample_rate = 16000
    window_seconds = 1.6
    frames = 160

    def __init__(self, *, threads: int | None = None):
        try:
            version = metadata.version("resemblyzer")
        except metadata.PackageNotFoundError:
            raise ConfigError("speaker embeddings need resemblyzer: pip install 'serkit[speakers]'") from None
        if version != RESEMBLYZER_VERSION:
            raise ConfigError(f"resemblyzer {version} is installed; serkit was measured with {RESEMBLYZER_VERSION} "
                              f"(pip install resemblyzer=={RESEMBLYZER_VERSION})")
        with warnings.catch_warnings():  # webrtcvad, which resemblyzer imports, warns about pkg_resources
            warnings.simplefilter("ignore")
            import resemblyzer
            from resemblyzer.audio import wav_to_mel_spectrogram
            from resemblyzer.voice_encoder import VoiceEncoder
        weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None
        if digest != RESEMBLYZER_SHA256:
            raise ConfigError(f"{weights}: sha256 {digest} is not the expected {RESEMBLYZER_SHA256} (a damaged or "
                              "altered resemblyzer wheel); reinstall it")
        self._mel = wav_to_mel_spectrogram  # the reference the batched spectrogram is tested against
        import librosa

        self._filters = torch.from_numpy(librosa.filters.mel(sr=self.sample_rate, n_fft=400, n_mels=40)).float()
        self._window = torch.hann_window(400)
        self.model = VoiceEncoder(device="cpu", verbose=False, weights_fpath=weights).eval()
        self.threads = threads
        self.source = f"resemblyzer {version} (GE2E, sha256 {digest[:12]})"

    def embed(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        if not len(windows):
            return np.zeros((0, 256), np.float32)
        n = round(self.window_seconds * self.sample_rate)
        batch = []
        for y in windows:
            y = np.asarray(y, dtype=np.float32)
            rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0
            if rms > 0:
                y = y * (10 ** (-30 / 20) / rms)  # -30 dBFS, as resemblyzer.preprocess_wav normalises
            batch.append(np.pad(y[:n], (0, max(0, n - len(y)))))
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return self.model(self.mel_batch(torch.from_numpy(np.stack(batch)))).numpy()
        finally:
            torch.set_num_threads(threads)

    def mel_batch(self, y: torch.Tensor) -> torch.Tensor:
        """(B, 160, 40) mel spectrograms of equal-length waveforms (B, T), as Resemblyzer's
        ``wav_to_mel_spectrogram`` computes them (librosa's: 25 ms Hann windows every 10 ms, centred with zero
        padding, power, 40 slaney mel bands; not logarithmic), its first 160 frames."""
        spec = torch.stft(y, 400, 160, window=self._window, center=True, pad_mode="constant", return_complex=True)
        return (self._filters @ spec.abs().square()).transpose(1, 2)[:, : self.frames]
