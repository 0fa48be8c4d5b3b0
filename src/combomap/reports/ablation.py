"""The stacking ablation read back as tables: augmentation x model (feature set), mean ± sd over seeds.

Each `combomap-stack` run logs its table once, as the artifact `ablation.csv` (one row per model, every metric
column at full precision; `combomap.evaluation.report`). `ablation_long` stacks those tables across the runs of a
study; `experiments/ablation_report.py` and `notebooks/analysis.ipynb` summarise and draw them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from combomap.evaluation.report import to_markdown
from combomap.tracking import artifact_table

ABLATION_TABLE = "ablation.csv"  # the artifact combomap-stack logs (combomap.evaluation.report.write_results)
STACK_PREFIX = "stack_"
# Where the augmentation choice shows up among a run's params, first match wins.
AUGMENT_PARAMS = ("params.augment.name", "params.augment", "params.augment.kind", "params.augment.mode")
SEED_PARAMS = ("params.seed", "params.stacking.seed")
AUGMENT_ORDER = ("none", "swap", "flip", "swap_flip")
MODEL_ORDER = ("average", "additive", "oracle", "nets_oof", "stack_avg", "stack_vars", "stack_nets", "stack_both",
               "stack_latent", "stack_latent_both")
# Scored but uninformative in an ablation table (sign accuracy 0 by construction).
SKIPPED_MODELS = ("no_change",)
LONG_COLUMNS = ["augment", "seed", "model", "feature_set", "value", "run_id"]


def first_column(frame: pd.DataFrame, candidates: Iterable[str]) -> str | None:
    """The first candidate column the runs have a value in."""
    return next((c for c in candidates if c in frame.columns and frame[c].notna().any()), None)


def model_order(models: Iterable[str]) -> list[str]:
    """Baselines, nets, then stackers (MODEL_ORDER first, then by name)."""
    models = sorted(set(models))

    def rank(model: str) -> tuple[int, int, int]:
        group = 2 if model.startswith(STACK_PREFIX) else 1 if model.startswith("nets") else 0
        known = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)
        return group, known, models.index(model)

    return sorted(models, key=rank)


def feature_set_label(model: str) -> str:
    """stack_both -> +both, stack_avg -> avg; other models keep their name."""
    if not model.startswith(STACK_PREFIX):
        return model
    name = model[len(STACK_PREFIX) :]
    return name if name in ("avg", "average") or name.startswith("+") else f"+{name}"


def ablation_long(
    runs: pd.DataFrame,
    metric: str = "sign_acc",
    models: Sequence[str] | None = None,
    factor_column: str | None = None,
    seed_column: str | None = None,
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """One row per (run, model) from each run's ablation table: augment, seed, model, feature_set, value, run_id.

    A rerun of the same (augment, seed) cell replaces the older run (runs arrive newest first, as
    `combomap.tracking.load_runs` returns them); a run without the table, or a model without a value, adds no row."""
    if runs.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    factor_column = factor_column or first_column(runs, AUGMENT_PARAMS)
    seed_column = seed_column or first_column(runs, SEED_PARAMS)
    if factor_column is None:
        raise KeyError(f"no augmentation param among {AUGMENT_PARAMS} in the runs' columns")
    cells = runs.assign(
        augment=runs[factor_column].astype(str),
        seed=runs[seed_column].astype(str) if seed_column else runs["run_id"],
    ).drop_duplicates(subset=["augment", "seed"], keep="first")
    values = {run_id: _metric_by_model(run_id, metric, tracking_uri) for run_id in cells["run_id"]}
    if models is None:
        models = model_order(model for by_model in values.values() for model in by_model.index)
    if not models:
        raise KeyError(f"no column {metric!r} in the runs' {ABLATION_TABLE} tables")
    rows = [
        {
            "augment": run["augment"],
            "seed": run["seed"],
            "model": model,
            "feature_set": feature_set_label(model),
            "value": float(values[run["run_id"]][model]),
            "run_id": run["run_id"],
        }
        for _, run in cells.iterrows()
        for model in models
        if model in values[run["run_id"]].index
    ]
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def _metric_by_model(run_id: str, metric: str, tracking_uri: str | None) -> pd.Series:
    """The metric column of a run's ablation table by model: measured values only, skipped models left out
    (empty when the run has no table or no such column)."""
    table = artifact_table(run_id, ABLATION_TABLE, tracking_uri)
    if table is None or metric not in table.columns:
        return pd.Series(dtype=float)
    by_model = table.set_index("model")[metric].dropna()
    return by_model[~by_model.index.isin(SKIPPED_MODELS)]


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), values.index(v)))


def ablation_summary(long: pd.DataFrame) -> pd.DataFrame:
    """mean, sd (ddof=1; NaN for one seed) and n per (augment, feature set), in the table's order."""
    if long.empty:
        return pd.DataFrame(columns=["augment", "model", "feature_set", "mean", "sd", "n"])
    summary = (
        long.groupby(["augment", "model", "feature_set"], sort=False)["value"]
        .agg(mean="mean", sd="std", n="count")
        .reset_index()
    )
    augment_order = _ordered(summary["augment"], AUGMENT_ORDER)
    models = list(dict.fromkeys(long["model"]))
    summary["augment"] = pd.Categorical(summary["augment"], augment_order, ordered=True)
    summary["model"] = pd.Categorical(summary["model"], models, ordered=True)
    summary = summary.sort_values(["augment", "model"]).reset_index(drop=True)
    summary["augment"] = summary["augment"].astype(str)
    summary["model"] = summary["model"].astype(str)
    return summary


def summary_table(summary: pd.DataFrame, scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
    """Column augment, then one column per feature set with cells "mean ± sd" (x scale: percent by default),
    then seeds (n)."""
    if summary.empty:
        return pd.DataFrame()

    def cell(row: pd.Series) -> str:
        sd = "n/a" if pd.isna(row["sd"]) else f"{scale * row['sd']:.{digits}f}"
        return f"{scale * row['mean']:.{digits}f} ± {sd}"

    cells = summary.assign(cell=summary.apply(cell, axis=1))
    table = cells.pivot(index="augment", columns="feature_set", values="cell")
    table = table.loc[list(dict.fromkeys(summary["augment"])), list(dict.fromkeys(summary["feature_set"]))]
    table["seeds"] = summary.groupby("augment", sort=False)["n"].max().reindex(table.index).astype(int)
    table.columns.name = None
    return table.reset_index()


def summary_markdown(table: pd.DataFrame) -> str:
    """The summary table (`summary_table`) as a GitHub table."""
    return to_markdown(table, aligned=False) + "\n"


def report_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """The report run's scalars: report/<augment>/<model>/{mean,sd} per cell."""
    cells: dict[str, float] = {}
    for _, row in summary.iterrows():
        cells[f"report/{row['augment']}/{row['model']}/mean"] = row["mean"]
        cells[f"report/{row['augment']}/{row['model']}/sd"] = row["sd"]
    return cells
