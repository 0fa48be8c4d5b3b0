"""A signal at any moment of a combomap-* process ends in one stderr line and 128 + signum: during the imports (before
the console installs the job's handler) and just after the job's last line (after the console put the early handler
back). Real console scripts, signalled at 0.2 s or when the done line appears."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.killing import console, stop

STATUS = {signal.SIGTERM: (143, "terminated by SIGTERM"), signal.SIGINT: (130, "interrupted")}


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


@pytest.mark.parametrize(("script", "args", "signum"), [
    ("combomap-data", ["out={tmp}/out", "data.preset=tiny"], signal.SIGTERM),
    ("combomap-train", ["data.preset=tiny"], signal.SIGINT),
    ("combomap-runs", ["list"], signal.SIGTERM),
])
def test_a_signal_during_the_imports_ends_in_one_line(script: str, args: list[str], signum: int, tmp_path: Path) -> None:
    command = [console(script), *[arg.format(tmp=tmp_path) for arg in args]]
    if script != "combomap-runs":
        command.append(f"hydra.run.dir={tmp_path / 'run'}")
    process = subprocess.Popen(command, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)  # Python has started; torch, MLflow and Hydra are still importing (seconds)
    assert process.poll() is None
    status, _, err = stop(process, signum)
    assert (status, err) == (STATUS[signum][0], f"{script}: {STATUS[signum][1]}\n")
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def _lines(stream: object, into: queue.Queue) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


def _wait_for_done_line(process: subprocess.Popen) -> None:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            continue
        if line.startswith("combomap-data: ") or "] - combomap-data: " in line:
            return
    raise AssertionError("no done line within 120 s")


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.1])
def test_a_sigterm_just_after_the_done_line_ends_in_one_line_or_not_at_all(delay: float, tmp_path: Path) -> None:
    """combomap-data logs its summary, returns and exits. A SIGTERM then ends in the line and 143, or finds the
    process already done (exit 0, nothing said); never a silent death by the signal (Python's own exit tore the
    modules down for about 1.5 s after putting the default handlers back). The output is whole either way."""
    out = tmp_path / "out"
    process = subprocess.Popen([console("combomap-data"), f"out={out}", "data.preset=tiny", "progress=false",
                                f"hydra.run.dir={tmp_path / 'run'}"], env=_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_for_done_line(process)
    time.sleep(delay)
    os.kill(process.pid, signal.SIGTERM)  # an exited process not yet waited for takes it too
    err = process.stderr.read()  # type: ignore[union-attr]
    status = process.wait(timeout=60)
    assert (status, err) in [(0, ""), (143, "combomap-data: terminated by SIGTERM\n")]
    assert sorted(path.name for path in out.iterdir()) == ["X.npy", "Xv.npy", "combos.csv", "genes.txt", "y.npy"]


def test_a_command_exits_soon_after_its_last_line(tmp_path: Path) -> None:
    """Without the teardown of every module: well under the second and a half it took."""
    process = subprocess.Popen([console("combomap-data"), f"out={tmp_path / 'out'}", "data.preset=tiny",
                                "progress=false", f"hydra.run.dir={tmp_path / 'run'}"], env=_env(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_done_line(process)
    start = time.monotonic()
    assert process.wait(timeout=60) == 0
    assert time.monotonic() - start < 0.7
