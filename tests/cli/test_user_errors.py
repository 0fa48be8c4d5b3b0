"""Bad input ends a single run with one clear line and exit status 2; a multirun job lets it propagate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from combomap.console import user_errors
from combomap.data.dataset import DataError
from combomap.signals import Terminated


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



@pytest.mark.parametrize("raised, status, line", [
    (KeyboardInterrupt(), 130, "combomap-x: interrupted\n"),
    (Terminated(15), 143, "combomap-x: terminated by SIGTERM\n"),
    (Terminated(2), 130, "combomap-x: interrupted\n"),
    (Terminated(1), 129, "combomap-x: terminated by SIGHUP\n"),
])
def test_interrupt_ends_with_one_line_and_128_plus_signal(raised: KeyboardInterrupt, status: int, line: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    @user_errors("combomap-x")
    def task() -> None:
        raise raised

    with pytest.raises(SystemExit) as stop:
        task()
    assert stop.value.code == status
    assert capsys.readouterr().err == line


def test_interrupt_in_a_multirun_job_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    @user_errors("combomap-x")
    def task() -> None:
        raise Terminated(15)

    class MultirunJob:
        mode = RunMode.MULTIRUN

    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: MultirunJob()))
    with pytest.raises(Terminated):
        task()


def test_interrupt_outside_the_task_is_reported_by_the_entry(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while Hydra composes the config (before the task runs) also ends in one line, not a traceback."""
    from combomap.console import command

    def interrupted(*args: object, **kwargs: object) -> None:
        raise Terminated(15)

    monkeypatch.setattr(sys.modules["hydra.main"], "_run_hydra", interrupted)
    monkeypatch.setattr(sys, "argv", ["combomap-x"])

    @command("combomap-x", "train")
    def main(cfg: object) -> None:
        raise AssertionError("not reached")

    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 143
    assert capsys.readouterr().err == "combomap-x: terminated by SIGTERM\n"
    assert "HYDRA_FULL_ERROR" not in os.environ or os.environ["HYDRA_FULL_ERROR"] != "1"


def test_sigterm_in_any_command_is_one_line_and_143(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Commands without an MLflow run (combomap-data, -predict) also turn SIGTERM into one line, then restore
    the handler they replaced."""
    import signal
    import time

    from combomap.console import command

    monkeypatch.setattr(sys, "argv", ["combomap-x", f"out={tmp_path / 'out'}", f"hydra.run.dir={tmp_path}",
                                      "hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"])
    before = signal.getsignal(signal.SIGTERM)

    @command("combomap-x", "data_tool")
    def main(cfg: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        raise AssertionError("not reached")

    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 143
    assert capsys.readouterr().err == "combomap-x: terminated by SIGTERM\n"
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Errors that are not the user's (here a RuntimeError in the task) are re-raised, not made into one line."""
    from combomap.console import command

    monkeypatch.setattr(sys, "argv", ["combomap-x", f"out={tmp_path / 'out'}", f"hydra.run.dir={tmp_path}",
                                      "hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"])

    @command("combomap-x", "data_tool")
    def main(cfg: object) -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        main()


def test_an_interrupt_lightning_turned_into_exit_1_keeps_its_status(capsys: pytest.CaptureFixture[str]) -> None:
    """pytorch_lightning's Trainer.fit catches KeyboardInterrupt, shuts down and calls sys.exit(1)."""
    @user_errors("combomap-x")
    def task() -> None:
        try:
            raise Terminated(15)
        except KeyboardInterrupt:
            sys.exit(1)

    with pytest.raises(SystemExit) as stop:
        task()
    assert stop.value.code == 143
    assert capsys.readouterr().err == "combomap-x: terminated by SIGTERM\n"
