"""The package's layering (docs/architecture.md): a module imports only from its own layer or the layers below,
function-local imports included, so no upward dependency can hide inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "combomap"

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
    found = []
    for node in ast.walk(ast.parse(source)):
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
    source = "import numpy\ndef f():\n    from combomap.query import engine\n    from ..stacking import features\n"
    names = [name for _, name in imports_in(source, "combomap.data")]
    assert names == ["combomap.query.engine", "combomap.stacking.features"]
    assert [layer_of(name) for name in names] == [6, 5]
