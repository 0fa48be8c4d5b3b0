"""The evaluate job: score the baselines and saved predictions on one data set, as one MLflow run.

Writes results.csv (the table, logged once as a run artifact: every metric at full precision), results.md,
accuracy_by_effect.csv and the figures into paths.output_dir, reports the headline table through logging (the console
and the Hydra job's evaluate.log), and logs every metric column to MLflow as "<model>/<metric>" (e.g.
"average/sign_acc"; `combomap.evaluation.report.table_metrics`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from omegaconf import DictConfig, OmegaConf

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.folds import assign_folds
from combomap.config.data import data_source
from combomap.data.loading import load_dataset
from combomap.evaluation.baselines import AVERAGE, baseline_predictions
from combomap.evaluation.metrics import headline_metrics
from combomap.evaluation.plots import make_plots
from combomap.evaluation.report import accuracy_by_effect_table, results_table, table_metrics, to_text, write_results
from combomap.jobs.recording import log_dataset_input
from combomap.models.learned import out_of_fold as learned_out_of_fold
from combomap.progress import configure as configure_progress
from combomap.config.base import typed
from combomap.config.evaluate import EvaluateConfig
from combomap.settings import SettingsError
from combomap.stacking.cv import combo_groups, resolve_grouping
from combomap.tracking import log_metrics, mlflow_run, open_store
from combomap.config.run import run_config, run_name

log = logging.getLogger(__name__)

# A model name is the first part of its metric keys, so no "/" (and only characters MLflow accepts).
MODEL_NAME = re.compile(r"^[A-Za-z0-9_.\- ]+$")


def load_predictions(
    paths: Mapping[str, Any], dataset: ComboDataset, taken: set[str] | None = None
) -> dict[str, np.ndarray]:
    """{name: path.npy} -> {name: float32 (n_combos x n_genes)}; clear errors name the model and the file."""
    taken = set(taken or ())
    predictions: dict[str, np.ndarray] = {}
    for name, path in (paths or {}).items():
        name = str(name)
        if not MODEL_NAME.match(name):
            raise SettingsError(f"prediction name {name!r}: use letters, digits, '_', '-', '.' or spaces (no '/')")
        if name in taken:
            raise SettingsError(f"prediction name {name!r} is already used by a baseline; pick another name")
        path = Path(str(path)).expanduser()
        if not path.is_file():
            raise DataError(f"predictions {name!r}: file {path} not found")
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise DataError(f"predictions {name!r}: {path} is not a plain .npy array ({error})") from error
        if not isinstance(values, np.ndarray) or not np.issubdtype(values.dtype, np.number):
            kind = getattr(values, "dtype", type(values))
            raise DataError(f"predictions {name!r}: {path} must hold a numeric array, got {kind}")
        if values.shape != dataset.combo_effect.shape:
            raise DataError(
                f"predictions {name!r}: {path} has shape {values.shape}, but the data set has "
                f"{dataset.combo_effect.shape} (n_combos x n_genes)"
            )
        if np.isinf(values).any():
            row, col = np.argwhere(np.isinf(values))[0]
            raise DataError(f"predictions {name!r}: {path} holds +/-inf (first at combo row {row}, gene column {col})")
        predictions[name] = values.astype(np.float32, copy=False)
        taken.add(name)
    return predictions


def learned_predictions(cfg: DictConfig, dataset: ComboDataset) -> dict[str, np.ndarray]:
    """The learned baselines out of fold (`learned.n_folds` folds grouped by `learned.by`, like the stack's CV);
    none when `learned` is null or the data set has too few combinations or groups for the folds."""
    settings = cfg.get("learned")
    if settings is None:
        return {}
    n_folds = int(settings.n_folds)
    by = resolve_grouping(str(settings.by), dataset.combos, n_folds)
    groups = combo_groups(dataset.combos, by)
    if len(np.unique(groups)) < n_folds:
        log.info("learned baselines left out: %d group(s) by %s cannot fill learned.n_folds=%d", len(np.unique(groups)), by, n_folds)
        return {}
    predictions, _ = learned_out_of_fold(dataset, assign_folds(groups, n_folds, int(cfg.seed)), seed=int(cfg.seed))
    return predictions


def run(cfg: DictConfig) -> dict[str, float]:
    """Score, write, plot and log; returns the logged metrics {"<model>/<metric>": value}."""
    configure_progress(cfg)
    saved = cfg.get("predictions")
    saved = OmegaConf.to_container(saved, resolve=True) if saved is not None else {}
    typed(cfg, EvaluateConfig, "")  # every setting checked before the data loads (as the console does)
    open_store(run_config(cfg))
    source = data_source(cfg.data)
    dataset = load_dataset(source)
    predictions = baseline_predictions(dataset)
    predictions.update(learned_predictions(cfg, dataset))
    predictions.update(load_predictions(saved, dataset, taken=set(predictions)))
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    with mlflow_run(run_config(cfg), run_name=run_name(cfg)):
        log_dataset_input(dataset, source, "evaluation")
        mlflow.set_tags({"data.source": dataset.source, "n_combos": dataset.n_combos, "n_genes": dataset.n_genes})
        table = results_table(dataset, predictions, reference=cfg.reference, top_k=list(cfg.top_k),
                              progress="scoring the models")
        log.info("%d combinations x %d genes (%s)\n%s", dataset.n_combos, dataset.n_genes, dataset.source, to_text(table))
        files = write_results(table, out_dir, stem="results")
        files.append(out_dir / "accuracy_by_effect.csv")
        accuracy_by_effect_table(dataset.combo_effect, predictions).to_csv(files[-1], index=False)
        figures = []
        if cfg.plots:
            figures = make_plots(
                dataset,
                predictions,
                out_dir,
                hexbin_model=cfg.plot_model,
                max_points=cfg.max_plot_points,
                seed=cfg.seed,
            )
        metrics = table_metrics(table)
        metrics.update(headline_metrics(None, metrics.get(f"{AVERAGE}/sign_acc")))
        log_metrics(metrics)
        for path in files:
            mlflow.log_artifact(str(path))
        for path in figures:
            mlflow.log_artifact(str(path), artifact_path="plots")
    log.info("wrote %s to %s", ", ".join(p.name for p in files + figures), out_dir)
    return metrics
