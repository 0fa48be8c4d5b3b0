"""combomap-train: train one MLP ("Hopeless Model") on a data set, as one MLflow run.

    combomap-train                                    # default: CPU-friendly (as experiment=quick_mlp)
    combomap-train experiment=blog_mlp trainer=gpu    # the original's full size, 5000 epochs
    combomap-train -m augment=none,flip schedule=linear,cosine

Writes mlp.safetensors (+ mlp.json), metrics.json and plots/ into paths.output_dir and logs
them to the run; prints the final metrics. Returns cfg.optimized_metric for sweepers.
"""

from __future__ import annotations

from omegaconf import DictConfig

from combomap.cli import command
from combomap.data.dataset import ComboDataset
from combomap.progress import configure as configure_progress

HEADLINE = ("val/sign_acc", "val_average/sign_acc", "val/spearman_median", "val/loss", "test/sign_acc", "train/loss")


def load_dataset(data_cfg: DictConfig) -> ComboDataset:
    """The data set named by cfg.data (imported late: tests replace this function)."""
    from combomap.data.loading import load_dataset as load

    return load(data_cfg)


def run(cfg: DictConfig) -> dict[str, float]:
    """Load the data, fit the MLP (one MLflow run), print the headline; returns the final metrics."""
    from combomap.models.training import check_training_settings, fit_mlp

    check_training_settings(cfg)
    configure_progress(cfg)
    dataset = load_dataset(cfg.data)
    result = fit_mlp(cfg, dataset)
    shown = [f"{key} {result.metrics[key]:.4f}" for key in HEADLINE if key in result.metrics]
    print(f"{result.run_name}: {dataset.n_combos} combos x {dataset.n_genes} genes ({dataset.source}), "
          f"{result.metrics['train/fit_seconds']:.1f} s; " + ", ".join(shown))
    print(f"wrote {result.output_dir} (MLflow run {result.run_id})")
    return result.metrics


@command("combomap-train", "train")
def main(cfg: DictConfig) -> float:
    metrics = run(cfg)
    value = metrics.get(str(cfg.get("optimized_metric") or "val/sign_acc"))
    return float("nan") if value is None else float(value)  # NaN: a sweeper marks the trial failed


if __name__ == "__main__":
    main()
