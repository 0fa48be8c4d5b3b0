"""The ablation report on a tiny set of runs: read from MLflow, mean ± sd per cell, files + its own MLflow run."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from combomap.reports.ablation import ablation_long
from combomap.tracking import load_runs, search_runs
from tests import REPO_ROOT
from tests.experiments.fake_runs import ablation_value, make_ablation_runs


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_reads_runs_back_and_writes_table_plot_and_run(tmp_path: Path, mlflow_store: Path) -> None:
    make_ablation_runs(study="abl", augments=("none", "flip"), seeds=(0, 1, 2), figure_artifacts=False)
    make_ablation_runs(study="other", augments=("none",), seeds=(0,), figure_artifacts=False)  # not in the report
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("combomap-stack").experiment_id,
                          tags={"sweep_study": "abl"}):  # fmt: skip
        mlflow.log_metric("ablation/stack_both/sign_acc", 0.0)
        mlflow.log_params({"augment.name": "none", "seed": 9})
    mlflow.tracking.MlflowClient().set_terminated(mlflow.last_active_run().info.run_id, status="FAILED")

    files = _module("ablation_report").build_report(study="abl", out_dir=tmp_path / "reports")

    summary = pd.read_csv(files["csv"])
    assert list(dict.fromkeys(summary["augment"])) == ["none", "flip"]
    assert list(dict.fromkeys(summary["feature_set"])) == ["average", "additive", "nets_oof", "avg", "+vars", "+nets", "+both"]
    cell = summary[(summary["augment"] == "flip") & (summary["feature_set"] == "+both")].iloc[0]
    values = [ablation_value("flip", "stack_both", seed) for seed in (0, 1, 2)]
    assert cell["n"] == 3  # the FAILED run and the other study are left out
    assert cell["mean"] == pytest.approx(statistics.mean(values))
    assert cell["sd"] == pytest.approx(statistics.stdev(values))
    markdown = files["markdown"].read_text()
    assert f"| flip | {100 * 0.79:.2f} ± 0.00 |" in markdown  # the average baseline does not depend on augmentation
    assert f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}" in markdown
    assert files["plot"].read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(files["runs"])) == 6 * 7

    report = search_runs("combomap-reports", "tags.report_of = 'abl'")
    assert len(report) == 1
    assert report["metrics.report/flip/stack_both/mean"].iloc[0] == pytest.approx(statistics.mean(values))
    logged = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(report["run_id"].iloc[0])}
    assert {p.name for p in files.values()} | {"source_run_ids.txt"} == logged


def test_newest_run_of_a_cell_wins(mlflow_store: Path) -> None:
    make_ablation_runs(study="abl", augments=("swap",), seeds=(0,), figure_artifacts=False)
    newer = make_ablation_runs(study="abl", augments=("swap",), seeds=(0,), figure_artifacts=False)
    long = ablation_long(load_runs("combomap-stack", "tags.sweep_study = 'abl'"))
    assert set(long["run_id"]) == set(newer)


def test_report_values_are_the_runs_table_values_bit_for_bit(mlflow_store: Path) -> None:
    make_ablation_runs(study="abl", augments=("none", "flip"), seeds=(0,), figure_artifacts=False)
    runs = load_runs("combomap-stack", "tags.sweep_study = 'abl'").set_index("run_id", drop=False)
    long = ablation_long(runs, metric="spearman_median")
    assert list(long["model"].drop_duplicates()) == ["average", "additive", "nets_oof", "stack_avg", "stack_vars",
                                                     "stack_nets", "stack_both"]  # fmt: skip  # no_change skipped
    assert list(long["augment"].drop_duplicates()) == ["flip", "none"]  # newest run first
    for row in long.itertuples():  # the table read back equals the scalar the run logged from it, exactly
        assert row.value == runs.loc[row.run_id, f"metrics.ablation/{row.model}/spearman_median"]
    with pytest.raises(KeyError, match="no column 'bogus'"):
        ablation_long(runs, metric="bogus")


def test_driver_builds_the_multirun_command() -> None:
    driver = _module("ablation")
    command = driver.ablation_command("abl", ["none", "swap"], [0, 1], launcher="joblib", extra=["data.preset=tiny"])
    assert command == [
        "-m", "augment=none,swap", "seed=0,1", "++sweep.study_name=abl", "++sweep.trial=${hydra:job.num}",
        "hydra/launcher=joblib", "data.preset=tiny",
    ]  # fmt: skip
    assert driver.main(["--dry-run"]) == 0
