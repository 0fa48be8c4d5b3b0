"""Typed settings at the boundary (docs/architecture.md): only the jobs, the CLI, the console and the config schemas
(combomap.config) read a composed config; every other function receives typed objects."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "combomap"
CONFIG_READERS = ("jobs", "cli", "config", "console.py")
CONFIG_PARAMETERS = ("cfg", "config_node")  # and any name ending in _cfg


def domain_modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py")
                  if path.relative_to(PACKAGE).parts[0] not in CONFIG_READERS)


def config_uses(source: str) -> list[str]:
    """Imports of omegaconf's DictConfig and function parameters that carry a raw config, by line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("omegaconf"):
            found += [f"line {node.lineno}: imports {alias.name}" for alias in node.names if alias.name == "DictConfig"]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            for argument in arguments:
                annotation = ast.unparse(argument.annotation) if argument.annotation is not None else ""
                if (argument.arg in CONFIG_PARAMETERS or argument.arg.endswith("_cfg") or "DictConfig" in annotation):
                    found.append(f"line {node.lineno}: {node.name}({argument.arg}: {annotation or '?'})")
    return found


@pytest.mark.parametrize("path", domain_modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_domain_code_takes_typed_settings_not_a_config(path: Path) -> None:
    assert config_uses(path.read_text()) == []


def test_the_check_finds_a_raw_config() -> None:
    source = ("from omegaconf import DictConfig\n"
              "def fit(cfg, data): ...\n"
              "def load(library_cfg: dict): ...\n"
              "def run(node: 'DictConfig'): ...\n"
              "def ok(settings: 'StackingSettings', dataset): ...\n")
    assert len(config_uses(source)) == 4
