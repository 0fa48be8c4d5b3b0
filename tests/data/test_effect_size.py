"""Moderated effect sizes against hand-computed values (math.lgamma), limits, shapes, squeezing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import polygamma

from combomap.data.effect_size import (
    effect_size,
    fit_f_dist,
    hedges_correction,
    moderated_t,
    squeeze_variances,
    trigamma_inverse,
)


def _by_hand(t: float, m: float, n_ctrl: int, n_test: int) -> tuple[float, float]:
    """metaMA's effectsize written out with the standard library only."""
    n_eff = n_ctrl * n_test / (n_ctrl + n_test)
    cm = math.exp(math.lgamma(m / 2) - math.log(math.sqrt(m / 2)) - math.lgamma((m - 1) / 2))
    d = t / math.sqrt(n_eff)
    dprime = cm * d
    vardprime = cm**2 * (m / ((m - 2) * n_eff) + dprime**2 * (m / (m - 2) - 1 / cm**2))
    return dprime, vardprime


@pytest.mark.parametrize(
    ("t", "m", "n_ctrl", "n_test"),
    [(2.5, 10.3, 3, 3), (-1.2, 25.0, 2, 4), (7.0, 4.5, 4, 2), (0.0, 12.0, 3, 2)],
)
def test_effect_size_matches_hand_computation(t: float, m: float, n_ctrl: int, n_test: int) -> None:
    dprime, vardprime = effect_size(t, m, n_ctrl, n_test)
    want_d, want_v = _by_hand(t, m, n_ctrl, n_test)
    assert float(dprime) == pytest.approx(want_d, rel=1e-12, abs=1e-15)
    assert float(vardprime) == pytest.approx(want_v, rel=1e-12)


def test_known_numbers() -> None:
    # t = 2.5, m = 10.3, 3 vs 3 (n~ = 1.5), evaluated once with mpmath at 30 digits
    dprime, vardprime = effect_size(2.5, 10.3, 3, 3)
    assert float(hedges_correction(10.3)) == pytest.approx(0.925061218269690, rel=1e-13)
    assert float(dprime) == pytest.approx(1.888273304665097, rel=1e-13)
    assert float(vardprime) == pytest.approx(0.928812828673511, rel=1e-12)


def test_infinite_and_large_degrees_of_freedom() -> None:
    t, n_ctrl, n_test = np.array([-3.0, 0.5, 2.0]), 3, 4
    n_eff = n_ctrl * n_test / (n_ctrl + n_test)
    dprime, vardprime = effect_size(t, np.inf, n_ctrl, n_test)
    assert np.all(np.isfinite(dprime)) and np.all(np.isfinite(vardprime))
    np.testing.assert_allclose(dprime, t / math.sqrt(n_eff), rtol=1e-15)
    np.testing.assert_allclose(vardprime, 1.0 / n_eff, rtol=1e-15)
    assert float(hedges_correction(np.inf)) == 1.0
    # large m approaches the limit smoothly, and the exact / series switch is seamless
    d_big, v_big = effect_size(t, 1e9, n_ctrl, n_test)
    np.testing.assert_allclose(d_big, dprime, rtol=1e-8)
    np.testing.assert_allclose(v_big, vardprime, rtol=1e-8)
    for m in (999.0, 1000.0, 1001.0, 5000.0):
        want = _by_hand(2.0, m, n_ctrl, n_test)
        got = effect_size(2.0, m, n_ctrl, n_test)
        assert float(got[0]) == pytest.approx(want[0], rel=1e-10)
        assert float(got[1]) == pytest.approx(want[1], rel=1e-6)  # the hand formula loses digits here


def test_effect_size_broadcasts() -> None:
    t = np.linspace(-2, 2, 12).reshape(3, 4)
    m = np.array([5.0, 10.0, np.inf, 30.0])
    n_test = np.array([[2], [3], [4]])
    dprime, vardprime = effect_size(t, m, 3, n_test)
    assert dprime.shape == vardprime.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            if np.isinf(m[j]):
                continue
            want = _by_hand(float(t[i, j]), float(m[j]), 3, int(n_test[i, 0]))
            assert dprime[i, j] == pytest.approx(want[0], rel=1e-12, abs=1e-15)
            assert vardprime[i, j] == pytest.approx(want[1], rel=1e-12)


def test_moderated_t() -> None:
    t = moderated_t(np.array([1.0, -2.0]), np.array([0.5, 2.0]), 3, np.array([3, 2]))
    np.testing.assert_allclose(t, [1.0 / math.sqrt(0.5 * (2 / 3)), -2.0 / math.sqrt(2.0 * (1 / 3 + 1 / 2))])


def test_trigamma_inverse_inverts() -> None:
    x = np.array([1e-3, 0.05, 0.5, 2.0, 40.0])
    np.testing.assert_allclose(polygamma(1, trigamma_inverse(x)), x, rtol=1e-6)


def test_squeeze_recovers_the_prior() -> None:
    rng = np.random.default_rng(1)
    n, df_prior, s2_prior, df_residual = 200_000, 4.0, 0.05, 6
    sigma2 = s2_prior * df_prior / rng.chisquare(df_prior, n)
    s2 = sigma2 * rng.chisquare(df_residual, n) / df_residual
    s2[:10] = np.nan  # unmeasured genes are ignored and stay NaN
    squeezed = squeeze_variances(s2, df_residual)
    assert squeezed.df_prior == pytest.approx(df_prior, rel=0.05)
    assert squeezed.s2_prior == pytest.approx(s2_prior, rel=0.03)
    assert np.isnan(squeezed.s2_post[:10]).all()
    want = (squeezed.df_prior * squeezed.s2_prior + df_residual * s2[10:]) / (squeezed.df_prior + df_residual)
    np.testing.assert_allclose(squeezed.s2_post[10:], want)
    # a vector of df (two designs) recovers the same prior
    dfs = np.where(rng.random(n) < 0.5, 4.0, 8.0)
    s2_mixed = sigma2 * rng.chisquare(dfs) / dfs
    assert fit_f_dist(s2_mixed, dfs)[0] == pytest.approx(df_prior, rel=0.06)


@pytest.mark.parametrize(
    ("s2", "df", "want_scale"),
    [
        # R 4.2, limma 3.54: fitFDist(x, df1)$scale with $df2 == Inf
        ([1.00, 1.01, 0.99, 1.005, 0.995, 1.002], 4, 1.0003333333333333),
        ([0.5, 2.1, 1.3, 0.7, 3.2, 0.9, 1.1, 0.2], 3, 1.25),
    ],
)
def test_infinite_prior_df_takes_the_plain_mean_as_limma(s2: list[float], df: float, want_scale: float) -> None:
    df_prior, s2_prior = fit_f_dist(np.array(s2), df)
    assert np.isinf(df_prior)
    assert s2_prior == pytest.approx(want_scale, rel=1e-12)


def test_squeeze_with_no_prior_spread_gives_infinite_df() -> None:
    rng = np.random.default_rng(2)
    s2 = 0.1 * rng.chisquare(5, 50_000) / 5  # every gene has the same true variance
    squeezed = squeeze_variances(s2, 5)
    assert np.isinf(squeezed.df_prior)
    # limma's rule for an infinite prior df: the plain mean of the variances (floored at 1e-5 x median)
    floored = np.maximum(s2, 1e-5 * np.median(s2))
    assert squeezed.s2_prior == pytest.approx(float(np.mean(floored)), rel=1e-12)
    assert squeezed.s2_prior == pytest.approx(0.1, rel=0.02)
    np.testing.assert_allclose(squeezed.s2_post, squeezed.s2_prior)
    dprime, vardprime = effect_size(np.array([1.0]), 5 + squeezed.df_prior, 3, 3)
    assert np.isfinite(dprime).all() and np.isfinite(vardprime).all()


def test_squeeze_needs_two_variances() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        squeeze_variances(np.array([0.1, np.nan]), 4)
