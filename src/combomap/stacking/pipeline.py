"""The stacking runner (`combomap-stack`): baselines, out-of-fold nets, the stacker ablation, the final model.

One call of `run(cfg)` is one MLflow run:
1. baselines (average, additive, no change) on every combination;
2. K fold nets (child runs) -> an out-of-fold net prediction for every combination;
3. for each feature set (avg, +vars, +nets, +both by default) the pooled GBM stacker, scored by
   K-fold CV over (combination, gene) rows grouped by combination; its out-of-fold predictions
   are the table's rows;
4. ablation.csv / ablation.md and the evaluation plots (one line per model);
5. the final model: the stacker of `stacking.final` refit on every row, saved with the fold nets;
6. optionally (`stacking.holdout_fraction` > 0) steps 1-5 run on the other studies only and the
   final model predicts the held-out studies with both inference modes (measures the mismatch of
   feeding the mean of the nets to a stacker trained on single-net predictions).

MLflow metric keys (one scheme, also in conf/stack.yaml): `ablation/<model>/<metric>` for every
row of the table, `holdout/<model>/<metric>` for the holdout table, `cv/sign_acc` for the final
feature set's CV sign accuracy (what `run` returns) and `time/<step>_s` for timings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from combomap.data.dataset import ComboDataset
from combomap.evaluation.metrics import sign_accuracy, sign_accuracy_by_effect
from combomap.stacking.backends import StackerSettings, make_backend
from combomap.stacking.cv import (
    assign_folds,
    combo_groups,
    cross_val_predict,
    holdout_split,
    stacker_groups,
)
from combomap.stacking.features import build_features, check_feature_names, measured_rows, needs_variances
from combomap.stacking.final_model import StackedModel
from combomap.stacking.oof import FoldNets, mean_net_prediction, out_of_fold_nets

log = logging.getLogger(__name__)

NET_MODEL = "nets_oof"


def stack_model_name(feature_set: str) -> str:
    return f"stack_{feature_set}"


@dataclass
class StackResult:
    table: pd.DataFrame
    predictions: dict[str, np.ndarray]
    cv_sign_acc: dict[str, float]
    final_feature_set: str
    model: StackedModel | None = None
    model_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    holdout_table: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    fold_nets: FoldNets | None = None

    @property
    def headline(self) -> float:
        """The final feature set's (+both by default) CV sign accuracy: what sweeps maximize."""
        return float(self.cv_sign_acc[self.final_feature_set])


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def feature_sets_of(stacking_cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    sets = {str(name): check_feature_names(list(names)) for name, names in _plain(stacking_cfg["feature_sets"]).items()}
    if not sets:
        raise ValueError("stacking.feature_sets is empty")
    final = str(stacking_cfg["final"])
    if final not in sets:
        raise ValueError(f"stacking.final={final!r} is not one of stacking.feature_sets {list(sets)}")
    return sets


def stacker_cv(
    settings: StackerSettings,
    features: np.ndarray,
    label: np.ndarray,
    fold_of_row: np.ndarray,
    feature_names: list[str],
    early_stopping_groups: np.ndarray | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
):
    """Out-of-fold stacker predictions (one model per fold). With val_fraction > 0 and early stopping on,
    each fold holds out whole groups of its training rows as the validation set."""

    def fit_predict(train_rows: np.ndarray, test_rows: np.ndarray) -> tuple[np.ndarray, int]:
        backend = make_backend(settings)
        if val_fraction > 0 and settings.early_stopping_rounds and early_stopping_groups is not None:
            fit_part, val_part = holdout_split(early_stopping_groups[train_rows], val_fraction, seed)
            fit_rows, val_rows = train_rows[fit_part], train_rows[val_part]
            backend.fit(features[fit_rows], label[fit_rows], features[val_rows], label[val_rows], feature_names)
        else:
            backend.fit(features[train_rows], label[train_rows], feature_names=feature_names)
        return backend.predict(features[test_rows]), backend.n_trees

    return cross_val_predict(fit_predict, fold_of_row)


def _entries(values: np.ndarray, rows: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    full = np.full(shape[0] * shape[1], np.nan, dtype=np.float32)
    full[rows] = values
    return full.reshape(shape)


@dataclass
class _Plan:
    """The resolved stacking settings of one run."""

    seed: int
    feature_sets: dict[str, list[str]]
    final_set: str
    settings: StackerSettings
    symmetric: bool

    @classmethod
    def of(cls, cfg: DictConfig) -> "_Plan":
        stacking = cfg.stacking
        return cls(
            seed=int(stacking.get("seed", cfg.get("seed", 0))),
            feature_sets=feature_sets_of(stacking),
            final_set=str(stacking.final),
            settings=StackerSettings.from_config(_plain(cfg.stacker)),
            symmetric=bool(stacking.symmetric),
        )


def _fold_nets(cfg: DictConfig, dataset: ComboDataset, seed: int, fit_net: Callable[..., Any] | None) -> FoldNets:
    folds_cfg = cfg.stacking.net_folds
    fold_of_combo = assign_folds(combo_groups(dataset.combos, str(folds_cfg.by)), int(folds_cfg.n_folds), seed)
    return out_of_fold_nets(cfg, dataset, fold_of_combo, fit=fit_net)


def _stack_features(dataset: ComboDataset, names: list[str], net_pred: np.ndarray | None, rows: np.ndarray,
                    symmetric: bool) -> np.ndarray:
    return build_features(names, dataset.drug1_effect, dataset.drug2_effect, dataset.drug1_var, dataset.drug2_var,
                          net_pred=net_pred if "net_pred" in names else None, rows=rows, symmetric=symmetric)


def _ablation(cfg: DictConfig, plan: _Plan, dataset: ComboDataset, net_pred: np.ndarray | None,
              timings: dict[str, float]) -> dict[str, np.ndarray]:
    """CV out-of-fold predictions (n_combos x n_genes) of the stacker for every feature set."""
    cv_cfg = cfg.stacking.cv
    shape = dataset.combo_effect.shape
    rows = measured_rows(dataset.combo_effect)
    label = dataset.combo_effect.reshape(-1)[rows]
    if str(cv_cfg.by) == "row":
        log.warning("stacker CV by row: entries of one combination land in several folds (leaky, the original's CV)")
    fold_of_row = assign_folds(stacker_groups(rows, shape[1], dataset.combos, str(cv_cfg.by)), int(cv_cfg.n_folds), plan.seed)
    predictions = {}
    for name, names in plan.feature_sets.items():
        start = time.perf_counter()
        features = _stack_features(dataset, names, net_pred, rows, plan.symmetric)
        cv = stacker_cv(plan.settings, features, label, fold_of_row, names, rows // shape[1],
                        float(cv_cfg.get("val_fraction") or 0.0), plan.seed)
        predictions[stack_model_name(name)] = _entries(cv.oof_prediction, rows, shape)
        timings[f"cv_{name}"] = time.perf_counter() - start
        log.info("stacker %s %s: CV sign accuracy %.4f (%.1f s; fits %s s)", name, names,
                 sign_accuracy(dataset.combo_effect, predictions[stack_model_name(name)]), timings[f"cv_{name}"],
                 [round(s, 1) for s in cv.fit_seconds])
    return predictions


def _write_reports(dataset: ComboDataset, predictions: dict[str, np.ndarray], out_dir: Path, stacking: DictConfig,
                   timings: dict[str, float]) -> tuple[pd.DataFrame, list[Path]]:
    """ablation.csv/.md, accuracy_by_effect.csv, plots/ (one line per model but no_change), predictions/ (optional)."""
    from combomap.evaluation.report import results_table, to_text, write_results

    table = results_table(dataset, predictions, reference="average")
    files = write_results(table, out_dir, stem="ablation")
    by_effect = pd.concat([sign_accuracy_by_effect(dataset.combo_effect, p).assign(model=m) for m, p in predictions.items()])
    files.append(out_dir / "accuracy_by_effect.csv")
    by_effect.to_csv(files[-1], index=False)
    log.info("ablation on %s (%d combos x %d genes):\n%s", dataset.source, dataset.n_combos, dataset.n_genes, to_text(table))
    if bool(stacking.get("plots", True)):
        from combomap.evaluation.plots import make_plots

        start = time.perf_counter()
        files += make_plots(dataset, {k: v for k, v in predictions.items() if k != "no_change"}, out_dir / "plots")
        timings["plots"] = time.perf_counter() - start
    if bool(stacking.get("save_predictions", False)):
        (out_dir / "predictions").mkdir(exist_ok=True)
        for model, prediction in predictions.items():
            np.save(out_dir / "predictions" / f"{model}.npy", prediction)
    return table, files


def _final_model(cfg: DictConfig, plan: _Plan, dataset: ComboDataset, fold_nets: FoldNets | None,
                 cv_row: pd.Series) -> StackedModel:
    """The final feature set's stacker refit on every measured row, with the fold nets it needs at inference."""
    stacking = cfg.stacking
    names = plan.feature_sets[plan.final_set]
    rows = measured_rows(dataset.combo_effect)
    net_pred = fold_nets.oof_prediction if fold_nets is not None else None
    features = _stack_features(dataset, names, net_pred, rows, plan.symmetric)
    stacker = make_backend(plan.settings).fit(features, dataset.combo_effect.reshape(-1)[rows], feature_names=names)
    return StackedModel(
        stacker=stacker,
        features=names,
        genes=list(dataset.genes),
        nets=list(fold_nets.predictors) if (fold_nets is not None and "net_pred" in names) else [],
        symmetric=plan.symmetric,
        inference=str(stacking.inference),
        info={
            "data": dataset.source,
            "n_combos": dataset.n_combos,
            "n_rows": int(rows.shape[0]),
            "feature_set": plan.final_set,
            "net_folds": {"n_folds": int(stacking.net_folds.n_folds), "by": str(stacking.net_folds.by)},
            "cv": {"n_folds": int(stacking.cv.n_folds), "by": str(stacking.cv.by), "sign_acc": float(cv_row["sign_acc"]),
                   "spearman_median": float(cv_row["spearman_median"])},
            "seed": plan.seed,
        },
    )


def _score_holdout(model: StackedModel, holdout: ComboDataset, fold_nets: FoldNets | None, final_model: str,
                   out_dir: Path) -> tuple[pd.DataFrame, list[Path]]:
    """The final model on studies it never saw, with both inference modes (the train/inference mismatch)."""
    from combomap.evaluation.baselines import average
    from combomap.evaluation.report import results_table, to_text, write_results

    held = {"average": average(holdout.drug1_effect, holdout.drug2_effect)}
    args = (holdout.drug1_effect, holdout.drug2_effect, holdout.drug1_var, holdout.drug2_var)
    if fold_nets is not None:
        held["nets_mean"] = mean_net_prediction(fold_nets.predictors, *args)
    if model.uses_nets:
        held[f"{final_model}_per_net"] = model.predict(*args, inference="per_net")
        held[f"{final_model}_mean_net"] = model.predict(*args, inference="mean_net")
    else:
        held[final_model] = model.predict(*args)
    table = results_table(holdout, held, reference="average")
    log.info("holdout (%d combos, final model trained without them):\n%s", holdout.n_combos, to_text(table))
    return table, write_results(table, out_dir, stem="holdout")


def stack_pipeline(
    cfg: DictConfig,
    dataset: ComboDataset,
    out_dir: Path | str,
    fit_net: Callable[..., Any] | None = None,
) -> StackResult:
    """Everything but the MLflow run itself (see module docstring); logs metrics if a run is active.

    `fit_net` replaces combomap.models.training.fit_mlp (tests use stand-ins).
    """
    from combomap.evaluation.baselines import baseline_predictions

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stacking = cfg.stacking
    plan = _Plan.of(cfg)
    timings: dict[str, float] = {}

    holdout = None
    holdout_fraction = float(stacking.get("holdout_fraction") or 0.0)
    if holdout_fraction > 0:
        groups = combo_groups(dataset.combos, str(stacking.net_folds.by))
        kept, held = holdout_split(groups, holdout_fraction, plan.seed)
        dataset, holdout = dataset.subset(kept), dataset.subset(held)
        log.info("holdout: %d combinations held out, %d used for the stack", holdout.n_combos, dataset.n_combos)
    if any(needs_variances(names) for names in plan.feature_sets.values()) and not dataset.has_variances:
        log.warning("%s has no variances: v1/v2 are all missing (NaN), so +vars/+both equal their variance-free sets",
                    dataset.source)

    predictions: dict[str, np.ndarray] = dict(baseline_predictions(dataset))
    fold_nets = None
    if any("net_pred" in names for names in plan.feature_sets.values()):
        start = time.perf_counter()
        fold_nets = _fold_nets(cfg, dataset, plan.seed, fit_net)
        predictions[NET_MODEL] = fold_nets.oof_prediction
        timings["nets"] = time.perf_counter() - start
    net_pred = fold_nets.oof_prediction if fold_nets is not None else None
    predictions.update(_ablation(cfg, plan, dataset, net_pred, timings))
    cv_sign_acc = {name: sign_accuracy(dataset.combo_effect, predictions[stack_model_name(name)])
                   for name in plan.feature_sets}
    table, files = _write_reports(dataset, predictions, out_dir, stacking, timings)

    start = time.perf_counter()
    final_model = stack_model_name(plan.final_set)
    model = _final_model(cfg, plan, dataset, fold_nets, table.set_index("model").loc[final_model])
    model_dir = model.save(out_dir / "model") if bool(stacking.get("save_model", True)) else None
    timings["final_model"] = time.perf_counter() - start

    holdout_table = None
    if holdout is not None:
        start = time.perf_counter()
        holdout_table, holdout_files = _score_holdout(model, holdout, fold_nets, final_model, out_dir)
        files += holdout_files
        timings["holdout"] = time.perf_counter() - start

    result = StackResult(
        table=table, predictions=predictions, cv_sign_acc=cv_sign_acc, final_feature_set=plan.final_set,
        model=model, model_dir=model_dir, files=files, holdout_table=holdout_table, timings=timings, fold_nets=fold_nets,
    )
    _log_to_mlflow(result, out_dir)
    return result


METRIC_COLUMNS = ("sign_acc", "wrong_genes", "n_scored", "combo_error_median", "combo_error_mean", "spearman_median",
                  "spearman_mean")


def _table_metrics(table: pd.DataFrame, prefix: str) -> dict[str, float]:
    metrics = {}
    extra = [c for c in table.columns if c.startswith(("delta_wrong_vs_", "pearson_delta_top", "l2_top", "direction_top"))]
    for _, row in table.iterrows():
        for column in (*METRIC_COLUMNS, *extra):
            if column in row:
                metrics[f"{prefix}/{row['model']}/{column}"] = float(row[column])
    return metrics


def _log_to_mlflow(result: StackResult, out_dir: Path) -> None:
    import mlflow

    from combomap.tracking import log_metrics

    if mlflow.active_run() is None:
        return
    metrics = _table_metrics(result.table, "ablation")
    if result.holdout_table is not None:
        metrics.update(_table_metrics(result.holdout_table, "holdout"))
    metrics["cv/sign_acc"] = result.headline
    metrics.update({f"time/{step}_s": seconds for step, seconds in result.timings.items()})
    log_metrics(metrics)
    for path in result.files:
        path = Path(path)
        artifact_dir = path.parent.relative_to(out_dir).as_posix() if path.parent != out_dir else None
        mlflow.log_artifact(str(path), artifact_path=artifact_dir if artifact_dir not in (None, ".") else None)
    if result.model_dir is not None:
        mlflow.log_artifact(str(result.model_dir / "manifest.json"), artifact_path="model")


def run(cfg: DictConfig) -> float:
    """combomap-stack: the pipeline as one MLflow run; returns the final feature set's CV sign accuracy."""
    from combomap.data.loading import load_dataset
    from combomap.tracking import mlflow_run

    start = time.perf_counter()
    dataset = load_dataset(cfg.data)
    load_seconds = time.perf_counter() - start
    out_dir = Path(cfg.paths.output_dir)
    run_name = cfg.logger.get("run_name") if cfg.get("logger") else None
    with mlflow_run(cfg, run_name=run_name or f"stack-{cfg.stacker.name}", tags={"job": "stack"}):
        result = stack_pipeline(cfg, dataset, out_dir)
        total = time.perf_counter() - start
        from combomap.tracking import log_metrics

        log_metrics({"time/load_s": load_seconds, "time/total_s": total})
    log.info("combomap-stack done in %.1f s; %s CV sign accuracy %.4f; files in %s", total, result.final_feature_set,
             result.headline, out_dir)
    return result.headline
