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
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

SHAPES = ("linear", "cosine")
INTERVALS = ("epoch", "step")


@dataclass(frozen=True)
class ScheduleConfig:
    """conf/schedule/*.yaml (instantiated through `_target_`). momentum_start/momentum_end None = leave momentum as
    the optimizer has it."""

    shape: str = "linear"
    interval: str = "epoch"
    lr_start: float = 0.01
    lr_end: float = 1e-5
    momentum_start: float | None = 0.9
    momentum_end: float | None = 0.999

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown schedule shape {self.shape!r}; choose one of {SHAPES}")
        if self.interval not in INTERVALS:
            raise ValueError(f"unknown schedule interval {self.interval!r}; choose one of {INTERVALS}")
        if (self.momentum_start is None) != (self.momentum_end is None):
            raise ValueError("set both momentum_start and momentum_end, or neither")

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
