"""Throughput of serkit's batched torch frontends against librosa looping over the same clips.

Usage::

    .venv/bin/python benchmarks/bench_frontends.py [--batch 64] [--repeats 5] [--threads 2]

Writes ``docs/benchmarks/frontends.md`` and ``docs/benchmarks/frontends.json`` (atomically).
Each frontend gets three warm-up calls, then ``repeats`` timed calls of serkit on the whole
batch; then (after a pause) ``repeats`` timed librosa loops over the same clips in this one
process. The best (minimum) time of each is reported, as ``timeit`` does, because the machine
may be shared with other work.
The FFT columns time only the FFT step, to show how much of each pipeline is FFT-bound.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import soundfile as sf
import torch

from serkit.features import MFCC, Frontend, LogMel, LogMelDeltas, LogSTFT, Raw
from serkit.utils import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
EMODB_WAV = REPO.parent / "shared" / "corpora" / "emodb" / "wav"
SR = 16000
CLIP_SECONDS = 3.0
WARMUP_CALLS = 3
PAUSE_S = 0.5


def load_clips(batch: int) -> tuple[np.ndarray, str]:
    """``batch`` clips of 3 s at 16 kHz: EmoDB utterances (looped to 3 s) when present, else noise."""
    length = int(CLIP_SECONDS * SR)
    files = sorted(EMODB_WAV.glob("*.wav")) if EMODB_WAV.is_dir() else []
    if files:
        clips = []
        for path in files[:batch]:
            y, sr = sf.read(path, dtype="float32", always_2d=False)
            assert sr == SR, f"{path}: expected {SR} Hz"
            clips.append(np.resize(y, length))  # np.resize repeats the clip to fill 3 s
        while len(clips) < batch:
            clips.append(clips[len(clips) % len(files)])
        return np.stack(clips), f"EmoDB utterances looped to {CLIP_SECONDS:g} s ({EMODB_WAV})"
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((batch, length))).astype(np.float32), "white noise (EmoDB not found)"


def librosa_logmel(y: np.ndarray, f: LogMel) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=y, sr=f.sample_rate, n_fft=f.n_fft, hop_length=f.hop_length, win_length=f.win_length,
        window=f.window, n_mels=f.n_mels,
    )
    return librosa.power_to_db(mel)


def librosa_reference(frontend: Frontend) -> Callable[[np.ndarray], np.ndarray] | None:
    """librosa code computing the same features for one clip (None for raw)."""
    if isinstance(frontend, MFCC):
        f = frontend
        return lambda y: librosa.feature.mfcc(
            y=y, sr=f.sample_rate, n_mfcc=f.n_mfcc, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels
        )
    if isinstance(frontend, LogMelDeltas):
        f = frontend

        def deltas(y: np.ndarray) -> np.ndarray:
            static = librosa_logmel(y, f)
            width = 2 * f.delta_n + 1
            delta = librosa.feature.delta(static, width=width, mode="nearest")
            return np.stack([static, delta, librosa.feature.delta(delta, width=width, mode="nearest")])

        return deltas
    if isinstance(frontend, LogMel):
        return lambda y: librosa_logmel(y, frontend)
    if isinstance(frontend, LogSTFT):
        f = frontend
        sizes = np.array([len(g) for g in np.array_split(np.arange(f.n_fft // 2 + 1), f.n_bands)])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

        def log_stft(y: np.ndarray) -> np.ndarray:
            magnitude = np.abs(librosa.stft(y, n_fft=f.n_fft, hop_length=f.hop_length))
            pooled = np.add.reduceat(magnitude, starts, axis=0) / sizes[:, None]  # vectorised band means
            return librosa.amplitude_to_db(pooled)

        return log_stft
    return None


def naive_torch_mfcc(frontend: MFCC) -> Callable[[torch.Tensor], torch.Tensor]:
    """The straightforward torch MFCC (as torchaudio-style code would do it), for comparison:
    one ``torch.stft`` over the whole batch, ``abs().pow(2)``, dense mel matmul, dB, DCT."""
    mel = frontend.mel_basis
    dct = frontend.dct_t.T.contiguous()

    def mfcc(clips: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(clips, frontend.n_fft, frontend.hop_length, window=frontend.window_tensor,
                          center=True, pad_mode="constant", return_complex=True)
        log_mel = 10 * torch.log10(torch.matmul(mel, spec.abs().pow(2)).clamp_min(1e-10))
        log_mel = torch.maximum(log_mel, log_mel.amax(dim=(1, 2), keepdim=True) - 80)
        return torch.matmul(dct, log_mel)

    return mfcc


def fft_frames(frontend: Frontend, clips: torch.Tensor) -> list[torch.Tensor]:
    """The windowed frames each CPU chunk of the frontend feeds to its FFT."""
    frames = []
    for chunk in frontend._chunks(clips):
        padded = torch.nn.functional.pad(chunk, (frontend.n_fft // 2, frontend.n_fft // 2))
        frames.append((padded.unfold(-1, frontend.n_fft, frontend.hop_length) * frontend.window_tensor).contiguous())
    return frames


def timed_runs(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(batch: int, repeats: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    clips_np, source = load_clips(batch)
    clips = torch.from_numpy(clips_np)
    frontends: list[Frontend] = [Raw(SR), MFCC(SR), MFCC(SR, n_mfcc=128), LogSTFT(SR), LogMel(SR), LogMelDeltas(SR)]
    rows = []
    for frontend in frontends:
        reference = librosa_reference(frontend)
        with torch.inference_mode():
            for _ in range(WARMUP_CALLS):  # allocations, FFT plans, thread pools
                frontend(clips)
            serkit_times = timed_runs(lambda: frontend(clips), repeats)
        librosa_times = []
        if reference is not None:
            # Not interleaved with the torch runs: numpy's OpenBLAS threads keep spinning for a
            # while after a call and would steal the 2 cores from torch's threads.
            time.sleep(PAUSE_S)
            [reference(y) for y in clips_np[:8]]  # warm-up
            librosa_times = timed_runs(lambda: [reference(y) for y in clips_np], repeats)
            time.sleep(PAUSE_S)
        row = {
            "frontend": frontend.name,
            "params": {k: v for k, v in frontend.config.items() if k != "name"},
            "serkit_s_best": min(serkit_times),
            "serkit_s_median": statistics.median(serkit_times),
            "serkit_clips_per_s": batch / min(serkit_times),
        }
        if reference is not None:
            row.update(
                librosa_s_best=min(librosa_times),
                librosa_s_median=statistics.median(librosa_times),
                librosa_clips_per_s=batch / min(librosa_times),
                speedup=min(librosa_times) / min(serkit_times),
            )
            frames = fft_frames(frontend, clips)
            torch_fft = min(timed_runs(lambda: [torch.fft.rfft(f) for f in frames], repeats))
            frames_np = [f.numpy() for f in frames]
            pocketfft = min(timed_runs(lambda: [scipy.fft.rfft(f) for f in frames_np], repeats))
            row.update(
                torch_fft_s=torch_fft,
                scipy_fft_1worker_s=pocketfft,
                fft_share=torch_fft / min(serkit_times),
                speedup_ceiling_if_only_fft=min(librosa_times) / torch_fft,
            )
        if isinstance(frontend, MFCC):
            naive = naive_torch_mfcc(frontend)
            with torch.inference_mode():
                torch.testing.assert_close(naive(clips), frontend(clips), rtol=0, atol=1e-2)
                for _ in range(WARMUP_CALLS):
                    naive(clips)
                naive_time = min(timed_runs(lambda: naive(clips), repeats))
            row.update(naive_torch_clips_per_s=batch / naive_time, naive_torch_speedup=min(librosa_times) / naive_time)
        rows.append(row)
        print(f"{frontend.name:14s} serkit {row['serkit_clips_per_s']:9.0f} clips/s"
              + (f"  librosa {row['librosa_clips_per_s']:7.0f} clips/s  x{row['speedup']:.1f}" if reference else ""),
              flush=True)
    return {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": threads,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "librosa": librosa.__version__,
            "numpy": np.__version__,
            "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": f".venv/bin/python benchmarks/bench_frontends.py --batch {batch} --repeats {repeats} --threads {threads}",
        "batch": batch,
        "clip_seconds": CLIP_SECONDS,
        "sample_rate": SR,
        "clips": source,
        "repeats": repeats,
        "results": rows,
    }


def short_params(params: dict) -> str:
    keep = ["n_mfcc", "n_fft", "hop_length", "win_length", "n_mels", "n_bands", "window", "delta_n"]
    seconds = "hop_samples" in params  # logmel frontends give win/hop in seconds
    unit = {"hop_length": " s", "win_length": " s"} if seconds else {}
    return ", ".join(f"{k}={params[k]}{unit.get(k, '')}" for k in keep if params.get(k) is not None) or "-"


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Feature frontend throughput: serkit (batched torch) vs librosa (loop over clips)",
        "",
        f"- Batch of {report['batch']} clips of {report['clip_seconds']:g} s at {report['sample_rate']} Hz: {report['clips']}.",
        f"- Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}; "
        f"Python {m['python']}, torch {m['torch']}, librosa {m['librosa']}, numpy {m['numpy']}.",
        f"- Date: {report['date']}. Command: `{report['command']}`.",
        f"- Best of {report['repeats']} timed runs each, after warm-up; librosa is this one process "
        "calling its feature functions clip by clip (numpy's default BLAS threads).",
        f"- 1-minute load average before / after the run: {m['load_average_1min_before_after'][0]} / "
        f"{m['load_average_1min_before_after'][1]} (other work on the machine skews both columns; "
        "rerun when it is near 0).",
        "",
        "| frontend | params | serkit clips/s | librosa clips/s | speed-up | FFT share of serkit time | speed-up ceiling (librosa time / serkit FFT time) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        if "librosa_clips_per_s" in row:
            lines.append(
                f"| {row['frontend']} | {short_params(row['params'])} | {row['serkit_clips_per_s']:,.0f} | "
                f"{row['librosa_clips_per_s']:,.0f} | {row['speedup']:.1f}x | {row['fft_share']:.0%} | "
                f"{row['speedup_ceiling_if_only_fft']:.1f}x |"
            )
        else:
            lines.append(
                f"| {row['frontend']} | {short_params(row['params'])} | {row['serkit_clips_per_s']:,.0f} | "
                "n/a (no librosa step) | - | - | - |"
            )
    fft_rows = [r for r in report["results"] if "torch_fft_s" in r]
    naive_rows = [r for r in report["results"] if "naive_torch_clips_per_s" in r]
    speedups = ", ".join(f"{r['speedup']:.1f}x" for r in fft_rows)
    reached = [f"{r['frontend']} ({short_params(r['params']).split(',')[0]})" for r in fft_rows if r["speedup"] >= 10]
    lines += [
        "",
        f"Target 10x over librosa: reached by {', '.join(reached) if reached else 'none'} in this run "
        f"(speed-ups {speedups}).",
        "",
        "## Where the time goes",
        "",
        "The FFT columns time only the real FFT of the windowed frames (the same frames and chunks "
        "serkit uses). The FFT is the largest single cost of every spectral frontend, and torch's CPU "
        "FFT (MKL) is, per core, about as fast as the pocketfft that librosa calls through scipy, so "
        "batching cannot make it cheaper; the ceiling column (librosa's time / serkit's FFT time) is "
        "the speed-up no torch implementation could pass here even if everything but the FFT were free.",
        "",
        f"| frontend | torch rfft of the batch ({m['torch_threads']} threads) | scipy rfft, 1 worker (librosa's FFT) |",
        "|---|---:|---:|",
    ]
    for row in fft_rows:
        lines.append(
            f"| {row['frontend']} ({short_params(row['params'])}) | {row['torch_fft_s'] * 1e3:.1f} ms | "
            f"{row['scipy_fft_1worker_s'] * 1e3:.1f} ms |"
        )
    lines += [
        "",
        "What the implementation choices buy, for MFCC: the straightforward torch version (one "
        "`torch.stft` over the whole batch, `abs().pow(2)`, dense mel matmul) against serkit's:",
        "",
        "| frontend | naive torch clips/s | speed-up over librosa | serkit clips/s | speed-up over librosa |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {r['frontend']} ({short_params(r['params']).split(',')[0]}) | {r['naive_torch_clips_per_s']:,.0f} | "
            f"{r['naive_torch_speedup']:.1f}x | {r['serkit_clips_per_s']:,.0f} | {r['speedup']:.1f}x |"
            for r in naive_rows
        ],
        "",
        "serkit's pipeline: frames by `unfold` + "
        "`torch.fft.rfft` (about 2x faster than `torch.stft` here), power as re^2 + im^2 on "
        "`view_as_real` (`abs().pow(2)` is slower), mel filterbank and band pooling as block-banded "
        "matmuls over their non-zero bins, the batch processed in cache-sized chunks on CPU, and the "
        "multi-MB STFT temporaries written into reused per-thread buffers (fresh ones were mmapped and "
        "page-faulted by glibc on every chunk, which tripled the run time).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "benchmarks")
    args = parser.parse_args(argv)
    report = run(args.batch, args.repeats, args.threads)
    atomic_write_text(args.out_dir / "frontends.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out_dir / "frontends.md", to_markdown(report))
    print(f"wrote {args.out_dir / 'frontends.md'} and frontends.json", file=sys.stderr)


if __name__ == "__main__":
    main()
