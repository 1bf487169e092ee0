"""The architecture, checked on the source: no import cycles between modules, and no room importing a higher one.

Every ``import`` / ``from ... import`` in every module of ``src/serkit`` counts, wherever it is written (module
level, inside a function, under ``if TYPE_CHECKING:``), since a function-level import is still a dependency.

Rooms, lowest first (a module may import its own room and the rooms below it, never one above):

- ``serkit._version``, ``serkit.errors``, ``serkit.utils``: leaves everybody uses;
- ``audio`` < ``features`` (frontends, the feature extractor, segments, the normaliser) < ``speakers`` (speaker
  embeddings, diarization, enrolment) < ``corpora`` <
  ``augment`` < ``multi_input`` (multi-stream feature containers) < ``metrics`` (WA, UA, F1 of a test set)
  < ``models`` (networks, scikit-learn heads,
  the learner interface, the model file) < ``training`` (protocols, metrics, trainer: the configs a recipe
  holds live next to their code);
- ``recipe``: the experiment file, built from the configs of every room below it;
- the runner (``training.experiment``, ``training.evaluate``, ``training.fanout``, ``training.fusion``): runs
  recipes, so it sits above ``recipe`` although its modules live in ``training/``;
- ``inference`` < ``evaluation`` (held-out material of runs, trend fidelity, adaptation studies) < ``serve`` <
  ``cli`` < ``serkit`` itself (the package's ``load_model``).

The one cycle allowed: the model registry imports the model modules inside ``_ensure_loaded`` (a plugin
import that registers them), and each model module imports the registry to register itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

RUNNER = ("serkit.training.experiment", "serkit.training.evaluate", "serkit.training.fanout",
          "serkit.training.fusion")
#: Rooms, lowest first: module-name prefixes (a module belongs to the room of its longest matching prefix).
ROOMS: list[tuple[str, ...]] = [
    ("serkit._version", "serkit.errors", "serkit.utils"),
    ("serkit.audio",),
    ("serkit.features",),
    ("serkit.speakers",),
    ("serkit.corpora",),
    ("serkit.augment",),
    ("serkit.multi_input",),
    ("serkit.metrics",),
    ("serkit.models",),
    ("serkit.training",),
    ("serkit.recipe",),
    RUNNER,
    ("serkit.inference",),
    ("serkit.evaluation",),
    ("serkit.serve",),
    ("serkit.cli",),
    ("serkit",),
]
#: (importing module, function it imports in) pairs whose imports are exempt from the cycle check.
ALLOWED_CYCLE_IMPORTS = {("serkit.models.registry", "_ensure_loaded")}


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "serkit").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def _target(name: str) -> str | None:
    """The serkit module ``name`` refers to: itself, or the closest enclosing module (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


class _Imports(ast.NodeVisitor):
    """(target module, enclosing function or None, line) of every serkit import in a module."""

    def __init__(self, module: str, is_package: bool):
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, str | None, int]] = []
        self.function: list[str] = []

    def _function_scope(self, node):
        self.function.append(node.name)
        self.generic_visit(node)
        self.function.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function_scope

    def _add(self, name: str, line: int) -> None:
        target = _target(name)
        if target is not None:
            self.found.append((target, self.function[0] if self.function else None, line))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "serkit" or alias.name.startswith("serkit."):
                self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative import
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
        if not (base == "serkit" or base.startswith("serkit.")):
            return
        for alias in node.names:
            sub = f"{base}.{alias.name}"  # "from serkit.training import distributed" imports a module
            self._add(sub if sub in MODULES else base, node.lineno)


def import_graph() -> dict[str, list[tuple[str, str | None, int]]]:
    graph = {}
    for module, path in MODULES.items():
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        graph[module] = [(t, f, line) for t, f, line in visitor.found if t != module]
    return graph


GRAPH = import_graph()


def room_of(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(ROOMS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"{module}: in no room; add it to ROOMS in {__file__}"
    return best


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components of more than one module, i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root, targets in edges.items():
        if root in index:
            continue
        work = [(root, iter(sorted(targets)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_sees_imports_at_every_level():
    # A function-level import (cli imports the runner inside its commands) is an edge like any other.
    assert any(t == "serkit.training.experiment" and f is not None for t, f, _ in GRAPH["serkit.cli"])
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    edges = {m: {t for t, f, _ in imports if (m, f) not in ALLOWED_CYCLE_IMPORTS} for m, imports in GRAPH.items()}
    cycles = strongly_connected(edges)
    assert not cycles, "import cycles between modules: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_room_imports_a_higher_room():
    upward = [f"{m}:{line} imports {t}" for m, imports in GRAPH.items() for t, _, line in imports
              if room_of(t) > room_of(m)]
    assert not upward, "lower rooms importing higher ones:\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize("room", ["serkit.inference", "serkit.serve"])
def test_inference_and_serving_need_nothing_from_training(room):
    used = sorted({f"{m} -> {t}" for m, imports in GRAPH.items() if m == room or m.startswith(room + ".")
                   for t, _, _ in imports if t.startswith("serkit.training") or t == "serkit.recipe"})
    assert not used, f"{room} imports training modules: {used}"
