"""Benjamini-Hochberg against a hand-computed example, the hierarchical FDR, the p-values and the call rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from combomap.data.io import read_tidy
from combomap.interactions.calls import BUFFERING, NONE, SYNERGY, call_entries, classify, normal_score, two_sided_p
from combomap.interactions.fdr import benjamini_hochberg, benjamini_hochberg_rows, hierarchical_q
from combomap.interactions.outputs import entry_table
from combomap.interactions.pipeline import call_interactions
from combomap.interactions.settings import InteractionSettings
from tests import REPO_ROOT


def test_bh_matches_the_hand_computed_example() -> None:
    # m = 4 finite p-values; sorted 0.01, 0.03, 0.04, 0.20 -> p * 4 / rank = 0.04, 0.06, 0.0533, 0.20;
    # the running minimum from the top: 0.04, 0.0533, 0.0533, 0.20. NaN is not counted and stays NaN.
    q = benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.20, np.nan]))
    np.testing.assert_allclose(q[:4], [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.20], rtol=1e-12)
    assert np.isnan(q[4])


def test_bh_caps_at_one_and_keeps_shape() -> None:
    p = np.array([[0.9, 0.95], [0.99, np.nan]])
    q = benjamini_hochberg(p)
    assert q.shape == p.shape
    assert np.nanmax(q) <= 1.0
    np.testing.assert_allclose(q[0], [0.99, 0.99])
    assert np.isnan(benjamini_hochberg(np.array([np.nan, np.nan]))).all()


def test_bh_per_row_is_bh_of_each_row() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(3, 20))
    p[1, :5] = np.nan
    rows = benjamini_hochberg_rows(p)
    for row in range(3):
        np.testing.assert_array_equal(rows[row], benjamini_hochberg(p[row]))
    assert not np.allclose(rows, benjamini_hochberg(p), equal_nan=True)


def test_p_values_are_two_sided_and_t_tails_are_heavier() -> None:
    assert two_sided_p(np.array([1.959963984540054]))[0] == pytest.approx(0.05, rel=1e-9)
    assert two_sided_p(np.array([-3.0]))[0] == pytest.approx(2 * norm.sf(3.0))
    assert two_sided_p(np.array([3.0]), 5.0)[0] > two_sided_p(np.array([3.0]))[0]
    assert 0 < two_sided_p(np.array([30.0]))[0] < 1e-190  # far in the tail, not rounded to 0 (2 * sf, not 1 - cdf)
    z = normal_score(np.array([0.05, 1e-320]), np.array([-1.0, 1.0]))
    assert z[0] == pytest.approx(-1.959963984540054) and np.isfinite(z[1]) and z[1] > 37


def test_calls_are_synergy_when_stronger_and_buffering_when_weaker() -> None:
    observed = np.array([3.0, -3.0, 0.5, -0.5, 2.0])
    expected = np.array([1.0, -1.0, 2.0, -2.0, 0.0])
    significant = np.array([True, True, True, True, False])
    assert classify(observed, expected, significant).tolist() == [SYNERGY, SYNERGY, BUFFERING, BUFFERING, NONE]


def test_call_entries_scope_and_untested() -> None:
    # row 0: one huge departure among nulls; row 1: many moderate ones. Scope decides which q the calls use.
    observed = np.zeros((2, 40))
    observed[0, 0] = 8.0
    observed[1, :20] = 3.2
    expected = np.zeros_like(observed)
    scale = np.ones_like(observed)
    scale[0, 39] = np.nan  # untested
    tests = call_entries(observed, expected, scale, np.array([np.inf, np.inf]), fdr=0.05, fdr_scope="all")
    assert np.isnan(tests.p[0, 39]) and tests.call[0, 39] == NONE and not tests.tested[0, 39]
    np.testing.assert_array_equal(tests.q, benjamini_hochberg(tests.p))
    np.testing.assert_array_equal(tests.q_combo, benjamini_hochberg_rows(tests.p))
    assert tests.call[0, 0] == SYNERGY and (tests.call[1, :20] == SYNERGY).all()
    combination = call_entries(observed, expected, scale, np.array([np.inf, np.inf]), fdr=0.05,
                               fdr_scope="combination")
    np.testing.assert_array_equal(combination.call != 0, combination.q_combo <= 0.05)
    np.testing.assert_allclose(tests.departure[tests.tested], (observed - expected)[tests.tested])


def test_hierarchical_fdr_on_a_hand_example() -> None:
    # three combinations of four genes; within-row BH q: row 0 [0.004, 0.04, 0.4, 0.8] -> Simes p 0.004;
    # row 1 sorted 0.02, 0.03, 0.5, 0.9 -> q 0.06, 0.06, 0.667, 0.9 -> Simes 0.06; row 2 all 0.5 -> Simes 0.5.
    # BH over the three Simes p at 0.1: 0.004 * 3 = 0.012, 0.06 * 3 / 2 = 0.09, 0.5: rows 0 and 1 selected (R = 2),
    # so within them the genes are called by BH at 0.1 x 2 / 3: q_hierarchical = q_combo x 3 / 2.
    p = np.array([[0.001, 0.02, 0.3, 0.8], [0.03, 0.02, 0.5, 0.9], [0.5, 0.5, 0.5, 0.5]])
    q, selected = hierarchical_q(p, 0.1)
    assert selected.tolist() == [True, True, False]
    np.testing.assert_allclose(q[:2], np.minimum(benjamini_hochberg_rows(p)[:2] * 1.5, 1.0))
    np.testing.assert_allclose(q[0, :2], [0.006, 0.06])
    np.testing.assert_allclose(q[1, :2], [0.09, 0.09])
    assert np.isnan(q[2]).all()
    tests = call_entries(np.where(p < 0.1, 5.0, 0.0), np.zeros_like(p), np.ones_like(p), np.full(3, np.inf), 0.1,
                         fdr_scope="hierarchical")
    assert tests.q_scope is tests.q_hierarchical
    assert not hierarchical_q(np.full((2, 3), 0.9), 0.1)[1].any()


def test_hierarchical_fdr_controls_both_levels_on_simulated_families() -> None:
    rng = np.random.default_rng(4)
    family_fdp, within_fdp, entry_fdp = [], [], []
    for _ in range(200):
        n_families, n_genes = 40, 50
        signal = np.zeros((n_families, n_genes), dtype=bool)
        signal[:8, :5] = True  # 8 combinations with 5 departing genes each, 32 without any
        z = rng.standard_normal((n_families, n_genes)) + np.where(signal, 3.5, 0.0)
        q, selected = hierarchical_q(two_sided_p(z), 0.1)
        called = np.nan_to_num(q, nan=1.0) <= 0.1
        if selected.any():
            family_fdp.append((selected & ~signal.any(axis=1)).sum() / selected.sum())
            within_fdp.append(np.mean([(called[row] & ~signal[row]).sum() / max(called[row].sum(), 1)
                                       for row in np.flatnonzero(selected)]))
            entry_fdp.append((called & ~signal).sum() / max(called.sum(), 1))
        assert (called.any(axis=1) == selected).all()  # every selected combination has at least one call
    assert np.mean(family_fdp) <= 0.1 + 0.02
    assert np.mean(within_fdp) <= 0.1 + 0.02
    assert np.mean(within_fdp) > 0.0 and np.mean(family_fdp) > 0.0  # the errors exist and are counted


def test_hierarchical_scope_through_the_pipeline_and_the_entry_table() -> None:
    dataset = read_tidy(REPO_ROOT / "tests" / "data" / "fixtures" / "korkut2015_skmel133_rppa.csv")
    result = call_interactions(dataset, InteractionSettings(fdr_scope="hierarchical", fdr=0.2).check("interactions"))
    tests = result.tests
    q, selected = hierarchical_q(tests.p, 0.2)
    np.testing.assert_array_equal(tests.call != 0, np.nan_to_num(q, nan=1.0) <= 0.2)
    assert ((tests.call != 0).any(axis=1) == selected).all()
    table = entry_table(result).to_pandas()
    assert "q_hierarchical" in table.columns
    assert ((table["call"] != "none") == (table["q_hierarchical"].fillna(1.0) <= 0.2)).all()
    plain = entry_table(call_interactions(dataset, InteractionSettings().check("interactions"))).to_pandas()
    assert "q_hierarchical" not in plain.columns
