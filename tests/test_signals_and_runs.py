"""SIGTERM/SIGINT end a job non-zero with its MLflow run KILLED; runs of killed processes are closed later."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from combomap.config.run import run_config
from combomap import runs, signals
from combomap.tracking import mlflow_run
from tests.killing import console, start, stop, wait_for

TRAIN_FOREVER = ["data.preset=tiny", "model.hidden_sizes=[8]", "datamodule.batch_size=4", "plots=false",
                 "trainer.max_epochs=100000", "callbacks.checkpoint=null", "callbacks.best_checkpoint=null"]


def _train_env(mlflow_store: Path) -> dict[str, str]:
    return dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{mlflow_store / 'mlflow.db'}")


def _only_run(experiment: str = "combomap-train"):
    found = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    return found[0] if len(found) == 1 else None


def _training_started():
    run = _only_run()
    return run is not None and "train/loss" in run.data.metrics and run


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_inside_any_job_ends_its_run_killed(compose_cfg, signum: int) -> None:
    """Outside net training (evaluate, stacker CV): the signal unwinds through mlflow_run."""
    cfg = compose_cfg("evaluate", ["data.preset=tiny"])
    with pytest.raises(signals.Terminated) as stopped:
        with mlflow_run(run_config(cfg), run_name="job") as run:
            os.kill(os.getpid(), signum)
    assert stopped.value.signum == signum
    assert MlflowClient().get_run(run.info.run_id).info.status == "KILLED"
    tags = MlflowClient().get_run(run.info.run_id).data.tags
    assert tags[runs.PID_TAG] == str(os.getpid()) and runs.HOST_TAG in tags
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_sigterm_during_net_training_exits_143_and_saves_nothing(tmp_path: Path, mlflow_store: Path) -> None:
    env = _train_env(mlflow_store)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    process = start([console("combomap-train"), *TRAIN_FOREVER, f"hydra.run.dir={tmp_path / 'run'}"], env)
    wait_for(_training_started, process)
    status, _, err = stop(process, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, err[-3000:]
    assert err.strip().splitlines()[-1] == "combomap-train: terminated by SIGTERM"
    assert _only_run().info.status == "KILLED", err[-3000:]
    assert not (tmp_path / "run" / "mlp.safetensors").exists()


def test_a_sigkilled_run_is_closed_by_combomap_runs_and_by_the_next_job(tmp_path: Path, mlflow_store: Path, capsys) -> None:
    env = _train_env(mlflow_store)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    for attempt, closer in enumerate(("combomap-runs", "next job")):
        process = start([console("combomap-train"), *TRAIN_FOREVER, f"hydra.run.dir={tmp_path / str(attempt)}"], env)
        run = wait_for(_training_started, process)
        stop(process, signal.SIGKILL)
        assert MlflowClient().get_run(run.info.run_id).info.status == "RUNNING"
        if closer == "combomap-runs":
            assert runs.main(["list"]) == 0 and "stale" in capsys.readouterr().out
            assert runs.main(["close-stale"]) == 0
        else:
            with mlflow_run(run_config(compose_cfg_for_next_job(tmp_path)), run_name="next"):
                pass
        record = MlflowClient().get_run(run.info.run_id)
        assert record.info.status == "KILLED" and runs.CLOSED_TAG in record.data.tags
        MlflowClient().delete_run(run.info.run_id)  # the next attempt looks for exactly one run again
    assert runs.main(["close", "no-such-run"]) == 2


def compose_cfg_for_next_job(tmp_path: Path):
    from tests.conftest import compose_config

    return compose_config("evaluate", ["data.preset=tiny"], tmp_path / "next")


def test_a_live_run_is_not_closed(compose_cfg) -> None:
    cfg = compose_cfg("evaluate", ["data.preset=tiny"])
    with mlflow_run(run_config(cfg), run_name="alive") as run:
        assert runs.close_stale_runs() == []
        assert runs.liveness(MlflowClient().get_run(run.info.run_id)) == "alive"


def test_a_signal_during_a_deferred_write_is_raised_when_the_write_is_done() -> None:
    previous = signals.install()
    finished = []
    try:
        with pytest.raises(signals.Terminated) as stopped:
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                with signals.deferred():  # nested: held until the outermost block ends
                    finished.append("inner")
                finished.append("outer")
        assert stopped.value.signum == signal.SIGTERM and finished == ["inner", "outer"]
        with signals.deferred():  # nothing pending any more
            finished.append("next")
    finally:
        signals.restore(previous)
    assert finished[-1] == "next"
