"""combomap-evaluate: files, numbers equal to the metrics, exactly one MLflow run, clear input errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.folds import assign_folds
from combomap.evaluation.baselines import baseline_predictions
from combomap.evaluation.metrics import score
from combomap.evaluation.report import table_metrics
from combomap.jobs import evaluate
from combomap.models.learned import out_of_fold as learned_out_of_fold
from combomap.settings import SettingsError
from tests.conftest import random_dataset

FIGURES = [
    "accuracy_by_effect.png",
    "combo_error_density.png",
    "combo_spearman_density.png",
    "pred_vs_actual_oracle.png",
    "residuals_oracle.png",
]


@pytest.fixture()
def dataset(monkeypatch: pytest.MonkeyPatch) -> ComboDataset:
    """A small random data set served in place of cfg.data (independent of the loader's progress)."""
    data = random_dataset(n_combos=16, n_genes=40, seed=3)
    monkeypatch.setattr(evaluate, "load_dataset", lambda data_cfg: data)
    return data


def _runs() -> pd.DataFrame:
    """Runs in this test's private store (MLflow's global URI may still point at an earlier test's)."""
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.search_runs(search_all_experiments=True)


def test_run_scores_writes_and_logs_one_run(compose_cfg, dataset: ComboDataset, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="combomap.jobs.evaluate")
    oracle = tmp_path / "oracle.npy"
    np.save(oracle, dataset.combo_effect)
    cfg = compose_cfg("evaluate", [f"+predictions.oracle={oracle}", "max_plot_points=500"])
    metrics = evaluate.run(cfg)
    out_dir = Path(cfg.paths.output_dir)

    for name in ["results.csv", "results.md", "accuracy_by_effect.csv", *FIGURES]:
        assert (out_dir / name).is_file(), name
    table = pd.read_csv(out_dir / "results.csv").set_index("model")
    assert list(table.index) == ["average", "additive", "no_change", "additive_shift", "interaction", "oracle"]
    predictions = {**baseline_predictions(dataset), "oracle": dataset.combo_effect}
    # the learned rows are out of fold: each combination scored by a model fit on the other folds only
    by_combo = assign_folds(np.arange(dataset.n_combos) if dataset.combos["study"].nunique() < 10
                            else dataset.combos["study"].to_numpy(), 5, 0)
    learned, _ = learned_out_of_fold(dataset, by_combo)
    predictions.update(learned)
    for model, prediction in predictions.items():
        expected = score(dataset.combo_effect, prediction)
        for key, value in expected.items():
            assert table.loc[model, key] == pytest.approx(value, nan_ok=True), (model, key)
            assert metrics[f"{model}/{key}"] == pytest.approx(value, nan_ok=True), (model, key)
    assert table.loc["oracle", "sign_acc"] == 1.0
    assert table.loc["oracle", "delta_wrong_vs_average"] < 0
    reported = caplog.text
    assert "sign accuracy %" in reported and "oracle" in reported and "wrote results.csv" in reported

    runs = _runs()
    assert len(runs) == 1
    run = mlflow.MlflowClient().get_run(runs.run_id.iloc[0])
    assert run.info.status == "FINISHED" and run.info.run_name == "evaluate-default-s0"
    logged = run.data.metrics
    assert logged["average/sign_acc"] == pytest.approx(table.loc["average", "sign_acc"])
    assert logged["oracle/delta_wrong_vs_average"] == pytest.approx(table.loc["oracle", "delta_wrong_vs_average"])
    assert logged["additive/l2_top1000"] == pytest.approx(table.loc["additive", "l2_top1000"])
    assert "no_change/spearman_median" not in logged  # NaN is not logged
    read_back = pd.read_csv(out_dir / "results.csv", float_precision="round_trip")  # the table's one artifact
    headline = {"average_sign_acc": read_back.set_index("model").loc["average", "sign_acc"]}  # a runs-table column
    assert logged == {**{k: v for k, v in table_metrics(read_back).items() if v == v}, **headline} == {
        k: v for k, v in metrics.items() if v == v
    }  # every metric column, bit for bit, and nothing else
    assert run.data.params["reference"] == "average"
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.csv", "results.md", "accuracy_by_effect.csv", "config.yaml", "plots"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {f"plots/{f}" for f in FIGURES}


def test_wrong_shape_predictions_error_names_file_and_shapes(
    compose_cfg, dataset: ComboDataset, tmp_path: Path
) -> None:
    bad = tmp_path / "bad_preds.npy"
    np.save(bad, np.zeros((16, 39), dtype=np.float32))
    cfg = compose_cfg("evaluate", [f"+predictions.mlp={bad}", "plots=false"])
    with pytest.raises(DataError, match=r"'mlp'.*bad_preds\.npy has shape \(16, 39\).*\(16, 40\)"):
        evaluate.run(cfg)
    assert len(_runs()) == 0  # inputs are checked before the run starts


def test_other_bad_prediction_inputs(dataset: ComboDataset, tmp_path: Path) -> None:
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="objects.npy is not a plain .npy array"):
        evaluate.load_predictions({"x": pickled}, dataset)
    with pytest.raises(DataError, match="not found"):
        evaluate.load_predictions({"x": tmp_path / "missing.npy"}, dataset)
    with pytest.raises(SettingsError, match="already used by a baseline"):
        evaluate.load_predictions({"average": pickled}, dataset, taken={"average"})
    with pytest.raises(SettingsError, match="no '/'"):
        evaluate.load_predictions({"a/b": pickled}, dataset)


def test_run_on_tiny_simulated_preset(compose_cfg) -> None:
    cfg = compose_cfg("evaluate", ["data=simulated", "data.preset=tiny", "plots=false"])
    metrics = evaluate.run(cfg)
    table = pd.read_csv(Path(cfg.paths.output_dir) / "results.csv")
    assert list(table["model"]) == ["average", "additive", "no_change", "additive_shift", "interaction"]
    no_learned = compose_cfg("evaluate", ["data=simulated", "data.preset=tiny", "plots=false", "learned=null"])
    assert set(evaluate.run(no_learned)) == {k for k in metrics if not k.startswith(("additive_shift/", "interaction/"))}
    assert 0.5 < metrics["average/sign_acc"] <= 1.0
    assert len(_runs()) == 2


def test_cli_entry_point_smoke(tmp_path: Path, mlflow_store: Path) -> None:
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "combomap.cli.evaluate", "data.preset=tiny", "plots=false", f"hydra.run.dir={out}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sign accuracy %" in result.stdout
    assert (out / "results.md").is_file()
    table = pd.read_csv(out / "results.csv", float_precision="round_trip").set_index("model")
    runs = _runs()
    assert len(runs) == 1
    assert runs["metrics.average/sign_acc"].iloc[0] == table.loc["average", "sign_acc"]  # logged from the table
