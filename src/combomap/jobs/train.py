"""combomap-train's job: load the data set of cfg.data, fit the network of cfg.model as one MLflow run.

instantiate (the typed NetRecipe; a bad setting fails before the data loads) -> resume point -> load -> fit
(combomap.models.training.fit_net, recording into this run) -> the headline.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from combomap.config.data import data_source
from combomap.config.training import net_recipe, resolved_config
from combomap.data.dataset import ComboDataset
from combomap.data.loading import DataSource, load_dataset
from combomap.evaluation.metrics import headline_metrics
from combomap.jobs.recording import MlflowRecorder, log_dataset_input
from combomap.models.resume import ResumeError, ResumePoint, config_hash, resume_point, run_dir_lock
from combomap.models.training import Checkpointing, FitResult, fit_net
from combomap.progress import configure as configure_progress
from combomap.tracking import configure as configure_store
from combomap.tracking import log_metrics, mlflow_run, open_store
from combomap.config.run import run_config, run_name as config_run_name

log = logging.getLogger(__name__)

HEADLINE = ("val/sign_acc", "val_average/sign_acc", "val/spearman_median", "val/loss", "test/sign_acc", "train/loss")


def checkpointing_of(cfg: DictConfig) -> Checkpointing:
    """The config's hash and the checkpoint cfg.resume asks for (checked before any data loads)."""
    cfg_hash = config_hash(resolved_config(cfg))
    return Checkpointing(cfg_hash, resume_point(cfg.get("resume"), Path(str(cfg.paths.log_dir)),
                                                str(cfg.get("task_name", "train")), cfg_hash))


def fit_mlp(cfg: DictConfig, train: ComboDataset, val: ComboDataset | None = None, *, run_name: str | None = None,
            nested: bool = False, basis: Any = None, keep_files: bool = True,
            checkpointing: Checkpointing | None = None, source: DataSource | None = None) -> FitResult:
    """cfg's network fit on `train` as one MLflow run (nested: a child of the active run, e.g. in a notebook);
    a top-level run may resume (cfg.resume); `source` (where `train` came from) is logged as the run's input."""
    recipe = net_recipe(cfg)
    run_name = run_name or (recipe.default_run_name() if nested else config_run_name(cfg, *recipe.name_parts()))
    if checkpointing is None and not nested:
        checkpointing = checkpointing_of(cfg)
    resume = checkpointing.resume if checkpointing is not None else None
    run_dir = resume.run_dir if resume else recipe.output_dir
    with run_dir_lock(run_dir) if (checkpointing is not None and run_dir is not None) else contextlib.nullcontext():
        if resume:
            refuse_finished_run(cfg, resume)
        with mlflow_run(run_config(cfg), run_name=run_name, tags={"model": recipe.kind}, nested=nested,
                        run_id=resume.run_id if resume else None) as run:
            if source is not None and not resume:
                log_dataset_input(train, source, "training")
            result = fit_net(recipe, train, val, recorder=MlflowRecorder(cfg, run), run_name=run_name, nested=nested,
                             basis=basis, keep_files=keep_files, checkpointing=checkpointing)
            log_metrics(headline_metrics(result.metrics.get("val/sign_acc"), result.metrics.get("val_average/sign_acc")))
            return result


def refuse_finished_run(cfg: DictConfig, resume: ResumePoint) -> None:
    """Only a run that did not finish is reopened (a FINISHED run must never become FAILED or RUNNING again)."""
    logger = cfg.get("logger") or {}
    configure_store(logger.get("tracking_uri"), logger.get("store_dir"))
    try:
        status = MlflowClient().get_run(resume.run_id).info.status
    except MlflowException:
        return  # not in this store: the training logs to a new run (combomap.tracking.mlflow_run says so)
    if status == "FINISHED":
        raise ResumeError(f"resume: MLflow run {resume.run_id} of {resume.run_dir} is FINISHED; nothing to resume")


def run(cfg: DictConfig) -> dict[str, float]:
    """Check the settings, load the data, fit (one MLflow run), log the headline; returns the final metrics."""
    net_recipe(cfg)
    configure_progress(cfg)
    checkpointing = checkpointing_of(cfg)
    open_store(run_config(cfg))
    source = data_source(cfg.data)
    dataset = load_dataset(source)
    result = fit_mlp(cfg, dataset, checkpointing=checkpointing, source=source)
    shown = [f"{key} {result.metrics[key]:.4f}" for key in HEADLINE if key in result.metrics]
    log.info("%s: %d combos x %d genes (%s), %.1f s; %s", result.run_name, dataset.n_combos, dataset.n_genes,
             dataset.source, result.metrics["train/fit_seconds"], ", ".join(shown))
    log.info("wrote %s (MLflow run %s)", result.output_dir, result.run_id)
    return result.metrics


def optimized_metric(cfg: DictConfig, metrics: dict[str, float]) -> float:
    """cfg.optimized_metric of a run's metrics, for sweepers; NaN (a failed trial) when the run has none."""
    value = metrics.get(str(cfg.get("optimized_metric") or "val/sign_acc"))
    return float("nan") if value is None else float(value)
