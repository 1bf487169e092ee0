"""Real-time factor of inference with PyTorch and onnxruntime, batch 1 and batched, features in or out.

Usage::

    .venv/bin/python benchmarks/bench_inference.py                       # default model set (below)
    .venv/bin/python benchmarks/bench_inference.py --bundle cnn_atn=runs/x/folds/seed0/model.pt \\
        --recipe recipes/serkit_default.yaml --threads 1,2 --batch 32

Models: each ``--bundle NAME=PATH`` (a trained ``model.pt``), and each ``--recipe PATH`` built *untrained* from
its recipe (random weights, identity normaliser; the SVM is fitted on random eGeMAPS-sized data), so the script
runs before any model is trained. With no ``--bundle``/``--recipe`` it uses the shipped default model
(``src/serkit/pretrained/default.pt``, or its recipe untrained when absent), the mountzouris2023 CNN-ATN recipe
and the eGeMAPS SVM recipe.

Clips: 3 s of speech, EmoDB utterances looped to 3 s (as ``bench_frontends.py``), written as 16 kHz WAV files.
Each model's recipe then resamples and pads or crops them to its own duration, as in real use.

Timed paths, for each backend (``torch``: the bundle's network in PyTorch; ``onnx``: the network exported and
run by onnxruntime with all graph optimisations; ``onnx-int8``: the same with dynamic int8 weights):

- ``network``: normalised features -> probabilities (features excluded);
- ``signal``: prepared waveforms -> frontend -> normaliser -> network (``EmotionPipeline.predict_prepared``);
- ``file``: audio files -> decode, resample, pad -> features -> probabilities (``EmotionPipeline.predict_files``),
  i.e. what ``serkit predict`` does after loading the model.

Real-time factor = seconds of compute / seconds of audio (3 s per clip); each figure is the best of
``--repeats`` timed rounds (the machine is shared), each round averaging enough calls to last ~0.2 s.
``int8_agreement`` is the share of clips on which int8 and float32 onnxruntime predict the same class.
Writes ``docs/benchmarks/inference.md`` and ``.json`` (atomically).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from serkit.audio import load_clips
from serkit.features.extractor import make_feature_extractor
from serkit.inference.export import onnx_classifier_for_bundle, onnx_unsupported_reason
from serkit.inference.pipeline import EmotionPipeline
from serkit.models import create_model, model_spec
from serkit.models.bundle import ModelBundle
from serkit.multi_input import item_shape
from serkit.recipe import Recipe
from serkit.utils import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
EMODB_WAV = REPO.parent / "shared" / "corpora" / "emodb" / "wav"
DEFAULT_BUNDLE = REPO / "src" / "serkit" / "pretrained" / "default.pt"
DEFAULT_RECIPES = ["recipes/mountzouris2023_cnn_atn_ravdess.yaml", "recipes/egemaps_svm_emodb.yaml"]
SR = 16000
CLIP_SECONDS = 3.0
ROUND_SECONDS = 0.2


def write_clips(folder: Path, n: int) -> tuple[list[Path], str]:
    """``n`` 3 s WAV files at 16 kHz: EmoDB utterances looped to 3 s, or noise without EmoDB."""
    length = int(CLIP_SECONDS * SR)
    files = sorted(EMODB_WAV.glob("*.wav")) if EMODB_WAV.is_dir() else []
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        if files:
            y, sr = sf.read(files[(i * 7) % len(files)], dtype="float32", always_2d=False)
            assert sr == SR, f"expected {SR} Hz EmoDB files"
            y = np.resize(y, length)
        else:
            y = (0.1 * rng.standard_normal(length)).astype(np.float32)
        paths.append(folder / f"clip{i:03d}.wav")
        sf.write(paths[-1], y, SR)
    source = f"EmoDB utterances looped to {CLIP_SECONDS:g} s" if files else "white noise (EmoDB not found)"
    return paths, source


def untrained_bundle(recipe_path: Path, folder: Path) -> tuple[Path, str]:
    """A bundle of the recipe's model with random weights (an SVM fitted on random data), saved in ``folder``."""
    recipe = Recipe.from_yaml(recipe_path)
    spec = model_spec(recipe.model.name)
    labels = [f"class{i}" for i in range(7)]
    extractor = make_feature_extractor(recipe.audio, recipe.frontends or recipe.frontend, pooling=recipe.pooling)
    signal = np.zeros(int((recipe.audio.duration or CLIP_SECONDS) * recipe.audio.sample_rate), dtype=np.float32)
    shape = item_shape(extractor.pool(extractor.from_signals([signal + 1e-3 * np.random.default_rng(0).standard_normal(
        len(signal)).astype(np.float32)])))
    if spec.kind == "torch":
        torch.manual_seed(0)
        model = create_model(recipe.model.name, num_classes=len(labels), input_shape=shape, **recipe.model.options)
        model.eval()
        note = "untrained (random weights, no normaliser)"
    else:
        # EmoDB-sized training set (535 items) of standardised features: a comparable number of support vectors.
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((535, *shape)), np.arange(535) % len(labels)
        model = create_model(recipe.model.name, num_classes=len(labels), **recipe.model.options).fit(X, y)
        note = "fitted on random data (535 items)"
    bundle = ModelBundle(recipe.model_dump(mode="json"), labels, shape, model, None, {"note": note})
    return bundle.save(folder / f"{recipe.name}.pt"), note


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(best, median) seconds per call over ``repeats`` rounds of calls lasting about ROUND_SECONDS."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-6)
    calls = max(1, int(ROUND_SECONDS / once))
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - t0) / calls)
    return min(rounds), statistics.median(rounds)


class _Backend:
    """Swaps a pipeline's networks between torch, onnxruntime and int8 onnxruntime."""

    def __init__(self, pipeline: EmotionPipeline, threads: int):
        self.pipeline, self.threads = pipeline, threads
        bundle = pipeline.bundles[0]
        self.native = "torch" if isinstance(bundle.model, torch.nn.Module) else "scikit-learn"
        self.exportable = onnx_unsupported_reason(bundle.model_name) is None
        self.learners = {self.native: [m.learner for m in pipeline.members]}
        if self.exportable:
            self.learners.update({
                "onnx": [onnx_classifier_for_bundle(b, num_threads=threads) for b in pipeline.bundles],
                "onnx-int8": [onnx_classifier_for_bundle(b, num_threads=threads, quantize=True)
                              for b in pipeline.bundles],
            })

    def names(self) -> list[str]:
        return list(self.learners)

    def use(self, name: str) -> None:
        # each pipeline member runs its network through its learner: swap in this backend's
        for member, learner in zip(self.pipeline.members, self.learners[name]):
            member.learner = learner

    def network(self, name: str, X: Any) -> np.ndarray:
        self.use(name)
        return self.pipeline.members[0].learner.predict_proba(X)


def bench_model(name: str, path: Path, note: str, clips: list[Path], *, batch: int, threads: int,
                repeats: int) -> list[dict]:
    torch.set_num_threads(threads)
    pipeline = EmotionPipeline.load(path)
    audio = pipeline.audio
    loaded = load_clips([str(p) for p in clips], audio)
    signals = list(loaded.signals)
    speakers = np.array(["<predict>"] * len(signals))
    feats = pipeline.members[0].normalizer.transform(
        pipeline.extractor.pool(pipeline.extractor.from_signals(signals)), speakers=speakers)
    backends = _Backend(pipeline, threads)
    rows = []
    reference = {}
    for backend in backends.names():
        backends.use(backend)
        for n in (1, batch):
            sub = {k: v[:n] for k, v in feats.items()} if isinstance(feats, dict) else feats[:n]
            timings = {
                "network": best_time(lambda b=backend, x=sub: backends.network(b, x), repeats),
                "signal": best_time(lambda s=signals[:n]: pipeline.predict_prepared(s), repeats),
                "file": best_time(lambda c=clips[:n]: pipeline.predict_files(c), repeats),
            }
            for path_name, (best, median) in timings.items():
                rows.append({"model": name, "model_note": note, "backend": backend, "threads": threads, "batch": n,
                             "path": path_name, "seconds_per_batch": best, "median_seconds_per_batch": median,
                             "rtf": best / (n * CLIP_SECONDS)})
        reference[backend] = backends.network(backend, feats)
    if "onnx" in reference:
        agree = float((reference["onnx"].argmax(1) == reference["onnx-int8"].argmax(1)).mean())
        # the network-only outputs on all clips: onnxruntime against torch, and int8 against float32
        torch_gap = float(np.abs(reference["onnx"] - reference["torch"]).max())
        int8_gap = float(np.abs(reference["onnx"] - reference["onnx-int8"]).max())
        for row in rows:
            row.update(int8_agreement=agree, max_abs_diff_onnx_vs_torch=torch_gap, max_abs_diff_int8=int8_gap)
    backends.use(backends.native)
    return rows


def to_markdown(meta: dict, rows: list[dict]) -> str:
    lines = [
        "# Inference speed: PyTorch and onnxruntime",
        "",
        (f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}; torch {meta['torch']}, "
         f"onnxruntime {meta['onnxruntime']}). Clips: {meta['clips']}, {meta['n_clips']} of {CLIP_SECONDS:g} s. "
         f"1-minute load average before / after: {meta['load_average'][0]} / {meta['load_average'][1]}."),
        "",
        ("Real-time factor (RTF) = compute seconds / audio seconds (lower is faster; 0.002 = 500x faster than "
         "real time). Best of the timed rounds on a shared machine. Paths: `network` = normalised features -> "
         "probabilities; `signal` = prepared waveform -> features -> probabilities; `file` = audio file -> "
         "decode, resample, pad -> features -> probabilities (what `serkit predict` does once the model is loaded)."),
        "",
    ]
    if max(meta["load_average"]) > meta.get("cpu_count", 2):
        lines += [("**The machine was shared** (load average above its core count): multi-threaded timings suffer "
                   "most (a thread waits for a core another job holds), so the 1-thread rows are the reliable ones."),
                  ""]
    lines += [
        "## Summary: audio file to probabilities, batch 1",
        "",
        "The `file` path at batch 1: one 3 s clip at a time, from its file to its probabilities, features included.",
        "",
        "| model | backend | threads | RTF | x faster than real time |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r["path"] == "file" and r["batch"] == 1:
            lines.append(f"| {r['model']} | {r['backend']} | {r['threads']} | {r['rtf']:.5f} | {1 / r['rtf']:.0f} |")
    lines.append("")
    for model in dict.fromkeys(r["model"] for r in rows):
        mrows = [r for r in rows if r["model"] == model]
        lines += [f"## {model}", "", f"{mrows[0]['model_note']}.", ""]
        if "int8_agreement" in mrows[0]:
            lines += [(f"onnxruntime vs torch: max |p difference| {mrows[0]['max_abs_diff_onnx_vs_torch']:.1e}; "
                       f"int8 vs float32 onnxruntime: same class on {100 * mrows[0]['int8_agreement']:.1f} % of "
                       f"the {meta['n_clips']} clips, max |p difference| {mrows[0]['max_abs_diff_int8']:.3f}."), ""]
        else:
            lines += ["Not exportable to ONNX (see `serkit export --list`).", ""]
        backends = list(dict.fromkeys(r["backend"] for r in mrows))
        lines += ["| threads | batch | path | " + " | ".join(f"{b} RTF" for b in backends) + " |",
                  "|---|---|---|" + "---|" * len(backends)]
        keys = list(dict.fromkeys((r["threads"], r["batch"], r["path"]) for r in mrows))
        for t, n, p in keys:
            cells = []
            for b in backends:
                match = [r for r in mrows if (r["threads"], r["batch"], r["path"], r["backend"]) == (t, n, p, b)]
                cells.append(f"{match[0]['rtf']:.5f}" if match else "-")
            lines.append(f"| {t} | {n} | {p} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", action="append", default=[], help="NAME=PATH of a trained model.pt")
    parser.add_argument("--recipe", action="append", default=[], help="recipe whose model is built untrained")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "inference"),
                        help="output path without extension (.md and .json are written)")
    parser.add_argument("--from-json", help="only rewrite the Markdown from a JSON file this script wrote")
    args = parser.parse_args(argv)
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        atomic_write_text(Path(args.out).with_suffix(".md"), to_markdown(data["meta"], data["rows"]))
        return 0
    import onnxruntime

    models: list[tuple[str, Path | None, str | None]] = []  # (name, bundle path, recipe path)
    for item in args.bundle:
        name, sep, path = item.partition("=")
        models.append((name, Path(path), None) if sep else (Path(item).stem, Path(item), None))
    models += [(Path(r).stem + " (untrained)", None, r) for r in args.recipe]
    if not models:
        if DEFAULT_BUNDLE.is_file():
            models.append(("default model", DEFAULT_BUNDLE, None))
        else:
            models.append(("serkit_default (untrained)", None, "recipes/serkit_default.yaml"))
        models += [(Path(r).stem + " (untrained)", None, r) for r in DEFAULT_RECIPES]
    threads = [int(t) for t in args.threads.split(",")]
    load_before = os.getloadavg()[0]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        clips, source = write_clips(Path(tmp), args.batch)
        for name, bundle, recipe in models:
            note = "trained bundle " + str(bundle) if bundle is not None else ""
            if bundle is None:
                bundle, note = untrained_bundle(REPO / recipe, Path(tmp))
                note = f"{recipe}, {note}"
            for t in threads:
                print(f"{name}: {t} thread(s)", file=sys.stderr, flush=True)
                rows += bench_model(name, bundle, note, clips, batch=args.batch, threads=t, repeats=args.repeats)
    meta = {
        "command": shlex.join(["python", "benchmarks/bench_inference.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores visible, {platform.processor() or 'cpu'}",
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "clips": source,
        "n_clips": args.batch,
        "cpu_count": os.cpu_count(),
        # other users' work on the machine: the 1-minute load average before and after the runs
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps({"meta": meta, "rows": rows}, indent=1))
    atomic_write_text(out.with_suffix(".md"), to_markdown(meta, rows))
    print(to_markdown(meta, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
