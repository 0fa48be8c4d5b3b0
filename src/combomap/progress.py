"""One progress policy for every long step (fold-net epochs, stacker CV folds, final fits, pair blocks, sweep trials).

    configure(cfg)                                   # once per job: the top-level key `progress` (true | false)
    for fold in track(folds, "stacker CV avg fold", unit="fold"): ...
    with Progress(n_pairs, "pairs", unit="pair") as bar:
        bar.update(len(block))

Why one module: a bar redrawn with carriage returns is what a person at a terminal wants, but in CI logs and
files it is garbage; so the policy is decided here once, from the job's config and whether stderr is a terminal:
- "bar": a tqdm bar on stderr (stderr is a TTY that reports a width; a terminal of 0 columns, as under `script`
  or some CI runners, or TERM=dumb gets log lines: a bar there is zero-width and silent);
- "log": plain INFO log lines instead, at most one per LOG_INTERVAL_S seconds per task plus its last step, e.g.
  "stacker CV avg fold 2/3, 41 s, ~20 s left" (they reach the Hydra job's log file too);
- "off": nothing (`progress=false`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from tqdm import tqdm

log = logging.getLogger("combomap.progress")

BAR, LOG, OFF = "bar", "log", "off"
LOG_INTERVAL_S = 10.0  # the bounded rate of log lines per task in "log" mode

Item = TypeVar("Item")
_enabled = True


def configure(setting: Any) -> None:
    """Turn progress reporting on or off for this process: a job config (its `progress` key) or a bool."""
    global _enabled
    if isinstance(setting, Mapping) or hasattr(setting, "get"):
        setting = setting.get("progress", True)
    if isinstance(setting, str):
        setting = setting.strip().lower() not in ("false", "0", "no", "off")
    _enabled = bool(setting)


def mode() -> str:
    """"bar" on a terminal, "log" when stderr is a file, a pipe or a terminal without a width, "off" when
    configured off."""
    if not _enabled:
        return OFF
    isatty = getattr(sys.stderr, "isatty", None)
    if not (callable(isatty) and isatty()) or os.environ.get("TERM") == "dumb":
        return LOG
    return BAR if terminal_columns() > 0 else LOG


def terminal_columns() -> int:
    """The width of stderr's terminal: $COLUMNS when set, else what the terminal reports (0 when it reports none)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


class Progress:
    """Progress of one task of `total` steps (None: unknown), shown per the policy of `mode()`."""

    def __init__(self, total: int | None, desc: str, *, unit: str = "step", initial: int = 0, leave: bool = True,
                 logger: logging.Logger | None = None) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self.mode = mode()
        self._log = logger or log
        self._start = self._last_line = time.perf_counter()
        self._bar = None
        if self.mode == BAR:
            self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=sys.stderr,
                             dynamic_ncols=True, mininterval=0.5)

    def update(self, n: int = 1, note: str = "") -> None:
        """`n` more steps done; `note` (e.g. the current loss) is shown beside the bar or in the log line."""
        self.done += n
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(n)
        elif self.mode == LOG:
            now = time.perf_counter()
            finished = self.total is not None and self.done >= self.total
            if finished or now - self._last_line >= LOG_INTERVAL_S:
                self._last_line = now
                self._log.info("%s", self._line(now - self._start, note))

    def _line(self, elapsed: float, note: str) -> str:
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        unit = f" {self.unit}s" if self.unit not in ("step", "fold", "epoch") else ""
        text = f"{self.desc} {count}{unit}, {elapsed:.0f} s"
        if self.total and 0 < self.done < self.total:
            text += f", ~{elapsed * (self.total - self.done) / self.done:.0f} s left"
        return f"{text} ({note})" if note else text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[Item], desc: str, *, total: int | None = None, unit: str = "step", leave: bool = True,
          logger: logging.Logger | None = None) -> Iterator[Item]:
    """Yield `items`, counting one step as each one's work is done (when the loop asks for the next)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit=unit, leave=leave, logger=logger) as progress:
        for item in items:
            yield item
            progress.update()


def epoch_callback(desc: str) -> Any:
    """A Lightning callback showing one step per training epoch (with the epoch's train/loss)."""
    import pytorch_lightning as pl

    class EpochProgress(pl.Callback):
        def __init__(self) -> None:
            self.progress: Progress | None = None

        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
            self.progress = Progress(total, desc, unit="epoch", leave=False)

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            loss = trainer.callback_metrics.get("train/loss")
            if self.progress is not None:
                self.progress.update(1, f"loss {float(loss):.4g}" if loss is not None else "")

        def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if self.progress is not None:
                self.progress.close()

        def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
            self.on_train_end(trainer, pl_module)

    return EpochProgress()
