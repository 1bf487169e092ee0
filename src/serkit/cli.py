"""The ``serkit`` command line: train, evaluate, predict, corpus info, models."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from serkit.errors import SerkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="serkit: speech emotion recognition toolkit.")
corpus_app = typer.Typer(no_args_is_help=True, help="Inspect corpora.")
app.add_typer(corpus_app, name="corpus")
console = Console()
err_console = Console(stderr=True)


def _fail(exc: Exception) -> None:
    err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def train(
    recipe: Path = typer.Argument(..., help="recipe YAML"),
    protocol: Optional[str] = typer.Option(None, help="override protocol.name (holdout, kfold, loso, speaker_folds, cross_corpus)"),
    out: Optional[Path] = typer.Option(None, help="output folder (default runs/<recipe name>[-<protocol>])"),
    seeds: Optional[str] = typer.Option(None, help="override protocol.seeds, e.g. 0,1,2"),
    max_epochs: Optional[int] = typer.Option(None, help="override training.max_epochs"),
    corpus_root: Optional[Path] = typer.Option(None, help="override the corpus root (single-corpus recipes)"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue an interrupted run in --out"),
    cache_dir: Optional[Path] = typer.Option(None, help="feature cache (default $SERKIT_CACHE or ~/.cache/serkit)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override any recipe field: --set normalization=per_speaker "
                                             "--set training.lr=0.01 (values are read as YAML)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
) -> None:
    """Train and evaluate a recipe under its protocol; write results tables, plots and models."""
    from serkit.recipe import Recipe
    from serkit.training.experiment import run_experiment

    try:
        rec = Recipe.from_yaml(recipe)
        overrides: dict = {}
        if protocol:
            overrides["protocol.name"] = protocol
        if seeds:
            overrides["protocol.seeds"] = [int(s) for s in seeds.split(",") if s.strip()]
        if max_epochs:
            overrides["training.max_epochs"] = max_epochs
        for item in set_ or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SerkitError(f"--set {item!r}: expected FIELD=VALUE, e.g. training.lr=0.01")
            overrides[key.strip()] = yaml.safe_load(value)
        if corpus_root:
            if len(rec.corpora) != 1:
                raise SerkitError("--corpus-root works with single-corpus recipes only")
            overrides["corpus.root"] = str(corpus_root)
        if overrides:
            rec = rec.with_overrides(**overrides)
        out_dir = out or Path("runs") / (rec.name + (f"-{protocol}" if protocol else ""))
        result = run_experiment(rec, out_dir, recipe_file=recipe, resume=resume, progress=not quiet,
                                cache_dir=cache_dir)
    except SerkitError as exc:
        _fail(exc)
    _print_summary(result.overall, result.out_dir)


def _print_summary(overall: dict, out_dir: Path) -> None:
    table = Table(title=f"{overall['recipe']} on {overall['corpus']}: {overall['protocol']} "
                        f"({overall['protocol_tag']}), {overall['folds']} fold(s), seeds {overall['seeds']}")
    for col in ("metric", "mean", "std", "pooled"):
        table.add_column(col)
    for m, name in (("ua", "UA"), ("wa", "WA"), ("macro_f1", "macro F1")):
        std = overall["std"][m]
        table.add_row(name, f"{overall['mean'][m]:.4f}", "-" if std is None else f"{std:.4f}",
                      f"{overall['pooled'][m]:.4f}")
    console.print(table)
    console.print(f"results: {out_dir / 'results.md'}")


@app.command()
def evaluate(run_dir: Path = typer.Argument(..., help="a folder written by serkit train")) -> None:
    """Rebuild a run's results tables and plots from its saved per-fold predictions."""
    from serkit.training.evaluate import evaluate_run

    try:
        overall = evaluate_run(run_dir)
    except SerkitError as exc:
        _fail(exc)
    _print_summary(overall, run_dir)


@app.command()
def predict(
    model: Path = typer.Argument(..., help="a model.pt, or a run folder (its fold models are averaged)"),
    files: List[Path] = typer.Argument(..., help="audio files"),
    out: Optional[Path] = typer.Option(None, help="write the predictions as CSV"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Predict the emotion of audio files."""
    from serkit.inference.predictor import Predictor
    from serkit.utils import atomic_write_text

    try:
        result = Predictor(model).predict_proba(files)
    except SerkitError as exc:
        _fail(exc)
    frame = result.to_frame()
    if out:
        atomic_write_text(out, frame.to_csv(index=False))
    if as_json:
        print(json.dumps({"predictions": frame.to_dict("records"),
                          "failures": [{"path": p, "reason": r} for p, r in result.failures]}, indent=2))
    else:
        table = Table(title=f"serkit predict ({len(frame)} file(s))")
        for col in ("file", "emotion", "confidence"):
            table.add_column(col)
        for rec in frame.to_dict("records"):
            table.add_row(Path(rec["path"]).name, rec["label"], f"{rec['confidence']:.2f}")
        console.print(table)
    for path, reason in result.failures:
        err_console.print(f"[red]failed:[/] {escape(path)}: {escape(reason)}", soft_wrap=True)
    if result.failures:
        raise typer.Exit(1)


@corpus_app.command("info")
def corpus_info(
    path: Path = typer.Argument(..., help="corpus root folder (or CSV manifest for --corpus csv)"),
    corpus: str = typer.Option(..., "--corpus", "-c", help="corpus name, see `serkit corpus list`"),
    check_audio: bool = typer.Option(False, help="open every file's header and report unreadable ones"),
) -> None:
    """Counts per label and speaker, durations, and the files that could not be used."""
    from serkit.corpora import load_corpus
    from serkit.corpora.info import print_corpus_info

    try:
        loaded = load_corpus(corpus, path, check_audio=check_audio, with_durations=True)
    except SerkitError as exc:
        _fail(exc)
    print_corpus_info(loaded, console)


@corpus_app.command("list")
def corpus_list() -> None:
    """The corpora serkit can read."""
    from serkit.corpora import list_corpora

    for name in list_corpora():
        console.print(name)


@app.command("models")
def models_list() -> None:
    """The models serkit can create by name."""
    from serkit.models import list_models, model_spec

    table = Table(title="serkit models")
    for col in ("name", "kind", "frontends", "paper"):
        table.add_column(col)
    for name in list_models():
        spec = model_spec(name)
        table.add_row(name, spec.kind, ", ".join(spec.frontends), spec.paper or "")
    console.print(table)


def main() -> None:  # pragma: no cover - console entry point wrapper
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
