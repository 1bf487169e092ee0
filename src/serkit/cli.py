"""The ``serkit`` command line: train, evaluate, predict, corpus info, models."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from serkit.errors import ConfigError, SerkitError


def _plain_help() -> None:
    """typer 0.29's help prints "<bool>" after every on/off flag and wraps required arguments in braces in the
    usage line ("{FILES}..."); show flags without a type and arguments as click does ("FILES...")."""
    core = typer.core
    if hasattr(core.TyperOption, "display_type_rich"):
        option_type = core.TyperOption.display_type_rich

        def display_type_rich(self, ctx):
            return None if self.is_flag else option_type(self, ctx)

        core.TyperOption.display_type_rich = display_type_rich
    if hasattr(core.TyperArgument, "_usage_display_name"):
        def usage_name(self) -> str:
            name = self.display_name_raw.upper()
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        core.TyperArgument._usage_display_name = usage_name


_plain_help()


def _version(value: bool) -> None:
    if value:
        from serkit._version import __version__

        console.print(f"serkit {__version__}")
        raise typer.Exit()


app = typer.Typer(add_completion=False, no_args_is_help=True, help="serkit: speech emotion recognition toolkit.")
corpus_app = typer.Typer(no_args_is_help=True, help="Inspect corpora.")
app.add_typer(corpus_app, name="corpus")
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print serkit's version and exit")) -> None:
    """serkit: speech emotion recognition toolkit."""


def _fail(exc: Exception) -> None:
    err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def train(
    ctx: typer.Context,
    recipe: Path = typer.Argument(..., help="recipe YAML"),
    protocol: str | None = typer.Option(None, help="override protocol.name (holdout, kfold, loso, speaker_folds, cross_corpus)"),
    out: Path | None = typer.Option(None, help="output folder (default runs/<recipe name>[-<protocol>])"),
    seeds: str | None = typer.Option(None, help="override protocol.seeds, e.g. 0,1,2"),
    max_epochs: int | None = typer.Option(None, help="override training.max_epochs"),
    corpus_root: Path | None = typer.Option(None, help="override the corpus root (single-corpus recipes)"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue an interrupted run in --out"),
    cache_dir: Path | None = typer.Option(None, help="feature cache (default $SERKIT_CACHE or ~/.cache/serkit)"),
    set_: list[str] | None = typer.Option(None, "--set", help="override any recipe field: --set normalization=per_speaker "
                                             "--set training.lr=0.01 (values are read as YAML)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="data parallel: train each fold with N processes on this "
                              "machine (torch DDP: gloo on CPU, NCCL on GPUs); training.batch_size is the global batch"),
    jobs: int = typer.Option(1, "--jobs", min=1, help="fold fan-out: run folds in N worker processes at a time"),
    retries: int = typer.Option(1, "--retries", min=0, help="with --jobs: further attempts for a failed fold"),
    folds: str | None = typer.Option(None, "--folds", help="run only these folds: 1-based numbers or names, "
                                        "e.g. 1,3,5 (the table is written when the last fold finishes)"),
    list_folds_: bool = typer.Option(False, "--list-folds", help="print the protocol's folds and exit"),
    dist_timeout: float | None = typer.Option(None, "--dist-timeout", help="with --nproc: seconds a process "
                                                 "waits for the others before the job fails (default 1800)"),
) -> None:
    """Train and evaluate a recipe under its protocol; write results tables, plots and models.

    A fusion recipe (a YAML file with `members`) trains each member recipe, then fuses them; --set, --seeds,
    --protocol, --max-epochs and --corpus-root then apply to every member.

    Also the entry point of every process of a distributed job: `torchrun ... -m serkit.cli train RECIPE`.
    """
    from serkit.recipe import FusionRecipe, load_recipe
    from serkit.training import distributed
    from serkit.training.experiment import run_experiment

    try:
        rec = load_recipe(recipe)
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
            if not isinstance(rec, FusionRecipe) and len(rec.corpora) != 1:
                raise SerkitError("--corpus-root works with single-corpus recipes only")
            overrides["corpus.root"] = str(corpus_root)
        out_dir = out or Path("runs") / (rec.name + (f"-{protocol}" if protocol else ""))
        if isinstance(rec, FusionRecipe):
            _train_fusion(rec, recipe, out_dir, overrides, jobs=jobs, retries=retries, resume=resume,
                          cache_dir=cache_dir, quiet=quiet, nproc=nproc, folds=folds, list_folds_=list_folds_)
            return
        if overrides:
            rec = rec.with_overrides(**overrides)
        fold_list = [f.strip() for f in folds.split(",") if f.strip()] if folds else None
        if list_folds_:
            _print_folds(rec, recipe)
            return
        if nproc > 1 and jobs > 1:
            raise SerkitError("--nproc and --jobs do not combine: data-parallel training uses every process for "
                              "one fold at a time; pick one")
        if nproc > 1 and not distributed.launched_distributed():
            _launch_data_parallel(ctx, rec, nproc, dist_timeout)
            return
        if jobs > 1:
            _train_fanout(rec, recipe, out_dir, jobs=jobs, retries=retries, folds=fold_list, resume=resume,
                          cache_dir=cache_dir, quiet=quiet)
            return
        distributed.init_distributed(rec.training.device)
        try:
            result = run_experiment(rec, out_dir, recipe_file=recipe, resume=resume, progress=not quiet,
                                    cache_dir=cache_dir, folds=fold_list)
        finally:
            distributed.shutdown()
    except SerkitError as exc:
        _fail(exc)
    if not distributed.is_main_process():
        return
    if result.pending:
        console.print(f"{len(result.per_fold)} fold(s) done here; {len(result.pending)} still to run "
                      f"({', '.join(result.pending)}); the table is written when the last one finishes "
                      f"(or now, from what finished: serkit collect {out_dir})")
        return
    _print_summary(result.overall, result.out_dir)


def _train_fusion(rec, recipe_file: Path, out_dir: Path, overrides: dict, *, jobs: int, retries: int, resume: bool,
                  cache_dir, quiet: bool, nproc: int, folds: str | None, list_folds_: bool) -> None:
    from serkit.training import distributed
    from serkit.training.fusion import run_fusion

    if nproc > 1 or distributed.launched_distributed():
        raise SerkitError("--nproc: a fusion recipe trains its members one after the other; use --jobs to run "
                          "each member's folds in parallel")
    if folds:
        raise SerkitError("--folds: a fusion needs every fold of every member; train a member recipe alone to "
                          "run some of its folds")
    if list_folds_:
        _, first, first_file = rec.with_overrides(**overrides).member_recipes(recipe_file=recipe_file)[0]
        _print_folds(first, first_file)
        return
    result = run_fusion(rec, out_dir, recipe_file=recipe_file, overrides=overrides, jobs=jobs, retries=retries,
                        resume=resume, progress=not quiet, cache_dir=cache_dir)
    _print_summary(result.overall, result.out_dir)


def _print_folds(rec, recipe_file: Path) -> None:
    from serkit.training.fanout import list_folds

    # Plain tab-separated lines, so that a cluster script can read the numbers and names back.
    print(list_folds(rec, recipe_file=recipe_file).to_csv(sep="\t", index=False), end="")


def _launch_data_parallel(ctx: typer.Context, rec, nproc: int, timeout: float | None) -> None:
    """Start `nproc` copies of this command under torchrun's elastic agent (see serkit.training.distributed),
    with every argument it was given (each process knows it is one of many and does not launch again)."""
    from serkit.models import model_spec
    from serkit.training import distributed

    if model_spec(rec.model.name).kind != "torch":
        raise SerkitError(f"--nproc: {rec.model.name} is not a torch model; data parallelism trains torch models "
                          "(use --jobs to run folds in parallel)")
    # --nproc and --dist-timeout are the launch's own (and torchrun would read --nproc as its --nproc-per-node)
    argv = command_arguments(ctx, leave_out=("nproc", "dist_timeout"))
    distributed.launch(["serkit.cli", "train", *argv], nproc=nproc, module=True, timeout_s=timeout)


def command_arguments(ctx: typer.Context, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The command line that gives ``ctx``'s command the values it was called with (but the parameters named in
    ``leave_out``): every parameter read from the command's own definition, so that an option added to it
    reaches the copies unchanged."""
    argv: list[str] = []
    for param in ctx.command.params:
        if param.name in leave_out:
            continue
        value = ctx.params.get(param.name)
        if param.param_type_name == "argument":
            argv += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
            continue
        if value is None or value == param.default or (param.multiple and not value):
            continue
        if getattr(param, "is_flag", False) and isinstance(value, bool):
            flag = param.opts[0] if value else (param.secondary_opts[0] if param.secondary_opts else None)
            argv += [flag] if flag else []
        elif param.multiple:
            for item in value:
                argv += [param.opts[0], str(item)]
        else:
            argv += [param.opts[0], str(value)]
    return argv


def _train_fanout(rec, recipe_file: Path, out_dir: Path, *, jobs: int, retries: int, folds, resume: bool,
                  cache_dir, quiet: bool) -> None:
    from serkit.training.fanout import run_fanout

    report = run_fanout(rec, out_dir, jobs=jobs, retries=retries, folds=folds, recipe_file=recipe_file,
                        cache_dir=cache_dir, resume=resume, progress=not quiet)
    if report.result is not None:
        _print_summary(report.result.overall, report.out_dir)
    _report_missing(report.missing, report.failed, report.out_dir)


def _report_missing(missing: list[str], failed: list[str], out_dir: Path) -> None:
    for name in failed:
        err_console.print(f"[red]failed:[/] fold {escape(name)} (log: {escape(str(out_dir / 'fanout' / name))}.log)",
                          soft_wrap=True)
    if missing:
        err_console.print(f"[yellow]{len(missing)} fold(s) not in the table:[/] {escape(', '.join(missing))}; "
                          "run them again with --folds (a killed fold resumes from its checkpoint)", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def collect(run_dir: Path = typer.Argument(..., help="a run folder whose folds ran as separate jobs")) -> None:
    """Build a run's table from the folds that finished, and name the folds that did not."""
    from serkit.training.fanout import collect_run

    try:
        result, missing = collect_run(run_dir)
    except SerkitError as exc:
        _fail(exc)
    _print_summary(result.overall, run_dir)
    _report_missing(missing, [], run_dir)


@app.command()
def fuse(
    run_dirs: list[Path] = typer.Argument(..., help="finished run folders of one protocol on one corpus"),
    out: Path = typer.Option(..., help="output folder of the fused system"),
    weights: str | None = typer.Option(None, help="one weight per run, e.g. 1,1 (default: equal weights)"),
    name: str | None = typer.Option(None, help="the fused system's name (default: the recipe names joined by +)"),
) -> None:
    """Late fusion: average the runs' test probabilities per utterance (seeds first) and score the result."""
    from serkit.training.fusion import fuse_runs

    try:
        weight_list = None if weights is None else [float(w) for w in weights.split(",")]
    except ValueError:
        _fail(ConfigError(f"--weights: comma-separated numbers, got {weights!r}"))
    try:
        result = fuse_runs(run_dirs, out, weights=weight_list, name=name)
    except SerkitError as exc:
        _fail(exc)
    _print_summary(result.overall, out)


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


#: File name endings of models: given where audio is expected, they are a mistake, not audio.
_MODEL_SUFFIXES = (".pt", ".onnx")


def _model_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--model", "-m", help="a model.pt, a model.onnx written by `serkit export`, or a run "
                        "folder (its fold models are averaged); default: serkit's default model")


def _precision_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--precision", help="a pretrained encoder's precision: int8 or float32 (default: "
                        "the shipped model's default, a model file's own recipe otherwise)")


def _check_not_models(files: list[Path]) -> None:
    """A model file or run folder among the audio inputs: the user meant --model (not a file to skip)."""
    for path in files:
        if path.suffix.lower() in _MODEL_SUFFIXES or (path.is_dir() and any(path.glob("folds/*/model.pt"))):
            raise SerkitError(f"{path}: a model, not audio; give it with --model {path}")


@app.command()
def predict(
    files: list[Path] = typer.Argument(..., help="audio files, or folders of them (searched recursively)",
                                       show_default=False),
    model: Path | None = _model_option(),
    out: Path | None = typer.Option(None, help="also write the predictions to this CSV file"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table, with each long file's "
                                                       "windows"),
    vad: str = typer.Option("auto", help="voice activity detection that finds the speech in files longer than "
                                         "the model's clip: auto (silero when installed), silero, energy, none"),
    min_confidence: float | None = typer.Option(None, "--min-confidence", min=0.0, max=1.0,
                                                help="answer 'uncertain' for a file whose top (calibrated) "
                                                     "probability is below this, e.g. 0.5"),
    precision: str | None = _precision_option(),
) -> None:
    """Predict the emotion of audio files, each judged as a whole.

    The default model takes a file of up to 30 s whole (its encoder averages the frames of all of it); a model
    with a fixed clip (4 s for `--model cnn`) takes a file whose audio, after its silence trimming, fits in the
    clip as one clip, as in training. A longer file is cut into windows (3 s; the clip for `cnn`) over its speech
    (as `serkit analyze` does), and its probabilities are the windows' average, weighted by the speech each window
    stands for (the windows are listed with --json). A file with less than 0.5 s of audio or of speech gets no
    label ("too short"). The probabilities are the model's calibrated ones when it was trained with calibration.
    """
    from serkit.audio import find_audio_files
    from serkit.inference.api import load_model
    from serkit.utils import atomic_write_text

    try:
        _check_not_models(files)
        if out is not None and out.is_dir():
            raise SerkitError(f"--out {out}: is a folder; give a CSV file name, e.g. {out / 'predictions.csv'}")
        paths = find_audio_files(files)
        emotion_model = load_model(model, vad=vad, precision=precision)
        result = emotion_model.predict_batch(paths)
    except SerkitError as exc:
        _fail(exc)
    frame = result.to_frame(min_confidence)
    if as_json:
        print(json.dumps({"model": emotion_model.source, "labels": emotion_model.labels,
                          "min_confidence": min_confidence,
                          "predictions": [{**rec, "windows": result.windows.get(rec["path"])}
                                          for rec in frame.to_dict("records")],
                          "failures": [{"path": p, "reason": r} for p, r in result.failures]}, indent=2))
    else:
        table = Table(title=f"serkit predict ({len(frame)} file(s))")
        for col in ("file", "emotion", "confidence", "windows"):
            table.add_column(col)
        for rec in frame.to_dict("records"):
            windows = result.windows.get(rec["path"])
            table.add_row(escape(Path(rec["path"]).name), rec["label"], f"{rec['confidence']:.2f}",
                          str(len(windows)) if windows else "1")
        console.print(table)
    for path, reason in result.failures:
        err_console.print(f"[red]failed:[/] {escape(path)}: {escape(reason)}", soft_wrap=True)
    if out:
        written = atomic_write_text(out, frame.to_csv(index=False))
        err_console.print(f"wrote {escape(str(written))}", soft_wrap=True)
    if result.failures:
        raise typer.Exit(1)


@app.command("export")
def export_model(
    model: Path | None = typer.Option(None, "--model", "-m", help="a model.pt, or a run folder (one file per fold)"),
    format_: str = typer.Option("onnx", "--format", help="export format (onnx)"),
    out: Path | None = typer.Option(None, help="output file for a model.pt (default: beside it, .onnx); "
                                       "output folder for a run (default <run>/onnx)"),
    opset: int | None = typer.Option(None, help="ONNX opset (default 17)"),
    quantize: bool = typer.Option(False, "--quantize", help="dynamic int8 quantisation of dense and LSTM weights"),
    list_: bool = typer.Option(False, "--list", help="list which zoo models ONNX can express, and why not"),
) -> None:
    """Export a trained model to ONNX (the network with a softmax; labels and feature settings as metadata)."""
    from serkit.inference.export import export_onnx_files, onnx_support

    if list_:
        table = Table(title="ONNX export of serkit models")
        for col in ("name", "onnx", "reason"):
            table.add_column(col)
        for name, reason in onnx_support().items():
            table.add_row(name, "yes" if reason is None else "no", reason or "")
        console.print(table)
        return
    try:
        if format_ != "onnx":
            raise SerkitError(f"--format {format_!r}: only 'onnx' is supported")
        if model is None:
            raise SerkitError("give a model.pt or a run folder with --model (or --list)")
        written = export_onnx_files(model, out, opset=opset, quantize=quantize)
    except SerkitError as exc:
        _fail(exc)
    for path in written:
        console.print(f"wrote {escape(str(path))}")


@app.command()
def analyze(
    recordings: list[Path] = typer.Argument(..., help="audio files of any length, or folders of them (several "
                                                      "recordings are sessions, dated by YYYY-MM-DD in their names)"),
    out: Path = typer.Option(Path("serkit-analysis"), help="output folder (timeline CSV/JSON, PNG, report.html); "
                             "it holds this run only: an earlier `serkit analyze` output there is replaced"),
    force: bool = typer.Option(False, "--force", help="replace --out even if it holds files serkit did not write"),
    model: Path | None = _model_option(),
    vad: str = typer.Option("auto", help="voice activity detection: auto (silero when installed), silero, energy, "
                                         "none"),
    window: float | None = typer.Option(None, help="window length in seconds (default: the model's clip length)"),
    hop: float = typer.Option(1.0, help="seconds between windows"),
    smoothing: int = typer.Option(3, help="windows averaged when smoothing (1 = none)"),
    min_silence: float = typer.Option(0.3, help="a pause this long (s) separates speech regions"),
    merge_gap: float = typer.Option(0.5, help="merge same-label segments across pauses shorter than this (s)"),
    min_confidence: float = typer.Option(0.5, "--min-confidence", help="windows whose top (calibrated) probability "
                                                                       "is below this count as uncertain"),
    adapt: bool = typer.Option(False, "--adapt", help="also give the results adapted to this person or setting: "
                                                      "features standardised with statistics moved toward these "
                                                      "recordings' own (unlabelled); an adapted result, beside the "
                                                      "strict one"),
    baseline: list[Path] | None = typer.Option(None, "--baseline", help="the person's other recordings (files or "
                                               "folders, repeatable): also give the results adapted to them, "
                                               "beside the strict ones"),
    enrol: list[Path] | None = typer.Option(None, "--enrol", help="a short calm reading in the person's ordinary "
                                            "voice (files or folders, repeatable): also give the results adapted "
                                            "to it, beside the strict ones"),
    precision: str | None = _precision_option(),
    speakers: str | None = typer.Option(None, "--speakers", help="tell the voices apart: auto (count them) or "
                                        "how many there are; each voice gets its own timeline lane, speakers.csv "
                                        "says who spoke when (needs serkit[speakers])"),
    person: list[str] | None = typer.Option(None, "--person", metavar="NAME=FILES", help="a known voice: "
                                            "recordings of that person alone (comma-separated, repeatable); their "
                                            "turns are labelled NAME (implies --speakers auto)"),
) -> None:
    """Emotion timeline and wellbeing-style report of long recordings (not a diagnosis)."""
    from pydantic import ValidationError

    from serkit.inference.analysis import analyze_recordings
    from serkit.inference.api import load_model
    from serkit.inference.report import write_analysis
    from serkit.inference.stream import AnalysisConfig
    from serkit.utils import check_output_dir

    try:
        config = AnalysisConfig(vad=vad, window=window, hop=hop, smoothing=smoothing, min_silence=min_silence,
                                merge_gap=merge_gap, min_confidence=min_confidence)
    except ValidationError as exc:
        _fail(SerkitError("; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-') or 'options'}: {e['msg']}"
                                    for e in exc.errors())))
    try:
        _check_not_models(recordings)
        check_output_dir(out, kind="analyze", force=force)  # before the work, not after
        emotion_model = load_model(model, vad=vad, precision=precision)
        voices = _speaker_analysis(speakers, person or [], emotion_model, config)
        adapted, label = _adapted_model(emotion_model, recordings, adapt=adapt, baseline=baseline, enrol=enrol)
        result = analyze_recordings(recordings, emotion_model, config, keep_features=adapted is not None,
                                    progress=lambda p: err_console.print(f"analysing {escape(str(p))}"))
        for path, reason in result.failures:
            err_console.print(f"[red]failed:[/] {escape(path)}: {escape(reason)}", soft_wrap=True)
        if not result.analyses:
            raise SerkitError("no recording could be analysed")
        if voices is not None:
            _attach_voices(result.analyses, voices)
        if adapted is not None:
            _attach_adapted(result.analyses, adapted, label)
        written = write_analysis(result, out, emotion_model, force=force)
    except SerkitError as exc:
        _fail(exc)
    table = Table(title=f"serkit analyze ({len(result.analyses)} recording(s))")
    for col in ("recording", "length", "speech", "segments", "top emotion", "negative", "confidence"):
        table.add_column(col)
    for a in result.analyses:
        s = a.summary()
        top = max(s["share"], key=s["share"].get) if s["windows"] else (a.shortfall or "no speech")
        table.add_row(a.name, f"{a.duration:.1f} s", f"{a.speech_seconds:.1f} s", str(len(a.segments)), top,
                      "-" if s["negative_share"] is None else f"{100 * s['negative_share']:.0f} %",
                      "-" if s["confidence"] is None else f"{s['confidence']:.2f}")
    console.print(table)
    console.print(f"wrote {escape(str(out))}/ (report: {escape(str(written['report']))})", soft_wrap=True)
    if result.failures:
        raise typer.Exit(1)


def _adapted_model(model, recordings: list[Path], *, adapt: bool, baseline: list[Path] | None,
                   enrol: list[Path] | None):
    """The model adapted as ``serkit analyze`` was asked (--adapt, --baseline or --enrol) and what to call its
    results, or None; says what it was adapted to and warns when that material should not be trusted."""
    from serkit.audio import find_audio_files

    chosen = [name for name, given in (("--adapt", adapt), ("--baseline", baseline), ("--enrol", enrol)) if given]
    if not chosen:
        return None, None
    if len(chosen) > 1:
        raise SerkitError(f"{' and '.join(chosen)}: choose one way to adapt")
    sources = recordings if adapt else (baseline or enrol)
    try:
        files = find_audio_files(sources)
    except SerkitError as exc:
        raise SerkitError(f"{chosen[0]}: {exc}") from None
    if not files:
        raise SerkitError(f"{chosen[0]}: no audio files in {', '.join(str(p) for p in sources)}")
    if not model.adaptable:
        model._check_adaptable()  # raises, naming why
    adapted = model.adapted(files, neutral=bool(enrol))
    a = adapted.adaptation
    what = {"--adapt": "these recordings", "--baseline": "the baseline", "--enrol": "the calm reading"}[chosen[0]]
    label = {"--adapt": f"adapted to these {a.inputs} recording(s)",
             "--baseline": f"adapted to this person's {a.inputs} baseline recording(s)",
             "--enrol": f"adapted to this person's calm reading ({a.inputs} recording(s))"}[chosen[0]]
    err_console.print(f"{label}: {a.pieces} pieces, {a.seconds:.0f} s of audio ({a.config.describe()})",
                      soft_wrap=True)
    for path, reason in a.failures:
        err_console.print(f"[yellow]warning:[/] {what}: {escape(path)}: {escape(reason)} (left out)", soft_wrap=True)
    for warning in a.warnings:
        err_console.print(f"[yellow]warning:[/] adaptation {escape(warning)}", soft_wrap=True)
    return adapted, label


def _speaker_analysis(speakers: str | None, people: list[str], model, config):
    """How ``serkit analyze`` tells voices apart (--speakers, --person), or None; enrols the people first."""
    if speakers is None and not people:
        return None
    from serkit.inference.voices import SpeakerAnalysis, enrol_people, parse_person
    from serkit.speakers import DiarizationConfig, ResemblyzerEncoder

    count: str | int = "auto"
    if speakers is not None and speakers != "auto":
        try:
            count = int(speakers)
        except ValueError:
            raise SerkitError(f"--speakers: expected auto or a number of speakers, got {speakers!r}") from None
        if count < 1:
            raise SerkitError(f"--speakers {count}: a recording has at least one speaker (or give auto)")
    encoder = ResemblyzerEncoder()
    profiles = enrol_people([parse_person(p) for p in people], model, encoder, config)
    for p in profiles:
        err_console.print(f"enrolled {escape(p.name)}: {p.seconds:.1f} s of speech", soft_wrap=True)
    return SpeakerAnalysis(encoder, DiarizationConfig(speakers=count), profiles)


def _attach_voices(analyses, voices) -> None:
    from serkit.inference.voices import attach_speakers

    for a in analyses:
        attach_speakers(a, a.path, voices)
        if a.speakers is not None:
            err_console.print(f"{escape(a.name)}: {len(a.speakers.speakers)} speaker(s): "
                              + ", ".join(f"{escape(a.speaker_names.get(s, s))} {t:.0f} s"
                                          for s, t in a.speakers.seconds().items()), soft_wrap=True)
        for name in a.not_heard:
            err_console.print(f"[yellow]warning:[/] {escape(name)} is not heard in {escape(a.name)} (no voice in it "
                              "matches their enrolment)", soft_wrap=True)


def _attach_adapted(analyses, adapted, label: str) -> None:
    """Each analysis also scored by the adapted model; warns when the recordings sound unlike the material the
    model was adapted to (another voice or microphone?)."""
    from serkit.inference.analysis import with_adaptation

    for a in analyses:
        with_adaptation(a, adapted, label)
        distance = adapted.distance_to_material(a.features)
        if distance is not None and distance.unlike:
            err_console.print(f"[yellow]warning:[/] {escape(a.name)} sounds unlike the material the model was "
                              f"adapted to ({distance.describe()}): another person's voice, or another "
                              "microphone or room? Its adapted result may mislead", soft_wrap=True)


@app.command()
def serve(
    port: int = typer.Option(8000, help="TCP port (0: any free port)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on; keep 127.0.0.1 unless a reverse proxy with "
                                               "TLS sits in front"),
    data_dir: Path = typer.Option(Path("serkit-data"), "--data-dir", help="SQLite database, uploads and results"),
    model: str | None = typer.Option(None, help="a model.pt or run folder (default: serkit's default model)"),
    keep_audio: bool = typer.Option(False, "--keep-audio", help="keep uploaded recordings after analysis "
                                                                "(default: only derived results are stored)"),
    create_token: str | None = typer.Option(None, "--create-token", metavar="NAME",
                                            help="print a new API token for NAME and exit (only its hash is stored)"),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", help="larger uploads are refused (413)"),
    cors_origin: list[str] | None = typer.Option(None, "--cors-origin", help="allow this origin to call the API "
                                                                             "from its pages (repeatable; default: no CORS)"),
    rate_limit: int = typer.Option(120, "--rate-limit", help="requests per minute per token (0: no limit)"),
    queue_size: int = typer.Option(32, "--queue-size", help="analysis jobs queued or running at once (more: 429)"),
    shutdown_grace: float = typer.Option(10.0, "--shutdown-grace", help="seconds a running job may take to finish "
                                                                        "on SIGTERM before it is marked failed"),
    token_expires_days: float | None = typer.Option(None, "--token-expires-days", help="with --create-token: the "
                                                    "token stops working after this many days (default: never)"),
    list_tokens: bool = typer.Option(False, "--list-tokens", help="list the tokens (never their secrets) and exit"),
    revoke_token: str | None = typer.Option(None, "--revoke-token", metavar="NAME", help="revoke the tokens named "
                                            "NAME (401 from their next request; their data stays) and exit"),
    delete_token_data: str | None = typer.Option(None, "--delete-token-data", metavar="NAME", help="delete the "
                                                 "people, sessions and files of the revoked or expired tokens "
                                                 "named NAME and exit"),
    max_session_minutes: float = typer.Option(180.0, "--max-session-minutes", help="longest recording a session "
                                              "takes, by its header (longer: 413)"),
    max_job_minutes: float = typer.Option(30.0, "--max-job-minutes", help="an analysis job running longer is "
                                          "stopped and marked failed"),
    queue_per_token: int | None = typer.Option(None, "--queue-per-token", help="jobs one token may have queued or "
                                               "running (default: a quarter of --queue-size, at least 1)"),
    predict_workers: int = typer.Option(2, "--predict-workers", help="/predict requests classified at once"),
    predict_per_token: int | None = typer.Option(None, "--predict-per-token", help="/predict requests one token may "
                                                 "have in progress (default: half of --predict-workers, at least 1)"),
    job_workers: int = typer.Option(2, "--job-workers", help="analysis jobs run at once; with 2 or more a token "
                                    "runs one at a time while another token waits"),
    predict_timeout: float = typer.Option(60.0, "--predict-timeout", help="seconds a /predict request may take, "
                                          "waiting included"),
    max_uploads: int = typer.Option(4, "--max-uploads", help="request bodies received at once (more: 503)"),
    retain_days: float | None = typer.Option(None, "--retain-days", help="delete sessions uploaded more than this "
                                             "many days ago, with their files (default: keep)"),
    precision: str | None = _precision_option(),
    speakers: bool = typer.Option(True, "--speakers/--no-speakers", help="tell each session's voices apart (needs "
                                  "serkit[speakers]); a person's voice profile then picks their turns"),
) -> None:
    """The REST API and web page: upload recordings, see timelines and a person's trend (not a diagnosis)."""
    from pydantic import ValidationError

    from serkit.serve import server
    from serkit.serve.settings import ServeSettings

    try:
        settings = ServeSettings(data_dir=data_dir, model=model, host=host, port=port, keep_audio=keep_audio,
                                 max_upload_mb=max_upload_mb, cors_origins=cors_origin or [], rate_limit=rate_limit,
                                 queue_size=queue_size, shutdown_grace=shutdown_grace,
                                 max_session_minutes=max_session_minutes, max_job_minutes=max_job_minutes,
                                 queue_per_token=queue_per_token, predict_workers=predict_workers,
                                 predict_per_token=predict_per_token, job_workers=job_workers,
                                 predict_timeout=predict_timeout, max_uploads=max_uploads, retain_days=retain_days,
                                 precision=precision, speakers=speakers)
    except ValidationError as exc:
        _fail(SerkitError("; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                                    for e in exc.errors())))
    admin = [name for name, given in (("--create-token", create_token is not None), ("--list-tokens", list_tokens),
                                      ("--revoke-token", revoke_token is not None),
                                      ("--delete-token-data", delete_token_data is not None)) if given]
    try:
        if len(admin) > 1:
            raise SerkitError(f"{' and '.join(admin)}: one at a time")
        if token_expires_days is not None and create_token is None:
            raise SerkitError("--token-expires-days: only with --create-token")
        if create_token is not None:
            token = server.create_token(settings, create_token, expires_days=token_expires_days)
            console.print(f"token for {escape(create_token)} (shown once; only its hash is stored in "
                          f"{escape(str(settings.db_path))}"
                          + (f"; expires in {token_expires_days:g} days" if token_expires_days else "") + "):",
                          soft_wrap=True)
            print(token)
        elif list_tokens:
            table = Table(title=f"tokens in {settings.db_path}")
            for col in ("id", "name", "created", "expires", "revoked", "people", "sessions"):
                table.add_column(col)
            for t in server.list_tokens(settings):
                table.add_row(*(escape(str(t[c] if t[c] is not None else "-")) for c in
                                ("id", "name", "created", "expires", "revoked", "people", "sessions")))
            console.print(table)
        elif revoke_token is not None:
            n = server.revoke_token(settings, revoke_token)
            if not n:
                raise SerkitError(f"--revoke-token: no valid token named {revoke_token!r} (see --list-tokens)")
            console.print(f"revoked {n} token(s) named {escape(revoke_token)}; their data stays until "
                          "--delete-token-data", soft_wrap=True)
        elif delete_token_data is not None:
            sessions = server.delete_token_data(settings, delete_token_data)
            console.print(f"deleted the data of the tokens named {escape(delete_token_data)}: {sessions} "
                          "session(s), with their people and files", soft_wrap=True)
        else:
            server.run(settings)
    except SerkitError as exc:
        _fail(exc)


@corpus_app.command("info")
def corpus_info(
    path: Path = typer.Argument(..., help="corpus root folder (or CSV manifest for --corpus csv)"),
    corpus: str = typer.Option(..., "--corpus", "-c", help="corpus name, see `serkit corpus list`"),
    check_audio: bool = typer.Option(True, "--check-audio/--no-check-audio",
                                     help="open every file and report (and leave out of the counts) unreadable, "
                                          "empty and truncated ones; --no-check-audio only reads the names"),
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
    for col in ("name", "kind", "inputs", "paper"):
        table.add_column(col, no_wrap=col == "name")
    for name in list_models():
        spec = model_spec(name)
        table.add_row(name, spec.kind, ", ".join(spec.inputs), spec.paper or "")
    console.print(table)


def main() -> None:  # pragma: no cover - console entry point wrapper
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except (IsADirectoryError, NotADirectoryError) as exc:
        # A folder where a file is expected (or the reverse) that no command checked itself: one line, no traceback.
        err_console.print(f"[red]error:[/] {escape(str(exc.filename or ''))}: {escape(exc.strerror or str(exc))}",
                          soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
