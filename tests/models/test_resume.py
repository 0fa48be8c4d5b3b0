"""resume=: a training killed (SIGTERM or SIGKILL) after its first checkpoint and resumed ends bit for bit
like the same training run without interruption, in the same run directory and MLflow run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from combomap.jobs.train import run
from combomap.models.portable import PortableMLP
import json

from combomap.models.resume import ResumeError, run_dir_lock
from tests.conftest import compose_config
from tests.killing import console, start, stop, wait_for

EPOCHS = 40  # far from done when the first checkpoint stops it, even on a loaded machine
SETTINGS = ["data.preset=tiny", "model.hidden_sizes=[16]", "datamodule.batch_size=4", "plots=false",
            f"trainer.max_epochs={EPOCHS}", "callbacks.checkpoint.every_n_epochs=1"]


def _weights(run_dir: Path) -> dict[str, np.ndarray]:
    predictor = PortableMLP.load(run_dir / "mlp.safetensors")
    arrays = {f"weight{i}": w for i, w in enumerate(predictor.weights)}
    return arrays | {f"bias{i}": b for i, b in enumerate(predictor.biases)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The reference: the same training, never stopped (in process, its own store)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    try:
        cfg = compose_config("train", SETTINGS, folder / "run")
        metrics = run(cfg)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI") if previous is None else os.environ.update(MLFLOW_TRACKING_URI=previous)
    return metrics, _weights(folder / "run")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_killed_training_resumes_to_the_same_numbers(tmp_path: Path, mlflow_store: Path, uninterrupted, signum: int) -> None:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{mlflow_store / 'mlflow.db'}")
    run_dir = tmp_path / "outputs" / "train" / "runs" / "killed"
    process = start([console("combomap-train"), *SETTINGS, f"hydra.run.dir={run_dir}", f"paths.log_dir={tmp_path / 'outputs'}"], env)
    wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").is_file(), process)
    status, _, err = stop(process, signum)
    assert status == (143 if signum == signal.SIGTERM else -signal.SIGKILL), err[-2000:]
    assert not (run_dir / "mlp.safetensors").exists()

    cfg = compose_config("train", [*SETTINGS, "resume=auto", f"paths.log_dir={tmp_path / 'outputs'}"], tmp_path / "second")
    metrics = run(cfg)
    reference_metrics, reference_weights = uninterrupted
    drop = ("train/fit_seconds",)
    assert {k: v for k, v in metrics.items() if k not in drop} == {k: v for k, v in reference_metrics.items() if k not in drop}
    weights = _weights(run_dir)  # written into the killed run's directory
    assert weights.keys() == reference_weights.keys()
    for name, value in weights.items():
        np.testing.assert_array_equal(value, reference_weights[name], err_msg=name)
    (record,) = mlflow.search_runs(experiment_names=["combomap-train"], output_format="list")  # the same MLflow run
    assert record.info.status == "FINISHED"
    assert [m.step for m in MlflowClient().get_metric_history(record.info.run_id, "val/sign_acc")][-1] == EPOCHS - 1
    loss_steps = [m.step for m in MlflowClient().get_metric_history(record.info.run_id, "train/loss")]
    # no epoch twice (those logged after the last checkpoint before the kill are not logged again); an epoch whose
    # checkpoint was written but not yet its metrics when the process died stays without them
    assert len(loss_steps) == len(set(loss_steps)) and max(loss_steps) == EPOCHS - 1 and len(loss_steps) >= EPOCHS - 1

    with pytest.raises(ResumeError, match="finished"):
        run(compose_config("train", [*SETTINGS, f"resume={run_dir}"], tmp_path / "third"))
    with pytest.raises(ResumeError, match="another config"):
        run(compose_config("train", [*SETTINGS, "seed=1", f"resume={run_dir}"], tmp_path / "fourth"))


def _finished_run(tmp_path: Path) -> tuple[Path, str]:
    """A short finished training whose run.json is then marked unfinished (as if killed after its last checkpoint)."""
    short = [*SETTINGS[:-2], "trainer.max_epochs=2", "callbacks.checkpoint.every_n_epochs=1"]
    run_dir = tmp_path / "outputs" / "train" / "runs" / "done"
    run(compose_config("train", [*short, f"paths.log_dir={tmp_path / 'outputs'}"], run_dir))
    record_path = run_dir / "checkpoints" / "run.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "finished": False}))
    return run_dir, record["run_id"]


def test_a_corrupt_checkpoint_or_a_finished_run_is_refused_and_left_as_it_was(tmp_path: Path, mlflow_store: Path) -> None:
    run_dir, run_id = _finished_run(tmp_path)
    short = [*SETTINGS[:-2], "trainer.max_epochs=2", "callbacks.checkpoint.every_n_epochs=1"]
    with pytest.raises(ResumeError, match="is FINISHED"):  # the record says unfinished, MLflow knows better
        run(compose_config("train", [*short, f"resume={run_dir}"], tmp_path / "again"))
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 3])  # truncated
    with pytest.raises(ResumeError, match="cannot be read.*truncated or corrupt"):
        run(compose_config("train", [*short, f"resume={run_dir}"], tmp_path / "again"))
    with pytest.raises(ResumeError, match="cannot be read"):
        run(compose_config("train", [*short, "resume=auto", f"paths.log_dir={tmp_path / 'outputs'}"], tmp_path / "auto"))
    assert MlflowClient().get_run(run_id).info.status == "FINISHED"
    assert len(mlflow.search_runs(experiment_names=["combomap-train"], output_format="list")) == 1


def test_a_run_dir_in_use_is_not_resumed_twice(tmp_path: Path, mlflow_store: Path) -> None:
    run_dir, _ = _finished_run(tmp_path)
    short = [*SETTINGS[:-2], "trainer.max_epochs=2", "callbacks.checkpoint.every_n_epochs=1"]
    with run_dir_lock(run_dir):  # another training holds it
        with pytest.raises(ResumeError, match=f"still training \\(process {os.getpid()}\\)"):
            run(compose_config("train", [*short, f"resume={run_dir}"], tmp_path / "second"))
        with pytest.raises(ResumeError, match="still training"):
            run(compose_config("train", [*short, "resume=auto", f"paths.log_dir={tmp_path / 'outputs'}"], tmp_path / "auto"))
        with pytest.raises(ResumeError, match="in use by another training"):
            with run_dir_lock(run_dir):
                pass
