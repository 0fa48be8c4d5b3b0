"""The package's layering (docs/architecture.md): a module imports only from its own layer or the layers below, the
modules import each other without a cycle, and every project import stands at the top of its module (none inside a
function, where an upward dependency or a cycle could hide)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "combomap"
PLUGINS = REPO_ROOT / "src" / "hydra_plugins"

# Bottom to top. A module belongs to the first entry that is itself or a package above it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("combomap.errors", "combomap.settings", "combomap.paths", "combomap.signals", "combomap.progress",
              "combomap.recording")),
    ("data", ("combomap.data",)),
    ("evaluation", ("combomap.evaluation",)),
    ("tracking", ("combomap.store", "combomap.runs", "combomap.tracking")),
    ("models", ("combomap.models",)),
    ("stacking", ("combomap.stacking",)),
    ("query", ("combomap.query",)),
    ("interactions", ("combomap.interactions",)),
    ("jobs", ("combomap.jobs", "combomap.reports", "combomap.config")),
    ("cli", ("combomap.cli", "combomap.console")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    for level, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return level
    return None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of a combomap module in the file, wherever it stands."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> list[tuple[int, str]]:
    return imports_under(ast.parse(source), package)


def imports_under(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, module) for every import of a combomap module in `tree` (a module, a function)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
            found += [(node.lineno, name if layer_of(name) is not None else base) for name in names]
    return [(line, name) for line, name in found if name == "combomap" or name.startswith("combomap.")]


def function_local_imports(source: str, package: str) -> list[tuple[int, str]]:
    """(line, module) for every import of a combomap module inside a function body (nested ones once)."""
    functions = [node for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return sorted({found for function in functions for found in imports_under(function, package)})


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    unplaced = [module_name(path) for path in MODULES if path.name != "__init__.py" or path.parent != PACKAGE]
    assert [name for name in unplaced if layer_of(name) is None] == []


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_no_upward_imports(path: Path) -> None:
    own = layer_of(module_name(path))
    if own is None:
        return  # the package root: its __init__ re-exports nothing from the layers
    upward = [f"line {line}: {name} ({LAYERS[layer_of(name)][0]} above {LAYERS[own][0]})"
              for line, name in imported_modules(path)
              if layer_of(name) is not None and layer_of(name) > own]
    assert upward == []


def test_the_check_sees_function_local_and_relative_imports() -> None:
    source = "import numpy\ndef f():\n    from combomap.query import search\n    from ..stacking import features\n"
    names = [name for _, name in imports_in(source, "combomap.data")]
    assert names == ["combomap.query.search", "combomap.stacking.features"]
    assert [layer_of(name) for name in names] == [6, 5]


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (`from package import name` counts as the module it names, if one)."""
    names = {module_name(path) for path in MODULES}
    graph = {}
    for path in MODULES:
        targets = set()
        for _, imported in imported_modules(path):
            while imported and imported not in names:
                imported = imported.rpartition(".")[0]
            if imported and imported != module_name(path):
                targets.add(imported)
        graph[module_name(path)] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph has none (depth-first, iterative)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    for root in sorted(graph):
        if root in state:
            continue
        path, pending = [root], [iter(sorted(graph[root]))]
        state[root] = "open"
        while pending:
            following = next(pending[-1], None)
            if following is None:
                state[path.pop()] = "done"
                pending.pop()
            elif state.get(following) == "open":
                return path[path.index(following):] + [following]
            elif following not in state:
                state[following] = "open"
                path.append(following)
                pending.append(iter(sorted(graph.get(following, ()))))
    return []


def test_the_modules_import_each_other_without_a_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle == [], "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle_and_only_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


# Files of modules still being refactored whose functions import project modules (empty it as they are fixed).
TEMPORARY_FUNCTION_IMPORT_ALLOWLIST: set[str] = set()
SOURCES = sorted([*MODULES, *PLUGINS.rglob("*.py")])


def package_of(path: Path) -> str:
    """The package a file's relative imports start from: src/hydra_plugins/x/_impl.py -> hydra_plugins.x."""
    return ".".join(path.relative_to(REPO_ROOT / "src").with_suffix("").parts[:-1])


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(REPO_ROOT / "src")))
def test_no_function_imports_a_project_module(path: Path) -> None:
    relative = str(path.relative_to(REPO_ROOT))
    local = [f"line {line}: {name}" for line, name in function_local_imports(path.read_text(), package_of(path))]
    if relative in TEMPORARY_FUNCTION_IMPORT_ALLOWLIST:
        assert local, f"{relative} has no function-local project import left: take it off the allowlist"
        return
    assert local == [], f"{relative}: import these at the top of the module"


def test_the_function_import_check_sees_nested_and_relative_imports_only_in_functions() -> None:
    source = ("from combomap.data import dataset\n"
              "def f():\n    import numpy\n    from combomap.query import search\n"
              "    def g():\n        from ..stacking import features\n")
    assert function_local_imports(source, "combomap.data") == [(4, "combomap.query.search"), (6, "combomap.stacking.features")]
