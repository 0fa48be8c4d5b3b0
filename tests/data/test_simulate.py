"""The simulated compendium: calibration on the default preset, determinism, shapes, noise, library."""

from __future__ import annotations

import numpy as np
import pytest

from combomap.data.dataset import DataError
from combomap.data.simulate import (
    PRESETS,
    interaction_summary,
    simulate_compendium,
    simulate_compendium_with_truth,
    simulate_library,
    simulate_library_with_truth,
)
from combomap.evaluation.calibration import calibration_report, check_calibration

BLOCKS = ("drug1_effect", "drug2_effect", "combo_effect", "drug1_var", "drug2_var")


@pytest.fixture(scope="module")
def default_sim():
    """The embedded default data (seed 0) and its noise-free truth, generated once for the module."""
    return simulate_compendium_with_truth("default", 0)


def test_default_preset_meets_calibration_targets(default_sim) -> None:
    dataset, _ = default_sim
    report = calibration_report(dataset)
    assert check_calibration(report) == []
    assert (dataset.n_combos, dataset.n_genes, report["n_studies"]) == (257, 11525, 148)
    assert report["core_genes"] == 3483


def test_default_interactions_present_but_a_minority(default_sim) -> None:
    dataset, truth = default_sim
    summary = interaction_summary(truth)
    assert 0.01 < summary["non_additive"] < 0.10  # Norman 2019: ~4% of entries non-additive
    for kind in ("synergy", "buffering", "other"):
        assert summary[kind] > 0.001
    assert 0.6 < summary["scale_median"] < 0.95  # partial saturation: combo ~ 0.6-0.9 of the sum
    designs = truth.combos["design"].value_counts(normalize=True)
    assert 0 < designs["antagonist"] < 0.2
    assert len(truth.combos) == dataset.n_combos
    # the truth shares the data's missingness and the observations scatter around it
    assert np.array_equal(np.isnan(truth.combo), np.isnan(dataset.combo_effect))
    measured = ~np.isnan(truth.combo)
    assert np.corrcoef(truth.combo[measured], dataset.combo_effect[measured])[0, 1] > 0.7


def test_default_structure(default_sim) -> None:
    dataset, _ = default_sim
    combos = dataset.combos
    assert combos["study"].str.fullmatch(r"GSE\d{5}").all()
    assert combos["drug1"].str.fullmatch(r"drug\d{4}").all() and combos["drug2"].str.fullmatch(r"drug\d{4}").all()
    assert (combos["drug1"] != combos["drug2"]).all()
    per_study = combos.groupby("study").size()
    assert per_study.min() >= 1 and per_study.max() <= 4
    # some studies pair one drug with several partners
    n_drugs = combos.groupby("study").apply(lambda g: len(set(g.drug1) | set(g.drug2)), include_groups=False)
    assert (n_drugs < 2 * per_study).any()
    assert len(set(dataset.genes)) == dataset.n_genes


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_preset_shapes_and_coverage(preset: str) -> None:
    dataset = simulate_compendium(preset, seed=3)
    sizes = PRESETS[preset]
    assert dataset.combo_effect.shape == (sizes["n_combos"], sizes["n_genes"])
    assert dataset.combos["study"].nunique() == sizes["n_studies"]
    assert dataset.has_variances
    missing = np.isnan(dataset.combo_effect)
    for name in BLOCKS:
        block = getattr(dataset, name)
        assert block.dtype == np.float32
        assert np.array_equal(np.isnan(block), missing), name  # unmeasured in all blocks alike
    assert (dataset.drug1_var[~missing] > 0).all() and (dataset.drug2_var[~missing] > 0).all()
    assert (~missing).all(axis=0).sum() == sizes["n_core_genes"]
    assert 0.6 < (~missing).mean() < 0.9
    # missingness is per study (platform): combos of one study share it
    for _, rows in dataset.combos.groupby("study").groups.items():
        assert (missing[rows] == missing[rows[0]]).all()


def test_same_seed_same_data_and_different_seed_differs() -> None:
    first, second, other = (simulate_compendium("tiny", seed) for seed in (5, 5, 6))
    for name in BLOCKS:
        assert np.array_equal(getattr(first, name), getattr(second, name), equal_nan=True)
        assert not np.array_equal(getattr(first, name), getattr(other, name), equal_nan=True)
    assert first.combos.equals(second.combos)
    assert first.genes == second.genes


def test_shared_control_correlates_noise() -> None:
    """With no drug effect, d1, d2 and the combo share the control group's noise."""
    dataset = simulate_compendium("small", seed=0, effect_scale=0.0)
    measured = ~np.isnan(dataset.combo_effect)
    d1, d2, combo = dataset.drug1_effect[measured], dataset.drug2_effect[measured], dataset.combo_effect[measured]
    assert 0.3 < np.corrcoef(d1, combo)[0, 1] < 0.7  # 1/2 for equal groups
    assert 0.3 < np.corrcoef(d1, d2)[0, 1] < 0.7
    assert abs(float(np.mean(combo))) < 0.05
    # so even pure noise gives the average a better-than-chance sign accuracy (about 0.70)
    report = calibration_report(dataset)
    assert 0.62 < report["sign_acc"] < 0.76


def test_effect_scale_multiplies_the_true_effects_on_the_same_noise() -> None:
    """effect_scale s: the noise-free effects are s x those at scale 1, and on the same seed the measurement noise
    is the same draw, so the measured single-drug effects move by s x (measured at 1 - pure noise)."""
    (full, full_truth), (half, half_truth), (noise, noise_truth) = (
        simulate_compendium_with_truth("tiny", 0, effect_scale=scale) for scale in (1.0, 0.5, 0.0)
    )
    for block in ("drug1", "drug2", "combo"):
        unscaled = getattr(full_truth, block)
        assert np.nanmax(np.abs(unscaled)) > 1.0, block  # a real signal, not zeros
        np.testing.assert_allclose(getattr(half_truth, block), 0.5 * unscaled, rtol=1e-6, atol=1e-6)
        assert np.nanmax(np.abs(getattr(noise_truth, block))) == 0.0
    assert full.combos.equals(half.combos) and full.genes == half.genes
    for block in ("drug1_effect", "drug2_effect"):
        measured = ~np.isnan(getattr(full, block))
        assert np.array_equal(measured, ~np.isnan(getattr(half, block)))
        signal = (getattr(full, block) - getattr(noise, block))[measured]
        np.testing.assert_allclose((getattr(half, block) - getattr(noise, block))[measured], 0.5 * signal, atol=1e-4)
        assert np.abs(signal).max() > 1.0


def test_overrides_and_errors() -> None:
    with pytest.raises(DataError, match="unknown simulator preset"):
        simulate_compendium("huge")
    with pytest.raises(DataError, match="unknown simulator parameter"):
        simulate_compendium("tiny", not_a_knob=1)
    with pytest.raises(ValueError, match="n_combos"):
        simulate_compendium("tiny", n_combos=100)


def test_library_matches_the_compendium_world() -> None:
    dataset, truth = simulate_compendium_with_truth("tiny", seed=0)
    library, library_truth = simulate_library_with_truth(1309, preset="tiny", seed=0)
    assert library.effects.shape == (1309, 300) and library.variances.shape == (1309, 300)
    assert library.genes == dataset.genes
    assert library.drugs[:2] == ["drug0000", "drug0001"]
    assert not np.isnan(library.effects).any() and (library.variances > 0).all()
    # the same drug is the same biology in both (different cell context and noise)
    correlations = []
    for row, drug in enumerate(dataset.combos["drug1"]):
        measured = ~np.isnan(truth.drug1[row])
        profile = library_truth[library.index_of([drug])[0]]
        if truth.drug1[row][measured].std() > 0:
            correlations.append(np.corrcoef(truth.drug1[row][measured], profile[measured])[0, 1])
    assert np.median(correlations) > 0.5
    small = simulate_library(n_drugs=7, preset="tiny", seed=0)
    again = simulate_library(n_drugs=7, preset="tiny", seed=0)
    assert np.array_equal(small.effects, again.effects) and small.n_drugs == 7
