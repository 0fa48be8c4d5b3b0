"""The learned baselines (combomap.models.learned): exact recovery of a planted shift, slope and drug profiles,
unseen drugs get the shared part only, the ridge is chosen by CV, save/load round trip, pickle-free."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from combomap.data.dataset import ComboDataset
from combomap.data.pairs import PairBatch
from combomap.evaluation.baselines import additive
from combomap.models.learned import LearnedModelError, LinearComboModel, drug_profiles, shared_fit


def planted_screen(n_drugs: int = 8, n_genes: int = 40, noise: float = 0.0, seed: int = 0):
    """Every pair of n_drugs; y = 0.7 (d1 + d2) + shift + I_a + I_b + noise."""
    rng = np.random.default_rng(seed)
    singles = rng.normal(size=(n_drugs, n_genes))
    profiles = rng.normal(scale=0.8, size=(n_drugs, n_genes))
    shift = rng.normal(scale=0.5, size=n_genes)
    pairs = list(itertools.combinations(range(n_drugs), 2))
    first, second = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    y = 0.7 * (singles[first] + singles[second]) + shift + profiles[first] + profiles[second]
    y += rng.normal(scale=noise, size=y.shape) if noise else 0.0
    names = [f"D{i}" for i in range(n_drugs)]
    combos = pd.DataFrame({"combo": [f"{names[a]}+{names[b]}" for a, b in pairs], "study": "screen",
                           "drug1": [names[a] for a in first], "drug2": [names[b] for b in second]})
    dataset = ComboDataset(drug1_effect=singles[first], drug2_effect=singles[second], combo_effect=y,
                           genes=[f"g{j}" for j in range(n_genes)], combos=combos, source="planted")
    return dataset, singles, profiles, shift


def test_shared_fit_recovers_slope_and_shift() -> None:
    rng = np.random.default_rng(1)
    summed = rng.normal(size=(200, 5))
    target = 0.6 * summed + np.array([1.0, -1.0, 0.0, 0.5, 2.0])
    slope, shift = shared_fit(summed, target, use_slope=True)
    np.testing.assert_allclose(slope, 0.6, atol=1e-9)
    np.testing.assert_allclose(shift, [1.0, -1.0, 0.0, 0.5, 2.0], atol=1e-9)
    ones, mean_shift = shared_fit(summed, target, use_slope=False)
    np.testing.assert_array_equal(ones, 1.0)
    np.testing.assert_allclose(mean_shift, np.mean(target - summed, axis=0))


def test_drug_profiles_solve_the_ridge_problem() -> None:
    rng = np.random.default_rng(2)
    n_drugs, first, second = 5, np.array([0, 0, 1, 2, 3, 1]), np.array([1, 2, 3, 4, 4, 4])
    residual = rng.normal(size=(6, 3))
    ridge = 0.5
    design = np.zeros((6, n_drugs))
    design[np.arange(6), first] += 1
    design[np.arange(6), second] += 1
    exact = np.linalg.solve(design.T @ design + ridge * np.eye(n_drugs), design.T @ residual)
    np.testing.assert_allclose(drug_profiles(residual, first, second, n_drugs, ridge, sweeps=2000, tolerance=1e-12), exact, atol=1e-5)


def test_interaction_model_recovers_planted_structure_and_generalizes() -> None:
    dataset, singles, profiles, shift = planted_screen(noise=0.05)
    held_out = np.arange(dataset.n_combos) % 4 == 0
    model = LinearComboModel.fit(dataset.subset(np.flatnonzero(~held_out)), "interaction")
    assert model.ridge is not None and model.info["n_recurring_drugs"] == 8
    prediction = model.predict(PairBatch.from_dataset(dataset, np.flatnonzero(held_out)))
    truth = dataset.combo_effect[held_out]
    shift_only = LinearComboModel.fit(dataset.subset(np.flatnonzero(~held_out)), "additive_shift")
    error = np.mean((prediction - truth) ** 2)
    assert error < 0.1 * np.mean((shift_only.predict(PairBatch.from_dataset(dataset, np.flatnonzero(held_out))) - truth) ** 2)
    np.testing.assert_allclose(np.median(model.slope), 0.7, atol=0.1)


def test_unseen_drugs_get_the_shared_part_only() -> None:
    dataset, *_ = planted_screen()
    model = LinearComboModel.fit(dataset, "interaction")
    pairs = PairBatch.from_dataset(dataset, [0, 1])
    anonymous = PairBatch(pairs.drug1_effect, pairs.drug2_effect)  # no names: every drug unseen
    renamed = PairBatch(pairs.drug1_effect, pairs.drug2_effect, drug1_name=["new1", "new2"], drug2_name=["new3", "new4"])
    shared = model.shared(additive(pairs.drug1_effect, pairs.drug2_effect)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(anonymous), shared)
    np.testing.assert_array_equal(model.predict(renamed), shared)
    assert not np.allclose(model.predict(pairs), shared)
    np.testing.assert_array_equal(model.seen(["D0", "new1"]), [True, False])
    np.testing.assert_array_equal(model.predict(pairs), model.predict(pairs.swapped()))  # order-free


def test_no_recurring_drug_means_no_profiles() -> None:
    dataset, *_ = planted_screen()
    disjoint = dataset.subset([0, 20])  # D0+D1 and D3+D5 (no drug twice)
    model = LinearComboModel.fit(disjoint, "interaction")
    assert model.profiles is None and "no drug" in model.info["profiles"]


def test_save_load_round_trip_is_exact_and_pickle_free(tmp_path) -> None:
    dataset, *_ = planted_screen(noise=0.1)
    model = LinearComboModel.fit(dataset, "interaction")
    model.save(tmp_path / "m")
    loaded = LinearComboModel.load(tmp_path / "m")
    pairs = PairBatch.from_dataset(dataset)
    np.testing.assert_array_equal(loaded.predict(pairs), model.predict(pairs))
    with np.load(tmp_path / "m" / "linear.npz", allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["profiles", "shift", "slope"]
    (tmp_path / "m" / "linear.json").write_text("[]")
    with pytest.raises(LearnedModelError, match="linear.json"):
        LinearComboModel.load(tmp_path / "m")


def test_unknown_kind_is_refused() -> None:
    dataset, *_ = planted_screen()
    with pytest.raises(LearnedModelError, match="unknown learned baseline 'cubic'"):
        LinearComboModel.fit(dataset, "cubic")
