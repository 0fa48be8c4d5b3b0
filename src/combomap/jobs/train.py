"""combomap-train's job: load the data set of cfg.data, fit the network of cfg.model as one MLflow run.

The fit itself (the objects the config instantiates, the Lightning run, what the MLflow run holds) is
combomap.models.training.fit_mlp; this job checks the settings first, so a bad one fails before the data loads.
"""

from __future__ import annotations

from omegaconf import DictConfig

from combomap.data.loading import load_dataset
from combomap.models.training import check_training_settings, fit_mlp
from combomap.progress import configure as configure_progress

HEADLINE = ("val/sign_acc", "val_average/sign_acc", "val/spearman_median", "val/loss", "test/sign_acc", "train/loss")


def run(cfg: DictConfig) -> dict[str, float]:
    """Check the settings, load the data, fit (one MLflow run), print the headline; returns the final metrics."""
    check_training_settings(cfg)
    configure_progress(cfg)
    dataset = load_dataset(cfg.data)
    result = fit_mlp(cfg, dataset)
    shown = [f"{key} {result.metrics[key]:.4f}" for key in HEADLINE if key in result.metrics]
    print(f"{result.run_name}: {dataset.n_combos} combos x {dataset.n_genes} genes ({dataset.source}), "
          f"{result.metrics['train/fit_seconds']:.1f} s; " + ", ".join(shown))
    print(f"wrote {result.output_dir} (MLflow run {result.run_id})")
    return result.metrics


def optimized_metric(cfg: DictConfig, metrics: dict[str, float]) -> float:
    """cfg.optimized_metric of a run's metrics, for sweepers; NaN (a failed trial) when the run has none."""
    value = metrics.get(str(cfg.get("optimized_metric") or "val/sign_acc"))
    return float("nan") if value is None else float(value)
