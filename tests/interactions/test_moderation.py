"""The empirical-Bayes scale of variance=moderated: the prior recovered from its own draws, limma's squeezeVar
formulas on hand-checkable numbers, and the moderated t's null distribution (t with d0 + K - 1 degrees of freedom,
the ordinary t of the unit's other entries as d0 -> 0)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import digamma, polygamma
from scipy.stats import kstest
from scipy.stats import t as student_t

from combomap.interactions.moderation import (
    Prior,
    central_prior,
    combination_factors,
    fit_prior,
    leave_one_out,
    moderated_variance,
    posterior_variance,
    unit_mean_squares,
)


def _scaled_inverse_chi2(rng: np.random.Generator, prior_df: float, prior_var: float, size) -> np.ndarray:
    return prior_var * prior_df / rng.chisquare(prior_df, size=size)


def test_fit_prior_recovers_d0_and_s0_from_its_draws() -> None:
    rng = np.random.default_rng(0)
    sigma2 = _scaled_inverse_chi2(rng, 10.0, 0.5, 200_000)
    s2 = sigma2 * rng.chisquare(4, size=sigma2.size) / 4
    prior = fit_prior(s2, 4.0)
    assert prior.df == pytest.approx(10.0, rel=0.1)
    assert prior.var == pytest.approx(0.5, rel=0.03)
    same = 0.5 * rng.chisquare(4, size=50_000) / 4  # one variance for all: nothing between units to moderate
    assert np.isinf(fit_prior(same, 4.0).df)


def test_fit_prior_is_limma_fitfdist_on_a_hand_example() -> None:
    s2, df = np.array([0.5, 1.0, 2.0, 4.0]), 4.0
    excess = np.log(s2) - digamma(df / 2) + np.log(df / 2)
    spread = excess.var(ddof=1) - polygamma(1, df / 2)  # 0.8007 - 0.6449 = 0.156 > 0: a finite d0
    assert spread == pytest.approx(0.1558, abs=1e-3)
    prior = fit_prior(s2, df)
    assert polygamma(1, prior.df / 2) == pytest.approx(spread, rel=1e-6)  # d0 = 2 trigammaInverse(spread)
    assert 13 < prior.df < 15
    assert prior.var == pytest.approx(np.exp(excess.mean() + digamma(prior.df / 2) - np.log(prior.df / 2)))
    assert fit_prior(np.array([2.0, np.nan]), 4.0) == Prior(df=0.0, var=2.0)  # one unit: nothing to pool


def test_posterior_variance_is_limma_squeezevar() -> None:
    s2, df = np.array([1.0, 3.0, np.nan]), 6.0
    np.testing.assert_allclose(posterior_variance(s2, df, Prior(4.0, 2.0)), [1.4, 2.6, np.nan])  # (8 + 6 s2) / 10
    np.testing.assert_allclose(posterior_variance(s2, df, Prior(np.inf, 2.0)), [2.0, 2.0, np.nan])
    np.testing.assert_allclose(posterior_variance(s2, df, Prior(0.0, 2.0)), s2)


def test_leave_one_out_on_a_hand_example() -> None:
    values = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 5.0], [4.0, 1.0]])
    units = np.array(["a", "a", "a", "b"])
    variance, df = leave_one_out(values, units, 2.0, 1.0)
    # column 0, unit a: (2 x 1 + the other two squares) / (2 + 2); unit b alone: the prior, d0 degrees of freedom
    np.testing.assert_allclose(variance[:, 0], [15 / 4, 12 / 4, 7 / 4, 1.0])
    np.testing.assert_allclose(df[:, 0], [4.0, 4.0, 4.0, 2.0])
    # column 1: the NaN entry is not tested and not counted
    np.testing.assert_allclose(variance[:, 1], [(2 + 25) / 3, np.nan, (2 + 4) / 3, 1.0])
    np.testing.assert_allclose(df[:, 1], [3.0, np.nan, 3.0, 2.0])
    variance, df = leave_one_out(values, units, np.inf, 1.5)
    assert np.all(variance[np.isfinite(values)] == 1.5) and np.all(np.isinf(df[np.isfinite(values)]))
    variance, df = leave_one_out(values, units, 0.0, 1.0)  # no prior and no other entry: untestable
    assert np.isnan(variance[3, 0]) and np.isnan(df[3, 0])


def test_moderated_t_is_the_ordinary_t_as_d0_vanishes() -> None:
    rng = np.random.default_rng(1)
    n_units, k = 4000, 6
    sigma = np.exp(rng.normal(size=n_units))  # any spread between units: the unit's own entries set its scale
    values = rng.standard_normal((k, n_units)) * sigma
    units = np.zeros(k, dtype=int)
    variance, df = leave_one_out(values, units, 1e-12, 1.0)
    others = ((values**2).sum(axis=0) - values**2) / (k - 1)
    np.testing.assert_allclose(variance, others, rtol=1e-9)
    np.testing.assert_allclose(df, k - 1)
    statistic = (values / np.sqrt(variance)).ravel()
    assert kstest(statistic, student_t(k - 1).cdf).pvalue > 0.01


def test_moderated_t_is_student_t_with_d0_plus_k_minus_1_degrees_of_freedom() -> None:
    rng = np.random.default_rng(2)
    n_units, k, prior = 20_000, 3, Prior(8.0, 2.0)
    sigma2 = _scaled_inverse_chi2(rng, prior.df, prior.var, n_units)
    values = rng.standard_normal((k, n_units)) * np.sqrt(sigma2)
    units = np.zeros(k, dtype=int)
    fitted = central_prior(*unit_mean_squares(values, units))
    assert fitted.df == pytest.approx(8.0, rel=0.25) and fitted.var == pytest.approx(2.0, rel=0.05)
    variance, df = leave_one_out(values, units, prior.df, prior.var)
    np.testing.assert_allclose(df, prior.df + k - 1)
    statistic = (values / np.sqrt(variance)).ravel()
    assert kstest(statistic, student_t(prior.df + k - 1).cdf).pvalue > 0.01
    assert kstest(statistic, "norm").pvalue < 1e-6  # the normal would be wrong: the scale is estimated


def test_combination_factors_pool_only_what_the_rows_share() -> None:
    rng = np.random.default_rng(3)
    shared = rng.standard_normal((40, 30)) * 2.0  # 40 rows of 30 genes, one scale: pulled to the common one
    factors, prior = combination_factors(shared, np.full(40, 1.482602218505602))
    assert np.isinf(prior.df) or prior.df > 100
    assert np.ptp(factors) < 0.2 * np.ptp(1.4826 * np.median(np.abs(shared), axis=1))
    assert np.median(factors) == pytest.approx(2.0, rel=0.1)
    distinct = rng.standard_normal((3, 5000)) * np.array([[1.0], [2.0], [4.0]])  # scales that differ: kept
    factors, _ = combination_factors(distinct, np.full(3, 1.482602218505602))
    np.testing.assert_allclose(factors, [1.0, 2.0, 4.0], rtol=0.05)


def test_central_prior_is_not_moved_by_a_few_interacting_units() -> None:
    rng = np.random.default_rng(5)
    sigma2 = _scaled_inverse_chi2(rng, 12.0, 1.0, 40_000)
    values = rng.standard_normal((2, sigma2.size)) * np.sqrt(sigma2)
    clean = central_prior(*unit_mean_squares(values, np.zeros(2, dtype=int)))
    assert clean.df == pytest.approx(12.0, rel=0.3) and clean.var == pytest.approx(1.0, rel=0.05)
    values[0, :400] += rng.choice([-6.0, 6.0], size=400)  # 1 % of the units hold an interaction of 6 SD
    variances, df = unit_mean_squares(values, np.zeros(2, dtype=int))
    robust, moments = central_prior(variances, df), fit_prior(variances, df)
    assert robust.df == pytest.approx(clean.df, rel=0.2)
    assert moments.df < 0.75 * clean.df  # limma's moments of log s2 read the interactions as heavier tails
    assert np.isinf(central_prior(*unit_mean_squares(rng.standard_normal((3, 20_000)), np.zeros(3, dtype=int))).df)


def test_winsorizing_bounds_what_an_interaction_adds_to_its_units_other_scales() -> None:
    rng = np.random.default_rng(6)
    values = rng.standard_normal((30, 2000))
    units = np.zeros(30, dtype=int)
    plain, _ = leave_one_out(values, units, 10.0, 1.0)
    robust, robust_df = moderated_variance(values, units, 10.0, 1.0)
    changed = ~np.isclose(robust, plain, rtol=1e-12)  # under the null: only the genes of the rare capped entry
    assert changed.mean() < 0.01
    assert np.abs(robust / plain - 1.0).max() < 0.1
    values[0] += 20.0  # one interaction of 20 SD in every gene
    plain, _ = leave_one_out(values, units, 10.0, 1.0)
    robust, _ = moderated_variance(values, units, 10.0, 1.0)
    others = slice(1, None)
    assert np.median(plain[others]) > 1.0 + 350 / 38  # the 400 it adds, over d0 + K - 1 = 38
    assert np.median(robust[others]) < 1.0 + 20 / 38  # at most the null's 1e-4 point squared
    np.testing.assert_allclose(robust_df, 39.0)
