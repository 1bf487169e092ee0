"""Speed of the Whisper encoder frontend on unpadded clips, against the padded 30 s way, and the CNN beside it.
Writes ``docs/benchmarks/encoder.md`` and ``.json``.

Usage::

    .venv/bin/python benchmarks/bench_encoder.py [--threads 1] [--repeats 5] [--bundle runs/whisper_emodb/...]

Clips: EmoDB utterances looped to 3 s (as the other benchmarks), 16 kHz. Rows (each at ``--threads`` torch threads):

- ``whisper-base, layers 3+4, unpadded``: serkit's frontend as the recipes use it (blocks 5 and 6 are never built);
- ``whisper-base, all 6 layers, unpadded``;
- ``whisper-base, padded to 30 s``: the same encoder on 3000 mel frames, all layers, as the libraries run it;
- ``ctranslate2 encode, padded to 30 s``: CTranslate2's own Whisper encoder (float32), the library reference;
- ``whisper-tiny.en, all 4 layers, unpadded``;
- ``file -> probabilities``: a trained whisper recipe's model file through the pipeline (decode, log-mel, encoder,
  normaliser, logistic regression), and the shipped default and cnn models the same way.

RTF = compute seconds / audio seconds; each figure is the best of ``--repeats`` rounds (the machine is shared).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]

from serkit.features import WhisperConfig, WhisperFrontend
from serkit.features.whisper import CHUNK_SAMPLES, whisper_log_mel
from serkit.features.whisper_weights import KNOWN_WEIGHTS, _package_parts
from serkit.utils import atomic_write_text

SECONDS = 3.0
SR = 16000


def clips(n: int) -> list[np.ndarray]:
    wavs = sorted((ROOT / "../shared/corpora/emodb/wav").resolve().glob("*.wav"))[:n]
    out = []
    for w in wavs:
        y, _ = sf.read(w, dtype="float32")
        out.append(np.resize(y, int(SECONDS * SR)))  # loop to 3 s
    return out


def best_rtf(fn: Callable[[np.ndarray], object], items: list[np.ndarray], repeats: int) -> float:
    fn(items[0])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for y in items:
            fn(y)
        best = min(best, (time.perf_counter() - t0) / (len(items) * SECONDS))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--bundle", action="append", default=[], help="NAME=PATH of a model file to time end to end")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "encoder.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    items = clips(args.clips)
    load_before = os.getloadavg()[0]
    rows: list[dict] = []

    def add(name: str, rtf: float, note: str = "") -> None:
        rows.append({"name": name, "rtf": rtf, "note": note})
        print(f"{name}: RTF {rtf:.4f}", flush=True)

    with torch.inference_mode():
        base34 = WhisperFrontend(config=WhisperConfig(weights="whisper-base", layers=[3, 4]))
        add("whisper-base, layers 3+4, unpadded (the recipes)", best_rtf(lambda y: base34(torch.from_numpy(y)),
                                                                           items, args.repeats))
        base34_q = WhisperFrontend(config=WhisperConfig(weights="whisper-base", layers=[3, 4], precision="int8"))
        add("whisper-base, layers 3+4, unpadded, int8 Linear layers", best_rtf(
            lambda y: base34_q(torch.from_numpy(y)), items, args.repeats))
        base_all = WhisperFrontend(config=WhisperConfig(weights="whisper-base", layers=list(range(7))))
        add("whisper-base, all 6 layers, unpadded", best_rtf(lambda y: base_all(torch.from_numpy(y)), items,
                                                             args.repeats))

        def padded(y: np.ndarray) -> object:
            full = np.zeros(CHUNK_SAMPLES, np.float32)
            full[: len(y)] = y
            return base_all.encoder(base_all.logmel(torch.from_numpy(full)[None]), [6])

        add("whisper-base, padded to 30 s, all 6 layers (serkit's encoder)", best_rtf(padded, items[:2], 2))
        try:
            import ctranslate2

            tmp = Path(tempfile.mkdtemp())
            with open(tmp / "model.bin", "wb") as out:
                for part in _package_parts(KNOWN_WEIGHTS["whisper-base"]):
                    with open(part, "rb") as fh:
                        shutil.copyfileobj(fh, out)
            for extra in ("config.json", "vocabulary.json", "vocabulary.txt", "tokenizer.json"):  # ctranslate2 needs
                src = _package_parts(KNOWN_WEIGHTS["whisper-base"])[-1].parent / extra  # them to load the model
                if src.exists():
                    shutil.copy(src, tmp)
            ct2 = ctranslate2.models.Whisper(str(tmp), device="cpu", compute_type="float32",
                                             intra_threads=args.threads)

            def ct2_encode(y: np.ndarray) -> object:
                full = np.zeros(CHUNK_SAMPLES, np.float32)
                full[: len(y)] = y
                mel = whisper_log_mel(full)[None].numpy()
                return ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)), to_cpu=True)

            add("ctranslate2 Whisper.encode, padded to 30 s (float32)", best_rtf(ct2_encode, items[:2], 2))
            shutil.rmtree(tmp)
        except ImportError:
            pass
        tiny = WhisperFrontend(config=WhisperConfig(weights="whisper-tiny.en", layers=list(range(5))))
        add("whisper-tiny.en, all 4 layers, unpadded", best_rtf(lambda y: tiny(torch.from_numpy(y)), items,
                                                                args.repeats))

    from serkit.inference.api import default_model_path, shipped_model_path
    from serkit.inference.pipeline import EmotionPipeline

    bundles = [b.split("=", 1) for b in args.bundle]
    if default_model_path().is_file():
        bundles.append(["shipped default model (whisper-base layers 3+4 + calibrated logreg)",
                        str(default_model_path())])
    if shipped_model_path("cnn").is_file():
        bundles.append(["shipped cnn model (CNN on log-mel)", str(shipped_model_path("cnn"))])
    tmpdir = Path(tempfile.mkdtemp())
    paths = []
    for i, y in enumerate(items):
        paths.append(tmpdir / f"clip{i}.wav")
        sf.write(paths[-1], y, SR)
    for name, path in bundles:
        precisions = ["float32", "int8"] if "whisper" in str(EmotionPipeline.load(path).bundles[0].recipe.get(
            "frontend")) else [None]
        for precision in precisions:
            pipeline = EmotionPipeline.load(path, precision=precision)
            label = f"file -> probabilities: {name}" + (f", {precision} encoder" if precision else "")
            add(label, best_rtf(lambda _y, p=pipeline: p.predict_files(paths[:1]), items, args.repeats),
                note=str(path))
    shutil.rmtree(tmpdir)

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_after = os.getloadavg()[0]
    cmd = "python benchmarks/bench_encoder.py " + " ".join(sys.argv[1:])
    lines = [
        "# Whisper encoder speed: unpadded clips against 30 s padding",
        "",
        (f"Generated by `{cmd.strip()}` on {stamp} ({platform.machine()}, {os.cpu_count()} CPU cores visible, "
         f"torch {torch.__version__}, {args.threads} thread(s)). Clips: {len(items)} EmoDB utterances looped to "
         f"{SECONDS:.0f} s. 1-minute load average before / after: {load_before:.2f} / {load_after:.2f} (2 cores; "
         "above 2 the machine was shared and times are pessimistic)."),
        "",
        ("RTF = compute seconds / audio seconds, best of the timed rounds. Targets: whisper-base up to layer 4 on "
         "unpadded 3 s clips at RTF <= 0.02 on 1 thread (issue 13); file to calibrated probabilities with the "
         "default model at RTF <= 0.008 on 1 thread (issue 26). The int8 rows quantise the encoder's Linear "
         "layers (dynamic int8; docs/benchmarks/precision.md measures what it costs in accuracy)."),
        "",
        "| path | RTF | x faster than real time |",
        "|---|---:|---:|",
    ]
    lines += [f"| {r['name']} | {r['rtf']:.4f} | {1 / r['rtf']:.0f} |" for r in rows]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps({"generated": stamp, "command": cmd,
                                                                 "threads": args.threads, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
