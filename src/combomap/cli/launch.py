"""The console scripts (pyproject.toml [project.scripts]): each installs the early signal handler, then imports its
command, runs it and exits. A SIGTERM or Ctrl-C at any moment of a combomap-* process ends in one line and 128 + signum
(combomap.signals.install_early):

- the command's imports (torch, MLflow, Hydra) take seconds, so the command module is imported here by name, after the
  handler, never at the top;
- Python's own exit tears every module down (about 1.5 s with torch loaded) after putting the default signal handlers
  back, so a signal then killed the process without a word: the script exits as Python would (threads joined, atexit
  callbacks run, streams flushed) but without that teardown.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from typing import Any, NoReturn

from combomap import signals


def launch(module: str, function: str = "main", command: str | None = None) -> NoReturn:
    """Run `module.function()` as the console script `command` (default combomap-<last part of module>), then exit.
    A bug's exception propagates as usual (its traceback, status 1)."""
    signals.install_early(command or f"combomap-{module.rsplit('.', 1)[-1]}")
    try:
        code = getattr(importlib.import_module(module), function)()
    except SystemExit as stop:
        code = stop.code
    exit_now(code)


def exit_now(code: Any) -> NoReturn:
    """What `sys.exit(code)` ends in, without the modules' teardown."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    threading._shutdown()  # type: ignore[attr-defined]  # as Python's exit: joins the other non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said there
            pass
    os._exit(status)


def data() -> NoReturn:
    launch("combomap.cli.data")


def evaluate() -> NoReturn:
    launch("combomap.cli.evaluate")


def train() -> NoReturn:
    launch("combomap.cli.train")


def stack() -> NoReturn:
    launch("combomap.cli.stack")


def predict() -> NoReturn:
    launch("combomap.cli.predict")


def query() -> NoReturn:
    launch("combomap.cli.query")


def interactions() -> NoReturn:
    launch("combomap.cli.interactions")


def runs() -> NoReturn:
    launch("combomap.runs", "console", "combomap-runs")
