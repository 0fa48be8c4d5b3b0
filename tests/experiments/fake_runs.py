"""Small MLflow runs shaped like combomap-train sweep trials and combomap-stack ablation runs (no training)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from combomap.evaluation.report import table_metrics
from combomap.tracking import configure, ensure_experiment

MODELS = ("average", "additive", "no_change", "nets_oof", "stack_avg", "stack_vars", "stack_nets", "stack_both")


def ablation_value(augment: str, model: str, seed: int) -> float:
    """A known sign accuracy per cell: the tests recompute means and sds from it."""
    baselines = {"average": 0.79, "additive": 0.79, "no_change": 0.0}
    if model in baselines:  # data only: the same in every run
        return baselines[model]
    bonus = {"none": 0.0, "swap": 0.002, "flip": 0.004, "swap_flip": 0.006}[augment]
    base = 0.66 if model == "nets_oof" else 0.80 + 0.001 * MODELS.index(model)
    return base + bonus + 0.001 * seed


def make_ablation_runs(
    study: str = "ablation", augments=("none", "flip"), seeds=(0, 1), figure_artifacts: bool = True
) -> list[str]:
    """One FINISHED combomap-stack run per (augment, seed): its table ablation.csv (one row per model, columns
    sign_acc, spearman_median) and the same values as metrics ablation/<model>/<column>, as combomap-stack logs them."""
    configure()
    experiment_id = ensure_experiment("combomap-stack")
    run_ids = []
    for augment in augments:
        for seed in seeds:
            tags = {"job": "stack", "sweep_study": study, "sweep_trial": str(len(run_ids))}
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"stack-{augment}-{seed}", tags=tags) as run:
                mlflow.log_params({"augment.name": augment, "seed": seed, "stacker.name": "xgboost"})
                table = pd.DataFrame({"model": MODELS, "sign_acc": [ablation_value(augment, m, seed) for m in MODELS]})
                table["spearman_median"] = table["sign_acc"] - 0.05
                mlflow.log_text(table.to_csv(index=False), "ablation.csv")
                mlflow.log_metrics({**table_metrics(table, "ablation"), "cv/sign_acc": table["sign_acc"].iloc[-1]})
                if figure_artifacts:
                    mlflow.log_text("data:\n  source: simulated\n  preset: tiny\n  seed: 0\nseed: 0\n", "config.yaml")
                    edges = np.round(np.arange(0, 1.01, 0.1), 1)
                    by_effect = pd.concat(
                        pd.DataFrame({"effect_lo": edges[:-1], "effect_hi": edges[1:], "n": 10,
                                      "sign_acc": np.linspace(0.5, 0.9, 10) + shift, "model": model})  # fmt: skip
                        for model, shift in (("average", 0.0), ("stack_both", 0.02))
                    )
                    mlflow.log_text(by_effect.to_csv(index=False), "accuracy_by_effect.csv")
            run_ids.append(run.info.run_id)
    return run_ids


def make_sweep_runs(study: str = "mlp_optuna", n_trials: int = 3) -> list[str]:
    """combomap-train runs as the Optuna sweeper leaves them: tagged sweep_study / sweep_trial."""
    configure()
    experiment_id = ensure_experiment("combomap-train")
    run_ids = []
    for trial in range(n_trials):
        tags = {"sweep_study": study, "sweep_trial": str(trial)}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial-{trial}", tags=tags) as run:
            mlflow.log_params({"model.input_dropout": 0.1 * (trial + 1), "augment.name": "flip", "seed": 0,
                               "sweep.study_name": study, "sweep.trial": trial})  # fmt: skip
            for epoch in range(2):
                mlflow.log_metric("val/sign_acc", 0.6 + 0.02 * trial + 0.01 * epoch, step=epoch)
        run_ids.append(run.info.run_id)
    return run_ids
