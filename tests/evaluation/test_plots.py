"""The figures are written as PNGs, for the best model by default, and survive degenerate inputs."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from combomap.evaluation.baselines import baseline_predictions
from combomap.evaluation.plots import make_plots
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
    dataset = random_dataset(n_combos=4, n_genes=10, seed=3)
    paths = make_plots(dataset, {"empty": np.full(dataset.combo_effect.shape, np.nan)}, tmp_path)
    assert all(p.exists() for p in paths)
