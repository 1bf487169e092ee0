"""The README is a contract: every shell command in its ```bash blocks runs here (issue 15 item 10).

How each command is checked (see ``_plan``):

- ``make TARGET``: the target exists in the Makefile (running it would install a virtual environment).
- ``serkit ...`` without placeholders and without training: run as written, in a folder that holds the
  checkout's ``examples/`` and ``recipes/`` and, beside it, ``shared/`` (the corpora), through the CLI; it must
  exit 0 (a corpus command is skipped when that corpus is absent).
- ``runs/<run>`` and ``<fold>`` in predict, analyze and export: replaced by a run folder holding a small trained
  model, then run as above.
- ``serkit train ...`` (hours of training), commands that need a whole trained run (collect, evaluate on
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
    if words[0] != "serkit":
        raise AssertionError(f"README command {command!r}: neither make nor serkit")
    if words[1] == "train" or _PLACEHOLDER.search(command):
        return "help"
    if "<run>" in command and words[1] not in ("predict", "analyze", "export"):
        return "help"
    return "run"


@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.corpus) if " corpus info " in f" {c} " else c
                                     for c in COMMANDS])
def test_readme_command(command, checkout, monkeypatch):
    plan = _plan(command)
    words = shlex.split(command)
    if plan == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M)
        assert words[1] in targets, command
        return
    args = words[1:]
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
