"""combomap-stack's job: instantiate the stacking pipeline from the config, fit it, log the result as one MLflow run,
return the metric sweeps maximize (as lightning-hydra-template's train.py).

Every setting is checked before the data loads (fold counts right after, before any net trains); the run's name is
logger.run_name or what tells it apart (combomap.config.run.run_name: stack-<data>-<stacker>-<net>-s<seed>).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from hydra.utils import instantiate
from omegaconf import DictConfig

from combomap.config.base import typed
from combomap.config.data import data_source, library_source
from combomap.config.training import net_recipe
from combomap.data.library_io import load_library
from combomap.data.loading import load_dataset_with_truth
from combomap.evaluation.baselines import AVERAGE
from combomap.evaluation.metrics import HEADLINE_KEYS, headline_metrics
from combomap.evaluation.report import table_metrics
from combomap.jobs.recording import MlflowRecorder, log_dataset_input, log_library_input
from combomap.models.latent import LatentSettings
from combomap.models.training import child_fit
from combomap.progress import Progress, configure as configure_progress
from combomap.recording import Recorder
from combomap.settings import SettingsError
from combomap.stacking.pipeline import StackingPipeline, StackResult
from combomap.stacking.serving import MODEL_NAME, log_pyfunc_model
from combomap.stacking.settings import StackingSettings
from combomap.stacking.splits import check_fold_counts
from combomap.tracking import log_metrics, mlflow_run, open_store
from combomap.config.run import run_config, run_name

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


def log_result(result: StackResult, out_dir: Path, library_cfg: Any = None, library: Any = None,
               register: str | None = None) -> None:
    """Metrics, tags, the report files (ablation.csv is the table's one artifact), and the final model once:
    as the pyfunc model `model` when a drug library can serve it (combomap.stacking.serving), registered as a new
    version of `register` when given."""
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
    metrics.update(headline_metrics(result.headline, result.cv_sign_acc[AVERAGE]))
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
    if result.model_dir is None:
        return
    with Progress(1, "logging the final model", unit="model") as progress:
        if library_cfg is not None:
            info = log_pyfunc_model(result.model, result.model_dir, library_source(library_cfg), library)
        else:
            info = None
            log.warning("~library: no drug library to serve pairs from; the model is logged as plain artifacts")
            mlflow.log_artifacts(str(result.model_dir), artifact_path=MODEL_NAME)
        progress.update()
    if register:
        register_model(info, register, metrics)


def register_model(info: Any, name: str, metrics: Mapping[str, float]) -> Any:
    """The logged pyfunc model as a new version of `name` in the Model Registry, tagged with the run's headline
    metrics, final model and data; None (with a warning) when the model could only be logged as plain artifacts."""
    if info is None:
        log.warning("register=%s: the final model was logged as plain artifacts (no library could serve it), so it "
                    "is not registered", name)
        return None
    run = mlflow.get_run(mlflow.active_run().info.run_id)
    tags = {key: f"{metrics[key]:.6g}" for key in HEADLINE_KEYS if key in metrics}
    tags.update({key: run.data.tags[key] for key in ("final.model", "job") if key in run.data.tags})
    trained_on = [entry.dataset.digest for entry in run.inputs.dataset_inputs
                  if {tag.key: tag.value for tag in entry.tags}.get("mlflow.data.context") == "training"]
    tags.update({"run_name": run.info.run_name, "data.digest": ", ".join(trained_on)})
    version = mlflow.register_model(info.model_uri, name, tags=tags)
    log.info("registered the final model as %s version %s (models:/%s/%s)", name, version.version, name, version.version)
    return version


def run(cfg: DictConfig) -> float:
    """The pipeline as one MLflow run; returns the final model's CV sign accuracy (cv/sign_acc)."""
    configure_progress(cfg)
    pipeline = build_pipeline(cfg, MlflowRecorder(cfg))  # every setting checked (a bad stacker setting fails here)
    if cfg.get("register") and cfg.get("library") is None:
        raise SettingsError(f"register={cfg.register} registers the pyfunc model, which serves pairs from a drug "
                            "library: give a library (drop ~library) or leave register out")
    open_store(run_config(cfg))
    start = time.perf_counter()
    source = data_source(cfg.data)
    dataset, truth = load_dataset_with_truth(source)
    check_fold_counts(pipeline.settings, pipeline.uses_nets, dataset)
    library = basis_library(cfg, pipeline, dataset)
    load_seconds = time.perf_counter() - start
    out_dir = Path(cfg.paths.output_dir)
    name = run_name(cfg, pipeline.stacker_name, net_recipe(cfg).kind)
    with mlflow_run(run_config(cfg), run_name=name):
        log_dataset_input(dataset, source, "training")
        if library is not None:
            log_library_input(library, library_source(cfg.library), "basis")
        result = pipeline.fit(dataset, out_dir, library=library, truth=truth)
        log_result(result, out_dir, cfg.get("library"), library, register=cfg.get("register"))
        total = time.perf_counter() - start
        log_metrics({"time/load_s": load_seconds, "time/total_s": total})
    log.info("combomap-stack done in %.1f s; final model %s, CV sign accuracy %.4f; files in %s", total,
             result.final_model_name, result.headline, out_dir)
    return result.headline
