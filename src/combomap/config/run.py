"""Schemas of the groups every job shares: where it writes (paths) and its MLflow run (logger). Their values are
wired to other keys in the YAML (conf/paths/default.yaml, conf/logger/mlflow.yaml), so the schemas only type them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import MISSING, DictConfig, OmegaConf

from combomap.config.data import data_source
from combomap.settings import Checked
from combomap.tracking import RunConfig

MAX_TAG_CHARS = 5000


@dataclass
class PathsSettings(Checked):
    """conf/paths: the root of what jobs write, Hydra's run dirs below it, and this job's output dir."""

    root_dir: str = MISSING
    log_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class LoggerSettings(Checked):
    """conf/logger: the MLflow experiment and store of a job's run; run_name null = the job's own name."""

    experiment_name: str = MISSING
    tracking_uri: Optional[str] = None
    store_dir: str = MISSING
    run_name: Optional[str] = None


SCHEMAS: list[tuple[str, type]] = [("paths", PathsSettings), ("logger", LoggerSettings)]


def run_config(cfg: DictConfig) -> RunConfig:
    """What a job's MLflow run records: its composed config resolved (without the hydra node), its logger group and
    the tags of how it was launched (launch_tags)."""
    kept = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]) if "hydra" in cfg else cfg
    resolved = OmegaConf.to_container(kept, resolve=True)
    logger = resolved.get("logger") or {}
    return RunConfig(resolved, str(logger.get("experiment_name") or "combomap"), logger.get("tracking_uri"),
                     logger.get("store_dir"), OmegaConf.to_yaml(kept, resolve=True), launch_tags(cfg))


def launch_tags(cfg: DictConfig) -> dict[str, str]:
    """`job` (the config's task_name), and under Hydra `overrides` (the command line's overrides, "(none)" for the
    defaults) and, in a multirun, `multirun` (its sweep folder, one id per `-m` launch) and `multirun.job`."""
    tags = {"job": str(cfg.get("task_name") or "")} if cfg.get("task_name") else {}
    if not HydraConfig.initialized():
        return tags
    hydra = HydraConfig.get()
    tags["overrides"] = (" ".join(hydra.overrides.task) or "(none)")[:MAX_TAG_CHARS]
    if hydra.mode == RunMode.MULTIRUN:
        tags["multirun"] = str(hydra.sweep.dir)
        tags["multirun.job"] = str(hydra.job.num)
    return tags


def run_name(cfg: DictConfig, *choices: Any) -> str:
    """logger.run_name, else the run's name from what tells it apart: job, data, the job's `choices` (stacker,
    model, ...), seed, and its trial or job number in a sweep, e.g. stack-tiny-xgboost-mlp-s0, train-default-mlp-
    flip-cosine-s0-t7."""
    given = OmegaConf.select(cfg, "logger.run_name")
    if given:
        return str(given)
    parts = [str(cfg.get("task_name") or "run")]
    if cfg.get("data") is not None:
        parts.append(data_source(cfg.data).label)
    parts += [str(choice) for choice in choices if choice not in (None, "")]
    if cfg.get("seed") is not None:
        parts.append(f"s{cfg.seed}")
    trial = OmegaConf.select(cfg, "sweep.trial", default=None)
    if trial is not None:
        parts.append(f"t{trial}")
    elif HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        parts.append(f"j{HydraConfig.get().job.num}")
    return "-".join(parts)
