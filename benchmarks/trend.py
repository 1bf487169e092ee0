"""Trend fidelity: does serkit follow a person's emotional state across sessions? The figure that leads the card.

Usage::

    .venv/bin/python benchmarks/trend.py --run loco=runs/pool5_loco_whisper --run folds=runs/serkit_default

Every test speaker of every finished fold of each run is scored by that fold's model, which never heard it: in a
leave-one-corpus-out run (``loco``) the whole corpus was never heard, in a speaker-fold run (``folds``) only the
speaker. For each speaker, sessions of ``--size`` clips (20) are drawn from its clips with a known share of
negative clips (angry, disgust, fearful, sad): shares 0, 0.1, ..., 1 (``--shares``), ``--per-share`` sessions (5)
each; their other clips are drawn from the speaker's neutral, happy and surprised clips at random, so every
emotion's share is known too (:mod:`serkit.evaluation.trend`). Each session's shares are estimated:

- **strict**: from the model as shipped;
- **adapted**: from the model adapted (:mod:`serkit.features.adaptation`, serkit's default method) to the
  speaker's clips outside the session (their other sessions, never the one being scored);
- **enrolled**: adapted to ``--enrol`` (5) of the speaker's neutral clips, as by a short calm reading (method
  ``neutral``); those clips are kept out of every session of every condition, and speakers with too few neutral
  clips are left out of this condition (their sessions are then drawn from all their clips).

Measures per speaker (Spearman's rho and mean absolute error over its sessions, for the negative share and for
each emotion's own share), then per corpus (mean over its speakers), for both estimators (``mean`` probability
and ``argmax`` share). Targets (issue 26), on the held-out corpora of the leave-one-corpus-out run: strict rho >=
0.95 and MAE <= 0.12 on every corpus, adapted rho >= 0.97 and MAE <= 0.07.

Every draw comes from ``--seed`` and the speaker's id, so a rerun gives the same numbers. Writes ``--out``
(Markdown), and beside it a ``.json`` with every number and the command, and a ``.png``, atomically.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from serkit.errors import SerkitError
from serkit.evaluation.heldout import RunMaterial, read_run_material
from serkit.evaluation.trend import ESTIMATORS, build_sessions, estimate_shares, fidelity, negative_of, session_truth
from serkit.features.adaptation import AdaptationConfig
from serkit.inference.analysis import NEGATIVE_LABELS
from serkit.inference.api import NEUTRAL_ENROLMENT
from serkit.inference.pipeline import ADAPTATION
from serkit.utils import atomic_write_bytes, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = ("strict", "adapted", "enrolled")
TARGETS = {"strict": {"rho": 0.95, "mae": 0.12}, "adapted": {"rho": 0.97, "mae": 0.07}}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, metavar="KIND=RUN",
                   help="kind (loco or folds) and a finished run folder; repeatable")
    p.add_argument("--shares", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1")
    p.add_argument("--per-share", type=int, default=5)
    p.add_argument("--size", type=int, default=20)
    p.add_argument("--enrol", type=int, default=5, help="neutral clips of the enrolment reading")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=["float32", "int8"], help="re-encode at this encoder precision "
                   "(default: the recipe's own)")
    p.add_argument("--cache-dir", type=Path, help="feature cache, as serkit train --cache-dir (default $SERKIT_CACHE/features)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "trend.md")
    return p.parse_args(argv)


def speaker_rng(seed: int, speaker: str, what: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{speaker}/{what}".encode())])


def score_speaker(material: RunMaterial, fold, rows: np.ndarray, speaker: str, args) -> dict | None:
    """Every condition's fidelity figures for one held-out speaker, or None when no session can be built.

    The calm reading (``--enrol`` neutral clips) is drawn first and kept out of every session, so that all three
    conditions score the same sessions; a speaker with too few neutral clips for it has sessions from all its
    clips and no enrolled figures."""
    pipeline = fold.pipeline
    classes = list(pipeline.labels)
    all_labels = material.table["label"].to_numpy()[rows].astype(str)
    neutral = np.flatnonzero(all_labels == "neutral")
    reading = None
    if len(neutral) > args.enrol:
        reading = speaker_rng(args.seed, speaker, "enrol").choice(neutral, args.enrol, replace=False)
        rows_left = np.setdiff1d(np.arange(len(rows)), reading)
    else:
        rows_left = np.arange(len(rows))
    labels = all_labels[rows_left]
    shares = [float(s) for s in args.shares.split(",")]
    sessions = build_sessions(labels, shares=shares, per_share=args.per_share, size=args.size,
                              rng=speaker_rng(args.seed, speaker, "sessions"))
    if not sessions:
        return None
    X = material.X[rows][rows_left]
    strict = pipeline.proba_of_features(X, None, len(X))
    proba = {"strict": [strict] * len(sessions), "adapted": []}
    for s in sessions:
        outside = np.setdiff1d(np.arange(len(X)), s.clips)
        adapted, _ = pipeline.adapted(X[outside], source=speaker)
        proba["adapted"].append(adapted.proba_of_features(X, None, len(X)))
    if reading is not None:
        enrolled, _ = pipeline.adapted(material.X[rows][reading], source=speaker, config=NEUTRAL_ENROLMENT)
        proba["enrolled"] = [enrolled.proba_of_features(X, None, len(X))] * len(sessions)
    truth = session_truth(labels, sessions, classes)
    present = [j for j, c in enumerate(classes) if c in set(labels)]
    out = {"speaker": speaker, "corpus": str(material.corpus_of(rows[:1])[0]), "fold": fold.split.name,
           "clips": len(rows), "sessions": len(sessions), "classes": [classes[j] for j in present]}
    for condition, per_session in proba.items():
        for estimator in ESTIMATORS:
            est = np.stack([estimate_shares(p, [s], estimator)[0] for p, s in zip(per_session, sessions)])
            key = f"{condition}/{estimator}"
            out[key] = {"negative": fidelity(negative_of(truth, classes), negative_of(est, classes)),
                        "emotions": {classes[j]: fidelity(truth[:, j], est[:, j]) for j in present},
                        "curve": _curve(negative_of(truth, classes), negative_of(est, classes))}
    return out


def _curve(true: np.ndarray, est: np.ndarray) -> dict[str, float]:
    """Mean estimate per true share (for the plot)."""
    return {f"{t:g}": float(est[np.isclose(true, t)].mean()) for t in np.unique(np.round(true, 4))}


def corpus_table(speakers: list[dict]) -> dict:
    """Per corpus and condition/estimator: mean over speakers of rho and MAE (negative share and per emotion)."""
    out: dict = {}
    for corpus in sorted({s["corpus"] for s in speakers}):
        rows = [s for s in speakers if s["corpus"] == corpus]
        entry = {"speakers": len(rows), "clips": int(sum(s["clips"] for s in rows))}
        for condition in CONDITIONS:
            for estimator in ESTIMATORS:
                key = f"{condition}/{estimator}"
                have = [s[key] for s in rows if key in s]
                if not have:
                    continue
                emotions = sorted({e for h in have for e in h["emotions"]})
                entry[key] = {
                    "speakers": len(have),
                    "negative": _mean_fidelity([h["negative"] for h in have]),
                    "emotions": {e: _mean_fidelity([h["emotions"][e] for h in have if e in h["emotions"]])
                                 for e in emotions},
                    "curve": {t: float(np.mean([h["curve"][t] for h in have if t in h["curve"]]))
                              for t in have[0]["curve"]},
                }
        out[corpus] = entry
    return out


def _mean_fidelity(items: list[dict]) -> dict[str, float | None]:
    rhos = [i["rho"] for i in items if i["rho"] is not None]
    return {"rho": float(np.mean(rhos)) if rhos else None, "mae": float(np.mean([i["mae"] for i in items]))}


def run_kind(kind: str, run: Path, args) -> dict:
    started = time.perf_counter()
    material = read_run_material(run, cache_dir=args.cache_dir, precision=args.precision)
    speakers = []
    for fold in material.folds:
        spk = material.table["speaker"].to_numpy()[fold.split.test]
        for speaker in sorted(set(spk)):
            rows = fold.split.test[spk == speaker]
            scored = score_speaker(material, fold, rows, speaker, args)
            if scored is not None:
                speakers.append(scored)
        print(f"{kind}: {fold.split.name} done ({len(speakers)} speakers so far)", file=sys.stderr)
    return {"kind": kind, "run": str(run), "recipe": material.recipe.name, "folds": len(material.folds),
            "seconds": round(time.perf_counter() - started, 1), "corpora": corpus_table(speakers),
            "speakers": speakers}


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/trend.py", *(sys.argv[1:] if argv is None else argv)])
    runs = []
    for item in args.run:
        kind, sep, run = item.partition("=")
        if not sep or kind not in ("loco", "folds"):
            raise SystemExit(f"--run: expected loco=RUN or folds=RUN, got {item!r}")
        try:
            runs.append(run_kind(kind, Path(run), args))
        except SerkitError as exc:
            raise SystemExit(f"--run {item}: {exc}") from None
    report = {"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "adaptation": ADAPTATION.model_dump(), "enrolment": NEUTRAL_ENROLMENT.model_dump(),
              "negative_labels": list(NEGATIVE_LABELS), "shares": args.shares, "per_share": args.per_share,
              "size": args.size, "enrol": args.enrol, "seed": args.seed, "targets": TARGETS, "runs": runs,
              "precision": args.precision,
              "png": args.out.with_suffix(".png").name}
    report["estimator"] = best_estimator(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1))
    atomic_write_bytes(args.out.with_suffix(".png"), plot(report))
    atomic_write_text(args.out, markdown(report))
    print(f"wrote {args.out}", file=sys.stderr)
    return report


def best_estimator(report: dict) -> str:
    """The estimator the product uses: the lower mean negative-share MAE, strict, over the corpora of the
    speaker-fold run (known corpora, new speakers), so that no held-out corpus of the LOCO run chooses it; the
    LOCO run decides only when no speaker-fold run was given (the page says so)."""
    runs = [r for r in report["runs"] if r["kind"] == "folds"] or report["runs"]
    score = {e: np.mean([c[f"strict/{e}"]["negative"]["mae"] for r in runs for c in r["corpora"].values()])
             for e in ESTIMATORS}
    return min(score, key=score.get)


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(report: dict) -> str:
    chosen = best_estimator(report)
    lines = ["# Trend fidelity: following a person across sessions", "",
             f"Command: `{report['command']}` ({report['date'][:10]}). Sessions of {report['size']} clips of one "
             f"held-out speaker, negative share {report['shares'].replace(',', ', ')} ({report['per_share']} "
             "sessions each; negative = " + ", ".join(report["negative_labels"]) + "), every speaker scored by the "
             "fold model that never heard it. Per speaker: Spearman's rho and mean absolute error (MAE) of the "
             "estimated against the true share over its sessions; per corpus: the mean over its speakers. "
             f"Strict: the model as trained. Adapted: adapted ({_describe(report['adaptation'])}) to the speaker's "
             "clips outside the session being scored (an adapted, not strict, result). Enrolled: adapted to "
             f"{report['enrol']} of the speaker's neutral clips, kept out of every session, as a short calm reading "
             f"would ({_describe(report['enrolment'])}; an adapted result). Seed {report['seed']}.", "",
             f"**Estimator used by serkit: `{chosen}`** ({'mean probability' if chosen == 'mean' else 'share of argmax labels'}"
             " over a session's windows), the lower strict MAE over "
             + ("the speaker-fold run's corpora (new speakers of known corpora; no held-out corpus of the "
                "leave-one-corpus-out run chose it)." if any(r["kind"] == "folds" for r in report["runs"]) else
                "the runs given, whose held-out corpora therefore chose it (no speaker-fold run was given)."), ""]
    for run in report["runs"]:
        heard = ("whole corpora never heard (leave one corpus out)" if run["kind"] == "loco"
                 else "speakers never heard, of corpora heard (speaker folds)")
        lines += [f"## {run['recipe']}: {heard}", "",
                  f"Run `{run['run']}`, {run['folds']} fold models, {sum(c['speakers'] for c in run['corpora'].values())}"
                  f" speakers, {run['seconds']:.0f} s.", "",
                  "| corpus | speakers | estimator | strict rho | strict MAE | adapted rho | adapted MAE | "
                  "enrolled rho | enrolled MAE |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for corpus, c in run["corpora"].items():
            for estimator in ESTIMATORS:
                cells = []
                for condition in CONDITIONS:
                    f = c.get(f"{condition}/{estimator}")
                    cells += [_fmt(f["negative"]["rho"]), _fmt(f["negative"]["mae"])] if f else ["-", "-"]
                lines.append(f"| {corpus} | {c['speakers']} | {estimator} | " + " | ".join(cells) + " |")
        lines += ["", "Each emotion's own share (estimator " + f"`{chosen}`; rho / MAE, mean over speakers):", "",
                  "| corpus | condition | " + " | ".join(_emotions(run)) + " |",
                  "|---|---|" + "---:|" * len(_emotions(run))]
        for corpus, c in run["corpora"].items():
            for condition in CONDITIONS:
                f = c.get(f"{condition}/{chosen}")
                if f:
                    lines.append(f"| {corpus} | {condition} | " + " | ".join(
                        f"{_fmt(f['emotions'][e]['rho'])} / {_fmt(f['emotions'][e]['mae'])}"
                        if e in f["emotions"] else "-" for e in _emotions(run)) + " |")
        lines.append("")
    loco = [r for r in report["runs"] if r["kind"] == "loco"]
    if loco:
        lines += ["## Targets (issue 26), held-out corpora of the leave-one-corpus-out run, estimator "
                  f"`{chosen}`", "", "| condition | target | " + " | ".join(loco[0]["corpora"]) + " | met |",
                  "|---|---|" + "---:|" * len(loco[0]["corpora"]) + "---|"]
        for condition, target in TARGETS.items():
            figs = [c[f"{condition}/{chosen}"]["negative"] for c in loco[0]["corpora"].values()]
            met = all(f["rho"] is not None and f["rho"] >= target["rho"] and f["mae"] <= target["mae"] for f in figs)
            lines.append(f"| {condition} | rho >= {target['rho']}, MAE <= {target['mae']} | "
                         + " | ".join(f"{_fmt(f['rho'])} / {_fmt(f['mae'])}" for f in figs)
                         + f" | {'yes' if met else 'no'} |")
        lines.append("")
    lines.append(f"![estimated against true negative share]({report['png']})")
    return "\n".join(lines) + "\n"


def _emotions(run: dict) -> list[str]:
    return sorted({e for c in run["corpora"].values() for k, f in c.items() if isinstance(f, dict) and "emotions" in f
                   for e in f["emotions"]})


def _describe(config: dict) -> str:
    return AdaptationConfig(**config).describe()


def plot(report: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = best_estimator(report)
    runs = report["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4.5), squeeze=False)
    for ax, run in zip(axes[0], runs):
        for corpus, c in run["corpora"].items():
            for condition, style in (("strict", "-"), ("adapted", "--")):
                f = c.get(f"{condition}/{chosen}")
                if f:
                    xs = [float(t) for t in f["curve"]]
                    ax.plot(xs, list(f["curve"].values()), style, marker="o", ms=3,
                            label=f"{corpus} {condition}" if condition == "strict" else None,
                            color=f"C{list(run['corpora']).index(corpus)}")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlabel="true negative share of the session", ylabel=f"estimated ({chosen})", xlim=(0, 1), ylim=(0, 1),
               title=f"{run['kind']}: solid strict, dashed adapted")
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


if __name__ == "__main__":
    main()
