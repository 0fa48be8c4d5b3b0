"""Optuna sweeps read back from MLflow: one row per trial (runs tagged sweep_study / sweep_trial), the best per study.
The figure is `combomap.evaluation.plots.sweep_figure`."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
