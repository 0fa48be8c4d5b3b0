"""The notebook's figures come from the main job's newest run (combomap-stack, tag job=stack, finished, top-level,
not a tiny run), whatever ran after it: a tiny stack run, an evaluate run, a fold net, a failed run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import mlflow
import nbformat
import pytest

from combomap.tracking import configure, ensure_experiment
from tests import REPO_ROOT
from tests.mlflow_template import new_store

NOTEBOOK = REPO_ROOT / "notebooks" / "analysis.ipynb"


def notebook_main_run() -> Callable[..., Any]:
    """main_run as the notebook defines it (its own cell, run here without a kernel)."""
    cells = [cell for cell in nbformat.read(NOTEBOOK, as_version=4).cells
             if cell.cell_type == "code" and "def main_run(" in cell.source]
    assert len(cells) == 1
    namespace: dict[str, Any] = {}
    exec(compile(cells[0].source, str(NOTEBOOK), "exec"), namespace)  # noqa: S102 - the repository's own notebook
    return namespace["main_run"]


def _run(experiment: str, tags: dict[str, str], params: dict[str, str] | None = None, status: str = "FINISHED",
         parent: str | None = None) -> str:
    time.sleep(0.01)  # start times (ms) strictly in creation order
    with mlflow.start_run(experiment_id=ensure_experiment(experiment), tags=tags, parent_run_id=parent) as run:
        mlflow.log_params(params or {})
    if status != "FINISHED":
        mlflow.MlflowClient().set_terminated(run.info.run_id, status=status)
    return run.info.run_id


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{new_store(tmp_path / 'mlruns') / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    configure()
    return uri


def test_newer_runs_of_other_kinds_do_not_replace_the_main_run(store: str) -> None:
    main_run = notebook_main_run()
    assert main_run(store) is None
    older = _run("combomap-stack", {"job": "stack"}, {"data.preset": "default"})
    main = _run("combomap-stack", {"job": "stack"}, {"data.preset": "default"})
    assert main_run(store) == main != older

    _run("combomap-stack", {"job": "stack"}, {"data.preset": "tiny"})  # a test run
    _run("combomap-evaluate", {"job": "evaluate"}, {"data.preset": "default"})
    _run("combomap-stack", {"job": "stack"}, {"data.preset": "default"}, status="FAILED")
    _run("combomap-stack", {"job": "train"}, {"data.preset": "default"})
    _run("combomap-stack", {"job": "stack"}, {"data.preset": "default"}, parent=older)  # a child run (fold net)
    assert main_run(store) == main
    assert main_run(store, skip_presets=()) != main  # the tiny run is the newest once tiny runs count

    real = _run("combomap-stack", {"job": "stack"}, {"data.source": "npy"})  # real data: no preset
    assert main_run(store) == real
