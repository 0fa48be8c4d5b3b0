"""A SIGKILLed Optuna sweep: the next run of the same command reclaims the trial left RUNNING (FAIL, re-queued,
its MLflow run KILLED) and fills the study; the default study name follows the fixed config, and a named study
refuses a sweep with another fixed config (one line, exit 2)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from combomap.tracking import search_runs
from hydra_plugins.combomap_optuna_sweeper._impl import fixed_config_hash, parse_search_space
from tests.killing import console, start, stop, wait_for

FIXED = ["data.preset=tiny", "trainer.max_epochs=5", "datamodule.batch_size=4", "plots=false"]


def _read_only(db_path: Path, sql: str) -> list[tuple]:
    """Rows of a query on a SQLite file, opened read-only: polling must never create tables in a store the sweep
    is still creating (optuna's and MLflow's own clients would, racing the sweep into "table already exists")."""
    if not db_path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)) as db:
            return db.execute(sql).fetchall()
    except sqlite3.Error:  # tables not created yet, or locked: poll again
        return []


def _running_trial(storage: str, mlflow_db: Path) -> tuple[int] | None:
    """(number,) of the trial the sweep is running, once its MLflow run is open too; None while the sweep sets up."""
    running = _read_only(Path(storage.removeprefix("sqlite:///")), "SELECT number FROM trials WHERE state = 'RUNNING'")
    if running and _read_only(mlflow_db, "SELECT run_uuid FROM runs WHERE status = 'RUNNING'"):
        return running[0]
    return None


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_sweep_is_reclaimed_on_the_next_run(tmp_path: Path, mlflow_store: Path, signum: int) -> None:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{mlflow_store / 'mlflow.db'}")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep = [console("combomap-train"), "-m", "hparams_search=mlp_optuna", *FIXED, f"hydra.sweeper.storage={storage}",
             "hydra.sweeper.n_trials=1"]
    process = start([*sweep, f"hydra.sweep.dir={tmp_path / 'killed'}"], env)
    (killed,) = wait_for(lambda: _running_trial(storage, mlflow_store / "mlflow.db"), process)  # trial and run open
    stop(process, signum)
    (name,) = optuna.get_all_study_names(storage)
    killed_params = optuna.load_study(study_name=name, storage=storage).trials[killed].params

    done = subprocess.run([*sweep, f"hydra.sweep.dir={tmp_path / 'again'}"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert optuna.get_all_study_names(storage) == [name] and name.startswith("train-")
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert trials[killed].state == TrialState.FAIL and trials[killed].user_attrs["interrupted"]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 1  # the killed trial does not count
    assert trials[killed + 1].params == killed_params  # re-queued: the same point is tried first
    runs = search_runs("combomap-train", f"tags.sweep_trial = '{killed}'")
    assert runs["status"].tolist() == ["KILLED"]


def test_a_named_study_refuses_another_fixed_config(tmp_path: Path, capsys) -> None:
    from types import SimpleNamespace

    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from hydra_plugins.combomap_optuna_sweeper._impl import run_sweep

    class Launcher:
        def launch(self, job_overrides, initial_job_idx):
            return [JobReturn(overrides=list(o), status=JobStatus.COMPLETED, _return_value=1.0) for o in job_overrides]

    def sweeper(preset: str) -> SimpleNamespace:
        config = {"task_name": "train", "data": {"preset": preset}, "hydra": {"sweep": {"dir": str(tmp_path / preset)}}}
        return SimpleNamespace(
            params={"x": "interval(0, 1)"}, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="named",
            direction="minimize", stale_after_s=None, sampler=optuna.samplers.RandomSampler(seed=0), n_trials=1,
            n_jobs=1, launcher=Launcher(), tag_trials=True, objective=None, max_failure_rate=1.0,
            config=OmegaConf.create(config),
        )  # fmt: skip

    run_sweep(sweeper("tiny"), [])
    with pytest.raises(SystemExit) as refused:
        run_sweep(sweeper("default"), [])
    assert refused.value.code == 2
    assert capsys.readouterr().err.strip().startswith("combomap-optuna: error: study 'named' was run with another fixed config")
    assert len(optuna.load_study(study_name="named", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials) == 1


def test_default_study_name_follows_the_fixed_config_not_the_searched_keys() -> None:
    from omegaconf import OmegaConf

    config = OmegaConf.create({"data": {"preset": "default"}, "model": {"hidden_sizes": [512]}, "hydra": {"x": 1}})
    space, fixed = parse_search_space(["model.hidden_sizes=choice([8],[16])", "hydra.sweeper.n_trials=3"])
    base = fixed_config_hash(config, space, fixed)
    searched_differs = OmegaConf.merge(config, {"model": {"hidden_sizes": [8]}})
    assert fixed_config_hash(searched_differs, space, fixed) == base
    assert fixed_config_hash(config, space, {**fixed, "hydra.sweeper.n_trials": "hydra.sweeper.n_trials=9"}) == base
    _, tiny = parse_search_space(["data.preset=tiny"])
    assert fixed_config_hash(config, space, {**fixed, **tiny}) != base
