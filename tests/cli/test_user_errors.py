"""Bad input ends a single run with one clear line and exit status 2; a multirun job lets it propagate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from combomap.cli import user_errors
from combomap.data.dataset import DataError


def test_single_run_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    @user_errors("combomap-x")
    def task() -> None:
        raise DataError("/data/X.npy: odd column count 7")

    with pytest.raises(SystemExit) as stop:
        task()
    assert stop.value.code == 2
    assert capsys.readouterr().err == "combomap-x: error: /data/X.npy: odd column count 7\n"


def test_other_errors_are_not_swallowed() -> None:
    @user_errors("combomap-x")
    def task() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        task()


def test_multirun_job_reraises_for_the_sweeper(monkeypatch: pytest.MonkeyPatch) -> None:
    @user_errors("combomap-x")
    def task() -> None:
        raise DataError("bad trial input")

    class MultirunJob:
        mode = RunMode.MULTIRUN

    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: MultirunJob()))
    with pytest.raises(DataError, match="bad trial input"):
        task()


def test_console_script_reports_a_missing_data_directory(tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    script = Path(sys.executable).parent / "combomap-stack"
    done = subprocess.run(
        [str(script), "data=npy", f"data.dir={tmp_path / 'missing'}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2
    assert f"combomap-stack: error: {tmp_path / 'missing'}: no such data directory" in done.stderr
    assert "Traceback" not in done.stderr
