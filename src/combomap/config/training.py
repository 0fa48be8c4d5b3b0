"""Schemas of the network groups and of conf/train.yaml and conf/stack.yaml as a whole, and the NetRecipe a job builds
from its composed config (every setting typed at composition, range-checked here, before any data loads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from combomap.config.base import SCHEMA_NAME, typed
from combomap.config.run import LoggerSettings, PathsSettings
from combomap.data.augment import AugmentConfig
from combomap.data.datamodule import DataModuleSettings
from combomap.models.latent import LatentSettings
from combomap.models.recipe import NetRecipe
from combomap.models.schedule import ScheduleConfig
from combomap.models.settings import (
    AdamWSettings,
    CallbacksSettings,
    CheckpointSettings,
    LatentNetSettings,
    MlpNetSettings,
    NetSettings,
    OptimizerSettings,
    SgdSettings,
    TrainerSettings,
)
from combomap.settings import SEED, Checked, SettingsError


@dataclass
class JobSettings(Checked):
    """The top-level keys of conf/stack.yaml (conf/train.yaml adds resume), checked in one place: run_settings."""

    # set per trial by the Optuna sweeper or the ablation driver (++sweep.study_name=..., ++sweep.trial=...): the run's
    # sweep_study / sweep_trial tags (combomap.tracking.sweep_tags); empty otherwise
    sweep: dict[str, Any] = field(default_factory=dict)
    task_name: str = "train"
    progress: bool = True
    seed: int = field(default=0, metadata=SEED)
    plots: bool = True
    optimized_metric: str = "val/sign_acc"


@dataclass
class TrainSettings(JobSettings):
    """combomap-train's: resume null | auto | a run directory or a checkpoint file."""

    resume: Optional[str] = None


@dataclass
class NetGroups:
    """The groups of a network job's config, each typed by its own schema (the options name it)."""

    paths: Any = None
    logger: Any = None
    data: Any = None
    model: Any = None
    optimizer: Any = None
    schedule: Any = None
    augment: Any = None
    trainer: Any = None
    datamodule: Any = None
    callbacks: Any = None
    latent: Any = None


@dataclass
class TrainConfig(NetGroups, TrainSettings):
    """The schema of conf/train.yaml as a whole."""


@dataclass
class StackConfig(NetGroups, JobSettings):
    """The schema of conf/stack.yaml as a whole; `register` names the Model Registry model the final model becomes a
    version of (null: not registered)."""

    stacker: Any = None
    stacking: Any = None
    library: Any = None
    register: Optional[str] = None

    def validate(self, prefix: str) -> None:
        if self.register is None:
            return
        if not self.register.strip() or self.register != self.register.strip() or "/" in self.register:
            raise SettingsError(f"{prefix}register must be a model name without '/' or surrounding spaces, "
                                f"got {self.register!r}")


NETS: dict[str, type] = {"mlp": MlpNetSettings, "latent": LatentNetSettings}
OPTIMIZERS: dict[str, type] = {"sgd": SgdSettings, "adamw": AdamWSettings}
MODEL_SCHEMAS = f"model/{SCHEMA_NAME}"  # a model option names its net's and its optimizer's: schema@model: mlp

SCHEMAS: list[tuple[Any, ...]] = [
    ("latent", LatentSettings),
    *[(MODEL_SCHEMAS, schema, name) for name, schema in {**NETS, **OPTIMIZERS}.items()],
    ("schedule", ScheduleConfig),
    ("augment", AugmentConfig),
    ("datamodule", DataModuleSettings),
    ("trainer", TrainerSettings),
    ("callbacks", CallbacksSettings),
    ("", TrainConfig, "train_schema"),
    ("", StackConfig, "stack_schema"),
]


def run_settings(cfg: DictConfig) -> JobSettings:
    """seed, progress, plots, task_name, optimized_metric (and resume, where the config has it), checked."""
    schema = TrainSettings if "resume" in cfg else JobSettings
    return typed({item.name: cfg[item.name] for item in fields(schema) if item.name in cfg}, schema, "")


def _one_of(node: Any, schemas: dict[str, type], key: str) -> Any:
    """The node typed by the schema of its _target_ (which its option composed it with)."""
    target = node.get("_target_") if isinstance(node, (Mapping, DictConfig)) else None
    known = {item._target_: item for item in schemas.values()}  # type: ignore[attr-defined]
    if not isinstance(target, str) or target not in known:
        raise SettingsError(f"{key}._target_ must name one of {sorted(known)}, got {target!r}")
    return typed(node, known[target], key)


def net_settings(node: Any) -> NetSettings:
    """The `model` node (set by conf/model/*.yaml), checked."""
    if node is None:
        raise SettingsError("model is missing")
    return _one_of(node, NETS, "model")


def optimizer_settings(node: Any) -> OptimizerSettings:
    """The `optimizer` node (set by conf/model/*.yaml), checked."""
    if node is None:
        raise SettingsError("optimizer is missing")
    return _one_of(node, OPTIMIZERS, "optimizer")


def checkpoint_callbacks(node: Any) -> dict[str, CheckpointSettings]:
    """The callbacks group's entries that are on, by name (none: an empty dict)."""
    if node is None:
        return {}
    callbacks = typed(node, CallbacksSettings, "callbacks")
    return {item.name: getattr(callbacks, item.name) for item in fields(callbacks)
            if getattr(callbacks, item.name) is not None}


def output_dir(cfg: DictConfig) -> Path | None:
    """paths.output_dir, checked; None outside a Hydra run (a notebook composing the config)."""
    paths = cfg.get("paths")
    if paths is None:
        return None
    try:
        settings = typed(paths, PathsSettings, "paths")
    except InterpolationResolutionError:  # ${hydra:...} cannot resolve without a Hydra run
        return None
    return Path(settings.output_dir) if settings.output_dir else None


def net_recipe(cfg: DictConfig) -> NetRecipe:
    """The network of a composed train or stack config, typed and checked before any data loads."""
    run = run_settings(cfg)
    latent, schedule, augment, logger = (cfg.get(key) for key in ("latent", "schedule", "augment", "logger"))
    recipe = NetRecipe(
        seed=run.seed,
        schedule=None if schedule is None else typed(schedule, ScheduleConfig, "schedule"),  # optimizer.lr reads it
        model=net_settings(cfg.get("model")),
        optimizer=optimizer_settings(cfg.get("optimizer")),
        datamodule=typed(cfg.get("datamodule"), DataModuleSettings, "datamodule"),
        trainer=typed(cfg.get("trainer"), TrainerSettings, "trainer"),
        augment=AugmentConfig() if augment is None else typed(augment, AugmentConfig, "augment"),
        callbacks=checkpoint_callbacks(cfg.get("callbacks")),
        latent=LatentSettings() if latent is None else typed(latent, LatentSettings, "latent"),
        plots=run.plots,
        run_name=None if logger is None else typed(logger, LoggerSettings, "logger").run_name,
        task_name=run.task_name,
        output_dir=output_dir(cfg),
    )
    recipe.kind  # an unknown model._target_ fails here
    return recipe


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain, resolved values (without the hydra node)."""
    kept = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    return OmegaConf.to_container(kept, resolve=True)  # type: ignore[return-value]
