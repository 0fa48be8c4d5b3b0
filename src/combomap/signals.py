"""SIGTERM and SIGINT as one exception, so every job unwinds through its context managers when stopped.

A scheduler's time limit, `kill` and Ctrl-C all end a job the same way: `Terminated` (a KeyboardInterrupt
carrying the signal number) is raised where the job is, `combomap.tracking.mlflow_run` ends its MLflow run
as KILLED, staging files are removed, and the console wrapper (`combomap.console.user_errors`) prints one line
and exits with 128 + signum (143 for SIGTERM, 130 for SIGINT).

PyTorch Lightning turns a KeyboardInterrupt inside `Trainer.fit` into `sys.exit(1)` and SIGTERM into a clean
stop (exit 0); `received()` remembers the signal so training can raise `Terminated` after fit returns.

A store write must not be cut in half (a SQLite transaction interrupted mid-commit keeps its lock while the
exception that cut it is alive, so the run could not then be ended KILLED): `deferred()` holds a signal that
arrives during one and raises it when the write is done.

Before a command's job runs (while Python imports torch, MLflow and Hydra: seconds) and after it returns, there is
nothing to unwind: `install_early`, the first thing a console script does, ends the process at once with the same
line and status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT)

_received: int | None = None
_deferring = 0  # how many deferred() blocks the main thread is in
_pending: int | None = None  # a signal held by deferred(), raised when the outermost block ends


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal; `signum` says which (exit status 128 + signum)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"stopped by {signal.Signals(self.signum).name}")


def stopped(signum: int | None) -> tuple[str, int]:
    """The line (after "combomap-X: ") and exit status of a command stopped by `signum` (None: a plain Ctrl-C)."""
    if signum is None or signum == signal.SIGINT:
        return "interrupted", 128 + signal.SIGINT
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return f"terminated by {name}", 128 + signum


def install_early(command: str) -> None:
    """Make SIGTERM and SIGINT end the process at once with "<command>: <line>" and 128 + signum, until `install`
    replaces this handler for the job (and after `restore` puts it back, once the job has returned)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def end(signum: int, frame: FrameType | None) -> None:
        line, status = stopped(signum)
        for stream in (sys.stdout, sys.stderr):
            try:  # what was printed stays printed; a write this signal interrupted may refuse a reentrant flush
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        try:
            os.write(2, f"{command}: {line}\n".encode())
        finally:
            os._exit(status)

    for signum in HANDLED:
        signal.signal(signum, end)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    global _received, _pending
    _received = int(signum)
    if _deferring:
        _pending = int(signum)
        return
    raise Terminated(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT (through `install`'s handler) until the block is done, then raise `Terminated`: for writes
    that must complete or not start, e.g. a store transaction."""
    global _deferring, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring and _pending is not None:
        signum, _pending = _pending, None
        raise Terminated(signum)


def install() -> dict[int, Any]:
    """Make SIGTERM and SIGINT raise `Terminated` (main thread only: Python allows handlers nowhere else).

    Returns the handlers it replaced, for `restore`."""
    global _received, _pending
    if threading.current_thread() is not threading.main_thread():
        return {}
    _received = _pending = None  # a new job: forget a signal that an earlier job in this process already ended on
    return {signum: signal.signal(signum, _raise_terminated) for signum in HANDLED}


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers `install` replaced (e.g. a sweeper's, or a joblib worker's defaults)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def received() -> int | None:
    """The last SIGTERM/SIGINT this process received through `install`'s handler, or None."""
    return _received


def raise_if_received() -> None:
    """Raise `Terminated` again for a signal that a library swallowed (e.g. Lightning's fit loop)."""
    if _received is not None:
        raise Terminated(_received)
