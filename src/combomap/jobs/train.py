"""combomap-train's job: load the data set of cfg.data, fit the network of cfg.model as one MLflow run.

instantiate (the typed NetRecipe; a bad setting fails before the data loads) -> resume point -> load -> fit
(combomap.models.training.fit_net, recording into this run) -> the headline.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from combomap.config.training import net_recipe, resolved_config
from combomap.data.loading import load_dataset
from combomap.jobs.recording import MlflowRecorder
from combomap.models.resume import config_hash, resume_point
from combomap.models.training import Checkpointing, fit_net
from combomap.progress import configure as configure_progress
from combomap.tracking import mlflow_run

log = logging.getLogger(__name__)

HEADLINE = ("val/sign_acc", "val_average/sign_acc", "val/spearman_median", "val/loss", "test/sign_acc", "train/loss")


def run(cfg: DictConfig) -> dict[str, float]:
    """Check the settings, load the data, fit (one MLflow run), print the headline; returns the final metrics."""
    recipe = net_recipe(cfg)
    configure_progress(cfg)
    cfg_hash = config_hash(resolved_config(cfg))
    resume = resume_point(cfg.get("resume"), Path(str(cfg.paths.log_dir)), recipe.task_name, cfg_hash)
    dataset = load_dataset(cfg.data)
    run_name = recipe.default_run_name()
    with mlflow_run(cfg, run_name=run_name, tags={"task": recipe.task_name, "model": recipe.kind},
                    run_id=resume.run_id if resume else None) as run:
        result = fit_net(recipe, dataset, recorder=MlflowRecorder(cfg, run), run_name=run_name,
                         checkpointing=Checkpointing(cfg_hash, resume))
    shown = [f"{key} {result.metrics[key]:.4f}" for key in HEADLINE if key in result.metrics]
    print(f"{result.run_name}: {dataset.n_combos} combos x {dataset.n_genes} genes ({dataset.source}), "
          f"{result.metrics['train/fit_seconds']:.1f} s; " + ", ".join(shown))
    print(f"wrote {result.output_dir} (MLflow run {result.run_id})")
    return result.metrics


def optimized_metric(cfg: DictConfig, metrics: dict[str, float]) -> float:
    """cfg.optimized_metric of a run's metrics, for sweepers; NaN (a failed trial) when the run has none."""
    value = metrics.get(str(cfg.get("optimized_metric") or "val/sign_acc"))
    return float("nan") if value is None else float(value)
