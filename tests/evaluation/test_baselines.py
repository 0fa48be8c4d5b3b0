"""Baselines: values by hand, the missing-drug policy, the fixed order."""

from __future__ import annotations

import numpy as np

from combomap.evaluation.baselines import BASELINES, additive, average, baseline_predictions, no_change
from tests.conftest import random_dataset

NAN = np.nan
DRUG1 = np.array([[1.0, NAN, NAN, -2.0]])
DRUG2 = np.array([[3.0, 4.0, NAN, NAN]])


def test_average_uses_the_measured_drug_when_one_is_missing() -> None:
    np.testing.assert_array_equal(average(DRUG1, DRUG2), [[2.0, 4.0, NAN, -2.0]])


def test_additive_counts_a_missing_drug_as_zero() -> None:
    np.testing.assert_array_equal(additive(DRUG1, DRUG2), [[4.0, 4.0, NAN, -2.0]])


def test_no_change_is_zero_everywhere() -> None:
    np.testing.assert_array_equal(no_change(DRUG1, DRUG2), np.zeros((1, 4)))


def test_baseline_predictions_order_shape_and_nan_only_where_both_missing() -> None:
    dataset = random_dataset(n_combos=10, n_genes=25, seed=4, missing=0.3)
    predictions = baseline_predictions(dataset)
    assert list(predictions) == list(BASELINES) == ["average", "additive", "no_change"]
    both_missing = np.isnan(dataset.drug1_effect) & np.isnan(dataset.drug2_effect)
    assert both_missing.any()
    for name, prediction in predictions.items():
        assert prediction.shape == dataset.combo_effect.shape and prediction.dtype == np.float32, name
    for name in ("average", "additive"):
        np.testing.assert_array_equal(np.isnan(predictions[name]), both_missing)
    both = ~np.isnan(dataset.drug1_effect) & ~np.isnan(dataset.drug2_effect)
    np.testing.assert_allclose(predictions["average"][both], ((dataset.drug1_effect + dataset.drug2_effect) / 2)[both])
    np.testing.assert_allclose(predictions["additive"][both], (dataset.drug1_effect + dataset.drug2_effect)[both])


def test_baselines_are_symmetric_in_the_drugs() -> None:
    dataset = random_dataset(n_combos=6, n_genes=20, seed=5, missing=0.3)
    for name, prediction in baseline_predictions(dataset.swapped()).items():
        np.testing.assert_array_equal(prediction, baseline_predictions(dataset)[name])
