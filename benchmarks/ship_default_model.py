"""Ship the default model: copy the final fit into the package and write its model card.

Usage::

    python benchmarks/ship_default_model.py EVAL_RUN FINAL_RUN [--extra-run RUN ...]

EVAL_RUN is the speaker-independent evaluation of the default recipe (``serkit train recipes/serkit_default.yaml``);
FINAL_RUN is the fit on every speaker but the validation speakers (``... --protocol final``). The model goes to
``src/serkit/pretrained/default.pt`` with a ``model_card`` entry in its ``info`` (accuracy per corpus measured in
EVAL_RUN, limits) that ``serkit analyze`` quotes; ``docs/model_card.md`` is written from the same numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from serkit.models.bundle import ModelBundle
from serkit.training.metrics import compute_metrics
from serkit.utils import atomic_write_text

LIMITS = [
    ("Trained on acted speech only (EmoDB: 10 German actors; RAVDESS: 24 North-American English actors reading two "
     "fixed sentences). Spontaneous, conversational speech is expressed less strongly and is recognised less well."),
    "Two languages (German, English). Other languages and accents have not been measured.",
    ("Six emotions only (angry, disgust, fearful, happy, neutral, sad); anything else (boredom, surprise, calm, "
     "mixed or subtle states) is forced onto one of them."),
    "Clean studio recordings; noise, reverberation, telephone bandwidth and far-field microphones lower accuracy.",
    ("Per-clip scores are noisy: look at trends over many clips or minutes, never at one prediction. "
     "This is not a diagnostic tool."),
]


def per_corpus_accuracy(eval_run: Path) -> tuple[list[dict], dict]:
    """UA/WA/macro F1 per corpus: mean ± sample std over the folds that test the corpus, and pooled."""
    preds = pd.read_csv(eval_run / "predictions.csv")
    summary = json.loads((eval_run / "summary.json").read_text())
    labels = summary["labels"]
    preds["corpus"] = preds["utterance_id"].str.split("/").str[0]
    rows = []
    for corpus, part in [("all", preds), *sorted(preds.groupby("corpus"))]:
        fold_metrics = [compute_metrics(f["true"].tolist(), f["pred"].tolist(), labels)
                        for _, f in part.groupby(["fold", "seed"])]
        pooled = compute_metrics(part["true"].tolist(), part["pred"].tolist(), labels)
        for metric in ("ua", "wa", "macro_f1"):
            values = np.array([m[metric] for m in fold_metrics])
            rows.append({
                "corpus": corpus, "protocol": f"{summary['protocol']} ({summary['protocol_tag']})",
                "metric": metric, "value": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                "pooled": float(pooled[metric]), "folds": len(values), "seeds": summary["seeds"],
                "n_test": len(part),
            })
    return rows, summary


def card_markdown(bundle: ModelBundle, accuracy: list[dict], summary: dict, final_info: dict, size_kb: float,
                  eval_run: Path, final_run: Path) -> str:
    recipe = bundle.recipe
    name = {"ua": "UA", "wa": "WA", "macro_f1": "macro F1"}
    table = ["| test corpus | protocol | metric | mean ± std over folds | pooled | folds | seeds | test clips |",
             "|---|---|---|---|---|---|---|---|"]
    for r in accuracy:
        std = f" ± {r['std'] * 100:.1f}" if r["std"] is not None else ""
        table.append(f"| {r['corpus']} | {r['protocol']} | {name[r['metric']]} | {r['value'] * 100:.1f}{std} | "
                     f"{r['pooled'] * 100:.1f} | {r['folds']} | {','.join(map(str, r['seeds']))} | {r['n_test']} |")
    clip = recipe["audio"]["duration"]
    return f"""# Model card: serkit default model

`serkit predict FILES...`, `serkit analyze RECORDING` and `serkit.load_model()` use this model when no `--model` is
given. It ships inside the package (`src/serkit/pretrained/default.pt`, {size_kb:.0f} kB).

## What it is
- **Task**: speech emotion recognition, one label per file (`serkit predict`) or per window (`serkit analyze`).
- **Labels** (serkit's unified label set): {", ".join(bundle.labels)}.
- **Network**: `{recipe['model']['name']}` (compact 1-D CNN with dilated Conv1D blocks and attentive statistics
  pooling, {sum(p.numel() for p in bundle.model.parameters()):,} parameters) on 64 log-mel bands (25 ms Hamming
  window, 10 ms hop) of 16 kHz audio. Training clips were the first {clip} s of each file, trimmed of
  leading/trailing silence (40 dB below the peak) and padded (by repetition) to {clip} s. `serkit predict` and
  `load_model().predict` prepare a file the same way when its trimmed audio fits in {clip} s; a longer file is judged
  by {clip} s windows over its speech (half-overlapping, found by voice activity detection), their probabilities
  averaged, each weighted by the speech it stands for. Feature normalisation statistics from the training data
  are stored in the model file.
- **Recipe**: `recipes/serkit_default.yaml`; training: AdamW, SpecAugment, label smoothing, early stopping on
  held-out speakers.

## Training data and licences
| corpus | speakers | language | clips used | licence |
|---|---|---|---|---|
| EmoDB (Burkhardt et al. 2005) | 10 actors | German | angry, disgust, fearful, happy, neutral, sad | free for research use (see emodb.bilderbar.info) |
| RAVDESS speech (Livingstone & Russo 2018) | 24 actors | North-American English | same six emotions, both intensities | CC BY-NC-SA 4.0 |

The shipped model was trained on every speaker except {", ".join(final_info.get("val_speakers", []))}, which were
held out to choose the epoch (their clips are the examples in `examples/`). Because RAVDESS is CC BY-NC-SA, the
model weights are for non-commercial use unless you retrain on data you may use commercially.

## Measured accuracy (speaker-independent)
The same recipe evaluated with {summary['folds']} speaker folds over all {summary.get('n_speakers', 34)} speakers of
both corpora (every speaker tested once by a model that never heard them; speakers dealt round-robin into folds).
Chance level is 16.7 % UA.

{chr(10).join(table)}

Command: `serkit train recipes/serkit_default.yaml --out {eval_run.as_posix()}` (results in
`docs/results/{eval_run.name}/`). The shipped model itself: `serkit train recipes/serkit_default.yaml --protocol
final --out {final_run.as_posix()}`, then `python benchmarks/ship_default_model.py {eval_run.as_posix()}
{final_run.as_posix()}`. Per-corpus recipes with the full label sets: `docs/results/serkit.md`.

## Speed
Audio file to probabilities, features included, one 3 s clip at a time on 2 CPU cores: see
`docs/benchmarks/inference.md` (`python benchmarks/bench_inference.py`), also with onnxruntime
(`serkit.load_model(backend="onnx")`).

## Known limits
{chr(10).join("- " + line for line in LIMITS)}

## Intended use
Research, prototyping, and following broad trends of expressed emotion over time in recordings of consenting
people (`serkit analyze`). Not for diagnosis, hiring, surveillance or any decision about a person.

_Written by `benchmarks/ship_default_model.py` on {datetime.now(timezone.utc).date().isoformat()}._
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_run", type=Path)
    parser.add_argument("final_run", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "serkit" / "pretrained" / "default.pt")
    parser.add_argument("--card", type=Path, default=ROOT / "docs" / "model_card.md")
    args = parser.parse_args()

    final_models = sorted(args.final_run.glob("folds/final*/model.pt"))
    if not final_models:
        sys.exit(f"{args.final_run}: no folds/final*/model.pt (train it with --protocol final)")
    bundle = ModelBundle.load(final_models[0])
    accuracy, summary = per_corpus_accuracy(args.eval_run)
    final_recipe = bundle.recipe
    final_info = {"val_speakers": final_recipe["protocol"].get("val_speakers", [])}
    bundle.info = {
        **bundle.info,
        "model_card": {
            "summary": (f"serkit default model: {final_recipe['model']['name']} on log-mel, trained on EmoDB + "
                        f"RAVDESS (acted German and English speech), labels {', '.join(bundle.labels)}"),
            "accuracy": [{k: r[k] for k in ("corpus", "protocol", "metric", "value", "std", "folds")}
                         for r in accuracy],
            "limits": LIMITS,
            "card": "docs/model_card.md",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bundle.save(args.out)
    size_kb = args.out.stat().st_size / 1024
    atomic_write_text(args.card, card_markdown(bundle, accuracy, summary, final_info, size_kb, args.eval_run,
                                               args.final_run))
    print(f"wrote {args.out} ({size_kb:.0f} kB) and {args.card}")


if __name__ == "__main__":
    main()
