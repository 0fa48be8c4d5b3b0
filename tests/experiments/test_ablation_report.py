"""The ablation report on a tiny set of runs: read from MLflow, mean ± sd per cell, files + its own MLflow run."""

from __future__ import annotations

import importlib.util
import itertools
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from combomap.reports.ablation import ablation_long
from combomap.tracking import load_runs, search_runs
from tests import REPO_ROOT
from tests.conftest import compose_config
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


def _sweep(argv: list[str]) -> tuple[list[list[str]], list]:
    """The jobs a Hydra multirun of `argv` runs (BasicSweeper: the product of the sweeps, in order, each job with
    every plain override) and the parsed overrides."""
    assert argv[0] == "-m"
    overrides = OverridesParser.create().parse_overrides(argv[1:])
    choices = [[f"{o.get_key_element()}={value}" for value in o.sweep_string_iterator()] if o.is_sweep_override()
               else [o.input_line] for o in overrides]  # fmt: skip
    return [list(job) for job in itertools.product(*choices)], overrides


def test_driver_command_sweeps_augment_by_seed_as_one_tagged_study(tmp_path: Path) -> None:
    driver = _module("ablation")
    jobs, overrides = _sweep(driver.ablation_command("abl", ["none", "swap"], [0, 1], launcher="joblib",
                                                     extra=["data.preset=tiny"]))  # fmt: skip
    assert len(jobs) == 4
    assert {o.get_key_element(): o.value() for o in overrides if o.is_hydra_override()} == {"hydra/launcher": "joblib"}
    grid = set()
    for number, job in enumerate(jobs):
        cfg = compose_config("stack", [o for o in job if not o.startswith("hydra/")], tmp_path / str(number))
        grid.add((cfg.augment.name, cfg.seed))
        assert cfg.sweep.study_name == "abl" and cfg.sweep.trial == 0  # the job's number (0 when composed alone)
        assert cfg.data.preset == "tiny"  # extra overrides reach every job
    assert grid == {("none", 0), ("none", 1), ("swap", 0), ("swap", 1)}
    assert not any(o.is_hydra_override() for o in _sweep(driver.ablation_command("abl", ["none"], [0]))[1])

    default_jobs, _ = _sweep(driver.ablation_command())  # every augmentation option of conf/augment x every seed
    augments = {Path(path).stem for path in (REPO_ROOT / "conf" / "augment").glob("*.yaml")}
    assert set(driver.AUGMENTS) == augments and len(default_jobs) == len(augments) * len(driver.SEEDS)


def test_driver_runs_the_multirun_then_the_report_and_fails_when_either_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    driver, report = _module("ablation"), _module("ablation_report")
    monkeypatch.setattr(driver, "stack_executable", lambda: ["combomap-stack"])
    ran: list[list[str]] = []
    exit_codes: list[int] = []

    def run(command: list[str], check: bool = False) -> subprocess.CompletedProcess:
        ran.append(command)
        return subprocess.CompletedProcess(command, exit_codes[len(ran) - 1])

    monkeypatch.setattr(driver.subprocess, "run", run)

    assert driver.main(["--dry-run", "--study", "abl"]) == 0 and ran == []
    printed = shlex.split(capsys.readouterr().out.strip())
    assert printed[0] == "combomap-stack" and "++sweep.study_name=abl" in printed

    exit_codes[:] = [3, 0]  # some stack jobs failed: the report still runs on what finished
    assert driver.main(["--study", "abl", "--augment", "flip", "--seeds", "4", "--", "data.preset=tiny"]) == 3
    stack, report_command = ran
    assert stack[0] == "combomap-stack"
    jobs, _ = _sweep(stack[1:])
    assert [job[:2] for job in jobs] == [["augment=flip", "seed=4"]] and jobs[0][-1] == "data.preset=tiny"
    assert report_command[:2] == [sys.executable, str(REPO_ROOT / "experiments" / "ablation_report.py")]
    reported = []
    monkeypatch.setattr(report, "build_report", lambda study, *args: reported.append(study))
    assert report.main(report_command[2:]) == 0 and reported == ["abl"]  # the report reads the same study

    ran.clear()
    exit_codes[:] = [0, 5]
    assert driver.main(["--study", "abl"]) == 5  # a failed report is the driver's failure
    ran.clear()
    exit_codes[:] = [0]
    assert driver.main(["--no-report"]) == 0 and len(ran) == 1
