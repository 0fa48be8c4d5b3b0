"""Planted interactions: the truth they record, and calls that find them with the error rate they promise."""

from __future__ import annotations

import numpy as np
import pytest

from combomap.data.simulate import simulate_compendium_with_truth
from combomap.interactions.calls import BUFFERING, SYNERGY
from combomap.interactions.pipeline import call_interactions
from combomap.interactions.planted import PlantedCompendium, plant_interactions, recall_by_size, score_calls
from combomap.interactions.settings import InteractionSettings, PlantSettings

SETTINGS = PlantSettings(combo_fraction=0.6, gene_fraction=0.03, sizes=[2.0, 4.0, 8.0], seed=5)


@pytest.fixture(scope="module")
def planted() -> PlantedCompendium:
    dataset, truth = simulate_compendium_with_truth("small", 2)
    return plant_interactions(dataset, truth, SETTINGS)


def test_the_planted_truth(planted: PlantedCompendium) -> None:
    dataset = planted.dataset
    measured = ~np.isnan(dataset.combo_effect)
    np.testing.assert_array_equal(np.isnan(planted.size), ~measured)
    per_combo = planted.truth.sum(axis=1)
    chosen = per_combo > 0
    assert 0.4 < chosen.mean() < 0.8
    np.testing.assert_array_equal(per_combo[chosen], np.round(0.03 * measured.sum(axis=1))[chosen].astype(int))
    assert set(np.unique(planted.size[planted.truth])) == {2.0, 4.0, 8.0}
    magnitude = np.abs(planted.departure[planted.truth])
    np.testing.assert_allclose(magnitude, (planted.size * planted.noise_sd[:, None])[planted.truth])
    assert set(np.unique(planted.kind[planted.truth])) == {SYNERGY, BUFFERING}
    assert (planted.kind[~planted.truth] == 0).all()
    assert dataset.has_variances and dataset.combos.equals(simulate_compendium_with_truth("small", 2)[0].combos)
    again = plant_interactions(*simulate_compendium_with_truth("small", 2), SETTINGS)
    np.testing.assert_array_equal(again.dataset.combo_effect, dataset.combo_effect)


def test_calls_find_planted_interactions_at_the_promised_error_rate(planted: PlantedCompendium) -> None:
    result = call_interactions(planted.dataset, InteractionSettings(fdr=0.1, dcor_genes=100).check())
    tested = result.tests.tested
    scores = score_calls(result.tests.call, planted, tested)
    assert scores["n_true"] > 300
    assert scores["fdp"] <= 0.1 + 0.05
    assert scores["direction_acc"] > 0.85
    by_size = recall_by_size(result.tests.call, planted, tested).set_index("size_sd")["recall"]
    assert by_size[8.0] > 0.95
    assert by_size[2.0] < by_size[4.0] < by_size[8.0]
    called = result.combinations["n_called"].to_numpy()
    chosen = planted.truth.sum(axis=1) > 0
    assert called[~chosen].mean() < 0.1 * called[chosen].mean()  # the false calls are spread thin


def test_score_calls_by_hand(planted: PlantedCompendium) -> None:
    tested = ~np.isnan(planted.size)
    call = np.zeros(planted.size.shape, dtype=np.int8)
    true_rows, true_cols = np.nonzero(planted.truth)
    call[true_rows[:10], true_cols[:10]] = planted.kind[true_rows[:10], true_cols[:10]]
    false_rows, false_cols = np.nonzero(tested & ~planted.truth)
    call[false_rows[:5], false_cols[:5]] = SYNERGY
    scores = score_calls(call, planted, tested)
    assert scores["true_positives"] == 10 and scores["n_called"] == 15
    assert scores["precision"] == pytest.approx(10 / 15) and scores["fdp"] == pytest.approx(5 / 15)
    assert scores["recall"] == pytest.approx(10 / planted.truth.sum())
    assert scores["direction_acc"] == 1.0
