"""The MLP ("Hopeless Model"): network and LightningModule, schedules, portable weights, training.

Names are imported lazily so `import combomap.models.portable` stays NumPy-only.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "PortableMLP": "combomap.models.portable",
    "ComboMLP": "combomap.models.mlp",
    "MLPModule": "combomap.models.mlp",
    "masked_mse": "combomap.models.mlp",
    "ScheduleConfig": "combomap.models.schedule",
    "LrMomentumScheduler": "combomap.models.schedule",
    "FitResult": "combomap.models.training",
    "fit_mlp": "combomap.models.training",
}

__all__ = [
    "ComboMLP",
    "FitResult",
    "LrMomentumScheduler",
    "MLPModule",
    "PortableMLP",
    "ScheduleConfig",
    "fit_mlp",
    "masked_mse",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'combomap.models' has no attribute {name!r}")
