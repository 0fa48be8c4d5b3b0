"""Schemas of the groups every job shares: where it writes (paths) and its MLflow run (logger). Their values are
wired to other keys in the YAML (conf/paths/default.yaml, conf/logger/mlflow.yaml), so the schemas only type them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from combomap.settings import Checked


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
