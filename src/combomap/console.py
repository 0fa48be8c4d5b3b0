"""The machinery of the console entry points (`combomap.cli.*`): hydra.main plus one error path for every command.

Every command ends the same way (`command` below, then `user_errors` inside the task):
  exit 0    done
  exit 2    bad input or settings: one stderr line "combomap-X: error: <what, naming the file / key / value>"
            (UserError and its subclasses, Hydra / OmegaConf config errors, OSError such as an unwritable path)
  exit 130  interrupted (Ctrl-C): "combomap-X: interrupted"
  exit 128+N  a KeyboardInterrupt carrying `signum` N (e.g. SIGTERM, 143): "combomap-X: terminated by SIGTERM"
  exit 1    a bug: the Python traceback
In a Hydra multirun the task re-raises, so the sweeper records that job as failed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from combomap import signals
from combomap.config.check import check_config
from combomap.config.registry import register as register_schemas
from combomap.errors import UserError
from combomap.paths import CONF_DIR

HYDRA_PACKAGE = Path(hydra.__file__).resolve().parent

Task = TypeVar("Task", bound=Callable[..., Any])
USAGE_ERROR = 2
# Hydra prints its own multi-line report of an error unless this is set; then it re-raises to `command`.
HYDRA_FULL_ERROR = "HYDRA_FULL_ERROR"


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _listed_options(match: re.Match[str]) -> str:
    return f"(available options in {match[1]}: {', '.join(match[2].split())})"


def _config_message(error: BaseException) -> str:
    """Hydra's / OmegaConf's report without its hints and object dumps, on one line."""
    if isinstance(error, MissingMandatoryValue) and getattr(error, "full_key", None):
        return f"missing mandatory value {error.full_key}: give {error.full_key}=..."
    text = str(error).split("Config search path:")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith(("full_key:", "object_type=", "reference_type="))]
    message = re.sub(r"Available options in ('[^']*'): (.*)", _listed_options, " ".join(kept)) or type(error).__name__
    cause = error.__cause__
    if isinstance(error, HydraException) and isinstance(cause, OmegaConfBaseException):
        detail = _config_message(cause)
        if detail not in message:
            message = f"{message} ({detail})"
    return message


def _os_message(error: OSError, output_dir: str | None) -> str:
    where = error.filename
    reason = error.strerror or _one_line(str(error))
    if where is None:
        return f"{reason} (while writing {output_dir})" if output_dir else reason
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        blocking = next((p for p in (where, *Path(where).parents) if os.path.exists(p) and not os.path.isdir(p)), None)
        if blocking is not None:
            reason = f"cannot be a directory: {blocking} is a file"
    second = f" -> {error.filename2}" if error.filename2 is not None else ""
    return f"{where}{second}: {reason}"


def _interrupt(error: KeyboardInterrupt) -> tuple[str, int]:
    signum = getattr(error, "signum", None)
    return signals.stopped(signum if isinstance(signum, int) and not isinstance(signum, bool) else None)


def describe(error: BaseException, output_dir: str | None = None) -> tuple[str, int] | None:
    """The stderr line (after "combomap-X: ") and exit status for an error a user can act on; None for a bug."""
    if isinstance(error, KeyboardInterrupt):
        return _interrupt(error)
    if isinstance(error, UserError):
        return f"error: {_one_line(str(error))}", USAGE_ERROR
    if isinstance(error, (HydraException, OmegaConfBaseException)):
        return f"error: {_config_message(error)}", USAGE_ERROR
    if isinstance(error, OSError):
        return f"error: {_os_message(error, output_dir)}", USAGE_ERROR
    return None


def _exit(command: str, error: BaseException, output_dir: str | None = None) -> NoReturn:
    """One line and the error's exit status, or re-raise a bug (its traceback is the report)."""
    described = describe(error, output_dir)
    if described is None:
        raise error
    line, status = described
    sys.stdout.flush()
    print(f"{command}: {line}", file=sys.stderr)
    sys.exit(status)


def _interrupt_behind(error: BaseException) -> BaseException:
    """Lightning's Trainer.fit turns Ctrl-C / SIGTERM into sys.exit(1) after its own shutdown: the interrupt is
    that exit's context, and it is what happened."""
    context = error.__context__
    if isinstance(error, SystemExit) and error.code == 1 and isinstance(context, KeyboardInterrupt):
        return context
    return error


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


# Where a job writes what the user asked for, first found: combomap-data's out, combomap-predict's output.path, else
# the job's run dir. A write error without a file name (a full disk) names it.
OUTPUT_KEYS = ("out", "output.path", "paths.output_dir")


def _output_dir(args: tuple[Any, ...]) -> str | None:
    try:
        values = (OmegaConf.select(args[0], key, default=None) for key in OUTPUT_KEYS)
        return next((str(value) for value in values if value), None)
    except Exception:  # the task's config may lack them (tests) or fail to resolve
        return None


def user_errors(command: str, *extra: type[BaseException]) -> Callable[[Task], Task]:
    """Inside the task: bad input ends a single run with one stderr line and exit 2, an interrupt with 130 /
    128+signum, not a traceback. `extra` classes are treated as user errors too.

    In a multirun the error propagates, so the sweeper records that job as failed and goes on.
    """

    def wrap(task: Task) -> Task:
        @functools.wraps(task)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return task(*args, **kwargs)
            except BaseException as error:
                error = _interrupt_behind(error)
                if isinstance(error, SystemExit) or _in_multirun():
                    raise error
                if extra and isinstance(error, extra) and not isinstance(error, KeyboardInterrupt):
                    _exit(command, UserError(str(error)))
                _exit(command, error, _output_dir(args))

        return wrapper  # type: ignore[return-value]

    return wrap


@contextlib.contextmanager
def _hydra_reraises() -> Iterator[None]:
    previous = os.environ.get(HYDRA_FULL_ERROR)
    os.environ[HYDRA_FULL_ERROR] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(HYDRA_FULL_ERROR, None)
        else:
            os.environ[HYDRA_FULL_ERROR] = previous


def _as_config_error(error: BaseException) -> BaseException:
    """Hydra refuses some overrides with a bare ValueError (`library=null` on a config group): raised inside Hydra's
    own config loading, it is a config error like its HydraExceptions, not a bug of ours."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if isinstance(error, ValueError) and frame is not None and HYDRA_PACKAGE in Path(frame.tb_frame.f_code.co_filename).parents:
        hint = " (a config group cannot be null: drop it with ~<group>, e.g. ~library)" if "Got NoneType" in str(error) else ""
        return HydraException(f"{error}{hint}")
    return error


def command(name: str, config_name: str) -> Callable[[Callable[..., Any]], Callable[[], Any]]:
    """The console entry of a Hydra app: `@command("combomap-x", "x") def main(cfg): ...`.

    Config errors raised by Hydra before the task runs (an unknown key or group option, a bad override,
    a missing ??? value) end like the task's own: one line, exit 2; --help, --cfg and -m work as in Hydra.
    """

    def wrap(task: Callable[..., Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def checked_task(cfg: Any) -> Any:
            check_config(config_name, cfg)  # every setting, before any data loads or any run opens
            return task(cfg)

        app = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(
            user_errors(name)(checked_task)
        )

        @functools.wraps(task)
        def main() -> Any:
            register_schemas()
            previous = signals.install()  # SIGTERM ends every command like Ctrl-C: one line, 128 + signum
            try:
                with _hydra_reraises():
                    try:
                        return app()
                    except BaseException as error:
                        error = _interrupt_behind(error)
                        if isinstance(error, SystemExit):
                            raise
                        _exit(name, _as_config_error(error))
            finally:
                signals.restore(previous)

        return main

    return wrap
