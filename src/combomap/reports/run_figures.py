"""The tables behind one run's published figures (accuracy by |effect|, per-combination densities), for the
notebook. The figures are drawn by `combomap.evaluation.plots`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from combomap.config.data import data_source
from combomap.data.loading import load_dataset
from combomap.evaluation.baselines import baseline_predictions
from combomap.evaluation.metrics import per_combo_error_rate, per_combo_spearman
from combomap.evaluation.report import accuracy_by_effect_table
from combomap.tracking import artifact_table, run_config

BY_EFFECT_ARTIFACT = "accuracy_by_effect.csv"  # logged by combomap-stack and combomap-evaluate


def per_combo_values(truth: np.ndarray, predictions: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{'error_rate': {model: per-combination error rate}, 'spearman': {model: per-combination Spearman}}: the
    inputs of `combomap.evaluation.plots.density_figure`."""
    return {
        "error_rate": {model: per_combo_error_rate(truth, p) for model, p in predictions.items()},
        "spearman": {model: per_combo_spearman(truth, p) for model, p in predictions.items()},
    }


def figure_tables(run_id: str, tracking_uri: str | None = None) -> dict[str, object]:
    """by_effect (the run's accuracy_by_effect.csv, else recomputed) and per_combo values for one run's figures.

    No job logs per-combination values, so those are recomputed for the baselines (average, additive) on the data
    set the run's config names; `by_effect_source` says where by_effect came from."""
    dataset = load_dataset(data_source(run_config(run_id, tracking_uri)["data"]))
    baselines = {k: v for k, v in baseline_predictions(dataset).items() if k != "no_change"}
    by_effect = artifact_table(run_id, BY_EFFECT_ARTIFACT, tracking_uri)
    source = "artifact"
    if by_effect is None:
        by_effect, source = accuracy_by_effect_table(dataset.combo_effect, baselines), "recomputed (baselines)"
    return {"by_effect": by_effect, "by_effect_source": source,
            "per_combo": per_combo_values(dataset.combo_effect, baselines)}  # fmt: skip
