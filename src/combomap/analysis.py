"""Sweeps and ablations read back from MLflow: tables and figures for `experiments/ablation_report.py`
and `notebooks/analysis.ipynb`.

Everything starts from MLflow runs (never from files on the side): `load_runs` returns
`mlflow.search_runs`' DataFrame (params.*, metrics.*, tags.* columns). The stacking ablation's
numbers are the metrics `combomap-stack` logs per row of its table, `ablation/<model>/<metric>`
(model = average, nets_oof, stack_<feature set>, ...). Figures use matplotlib's object API, so
importing this module never switches the global backend.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Env var the notebook and the report read the store from (else MLFLOW_TRACKING_URI, else ./mlruns).
STORE_ENV = "COMBOMAP_MLFLOW_URI"
ABLATION_PREFIX = "ablation"
STACK_PREFIX = "stack_"
# Where the augmentation choice shows up among a run's params, first match wins.
AUGMENT_PARAMS = ("params.augment.name", "params.augment", "params.augment.kind", "params.augment.mode")
SEED_PARAMS = ("params.seed", "params.stacking.seed")
AUGMENT_ORDER = ("none", "swap", "flip", "swap_flip")
MODEL_ORDER = ("average", "additive", "oracle", "nets_oof", "stack_avg", "stack_vars", "stack_nets", "stack_both",
               "stack_latent", "stack_latent_both")
# Scored but uninformative in an ablation table (sign accuracy 0 by construction).
SKIPPED_MODELS = ("no_change",)


def store_uri(uri: str | None = None) -> str:
    """The tracking URI to read: explicit, $COMBOMAP_MLFLOW_URI, $MLFLOW_TRACKING_URI, else ./mlruns (the default
    store of combomap-* commands run in the working directory)."""
    from combomap.tracking import default_tracking_uri

    return uri or os.environ.get(STORE_ENV) or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def load_runs(
    experiments: str | Sequence[str],
    filter_string: str = "",
    tracking_uri: str | None = None,
    finished_only: bool = True,
    top_level_only: bool = True,
) -> pd.DataFrame:
    """Runs of the experiments (missing experiments give no rows), newest first; child runs left out by default."""
    from combomap.tracking import search_runs

    if finished_only:
        status = "attributes.status = 'FINISHED'"
        filter_string = f"{filter_string} and {status}" if filter_string else status
    runs = search_runs(experiments, filter_string, tracking_uri=store_uri(tracking_uri), order_by=["attributes.start_time DESC"])
    parent = "tags.mlflow.parentRunId"
    if top_level_only and parent in runs.columns:
        runs = runs[runs[parent].isna()]  # child runs (fold nets) are parts of their parent's job
    return runs.reset_index(drop=True)


def first_column(frame: pd.DataFrame, candidates: Iterable[str]) -> str | None:
    return next((c for c in candidates if c in frame.columns and frame[c].notna().any()), None)


def ablation_models(
    runs: pd.DataFrame, metric: str = "sign_acc", prefix: str = ABLATION_PREFIX, skip: Sequence[str] = SKIPPED_MODELS
) -> list[str]:
    """Models with an `<prefix>/<model>/<metric>` metric: baselines, nets, then stackers (MODEL_ORDER first)."""
    pattern = re.compile(rf"^metrics\.{re.escape(prefix)}/(.+)/{re.escape(metric)}$")
    models = sorted(m.group(1) for c in runs.columns if (m := pattern.match(c)) and m.group(1) not in skip)

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
    prefix: str = ABLATION_PREFIX,
) -> pd.DataFrame:
    """One row per (run, model): augment, seed, model, feature_set, value, run_id.

    A rerun of the same (augment, seed) cell replaces the older run (runs arrive newest first)."""
    columns = ["augment", "seed", "model", "feature_set", "value", "run_id"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    factor_column = factor_column or first_column(runs, AUGMENT_PARAMS)
    seed_column = seed_column or first_column(runs, SEED_PARAMS)
    if factor_column is None:
        raise KeyError(f"no augmentation param among {AUGMENT_PARAMS} in the runs' columns")
    models = list(models) if models is not None else ablation_models(runs, metric, prefix)
    if not models:
        raise KeyError(f"no metric {prefix}/<model>/{metric} in the runs")
    cells = runs.assign(
        augment=runs[factor_column].astype(str),
        seed=runs[seed_column].astype(str) if seed_column else runs["run_id"],
    ).drop_duplicates(subset=["augment", "seed"], keep="first")
    rows = [
        {
            "augment": run["augment"],
            "seed": run["seed"],
            "model": model,
            "feature_set": feature_set_label(model),
            "value": float(run[f"metrics.{prefix}/{model}/{metric}"]),
            "run_id": run["run_id"],
        }
        for _, run in cells.iterrows()
        for model in models
        if f"metrics.{prefix}/{model}/{metric}" in run and pd.notna(run[f"metrics.{prefix}/{model}/{metric}"])
    ]
    return pd.DataFrame(rows, columns=columns)


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
    model_order = list(dict.fromkeys(long["model"]))
    summary["augment"] = pd.Categorical(summary["augment"], augment_order, ordered=True)
    summary["model"] = pd.Categorical(summary["model"], model_order, ordered=True)
    summary = summary.sort_values(["augment", "model"]).reset_index(drop=True)
    summary["augment"] = summary["augment"].astype(str)
    summary["model"] = summary["model"].astype(str)
    return summary


def summary_table(summary: pd.DataFrame, scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
    """Rows augment, columns feature set, cells "mean ± sd" (x scale: percent by default), plus seeds n."""
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
    return table


def to_markdown(table: pd.DataFrame, index_name: str = "augment") -> str:
    """A GitHub table (no tabulate dependency)."""
    header = [index_name, *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for index, row in table.iterrows():
        lines.append("| " + " | ".join([str(index), *(str(v) for v in row.to_numpy())]) + " |")
    return "\n".join(lines) + "\n"


def _figure(width: float = 7.0, height: float = 4.5) -> Figure:
    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def plot_ablation(summary: pd.DataFrame, metric: str = "sign accuracy", scale: float = 100.0) -> Figure:
    """Mean ± sd over seeds: one column per model / feature set, one marker per augmentation (dodged).

    Points, not bars: the differences are small, and a bar's length would mislead on a cut axis."""
    figure = _figure()
    axes = figure.add_subplot()
    sets = list(dict.fromkeys(summary["feature_set"]))
    augments = list(dict.fromkeys(summary["augment"]))
    width = 0.7 / max(len(augments), 1)
    markers = ("o", "s", "^", "D", "v", "P")
    for number, augment in enumerate(augments):
        rows = summary[summary["augment"] == augment].set_index("feature_set").reindex(sets)
        x = np.arange(len(sets)) + (number - (len(augments) - 1) / 2) * width
        axes.errorbar(x, scale * rows["mean"], yerr=scale * rows["sd"].fillna(0.0), fmt=markers[number % 6],
                      ms=5, capsize=3, lw=1.2, label=augment)  # fmt: skip
    axes.set_xticks(np.arange(len(sets)), sets)
    axes.grid(axis="y", lw=0.5, alpha=0.5)
    unit = " (%)" if scale == 100 else ""
    axes.set(ylabel=f"{metric}{unit}, mean ± sd over seeds", xlabel="model / stacking feature set")
    axes.legend(title="augmentation", fontsize=8)
    figure.tight_layout()
    return figure


# ---- sweeps -----------------------------------------------------------------------------------------------


def sweep_trials(runs: pd.DataFrame, objective: str, study: str | None = None) -> pd.DataFrame:
    """Runs tagged by the Optuna sweeper (tags.sweep_study / tags.sweep_trial): study, trial, objective,
    and the params that vary within the study; one row per trial (its newest run)."""
    if runs.empty or "tags.sweep_study" not in runs.columns:
        return pd.DataFrame(columns=["study", "trial", "objective", "run_id"])
    tagged = runs[runs["tags.sweep_study"].notna() & runs.get("tags.sweep_trial", pd.Series(index=runs.index)).notna()]
    if study is not None:
        tagged = tagged[tagged["tags.sweep_study"] == study]
    column = objective if objective.startswith("metrics.") else f"metrics.{objective}"
    trials = pd.DataFrame(
        {
            "study": tagged["tags.sweep_study"],
            "trial": pd.to_numeric(tagged["tags.sweep_trial"], errors="coerce"),
            "objective": tagged[column] if column in tagged else np.nan,
            "run_id": tagged["run_id"],
        }
    )
    params = [c for c in tagged.columns if c.startswith("params.") and not c.startswith("params.sweep.")]
    varying = [c for c in params if tagged[c].nunique(dropna=True) > 1]
    trials = pd.concat([trials, tagged[varying].rename(columns=lambda c: c.removeprefix("params."))], axis=1)
    trials = trials.drop_duplicates(subset=["study", "trial"], keep="first")
    return trials.sort_values(["study", "trial"]).reset_index(drop=True)


def best_trials(trials: pd.DataFrame, maximize: bool = True) -> pd.DataFrame:
    """The best trial of each study."""
    if trials.empty:
        return trials
    ranked = trials.dropna(subset=["objective"]).sort_values("objective", ascending=not maximize)
    return ranked.groupby("study", sort=True).head(1).reset_index(drop=True)


def plot_sweep(trials: pd.DataFrame, objective: str, maximize: bool = True) -> Figure:
    """Objective per trial (dots) and the best so far (line), one colour per study."""
    figure = _figure(7.0, 4.0)
    axes = figure.add_subplot()
    for study, rows in trials.groupby("study", sort=True):
        rows = rows.sort_values("trial")
        best = rows["objective"].cummax() if maximize else rows["objective"].cummin()
        points = axes.plot(rows["trial"], rows["objective"], "o", ms=4, alpha=0.6, label=f"{study}")
        axes.step(rows["trial"], best, where="post", color=points[0].get_color(), lw=1.2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="trial", ylabel=objective)
    axes.legend(fontsize=8, title="study (line: best so far)")
    figure.tight_layout()
    return figure


# ---- the original's figures, from a run's artifacts or recomputed ----------------------------------------


def download_artifact(run_id: str, path: str, tracking_uri: str | None = None) -> Path | None:
    """A run's artifact as a local file (None when the run has no such artifact)."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars in notebooks and logs
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=tempfile.mkdtemp(prefix="combomap-"),
            tracking_uri=store_uri(tracking_uri),
        )  # fmt: skip
    except Exception:  # MlflowException / OSError: the artifact is not there
        return None
    return Path(local)


def run_config(run_id: str, tracking_uri: str | None = None) -> dict:
    """The resolved config a run logged (config.yaml)."""
    from omegaconf import OmegaConf

    path = download_artifact(run_id, "config.yaml", tracking_uri)
    if path is None:
        raise FileNotFoundError(f"run {run_id} has no config.yaml artifact")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def per_combination(truth: np.ndarray, predictions: Mapping[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    """Recomputed with combomap.evaluation.metrics: {'by_effect': model x |effect| bins, 'per_combo': model x combo}."""
    from combomap.evaluation.metrics import per_combo_error_rate, per_combo_spearman, sign_accuracy_by_effect

    by_effect = pd.concat([sign_accuracy_by_effect(truth, p).assign(model=m) for m, p in predictions.items()])
    per_combo = pd.concat(
        [
            pd.DataFrame(
                {"model": m, "combo": np.arange(truth.shape[0]), "error_rate": per_combo_error_rate(truth, p),
                 "spearman": per_combo_spearman(truth, p)}
            )  # fmt: skip
            for m, p in predictions.items()
        ]
    )
    return {"by_effect": by_effect.reset_index(drop=True), "per_combo": per_combo.reset_index(drop=True)}


def plot_accuracy_by_effect(by_effect: pd.DataFrame) -> Figure:
    """Sign accuracy against |combination effect| (the published figure 2), one line per model."""
    figure = _figure(6.5, 4.5)
    axes = figure.add_subplot()
    styles = ("-", "--", ":", "-.")
    for number, (model, rows) in enumerate(by_effect.groupby("model", sort=False)):
        rows = rows[rows["n"] > 0]
        axes.plot((rows["effect_lo"] + rows["effect_hi"]) / 2, rows["sign_acc"], ls=styles[number % 4], lw=1.5, label=model)
    axes.axhline(0.5, color="grey", lw=0.8, ls=":")
    axes.set(xlabel="|combination effect| (bin centre)", ylabel="sign accuracy", ylim=(0, 1.02))
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_densities(per_combo: pd.DataFrame, column: str, xlabel: str, limits: tuple[float, float]) -> Figure:
    """Gaussian KDE of a per-combination value (the published figures 3 and 4), one curve per model."""
    from scipy.stats import gaussian_kde

    figure = _figure(6.5, 4.5)
    axes = figure.add_subplot()
    grid = np.linspace(*limits, 400)
    styles = ("-", "--", ":", "-.")
    for number, (model, rows) in enumerate(per_combo.groupby("model", sort=False)):
        values = rows[column].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size >= 2 and np.ptp(values) > 0:
            axes.plot(grid, gaussian_kde(values)(grid), ls=styles[number % 4], lw=1.5, label=model)
        elif values.size:
            axes.axvline(values[0], ls="--", lw=1.2, label=f"{model} (all {values[0]:.2f})")
    axes.set(xlabel=xlabel, ylabel="density", xlim=limits)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def artifact_csv(run_id: str, path: str, tracking_uri: str | None = None) -> pd.DataFrame | None:
    local = download_artifact(run_id, path, tracking_uri)
    return pd.read_csv(local) if local is not None and local.is_file() else None


def recompute_baselines(run_id: str, tracking_uri: str | None = None) -> dict[str, pd.DataFrame]:
    """The figure tables for the baselines (average, additive) on the data set the run's config names."""
    from combomap.data.loading import load_dataset
    from combomap.evaluation.baselines import baseline_predictions

    dataset = load_dataset(run_config(run_id, tracking_uri)["data"])
    predictions = {k: v for k, v in baseline_predictions(dataset).items() if k != "no_change"}
    return per_combination(dataset.combo_effect, predictions)


def figure_tables(run_id: str, tracking_uri: str | None = None) -> dict[str, object]:
    """by_effect and per_combo tables for the published figures of one run: the run's artifacts
    (accuracy_by_effect.csv, per_combo.csv) where it logged them, else recomputed for the baselines."""
    tables: dict[str, object] = {"by_effect": artifact_csv(run_id, "accuracy_by_effect.csv", tracking_uri),
                                 "per_combo": artifact_csv(run_id, "per_combo.csv", tracking_uri)}  # fmt: skip
    missing = [name for name, table in tables.items() if table is None]
    recomputed = recompute_baselines(run_id, tracking_uri) if missing else {}
    for name in ("by_effect", "per_combo"):
        tables[f"{name}_source"] = "recomputed (baselines)" if name in missing else "artifact"
        if name in missing:
            tables[name] = recomputed[name]
    return tables
