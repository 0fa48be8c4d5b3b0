"""What a sweep keeps on disk, on a tiny app of its own (no torch): weights only where hydra.sweeper.keep_weights asks,
each Optuna trial with its MLflow run id (and the run with its trial number), the storage written as an absolute URL."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import hydra
import mlflow
import optuna
import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from combomap.config.run import run_config
from combomap.store import absolute_sqlite_uri
from combomap.tracking import log_metrics, mlflow_run
from hydra_plugins.combomap_optuna_sweeper.combomap_optuna_sweeper import CombomapOptunaSweeper

APP_CONFIG = """
defaults:
  - override hydra/sweeper: combomap_optuna
  - override hydra/job_logging: none
  - override hydra/hydra_logging: none
  - _self_
x: 0.0
logger:
  experiment_name: weights-app
hydra:
  sweeper:
    study_name: weights
    direction: minimize
    n_trials: 3
    n_jobs: 1
    weight_files: [net.bin, checkpoints]
    sampler:
      seed: 0
    params:
      x: interval(-2, 2)
"""


def task(cfg: DictConfig) -> float:
    """A job that keeps metrics and a 'net' in its run dir and names the net in its run's weights_file tag."""
    out = Path(HydraConfig.get().runtime.output_dir)
    with mlflow_run(run_config(cfg), run_name=f"trial-{cfg.sweep.trial}"):
        (out / "metrics.json").write_text("{}")
        (out / "net.bin").write_bytes(b"w" * 1000)
        (out / "checkpoints").mkdir()
        (out / "checkpoints" / "last.ckpt").write_bytes(b"c" * 100)
        mlflow.set_tags({"weights_file": str(out / "net.bin")})
        log_metrics({"objective": (cfg.x - 1.0) ** 2})
    return (cfg.x - 1.0) ** 2


def sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> tuple[optuna.Study, DictConfig]:
    """The sweep in-process, from tmp_path, with a RELATIVE storage URL."""
    (tmp_path / "conf").mkdir(exist_ok=True)
    (tmp_path / "conf" / "app.yaml").write_text(textwrap.dedent(APP_CONFIG))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["app.py", "-m", "hydra.sweeper.storage=sqlite:///optuna.db",
                                      f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides])
    GlobalHydra.instance().clear()
    try:
        hydra.main(version_base="1.3", config_path=str(tmp_path / "conf"), config_name="app")(task)()
    finally:
        GlobalHydra.instance().clear()
    study = optuna.load_study(study_name="weights", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    return study, OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")


def _with_weights(study: optuna.Study) -> list[int]:
    return [t.number for t in study.trials if (Path(t.user_attrs["output_dir"]) / "net.bin").exists()]


def test_best_trial_alone_keeps_its_weights_and_every_trial_its_run(
    tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, results = sweep(tmp_path, monkeypatch)  # keep_weights: best, the default
    best = study.best_trial
    assert _with_weights(study) == [best.number] and len(study.trials) == 3
    for trial in study.trials:
        out = Path(trial.user_attrs["output_dir"])
        assert (out / "metrics.json").is_file()  # metrics and config are kept by every trial
        assert (out / "checkpoints").exists() == (trial.number == best.number)
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["sweep_trial"] == str(trial.number) and run.data.tags["sweep_study"] == "weights"
        assert run.data.metrics["objective"] == pytest.approx(trial.value)
        assert ("weights_file" in run.data.tags) == (trial.number == best.number)  # no tag names deleted files
    assert results.storage == f"sqlite:///{tmp_path / 'optuna.db'}"  # absolute, though given relative
    assert results.best_trial == best.number and results.best_mlflow_run_id == best.user_attrs["mlflow_run_id"]
    out = Path(best.user_attrs["output_dir"])
    assert results.best_output_dir == str(out)
    assert list(results.best_weights) == [str(out / "checkpoints"), str(out / "net.bin")]


@pytest.mark.parametrize("keep", ["none", "all"])
def test_keep_weights_none_or_all(tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch, keep: str) -> None:
    study, results = sweep(tmp_path, monkeypatch, f"hydra.sweeper.keep_weights={keep}", "hydra.sweeper.n_trials=2")
    assert _with_weights(study) == ([0, 1] if keep == "all" else [])
    assert len(results.best_weights) == (2 if keep == "all" else 0)


def test_storage_urls_are_made_absolute_and_keep_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_sqlite_uri("sqlite:///mlruns/optuna.db") == f"sqlite:///{tmp_path}/mlruns/optuna.db"
    assert absolute_sqlite_uri("sqlite:///./optuna.db?timeout=30") == f"sqlite:///{tmp_path}/optuna.db?timeout=30"
    for unchanged in ("sqlite:////abs/optuna.db", "sqlite://", "postgresql://u:secret@host/db", None):
        assert absolute_sqlite_uri(unchanged) == unchanged


def test_keep_weights_takes_best_none_or_all() -> None:
    with pytest.raises(ValueError, match="keep_weights must be one of best, none, all, got 'some'"):
        CombomapOptunaSweeper(sampler=None, direction="maximize", study_name=None, storage=None, n_trials=1, n_jobs=1,
                              params=None, keep_weights="some")
