"""limma-style variance moderation and metaMA's moderated unbiased standardized effect size.

The original compendium stored, per gene and contrast, the moderated unbiased standardized
effect size d' (Hedges-style, as in the metaMA R package) and its variance, computed from
limma's moderated t. These functions reproduce that chain so simulated and real data go
through the same arithmetic:

    squeeze_variances  -> empirical-Bayes prior (d0, s0^2) and posterior s2_post per gene
    moderated_t        -> t = (mean_test - mean_ctrl) / sqrt(s2_post * (1/n_ctrl + 1/n_test))
    effect_size        -> d' = cm * t / sqrt(n~), var(d'), with m = df_residual + d0

All functions are vectorized NumPy (arguments broadcast) and work in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln, polygamma

# Above this many degrees of freedom log(cm) uses its asymptotic series (gammaln differences lose digits).
_SERIES_DF = 1.0e3


@dataclass(frozen=True)
class SqueezedVariances:
    """Posterior variances and the fitted scaled inverse chi-square prior (limma's squeezeVar)."""

    s2_post: np.ndarray
    df_prior: float
    s2_prior: float


def trigamma_inverse(x: np.ndarray | float) -> np.ndarray:
    """Solve trigamma(y) = x for y > 0 (limma's trigammaInverse: Newton steps from y = 0.5 + 1/x)."""
    x = np.asarray(x, dtype=np.float64)
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = polygamma(1, y)
        step = tri * (1.0 - tri / x) / polygamma(2, y)
        y = y + step
        if np.all(-step / y < 1e-8):
            break
    y = np.where(x > 1e7, 1.0 / np.sqrt(x), y)
    return np.where(x < 1e-6, 1.0 / x, y)


def fit_f_dist(s2: np.ndarray, df_residual: float | np.ndarray) -> tuple[float, float]:
    """Prior (d0, s0^2) of s2 ~ s0^2 F(df_residual, d0), by moments of log s2 (limma's fitFDist).

    Non-finite s2 (unmeasured genes) are ignored. d0 is +inf when the log-variances vary no more
    than sampling noise alone explains (all genes share one true variance).
    """
    s2 = np.asarray(s2, dtype=np.float64)
    df = np.broadcast_to(np.asarray(df_residual, dtype=np.float64), s2.shape)
    ok = np.isfinite(s2) & np.isfinite(df) & (df > 1e-15)
    s2, df = np.maximum(s2[ok], 0.0), df[ok]
    n = s2.size
    if n < 2:
        raise ValueError(f"fit_f_dist needs at least 2 finite variances, got {n}")
    median = np.median(s2)
    median = 1.0 if median == 0 else median
    s2 = np.maximum(s2, 1e-5 * median)  # limma's guard against log(0)
    # df takes few distinct values (usually one): evaluate the special functions once per value
    df_values, position = np.unique(df, return_inverse=True)
    half = df_values / 2.0
    log_excess = np.log(s2) - (digamma(half) - np.log(half))[position]
    mean = log_excess.mean()
    var = ((log_excess - mean) ** 2).sum() / (n - 1) - polygamma(1, half)[position].mean()
    if var > 0:
        df_prior = float(2.0 * trigamma_inverse(var))
        s2_prior = float(np.exp(mean + digamma(df_prior / 2.0) - np.log(df_prior / 2.0)))
    else:
        # limma (since 2017): with no spread the prior variance is the plain pooled mean of the (floored)
        # variances, the scale's MLE; exp(mean of the log scale) is the evar > 0 estimate's limit and larger.
        df_prior, s2_prior = float("inf"), float(np.mean(s2))
    return df_prior, s2_prior


def squeeze_variances(s2: np.ndarray, df_residual: float | np.ndarray) -> SqueezedVariances:
    """Empirical-Bayes posterior variances s2_post = (d0 s0^2 + df s2) / (d0 + df); NaN stays NaN."""
    s2 = np.asarray(s2, dtype=np.float64)
    df = np.asarray(df_residual, dtype=np.float64)
    df_prior, s2_prior = fit_f_dist(s2, df)
    if np.isinf(df_prior):
        s2_post = np.where(np.isnan(s2), np.nan, s2_prior)
    else:
        s2_post = (df_prior * s2_prior + df * s2) / (df_prior + df)
    return SqueezedVariances(s2_post=np.asarray(s2_post, dtype=np.float64), df_prior=df_prior, s2_prior=s2_prior)


def moderated_t(
    mean_diff: np.ndarray, s2_post: np.ndarray, n_ctrl: float | np.ndarray, n_test: float | np.ndarray
) -> np.ndarray:
    """limma's moderated t of a two-group contrast (test minus control)."""
    mean_diff = np.asarray(mean_diff, dtype=np.float64)
    inverse_n = 1.0 / np.asarray(n_ctrl, dtype=np.float64) + 1.0 / np.asarray(n_test, dtype=np.float64)
    scale = np.asarray(s2_post, dtype=np.float64) * inverse_n
    return mean_diff / np.sqrt(scale)


def _log_hedges_correction(df_total: np.ndarray) -> np.ndarray:
    """log cm, cm = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2)); 0 at m = inf."""
    m = np.asarray(df_total, dtype=np.float64)
    large = m > _SERIES_DF
    exact_m = np.where(large, 2.0, m)  # placeholder keeps gammaln finite where the series is used
    exact = gammaln(exact_m / 2.0) - 0.5 * np.log(exact_m / 2.0) - gammaln((exact_m - 1.0) / 2.0)
    with np.errstate(divide="ignore"):
        inv = np.where(large, 1.0 / m, 0.0)
    # Stirling / Bernoulli-polynomial expansion of log Gamma(z) - log Gamma(z - 1/2) - log(z)/2, z = m/2.
    series = -0.75 * inv - 0.5 * inv**2 - 0.375 * inv**3
    return np.where(large, series, exact)


def hedges_correction(df_total: np.ndarray | float) -> np.ndarray:
    """cm, the small-sample bias correction of the standardized effect size (-> 1 as m -> inf)."""
    return np.exp(_log_hedges_correction(df_total))


def effect_size(
    t: np.ndarray, df_total: np.ndarray | float, n_ctrl: float | np.ndarray, n_test: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(d', var(d')) from a moderated t with m = df_total degrees of freedom (metaMA's effectsize).

    n~ = n_ctrl n_test / (n_ctrl + n_test); d' = cm t / sqrt(n~);
    var(d') = cm^2 (m / ((m-2) n~) + d'^2 (m/(m-2) - 1/cm^2)). Needs m > 2; m = inf is allowed.
    """
    t = np.asarray(t, dtype=np.float64)
    m = np.asarray(df_total, dtype=np.float64)
    n_ctrl = np.asarray(n_ctrl, dtype=np.float64)
    n_test = np.asarray(n_test, dtype=np.float64)
    n_eff = n_ctrl * n_test / (n_ctrl + n_test)
    log_cm = _log_hedges_correction(m)
    cm = np.exp(log_cm)
    dprime = cm * t / np.sqrt(n_eff)
    # m/(m-2) written as 1 + 2/(m-2) and 1/cm^2 - 1 as expm1(-2 log cm): exact limits at m = inf, no cancellation.
    ratio_excess = 2.0 / (m - 2.0)
    spread = ratio_excess - np.expm1(-2.0 * log_cm)
    vardprime = cm**2 * ((1.0 + ratio_excess) / n_eff + dprime**2 * spread)
    return dprime, vardprime
