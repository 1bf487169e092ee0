"""Shared fixtures: paths to the shared corpora (tests needing them skip when absent) and synthetic audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
EMODB_ROOT = CORPORA / "emodb"

# Feature caches written by the tests stay in the checkout (git-ignored .cache/), not in the user's ~/.cache/serkit;
# `make test` sets the same folder.
os.environ.setdefault("SERKIT_CACHE", str(REPO / ".cache" / "serkit-test"))
RAVDESS_ROOT = CORPORA / "ravdess-16k"


@pytest.fixture(scope="session")
def emodb_root() -> Path:
    if not (EMODB_ROOT / "wav").is_dir():
        pytest.skip(f"EmoDB not found at {EMODB_ROOT}")
    return EMODB_ROOT


@pytest.fixture(scope="session")
def ravdess_root() -> Path:
    if not RAVDESS_ROOT.is_dir():
        pytest.skip(f"RAVDESS not found at {RAVDESS_ROOT}")
    return RAVDESS_ROOT


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 220.0, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    """A tone with a little noise: a stand-in for speech in unit tests."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture
def tone_wav(tmp_path) -> Path:
    path = tmp_path / "tone.wav"
    sf.write(path, tone(), 16000)
    return path


TONE_FREQS = {"angry": 300.0, "sad": 700.0, "happy": 1500.0}


def write_tone_corpus(root: Path, clips_per_label: int = 3, freqs: dict[str, float] = TONE_FREQS) -> Path:
    """3 speakers x len(freqs) emotions of half-second 8 kHz tones (``freqs``: emotion -> pitch in Hz) and a CSV
    manifest.

    A corpus small models learn in a few epochs, for end-to-end runs of the CLI, fan-out and data parallelism.
    """
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for s, speaker in enumerate(["s1", "s2", "s3"]):
        for label, freq in freqs.items():
            for k in range(clips_per_label):
                t = np.arange(4000) / 8000
                y = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.02 * s + 0.01 * k) * t) + 0.02 * rng.standard_normal(t.size)
                sf.write(root / f"{speaker}_{label}_{k}.wav", y.astype(np.float32), 8000)
                rows.append({"path": f"{speaker}_{label}_{k}.wav", "label": label, "speaker": speaker})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small trained bundle that tells tones apart (built by test_api's helper, once per session)."""
    from test_api import tiny_model_file

    return tiny_model_file(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    """The tiny bundle loaded with ``serkit.load_model`` (thread-safe, so one instance serves every test).

    Its inputs are tones, which silero-vad rightly does not take for speech: inputs longer than its 1 s clip
    find their "speech" with the energy detector."""
    from serkit.inference import load_model

    return load_model(tiny_model_path, vad="energy")


def fit_tiny_batch(model, inputs, y, *, steps: int, optimizer=None) -> None:
    """Train ``model`` on one batch for ``steps`` steps (cross-entropy; Adam lr 1e-2 unless ``optimizer``).

    ``inputs`` is one tensor, or a tuple of tensors for a multi-input model. The model is left in train mode;
    each test asserts the fit in the mode it means.
    """
    import torch

    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        model.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(*inputs), y).backward()
        opt.step()


@pytest.fixture
def one_torch_thread():
    """Small models on a shared 2-core machine: a second torch thread only spins (35x slower under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
