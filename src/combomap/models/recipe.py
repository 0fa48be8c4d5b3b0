"""NetRecipe: everything one network's fit needs, typed, built once from the job's config (combomap.config.training).

The model, optimizer, datamodule, trainer and callback entries are the settings objects of their groups (each with
its `_target_`); combomap.models.builders instantiates them. The schedule and augment settings are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.utils import get_class

from combomap.data.augment import AugmentConfig
from combomap.data.datamodule import DataModuleSettings
from combomap.data.dataset import DataError
from combomap.models.latent import LatentSettings
from combomap.models.latent_net import LatentPairNet
from combomap.models.mlp import ComboMLP
from combomap.models.schedule import ScheduleConfig
from combomap.models.settings import CheckpointSettings, NetSettings, OptimizerSettings, TrainerSettings

NETS = {"mlp": ComboMLP, "latent": LatentPairNet}  # kind (the run's "model" tag) -> network class of conf/model


def _target(settings: Any) -> str | None:
    target = settings.get("_target_") if isinstance(settings, dict) else getattr(settings, "_target_", None)
    return None if target is None else str(target)


def net_kind(model: Any) -> str:
    """"mlp" (the original's network) or "latent" (combomap.models.latent_net): the class model._target_ names
    (no model, e.g. a stack whose fold nets are given, counts as "mlp")."""
    target = _target(model) if model is not None else None
    if target is None:
        return "mlp"
    try:
        net_class = get_class(target)
    except Exception:  # Hydra raises its own error types (or ImportError) for a name that does not resolve
        net_class = None
    for kind, known in NETS.items():
        if isinstance(net_class, type) and issubclass(net_class, known):
            return kind
    names = [f"{known.__module__}.{known.__qualname__}" for known in NETS.values()]
    raise DataError(f"model._target_ must name one of {names}, got {target!r}")


@dataclass
class NetRecipe:
    """One network's fit: the settings of the model, optimizer, schedule, augment, datamodule, trainer and
    callbacks groups, the basis settings for the latent net, the seed, and where files go."""

    seed: int
    model: NetSettings
    optimizer: OptimizerSettings
    datamodule: DataModuleSettings
    trainer: TrainerSettings
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    schedule: ScheduleConfig | None = None
    callbacks: dict[str, CheckpointSettings] = field(default_factory=dict)
    latent: LatentSettings = field(default_factory=LatentSettings)
    plots: bool = True
    run_name: str | None = None  # logger.run_name: a name the user chose
    task_name: str = "train"
    output_dir: Path | None = None  # the run dir; None: a temporary folder (notebooks)

    @property
    def kind(self) -> str:
        return net_kind(self.model)

    @property
    def uses_variances(self) -> bool:
        return bool(_setting(self.model, "uses_variances", False))

    @property
    def var_fill(self) -> Any:
        return _setting(self.model, "var_fill", "median")

    def name_parts(self) -> list[str]:
        """What tells one recipe's runs from another's: net, augmentation, schedule shape."""
        shape = _setting(self.schedule, "shape", "none") if self.schedule is not None else "none"
        return [self.kind, self.augment.name, str(shape)]

    def default_run_name(self) -> str:
        """Readable name from the choices, e.g. "mlp-flip-cosine-s0" (logger.run_name wins)."""
        if self.run_name:
            return self.run_name
        return "-".join([*self.name_parts(), f"s{self.seed}"])


def _setting(settings: Any, name: str, default: Any) -> Any:
    if isinstance(settings, dict):
        return settings.get(name, default)
    return getattr(settings, name, default)
