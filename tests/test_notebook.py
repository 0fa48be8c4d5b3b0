"""notebooks/analysis.ipynb runs top to bottom on a tiny MLflow store, and is committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests import REPO_ROOT
from tests.experiments.fake_runs import make_ablation_runs, make_sweep_runs
from tests.mlflow_template import new_store

NOTEBOOK = REPO_ROOT / "notebooks" / "analysis.ipynb"


def test_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def _text(outputs: list) -> str:
    parts = []
    for output in outputs:
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_notebook_executes_on_a_tiny_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = new_store(tmp_path / "mlruns")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    make_sweep_runs("mlp_optuna", n_trials=3)
    make_ablation_runs("ablation", augments=("none", "flip"), seeds=(0, 1))
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("COMBOMAP_MLFLOW_URI", uri)  # what the notebook reads

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = _text(outputs)
    assert f"MLflow store: {uri}" in text
    assert "combomap-train: 1 studies, 3 trials" in text
    assert "+both" in text and "flip" in text  # the ablation table
    assert "accuracy by effect: artifact | per combination: recomputed (baselines)" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # sweep, ablation, accuracy by effect, two densities
