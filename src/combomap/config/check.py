"""Every setting of a composed job config typed and checked at once, before the job loads any data or opens an MLflow
run: the console calls `check_config` first, for every command.

Each job's config is its top-level settings (one schema: TrainConfig, StackConfig, ...) and its groups, each typed by
its own schema (a group's converter below). A key that is neither is refused, so a job config cannot grow a setting
that is not checked here; checks across groups (the network's recipe) run last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from combomap.config.base import typed
from combomap.config.data import DataToolConfig, data_source, export_settings, library_source
from combomap.config.evaluate import EvaluateConfig
from combomap.config.interactions import InteractionsConfig
from combomap.config.predict import PredictConfig
from combomap.config.query import QueryConfig
from combomap.config.run import LoggerSettings, PathsSettings
from combomap.config.stacking import stacker_config
from combomap.config.training import (
    StackConfig,
    TrainConfig,
    checkpoint_callbacks,
    net_recipe,
    net_settings,
    optimizer_settings,
)
from combomap.data.augment import AugmentConfig
from combomap.data.datamodule import DataModuleSettings
from combomap.interactions.settings import InteractionSettings
from combomap.models.latent import LatentSettings
from combomap.models.schedule import ScheduleConfig
from combomap.models.settings import TrainerSettings
from combomap.query.settings import EngineSettings
from combomap.settings import SettingsError
from combomap.stacking.settings import StackingSettings

Converter = Callable[[Any], object]


def _schema(schema: type, key: str) -> Converter:
    """The converter of a group with one schema."""
    def convert(node: Any) -> object:
        return typed(node, schema, key)
    return convert


RUN_GROUPS: dict[str, Converter] = {"paths": _schema(PathsSettings, "paths"),
                                    "logger": _schema(LoggerSettings, "logger")}
NET_GROUPS: dict[str, Converter] = {
    **RUN_GROUPS,
    "data": data_source,
    "model": net_settings,
    "schedule": _schema(ScheduleConfig, "schedule"),  # before the optimizer, whose lr reads schedule.lr_start
    "optimizer": optimizer_settings,
    "augment": _schema(AugmentConfig, "augment"),
    "datamodule": _schema(DataModuleSettings, "datamodule"),
    "trainer": _schema(TrainerSettings, "trainer"),
    "callbacks": checkpoint_callbacks,
    "latent": _schema(LatentSettings, "latent"),
}


@dataclass(frozen=True)
class JobConfig:
    """A top-level config: the schema of its own keys, a converter per group, and checks across groups."""

    settings: type
    groups: Mapping[str, Converter]
    across: tuple[Callable[[DictConfig], object], ...] = ()


JOBS: dict[str, JobConfig] = {
    "train": JobConfig(TrainConfig, NET_GROUPS, (net_recipe,)),
    "stack": JobConfig(StackConfig, {**NET_GROUPS, "stacker": stacker_config,
                                     "stacking": _schema(StackingSettings, "stacking"), "library": library_source},
                       (net_recipe,)),
    "evaluate": JobConfig(EvaluateConfig, {**RUN_GROUPS, "data": data_source}),
    "query": JobConfig(QueryConfig, {**RUN_GROUPS, "library": library_source,
                                     "engine": _schema(EngineSettings, "engine")}),
    "predict": JobConfig(PredictConfig, {"paths": RUN_GROUPS["paths"], "library": library_source,
                                         "engine": _schema(EngineSettings, "engine")}),
    "data_tool": JobConfig(DataToolConfig, {"paths": RUN_GROUPS["paths"], "data": data_source,
                                            "library": library_source, "export": export_settings}),
    "interactions": JobConfig(InteractionsConfig, {**RUN_GROUPS, "data": data_source,
                                                   "interactions": _schema(InteractionSettings, "interactions")}),
}


def check_config(config_name: str, cfg: DictConfig) -> None:
    """Refuse, with one line naming the key, any setting of the composed `config_name` config (conf/<name>.yaml)
    that is of the wrong type, NaN or infinite, out of range or choice, unknown, or missing."""
    job = JOBS.get(config_name)
    if job is None:
        raise KeyError(f"no settings check for the config {config_name!r}; add it to combomap.config.check.JOBS")
    own = [key for key in cfg if key not in job.groups]
    missing = [key for key in own if OmegaConf.is_missing(cfg, key)]
    if missing:
        raise SettingsError(f"{missing[0]} is missing: give {missing[0]}=...")
    typed({key: cfg.get(key) for key in own}, job.settings, "")
    for key, convert in job.groups.items():
        if cfg.get(key) is not None:
            convert(cfg.get(key))
    for check in job.across:
        check(cfg)
