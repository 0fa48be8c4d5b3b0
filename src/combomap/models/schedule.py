"""Learning rate AND momentum schedules (linear or cosine, start -> end), per epoch or per step.

PyTorch's LambdaLR leaves momentum alone and OneCycleLR cycles it; the original moved both
monotonically: learning rate 0.01 -> 1e-5 and momentum 0.9 -> 0.999, linearly over max_epochs
(nolearn AdjustVariable with np.linspace). Here tick t of T (epochs or optimizer steps) gets

    linear: start + (end - start) * t / (T - 1)
    cosine: end + (start - end) * (1 + cos(pi * t / (T - 1))) / 2

so the first tick uses the start value and the last tick the end value (the original updated
after each epoch, one epoch late, and never quite reached its end value). Ticks past T - 1 keep
the end value. Momentum is written to SGD's `momentum` or to Adam's `betas[0]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch.optim.lr_scheduler import LRScheduler

from combomap.settings import Checked, SettingsError, key_of, limits

SHAPES = ("linear", "cosine")
INTERVALS = ("epoch", "step")
MOMENTUM = limits(0.0, 1.0, high_open=True)  # SGD momentum or Adam's beta1


@dataclass
class ScheduleConfig(Checked):
    """conf/schedule (the group's schema; these defaults are its defaults: the original's). momentum_start and
    momentum_end null = leave momentum as the optimizer has it."""

    shape: str = field(default="linear", metadata=limits(choices=SHAPES))
    interval: str = field(default="epoch", metadata=limits(choices=INTERVALS))
    lr_start: float = field(default=0.01, metadata=limits(0.0))
    lr_end: float = field(default=1e-5, metadata=limits(0.0))
    momentum_start: Optional[float] = field(default=0.9, metadata=MOMENTUM)
    momentum_end: Optional[float] = field(default=0.999, metadata=MOMENTUM)

    def validate(self, prefix: str) -> None:
        if (self.momentum_start is None) != (self.momentum_end is None):
            raise SettingsError(f"set both {key_of(prefix, 'momentum_start')} and {key_of(prefix, 'momentum_end')}, "
                                f"or neither (null), got {self.momentum_start!r} and {self.momentum_end!r}")

    def lr(self, tick: int, total: int) -> float:
        return schedule_value(self.shape, self.lr_start, self.lr_end, tick, total)

    def momentum(self, tick: int, total: int) -> float | None:
        if self.momentum_start is None or self.momentum_end is None:
            return None
        return schedule_value(self.shape, self.momentum_start, self.momentum_end, tick, total)


def schedule_value(shape: str, start: float, end: float, tick: int, total: int) -> float:
    """Value at tick (0-based) of total ticks: start at tick 0, end at tick total - 1 and after."""
    if total <= 1:
        return float(start) if tick <= 0 else float(end)
    fraction = min(max(tick, 0), total - 1) / (total - 1)
    if shape == "linear":
        return float(start + (end - start) * fraction)
    if shape == "cosine":
        return float(end + (start - end) * (1.0 + math.cos(math.pi * fraction)) / 2.0)
    raise ValueError(f"unknown schedule shape {shape!r}; choose one of {SHAPES}")


def set_momentum(group: dict[str, Any], momentum: float) -> None:
    if "momentum" in group:
        group["momentum"] = momentum
    elif "betas" in group:
        group["betas"] = (momentum, *tuple(group["betas"])[1:])


class LrMomentumScheduler(LRScheduler):
    """A torch LRScheduler (so Lightning steps it) that also writes momentum on every step."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: ScheduleConfig, total: int, last_epoch: int = -1) -> None:
        self.schedule = schedule
        self.total = int(total)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [self.schedule.lr(self.last_epoch, self.total) for _ in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def state_dict(self) -> dict[str, Any]:
        """Without the ScheduleConfig (rebuilt from the config): a checkpoint then loads with weights_only=True."""
        state = super().state_dict()
        state.pop("schedule", None)
        return state

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        momentum = self.schedule.momentum(self.last_epoch, self.total)
        if momentum is not None:
            for group in self.optimizer.param_groups:
                set_momentum(group, momentum)
