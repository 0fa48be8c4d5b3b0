"""Console entry points: thin @hydra.main wrappers around plain `run(cfg)` functions."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from combomap.data.dataset import DataError

Task = TypeVar("Task", bound=Callable[..., Any])


def user_errors(command: str, *extra: type[BaseException]) -> Callable[[Task], Task]:
    """Bad input ends a single run with one line on stderr and exit status 2, not a traceback.

    In a multirun the error propagates, so the sweeper records that job as failed and goes on.
    """
    caught = (DataError, *extra)

    def wrap(task: Task) -> Task:
        @functools.wraps(task)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return task(*args, **kwargs)
            except caught as error:
                if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                    raise
                print(f"{command}: error: {error}", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt as stop:  # SIGINT, SIGTERM (combomap.signals.Terminated): 128 + signum
                if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                    raise
                signum = getattr(stop, "signum", None)
                print(f"{command}: {stop or 'interrupted'}", file=sys.stderr)
                sys.exit(128 + (signum if isinstance(signum, int) else 2))

        return wrapper  # type: ignore[return-value]

    return wrap
