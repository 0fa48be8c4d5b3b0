"""Helpers for tests that stop a command: start it, wait for a marker (never a blind sleep), signal it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def console(name: str) -> str:
    """The path of a console script of this environment."""
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], Any], process: subprocess.Popen | None = None, timeout: float = 120.0) -> Any:
    """Poll `condition` until it is truthy; fail early if `process` ended first, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:  # a store the process is still creating (or has locked) reads as "not yet"
            value = condition()
        except Exception as error:  # noqa: BLE001
            value, last_error = None, error
        if value:
            return value
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the process ended (status {process.returncode}) before the marker:\n{err[-3000:]}")
        time.sleep(0.05)
    if process is not None:
        process.kill()
        process.communicate()
    raise AssertionError(f"no marker within {timeout} s (last error while polling: {last_error!r})")


def stop(process: subprocess.Popen, signum: int, timeout: float = 60.0) -> tuple[int, str, str]:
    """Send `signum`, wait for the exit; (returncode, stdout, stderr)."""
    os.kill(process.pid, signum)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the process did not end within {timeout} s of signal {signum}:\n{err[-3000:]}") from None
    return process.returncode, out, err
