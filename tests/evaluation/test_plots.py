"""The figures are written as PNGs, for the best model by default, and survive degenerate inputs."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from combomap.evaluation.baselines import baseline_predictions
from combomap.evaluation.metrics import per_combo_error_rate, per_combo_spearman
from combomap.evaluation.plots import (
    accuracy_by_effect_figure,
    density_figure,
    make_plots,
    predicted_vs_actual_figure,
)
from combomap.evaluation.report import accuracy_by_effect_table
from tests.conftest import random_dataset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_make_plots_writes_every_figure(tmp_path: Path) -> None:
    backend = matplotlib.get_backend()
    dataset = random_dataset(n_combos=12, n_genes=40, seed=1)
    predictions = baseline_predictions(dataset)
    predictions["oracle"] = dataset.combo_effect.copy()
    paths = make_plots(dataset, predictions, tmp_path / "plots", max_points=200)
    assert [p.name for p in paths] == [
        "accuracy_by_effect.png", "combo_error_density.png", "combo_spearman_density.png",
        "pred_vs_actual_oracle.png", "residuals_oracle.png",  # best sign accuracy by default
    ]  # fmt: skip
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000
    assert matplotlib.get_backend() == backend  # no global backend switch


def test_hexbin_model_can_be_chosen_and_must_exist(tmp_path: Path) -> None:
    dataset = random_dataset(n_combos=6, n_genes=20, seed=2)
    predictions = baseline_predictions(dataset)
    paths = make_plots(dataset.combo_effect, predictions, tmp_path, hexbin_model="additive")
    assert (tmp_path / "pred_vs_actual_additive.png") in paths
    with pytest.raises(ValueError, match="'mlp' is not among"):
        make_plots(dataset, predictions, tmp_path, hexbin_model="mlp")


def test_all_nan_predictions_still_plot(tmp_path: Path) -> None:
    """A model that predicts nothing: every entry counts as wrong, its densities are undefined, its hexbins empty."""
    dataset = random_dataset(n_combos=4, n_genes=10, seed=3)
    truth, empty = dataset.combo_effect, np.full(dataset.combo_effect.shape, np.nan)
    paths = make_plots(dataset, {"empty": empty}, tmp_path)
    assert [p.name for p in paths] == [
        "accuracy_by_effect.png", "combo_error_density.png", "combo_spearman_density.png",
        "pred_vs_actual_empty.png", "residuals_empty.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)

    by_effect = accuracy_by_effect_table(truth, {"empty": empty})
    (line,) = accuracy_by_effect_figure(by_effect).axes[0].get_lines()[:1]
    filled = by_effect[by_effect["n"] > 0]
    assert line.get_label() == "empty" and len(line.get_ydata()) == len(filled) > 0
    np.testing.assert_array_equal(line.get_ydata(), 0.0)  # a missing prediction is a wrong sign

    errors = density_figure({"empty": per_combo_error_rate(truth, empty)}, "error rate", (0.0, 1.0)).axes[0]
    assert [t.get_text() for t in errors.get_legend().get_texts()] == ["empty (all 1.00)"]  # every combo all wrong
    spearman = density_figure({"empty": per_combo_spearman(truth, empty)}, "Spearman", (-1.0, 1.0)).axes[0]
    assert [t.get_text() for t in spearman.get_legend().get_texts()] == ["empty (undefined)"]
    assert all(len(line.get_xdata()) == 0 for line in spearman.get_lines())  # no curve drawn

    scatter = predicted_vs_actual_figure(truth, empty, "empty", max_points=100, seed=0).axes[0]
    assert scatter.get_title().endswith("(0 entries)") and not scatter.collections  # no hexbin cells

