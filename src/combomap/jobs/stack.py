"""combomap-stack's job: the stacking ablation (combomap.stacking.pipeline) as one MLflow run.

Every setting is checked before the data loads (fold counts right after, before any net trains); the run's name is
logger.run_name or stack-<stacker backend>.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from combomap.data.loading import load_dataset_with_truth
from combomap.models.latent import check_latent_settings
from combomap.progress import configure as configure_progress
from combomap.stacking.pipeline import (
    StackingPlan,
    basis_library,
    check_fold_counts,
    check_stacking_settings,
    stack_pipeline,
)
from combomap.tracking import log_metrics, mlflow_run

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float:
    """The pipeline as one MLflow run; returns the final model's CV sign accuracy (cv/sign_acc)."""
    configure_progress(cfg)
    check_stacking_settings(cfg)
    plan = StackingPlan.of(cfg)
    check_latent_settings(cfg.get("latent") or {})
    start = time.perf_counter()
    dataset, truth = load_dataset_with_truth(cfg.data)
    check_fold_counts(cfg, plan, dataset)
    library = basis_library(cfg, dataset)
    load_seconds = time.perf_counter() - start
    out_dir = Path(cfg.paths.output_dir)
    run_name = OmegaConf.select(cfg, "logger.run_name") or f"stack-{plan.stacker_name}"
    with mlflow_run(cfg, run_name=run_name, tags={"job": "stack"}):
        result = stack_pipeline(cfg, dataset, out_dir, library=library, truth=truth)
        total = time.perf_counter() - start
        log_metrics({"time/load_s": load_seconds, "time/total_s": total})
    log.info("combomap-stack done in %.1f s; final model %s, CV sign accuracy %.4f; files in %s", total,
             result.final_model_name, result.headline, out_dir)
    return result.headline
