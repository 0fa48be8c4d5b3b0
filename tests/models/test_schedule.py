"""Learning rate AND momentum schedules: values at start, middle and end, written into the optimizer."""

from __future__ import annotations

import math

import pytest
import torch

from combomap.models.schedule import LrMomentumScheduler, ScheduleConfig, schedule_value
from combomap.settings import SettingsError

ORIGINAL = {"lr_start": 0.01, "lr_end": 1e-5, "momentum_start": 0.9, "momentum_end": 0.999}


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_start_middle_end_values(shape: str) -> None:
    schedule = ScheduleConfig(shape=shape, **ORIGINAL)
    total = 5  # ticks 0..4, middle = 2
    assert schedule.lr(0, total) == pytest.approx(0.01)
    assert schedule.momentum(0, total) == pytest.approx(0.9)
    # Linear and cosine both pass through the midpoint halfway.
    assert schedule.lr(2, total) == pytest.approx((0.01 + 1e-5) / 2)
    assert schedule.momentum(2, total) == pytest.approx((0.9 + 0.999) / 2)
    assert schedule.lr(4, total) == pytest.approx(1e-5)
    assert schedule.momentum(4, total) == pytest.approx(0.999)
    assert schedule.lr(10, total) == pytest.approx(1e-5)  # past the end: stays at the end value


def test_linear_matches_the_originals_linspace_and_cosine_is_curved() -> None:
    linear = ScheduleConfig(shape="linear", **ORIGINAL)
    cosine = ScheduleConfig(shape="cosine", **ORIGINAL)
    total = 5000
    assert linear.lr(1250, total) == pytest.approx(0.01 + (1e-5 - 0.01) * 1250 / 4999)
    assert linear.momentum(3333, total) == pytest.approx(0.9 + 0.099 * 3333 / 4999)
    quarter = 1 / 4
    expected = 1e-5 + (0.01 - 1e-5) * (1 + math.cos(math.pi * quarter)) / 2
    assert cosine.lr(round(quarter * 4999), total) == pytest.approx(expected, rel=1e-3)
    # cosine stays nearer the start early on, and nearer the end late
    assert cosine.lr(500, total) > linear.lr(500, total)
    assert cosine.momentum(4500, total) > linear.momentum(4500, total)


def test_degenerate_totals() -> None:
    assert schedule_value("linear", 1.0, 0.0, 0, 1) == 1.0
    assert schedule_value("cosine", 1.0, 0.0, 1, 1) == 0.0
    with pytest.raises(ValueError, match="shape"):
        schedule_value("step", 1.0, 0.0, 0, 3)


@pytest.mark.parametrize("settings, message", [
    ({"shape": "step"}, "schedule.shape must be one of ['linear', 'cosine'], got 'step'"),
    ({"interval": "batch"}, "schedule.interval must be one of ['epoch', 'step'], got 'batch'"),
    ({"momentum_start": 0.9, "momentum_end": None}, "set both schedule.momentum_start and schedule.momentum_end"),
    ({"lr_start": -0.1}, "schedule.lr_start must be >= 0.0, got -0.1"),
    ({"lr_end": math.nan}, "schedule.lr_end must be a finite number, got nan"),
    ({"momentum_end": 1.0}, "schedule.momentum_end must be in [0.0, 1.0), got 1.0"),
])
def test_check_names_the_setting(settings: dict, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        ScheduleConfig(**settings).check("schedule")
    assert message in str(error.value)


def test_the_defaults_are_the_originals_and_pass() -> None:
    assert ScheduleConfig().check("schedule") == ScheduleConfig(shape="linear", interval="epoch", **ORIGINAL)
    assert ScheduleConfig(momentum_start=None, momentum_end=None).check("schedule").momentum(3, 10) is None


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_scheduler_writes_lr_and_sgd_momentum(shape: str) -> None:
    parameter = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([parameter], lr=0.5, momentum=0.5, nesterov=True)
    scheduler = LrMomentumScheduler(optimizer, ScheduleConfig(shape=shape, **ORIGINAL), total=3)
    seen = []
    for _ in range(4):
        group = optimizer.param_groups[0]
        seen.append((group["lr"], group["momentum"]))
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx((0.01, 0.9))
    assert seen[1] == pytest.approx(((0.01 + 1e-5) / 2, (0.9 + 0.999) / 2))
    assert seen[2] == pytest.approx((1e-5, 0.999))
    assert seen[3] == pytest.approx((1e-5, 0.999))


def test_scheduler_moves_adam_beta1_and_can_leave_momentum_alone() -> None:
    parameter = torch.nn.Parameter(torch.zeros(3))
    adam = torch.optim.AdamW([parameter], lr=1.0, betas=(0.5, 0.98))
    LrMomentumScheduler(adam, ScheduleConfig(momentum_start=0.8, momentum_end=0.95, lr_start=1e-3, lr_end=1e-4), total=10)
    assert adam.param_groups[0]["betas"] == pytest.approx((0.8, 0.98))
    sgd = torch.optim.SGD([parameter], lr=1.0, momentum=0.7)
    LrMomentumScheduler(sgd, ScheduleConfig(momentum_start=None, momentum_end=None), total=10)
    assert sgd.param_groups[0]["momentum"] == 0.7
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.01)
