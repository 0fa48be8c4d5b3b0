"""combomap-stack's job: instantiate the stacking pipeline from the config, fit it, log the result as one MLflow run,
return the metric sweeps maximize (as lightning-hydra-template's train.py).

Every setting is checked before the data loads (fold counts right after, before any net trains); the run's name is
logger.run_name or stack-<stacker backend>.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import mlflow
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from combomap.config.base import typed
from combomap.config.data import data_source, library_source
from combomap.config.training import net_recipe
from combomap.data.library_io import load_library
from combomap.data.loading import load_dataset_with_truth
from combomap.evaluation.baselines import AVERAGE
from combomap.evaluation.report import table_metrics
from combomap.jobs.recording import MlflowRecorder
from combomap.models.latent import LatentSettings
from combomap.models.training import child_fit
from combomap.progress import configure as configure_progress
from combomap.recording import Recorder
from combomap.stacking.pipeline import StackingPipeline, StackResult
from combomap.stacking.serving import MODEL_NAME, log_pyfunc_model
from combomap.stacking.settings import StackingSettings
from combomap.stacking.splits import check_fold_counts
from combomap.tracking import log_metrics, mlflow_run, open_store
from combomap.config.run import run_config

log = logging.getLogger(__name__)


def build_pipeline(cfg: DictConfig, recorder: Recorder | None = None, fit_net: Any = None) -> StackingPipeline:
    """The typed pipeline of a composed stack config; fold nets train as child records of `recorder` unless
    `fit_net` replaces them (tests use stand-ins)."""
    settings = typed(cfg.stacking, StackingSettings, "stacking")
    recipe = net_recipe(cfg)
    if fit_net is None:
        fit_net = child_fit(recipe, recorder or Recorder(), keep_files=settings.save_fold_dirs)
    latent = typed(cfg.latent, LatentSettings, "latent") if cfg.get("latent") is not None else LatentSettings()
    return StackingPipeline(settings, instantiate(cfg.stacker), fit_net=fit_net, latent=latent,
                            latent_nets=recipe.kind == "latent")


def basis_library(cfg: DictConfig, pipeline: StackingPipeline, dataset: Any) -> Any:
    """The drug library offered to the gene-program basis (cfg.library), when a feature set may use it."""
    wanted = cfg.get("library") is not None and pipeline.latent.use_library and pipeline.latent.source != "compendium"
    if not wanted or not pipeline.needs_basis:
        return None
    if str(cfg.library.get("source")) == "simulated" and str(cfg.data.get("source")) != "simulated":
        log.info("the simulated library serves simulated compendia only: the gene-program basis of %s comes from its "
                 "own single-drug inputs (give library=npy|tidy|gctx to offer a real library)", dataset.source)
        return None
    return load_library(library_source(cfg.library))


def stack(cfg: DictConfig, dataset: Any, out_dir: Path | str, fit_net: Any = None, library: Any = None,
          truth: Any = None) -> StackResult:
    """Fit the pipeline of `cfg` on `dataset` without an MLflow run (tests, benchmarks, notebooks)."""
    return build_pipeline(cfg, fit_net=fit_net).fit(dataset, out_dir, library=library, truth=truth)


def log_result(result: StackResult, out_dir: Path, library_cfg: Any = None, library: Any = None) -> None:
    """Metrics, tags, the report files (ablation.csv is the table's one artifact), and the final model once:
    as the pyfunc model `model` when a drug library can serve it (combomap.stacking.serving)."""
    metrics = table_metrics(result.table, "ablation")
    if result.holdout_table is not None:
        metrics.update(table_metrics(result.holdout_table, "holdout"))
    if result.regimes is not None:
        for regime, part in result.regimes.groupby("regime", sort=False):
            metrics.update(table_metrics(part.drop(columns=["regime"]), f"regime/{regime}"))
    metrics["cv/sign_acc"] = result.headline
    metrics["final/cv_sign_acc"] = result.headline
    metrics["final/average_cv_sign_acc"] = result.cv_sign_acc[AVERAGE]
    metrics["final/is_average"] = float(result.final_feature_set == AVERAGE)
    if result.basis is not None:
        metrics.update({"latent/rank": result.basis.rank, "latent/ridge": result.basis.ridge,
                        "latent/heldout_sign_acc": result.basis.info.get("heldout_sign_acc", float("nan")),
                        "latent/heldout_mse": result.basis.info.get("heldout_mse", float("nan"))})
        mlflow.set_tags({"latent.source": result.basis.source})
    mlflow.set_tags({"final.model": result.final_model_name})
    metrics.update({f"time/{step}_s": seconds for step, seconds in result.timings.items()})
    log_metrics(metrics)
    for path in result.files:
        path = Path(path)
        artifact_dir = path.parent.relative_to(out_dir).as_posix() if path.parent != out_dir else None
        mlflow.log_artifact(str(path), artifact_path=artifact_dir if artifact_dir not in (None, ".") else None)
    if result.model_dir is not None:
        if library_cfg is not None:
            log_pyfunc_model(result.model, result.model_dir, library_source(library_cfg), library)
        else:
            log.warning("~library: no drug library to serve pairs from; the model is logged as plain artifacts")
            mlflow.log_artifacts(str(result.model_dir), artifact_path=MODEL_NAME)


def run(cfg: DictConfig) -> float:
    """The pipeline as one MLflow run; returns the final model's CV sign accuracy (cv/sign_acc)."""
    configure_progress(cfg)
    pipeline = build_pipeline(cfg, MlflowRecorder(cfg))  # every setting checked (a bad stacker setting fails here)
    open_store(run_config(cfg))
    start = time.perf_counter()
    dataset, truth = load_dataset_with_truth(data_source(cfg.data))
    check_fold_counts(pipeline.settings, pipeline.uses_nets, dataset)
    library = basis_library(cfg, pipeline, dataset)
    load_seconds = time.perf_counter() - start
    out_dir = Path(cfg.paths.output_dir)
    run_name = OmegaConf.select(cfg, "logger.run_name") or f"stack-{pipeline.stacker_name}"
    with mlflow_run(run_config(cfg), run_name=run_name, tags={"job": "stack"}):
        result = pipeline.fit(dataset, out_dir, library=library, truth=truth)
        log_result(result, out_dir, cfg.get("library"), library)
        total = time.perf_counter() - start
        log_metrics({"time/load_s": load_seconds, "time/total_s": total})
    log.info("combomap-stack done in %.1f s; final model %s, CV sign accuracy %.4f; files in %s", total,
             result.final_model_name, result.headline, out_dir)
    return result.headline
