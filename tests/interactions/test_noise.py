"""The null of observed - expected: p-values uniform where nothing interacts (KS), the d' variance structure, and
the choice of method where the data have no variances."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import kstest

from combomap.data.dataset import DataError
from combomap.data.effect_size import effect_size
from combomap.data.simulate import simulate_compendium_with_truth
from combomap.evaluation.baselines import additive, average
from combomap.interactions.calls import call_entries
from combomap.interactions.noise import (
    bulk_shape,
    effect_size_df,
    null_scale,
    resolve_method,
    robust_scale,
    entries_to_test,
    variance_structure,
)
from combomap.interactions.planted import plant_interactions
from combomap.interactions.settings import PlantSettings


@pytest.fixture(scope="module")
def null_compendium():
    """The small simulated compendium, every combination exactly additive (no interaction anywhere), every gene
    measured in every study (so per-gene scales exist too)."""
    dataset, truth = simulate_compendium_with_truth("small", 0, n_core_genes=2000)
    return plant_interactions(dataset, truth, PlantSettings(combo_fraction=0.0)).dataset


def _p_values(dataset, expected, single_weight, method, calibrate=True, null_shape="bulk"):
    null = null_scale(dataset, expected, single_weight, method, 10, calibrate, null_shape)
    tests = call_entries(dataset.combo_effect, expected, null.scale, null.df, 0.1)
    return tests.p[tests.tested], tests, null


@pytest.mark.parametrize("rule, weight", [(additive, 1.0), (average, 0.25)], ids=["additive", "average"])
def test_null_p_values_are_uniform(null_compendium, rule, weight) -> None:
    expected = rule(null_compendium.drug1_effect, null_compendium.drug2_effect).astype(np.float64)
    if rule is average:  # an exactly additive truth is not average: test the average on an average truth instead
        dataset, truth = simulate_compendium_with_truth("small", 1, n_core_genes=2000)
        null_compendium = plant_interactions(dataset, truth, PlantSettings(combo_fraction=0.0), "average").dataset
        expected = rule(null_compendium.drug1_effect, null_compendium.drug2_effect).astype(np.float64)
    p_values, tests, null = _p_values(null_compendium, expected, weight, "measured")
    assert p_values.size > 70_000
    assert kstest(p_values, "uniform").pvalue > 0.01
    assert (tests.call != 0).sum() == 0
    assert 0.6 < null.calibration < 0.95  # the shared control: the summed variance is too large by about 1 / k^2
    assert np.mean(p_values < 0.05) == pytest.approx(0.05, abs=0.004)


def test_without_calibration_shared_controls_make_p_values_conservative(null_compendium) -> None:
    expected = additive(null_compendium.drug1_effect, null_compendium.drug2_effect).astype(np.float64)
    p_values, _, null = _p_values(null_compendium, expected, 1.0, "measured", calibrate=False)
    assert null.calibration == 1.0
    assert kstest(p_values, "uniform").pvalue < 1e-6
    assert np.mean(p_values < 0.05) < 0.03


def test_without_variances_the_robust_scale_keeps_the_null(null_compendium) -> None:
    bare = replace(null_compendium, drug1_var=None, drug2_var=None)
    expected = additive(bare.drug1_effect, bare.drug2_effect).astype(np.float64)
    p_values, tests, null = _p_values(bare, expected, 1.0, "combo_mad")
    assert kstest(p_values, "uniform").pvalue > 0.01
    assert (tests.call != 0).sum() == 0
    assert 5 < null.df[0, 0] < 60  # d' noise pooled over genes of unequal noise: heavier tails than the normal's
    gene_p, gene_tests, _ = _p_values(bare, expected, 1.0, "gene_mad")  # a gene's noise differs between studies
    assert np.mean(gene_p < 0.05) == pytest.approx(0.05, abs=0.006)
    assert (gene_tests.call != 0).sum() <= 10  # of 100,000: near, not at, the null (auto takes combo_mad here)
    _, normal_tests, _ = _p_values(bare, expected, 1.0, "combo_mad", null_shape="normal")
    assert (normal_tests.call != 0).sum() > 10  # why the bulk's shape: the normal calls noise here


def test_one_screen_without_variances_keeps_the_null_with_per_gene_scales() -> None:
    dataset, truth = simulate_compendium_with_truth("screen", 0, n_genes=600, n_core_genes=600, n_combos=80)
    null = plant_interactions(dataset, truth, PlantSettings(combo_fraction=0.0)).dataset
    bare = replace(null, drug1_var=None, drug2_var=None)
    expected = additive(bare.drug1_effect, bare.drug2_effect).astype(np.float64)
    assert resolve_method("auto", bare, entries_to_test(bare, expected), 10)[0] == "gene_mad"
    p_values, tests, scale = _p_values(bare, expected, 1.0, "gene_mad")
    # one design, so the bulk's tails are the normal's; what is left is the uncertainty of each gene's scale
    np.testing.assert_allclose(scale.df[tests.tested], 0.37 * (bare.n_combos - 1))
    assert (tests.call != 0).sum() <= 2
    assert 0.03 < np.mean(p_values < 0.05) <= 0.055  # at most nominal (the t's allowance errs on the safe side)


def test_the_d_prime_variance_structure_gives_back_its_degrees_of_freedom() -> None:
    rng = np.random.default_rng(0)
    for m in (8.0, 25.0, 120.0):
        t1, t2 = rng.normal(scale=3, size=500), rng.normal(scale=3, size=500)
        d1, v1 = effect_size(t1, m, 3, 3)
        d2, v2 = effect_size(t2, m, 3, 2)
        base1, base2, b = variance_structure(v1, v2, d1, d2)
        assert effect_size_df(b) == pytest.approx(m, rel=1e-4)
        np.testing.assert_allclose(base1, base1[0], rtol=1e-9)  # the base part is the design's alone
        assert base2[0] > base1[0]  # fewer replicates
    assert effect_size_df(0.0) == np.inf
    assert effect_size_df(-0.1) == np.inf


def test_bulk_shape_reads_the_tails_of_the_bulk() -> None:
    rng = np.random.default_rng(1)
    normal_df, normal_factor = bulk_shape(rng.standard_normal(200_000))
    assert normal_df > 100 and normal_factor == pytest.approx(1.0, abs=0.02)
    heavy_df, _ = bulk_shape(rng.standard_t(5, size=200_000))
    assert heavy_df == pytest.approx(5, rel=0.25)
    contaminated = np.concatenate([rng.standard_normal(98_000), rng.normal(scale=8, size=2_000)])
    assert bulk_shape(contaminated)[0] > 15  # 2 % interactions thicken the null a little (the safe side)


def test_robust_scale_ignores_a_few_interactions() -> None:
    rng = np.random.default_rng(2)
    residual = rng.normal(scale=2.0, size=(60, 300))
    residual[:3] += 50.0
    residual[10, :5] = np.nan
    scale = robust_scale(residual, axis=0)
    assert scale.shape == (300,)
    assert np.median(scale) == pytest.approx(2.0, rel=0.1)


def test_auto_says_which_method_and_why(null_compendium) -> None:
    expected = additive(null_compendium.drug1_effect, null_compendium.drug2_effect)
    tested = entries_to_test(null_compendium, expected)
    assert resolve_method("auto", null_compendium, tested, 10)[0] == "measured"
    bare = replace(null_compendium, drug1_var=None, drug2_var=None)
    method, why = resolve_method("auto", bare, tested, 10)
    assert method == "combo_mad" and "no variances and 30 studies" in why
    one_study = replace(bare, combos=bare.combos.assign(study="S"))
    method, why = resolve_method("auto", one_study, tested, 10)
    assert method == "gene_mad" and "one study" in why
    method, why = resolve_method("auto", one_study, tested, 1000)
    assert method == "combo_mad" and "tested in only" in why
    with pytest.raises(DataError, match=r"variance=measured needs the singles' variances .* none"):
        resolve_method("measured", bare, tested, 10)
    with pytest.raises(DataError, match=r"variance=gene_mad needs every gene tested in >= .*=1000"):
        resolve_method("gene_mad", bare, tested, 1000)


def test_moderated_keeps_the_null_with_and_without_variances(null_compendium) -> None:
    expected = additive(null_compendium.drug1_effect, null_compendium.drug2_effect).astype(np.float64)
    p_values, tests, null = _p_values(null_compendium, expected, 1.0, "moderated")
    assert null.method == "moderated" and p_values.size > 70_000
    assert kstest(p_values, "uniform").pvalue > 0.01
    assert (tests.call != 0).sum() == 0
    assert np.median(null.df[tests.tested]) > np.median(_p_values(null_compendium, expected, 1.0, "measured")[2]
                                                        .df[tests.tested])  # the study's other combinations add df
    bare = replace(null_compendium, drug1_var=None, drug2_var=None)
    p_values, tests, null = _p_values(bare, expected, 1.0, "moderated")
    assert (tests.call != 0).sum() == 0
    # residuals of one study share the control's noise: the other combinations' scale errs on the safe side
    assert 0.035 < np.mean(p_values < 0.05) <= 0.053
    assert "prior fitted: d0 = " in null.note


def test_moderated_finds_more_than_gene_mad_in_a_small_screen_without_variances() -> None:
    dataset, truth = simulate_compendium_with_truth("screen", 0, n_genes=600, n_core_genes=600, n_combos=30)
    planted = plant_interactions(dataset, truth, PlantSettings(seed=0))
    bare = replace(planted.dataset, drug1_var=None, drug2_var=None)
    expected = additive(bare.drug1_effect, bare.drug2_effect).astype(np.float64)
    found = {}
    for method in ("gene_mad", "moderated"):
        _, tests, null = _p_values(bare, expected, 1.0, method)
        called = tests.call != 0
        found[method] = (called & planted.truth).sum()
        assert (called & ~planted.truth).sum() <= 0.1 * max(called.sum(), 1) + 2
        if method == "moderated":  # each gene's 29 other residuals plus the prior, against 0.37 x 29 for its MAD
            assert np.median(null.df[tests.tested]) > 0.37 * 29 + 10
    assert found["moderated"] > 1.2 * found["gene_mad"]
