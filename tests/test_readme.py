"""The README is a contract: every shell command in its ```bash blocks runs here (issue 15 item 10).

How each command is checked (see ``_plan``):

- ``curl ...`` (a call to ``serkit serve``): sent as written to the service run in process with a small model and
  a token of its own for ``$TOKEN``; it must answer 200.
- ``make TARGET``: the target exists in the Makefile (running it would install a virtual environment).
- ``serkit ...`` without placeholders and without training: run as written, in a folder that holds the
  checkout's ``examples/`` and ``recipes/`` and, beside it, ``shared/`` (the corpora), through the CLI; it must
  exit 0 (a corpus command is skipped when that corpus is absent).
- ``runs/<run>`` and ``<fold>`` in predict, analyze and export: replaced by a run folder holding a small trained
  model, then run as above.
- ``serkit train ...`` (hours of training), ``serkit serve`` (runs until stopped), commands that need a whole trained run (collect, evaluate on
  ``runs/<run>``) and commands with other placeholders (RECIPE, DIR, ``runs/<a>``):
  checked, not run: every option they use is in the command's ``--help``, and every recipe file they name
  loads, with their ``--set`` overrides applied.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import CORPORA, REPO
from serkit.cli import app

README = REPO / "README.md"
runner = CliRunner()


def readme_commands() -> list[str]:
    """The shell commands of the README's ```bash blocks: comments removed, `;`-separated commands split."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            commands += [c.strip() for c in line.split(";") if c.strip()]
    return commands


COMMANDS = readme_commands()
_PLACEHOLDER = re.compile(r"<(?!run>|fold>)[^>]*>|\b(RECIPE|DIR|FILES)\b")


def test_the_readme_has_the_commands_users_need():
    assert any(c.startswith("make test-fast") for c in COMMANDS)
    joined = "\n".join(COMMANDS)
    for option in ("--json", "--out", "--model"):
        assert "serkit predict" in joined and option in joined, option


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, tiny_model_path) -> Path:
    """A working folder like the README's: examples/ and recipes/ of the checkout, shared/ beside it, and a run
    folder with one fold's model for runs/<run>."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "serkit"
    work.mkdir()
    for name in ("examples", "recipes"):
        (work / name).symlink_to(REPO / name)
    if CORPORA.is_dir():
        (root / "shared").mkdir()
        (root / "shared" / "corpora").symlink_to(CORPORA)
    fold = root / "run" / "folds" / "fold01"
    fold.mkdir(parents=True)
    (fold / "model.pt").write_bytes(Path(tiny_model_path).read_bytes())
    return work


def _plan(command: str) -> str:
    words = shlex.split(command)
    if words[0] == "make":
        return "make"
    if words[0] == "curl":
        return "curl"
    if words[0] != "serkit":
        raise AssertionError(f"README command {command!r}: neither make, serkit nor curl")
    if words[1] == "train" or _PLACEHOLDER.search(command):
        return "help"
    if words[1] == "serve" and "--create-token" not in words:
        return "help"  # a service runs until stopped: tests/test_serve_server.py starts and talks to it
    if "<run>" in command and words[1] not in ("predict", "analyze", "export"):
        return "help"
    return "run"


@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.corpus) if " corpus info " in f" {c} " else c
                                     for c in COMMANDS])
def test_readme_command(command, checkout, monkeypatch, tmp_path, tiny_model):
    plan = _plan(command)
    words = shlex.split(command)
    if plan == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M)
        assert words[1] in targets, command
        return
    args = words[1:]
    if plan == "curl":
        _run_curl(words, checkout, tmp_path, tiny_model, monkeypatch)
        return
    if plan == "help":
        _check_options(command, args)
        return
    if "corpus" in args and "info" in args and not Path(checkout.parent, "shared").exists():
        pytest.skip("the shared corpora are not here")
    run = checkout.parent / "run"
    args = [a.replace("runs/<run>", str(run)).replace("<fold>", "fold01") for a in args]
    monkeypatch.chdir(checkout)
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"{command}\n{result.output}"
    for i, a in enumerate(args[:-1]):
        if a == "--out":
            assert (checkout / args[i + 1]).exists(), command  # it wrote where it said


def _run_curl(words: list[str], checkout: Path, tmp_path: Path, model, monkeypatch) -> None:
    """A curl call to ``serkit serve``: sent, headers and form fields as written, to the service (in process, with
    the tiny model and a token of its own for ``$TOKEN``); it must answer 200."""
    from fastapi.testclient import TestClient

    from serkit.serve.app import create_app
    from serkit.serve.settings import ServeSettings
    from serve_helpers import wait_for

    app = create_app(ServeSettings(data_dir=tmp_path / "serve", rate_limit=0), load=lambda spec: model)
    headers, files, url = {}, [], None
    it = iter(words[1:])
    for word in it:
        if word == "-H":
            key, _, value = next(it).partition(":")
            headers[key.strip()] = value.strip()
        elif word == "-F":
            field, _, value = next(it).partition("=@")
            files.append((field, (Path(value).name, (checkout / value).read_bytes())))
        elif word.startswith("http"):
            url = word
        else:
            raise AssertionError(f"curl option {word!r} is not understood by this test")
    with TestClient(app) as client:
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout=20)
        token = app.state.service.store.create_token("readme")
        headers = {k: v.replace("$TOKEN", token) for k, v in headers.items()}
        response = client.post(url.split("8000", 1)[1], headers=headers, files=files)
    assert response.status_code == 200, response.text


def _check_options(command: str, args: list[str]) -> None:
    """A command that is not run: its options exist, its recipe files load with its --set overrides."""
    import yaml

    from serkit.recipe import FusionRecipe, load_recipe

    subcommand = [a for a in args if not a.startswith("-")][:1]
    result = runner.invoke(app, [*subcommand, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, command
    for option in (a.split("=")[0] for a in args if a.startswith("--")):
        assert option in result.output, f"{command}: {option} is not an option of serkit {subcommand[0]}"
    for path in (a for a in args if a.endswith(".yaml")):
        recipe = load_recipe(REPO / path)
        sets = {k: yaml.safe_load(v) for k, _, v in (args[i + 1].partition("=") for i, a in enumerate(args)
                                                      if a == "--set")}
        if sets and not isinstance(recipe, FusionRecipe):
            recipe.with_overrides(**sets)
