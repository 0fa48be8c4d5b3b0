"""Schemas of the groups every job shares: where it writes (paths) and its MLflow run (logger). Their values are
wired to other keys in the YAML (conf/paths/default.yaml, conf/logger/mlflow.yaml), so the schemas only type them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from combomap.settings import Checked
from combomap.tracking import RunConfig


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
    """What a job's MLflow run records: its composed config resolved (without the hydra node) and its logger group."""
    kept = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]) if "hydra" in cfg else cfg
    resolved = OmegaConf.to_container(kept, resolve=True)
    logger = resolved.get("logger") or {}
    return RunConfig(resolved, str(logger.get("experiment_name") or "combomap"), logger.get("tracking_uri"),
                     logger.get("store_dir"), OmegaConf.to_yaml(kept, resolve=True))
