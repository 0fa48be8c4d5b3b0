"""combomap-train as a Hydra app: a multirun gives one finished MLflow run per job, with distinct names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow


def test_multirun_makes_one_named_run_per_job(tmp_path: Path, mlflow_store: Path) -> None:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{mlflow_store / 'mlflow.db'}")  # private, pre-migrated store
    executable = shutil.which("combomap-train") or str(Path(sys.executable).with_name("combomap-train"))
    command = [
        executable, "-m", "augment=none,flip",
        "data.preset=tiny", "trainer.max_epochs=1", "model.hidden_sizes=[8]", "datamodule.batch_size=4", "plots=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["combomap-train"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["train-tiny-mlp-flip-linear-s0-j1", "train-tiny-mlp-none-linear-s0-j0"]
    assert {r.data.tags["multirun.job"]: r.data.tags["overrides"] for r in runs} == {
        "0": "augment=none data.preset=tiny trainer.max_epochs=1 model.hidden_sizes=[8] datamodule.batch_size=4 plots=False",
        "1": "augment=flip data.preset=tiny trainer.max_epochs=1 model.hidden_sizes=[8] datamodule.batch_size=4 plots=False"}
    assert {r.data.tags["multirun"] for r in runs} == {str(tmp_path / "sweep")}
    assert all(r.info.status == "FINISHED" and "val/sign_acc" in r.data.metrics for r in runs)
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1"]
    assert (tmp_path / "sweep" / "1" / "mlp.safetensors").is_file()
