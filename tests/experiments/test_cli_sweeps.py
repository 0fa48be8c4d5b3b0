"""Through the real entry points: an Optuna sweep of combomap-train (then resumed), and the ablation grid
multirun of combomap-stack read back by the report. Tiny data, one epoch, a shallow stacker."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from combomap.tracking import search_runs
from tests import REPO_ROOT

BIN = Path(sys.executable).parent
TINY_TRAIN = ["data.preset=tiny", "trainer.max_epochs=1"]
TINY_STACK = [
    "data.preset=tiny", "trainer.max_epochs=1", "stacker.max_depth=3", "stacker.n_rounds=2", "stacker.n_threads=1",
    "stacking.cv.n_folds=2", "stacking.plots=false", "stacking.save_model=false",
]  # fmt: skip


def _run(command: list[str], tmp_path: Path, store: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    return done


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_optuna_sweep_tags_runs_and_resumes(tmp_path: Path, mlflow_store: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = [str(BIN / "combomap-train"), "-m", "hparams_search=mlp_optuna", *TINY_TRAIN, f"hydra.sweeper.storage={storage}",
             "hydra.sweeper.study_name=mlp_optuna"]
    _run([*sweep, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'first'}"], tmp_path, mlflow_store)

    runs = search_runs("combomap-train", "tags.sweep_study = 'mlp_optuna'")
    assert sorted(runs["tags.sweep_trial"].astype(int)) == [0, 1]
    assert runs["metrics.val/sign_acc"].between(0, 1).all()
    study = optuna.load_study(study_name="mlp_optuna", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    # Each trial's objective is its run's val/sign_acc, and the run used the trial's params.
    by_trial = runs.set_index(runs["tags.sweep_trial"].astype(int))
    for trial in study.trials:
        assert trial.value == pytest.approx(by_trial.loc[trial.number, "metrics.val/sign_acc"])
        assert by_trial.loc[trial.number, "params.augment.name"] == trial.params["augment"]
    first = OmegaConf.load(tmp_path / "first" / "optimization_results.yaml")
    assert first.best_value == pytest.approx(max(t.value for t in study.trials))
    # Each trial knows its run; only the best trial kept its weights, and no run holds them as artifacts.
    assert {t.user_attrs["mlflow_run_id"]: t.number for t in study.trials} == {
        run_id: int(trial) for run_id, trial in zip(runs["run_id"], runs["tags.sweep_trial"])}
    assert sorted(path.parent.name for path in (tmp_path / "first").glob("*/mlp.safetensors")) == [str(first.best_trial)]
    best_dir = tmp_path / "first" / str(first.best_trial)
    assert first.best_weights == [str(best_dir / name) for name in ("checkpoints", "mlp.json", "mlp.safetensors")]
    assert not list(mlflow_store.rglob("*.safetensors"))

    _run([*sweep, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={tmp_path / 'second'}"], tmp_path, mlflow_store)
    study = optuna.load_study(study_name="mlp_optuna", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    runs = search_runs("combomap-train", "tags.sweep_study = 'mlp_optuna'")
    assert sorted(runs["tags.sweep_trial"].astype(int)) == [0, 1, 2]
    assert OmegaConf.load(tmp_path / "second" / "optimization_results.yaml").trials.complete == 3


def test_ablation_grid_multirun_and_report(tmp_path: Path, mlflow_store: Path) -> None:
    driver = REPO_ROOT / "experiments" / "ablation.py"
    command = [sys.executable, str(driver), "--study", "abl-test", "--augment", "none", "swap", "--seeds", "0",
               "--no-report", "--", *TINY_STACK, f"hydra.sweep.dir={tmp_path / 'grid'}"]  # fmt: skip
    _run(command, tmp_path, mlflow_store)

    runs = search_runs("combomap-stack", "tags.sweep_study = 'abl-test'")
    assert sorted(runs["params.augment.name"]) == ["none", "swap"]
    assert sorted(runs["tags.sweep_trial"]) == ["0", "1"]
    for feature_set in ("avg", "vars", "nets", "both"):
        assert runs[f"metrics.ablation/stack_{feature_set}/sign_acc"].between(0, 1).all()

    report = _load_module(REPO_ROOT / "experiments" / "ablation_report.py")
    files = report.build_report(study="abl-test", out_dir=tmp_path / "reports")
    table = pd.read_csv(files["csv"])
    assert set(table["augment"]) == {"none", "swap"}
    assert {"avg", "+vars", "+nets", "+both", "average", "nets_oof"} <= set(table["feature_set"])
    assert (table["n"] == 1).all()
    swap_both = runs.loc[runs["params.augment.name"] == "swap", "metrics.ablation/stack_both/sign_acc"].iloc[0]
    row = table[(table["augment"] == "swap") & (table["feature_set"] == "+both")].iloc[0]
    assert row["mean"] == pytest.approx(swap_both)
