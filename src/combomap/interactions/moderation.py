"""Empirical-Bayes moderation of the null's scale, in the limma style (Smyth 2004), for `variance=moderated`.

Model: the standardized residual of combination j and gene g (residual / the measured SD, or the raw residual
where the data have no variances) is x_jg = c_j w_ug e_jg, with e_jg standard normal, c_j a factor of the
combination (its design: its own replicates, the control it shares with its singles) and w_ug a factor of the
unit u = (study, gene): within a study every arm of a gene is divided by the same estimate of that gene's SD (d'),
or shares that gene's noise (raw effects), so a gene's departures in one study are large or small together.

- c_j^2: the robust (median) scale of the combination's row, a variance estimate with 0.37 (n_j - 1) degrees of
  freedom (the MAD's efficiency), squeezed toward the prior fitted across combinations (limma's squeezeVar): the
  data decide between one factor for the whole data set (the prior's d0 -> inf) and one per combination.
- w_ug^2 has a scaled inverse chi-square prior s0^2 d0 / chi2(d0): known where the data have d' variances
  (d0 = m, the d' degrees of freedom of the combination, s0 = 1 once c_j makes x / c_j a t_m), else fitted to the
  units' mean squares (as F(K_u, d0) s0^2, on their bulk: central_prior). For each entry the unit's other K - 1 entries are the data (leave one
  out: the entry tested never sets its own scale), the posterior variance is (d0 s0^2 + sum of their squares) /
  (d0 + K - 1), and the entry over its square root is Student t with d0 + K - 1 degrees of freedom: limma's
  moderated t, which is the ordinary t of the unit's other entries as d0 -> 0 and the prior's t_d0 for a unit
  of one entry. Interactions are what the test looks for, so they must not set the null: the fitted prior
  rests on the central units only (limma's moments of log s2, fit_prior, are moved by the few units holding
  interactions), and each entry's scale is winsorized against its unit's other interacting entries
  (moderated_variance).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import chi2
from scipy.stats import f as f_dist
from scipy.stats import t as student_t

from combomap.data.effect_size import fit_f_dist

MAD_EFFICIENCY = 0.37  # the MAD's efficiency at the normal (0.367): the scale of K residuals is worth ~0.37 (K - 1) df
CENTRAL_TAIL = 0.9  # the prior of the units without variances is fitted to their central 80 %
CENTRAL_MAX_UNITS = 50_000
MIN_PRIOR_DF, MAX_PRIOR_DF = 0.5, 1e6
WINSOR_P = 1e-4  # an entry beyond its null's two-sided 1e-4 point counts at that point in its unit's other entries' scales


@dataclass(frozen=True)
class Prior:
    """A scaled inverse chi-square prior of variances: df d0 (inf: every unit has the variance s0^2) and s0^2."""

    df: float
    var: float


def fit_prior(variances: np.ndarray, df: np.ndarray | float) -> Prior:
    """The prior of `variances` (each with `df` degrees of freedom) by limma's fitFDist; with fewer than two
    finite positive variances there is nothing to pool: d0 = 0 (each keeps its own)."""
    variances = np.asarray(variances, dtype=np.float64)
    df = np.broadcast_to(np.asarray(df, dtype=np.float64), variances.shape)
    usable = np.isfinite(variances) & (variances > 0) & np.isfinite(df) & (df > 0)
    if usable.sum() < 2:
        return Prior(df=0.0, var=float(np.nanmedian(variances)) if usable.any() else 1.0)
    prior_df, prior_var = fit_f_dist(variances[usable], df[usable])
    return Prior(df=prior_df, var=prior_var)


def posterior_variance(variances: np.ndarray, df: np.ndarray | float, prior: Prior) -> np.ndarray:
    """(d0 s0^2 + df s^2) / (d0 + df): s0^2 where d0 is infinite, s^2 where d0 is 0 (limma's squeezeVar)."""
    variances = np.asarray(variances, dtype=np.float64)
    df = np.asarray(df, dtype=np.float64)
    if np.isinf(prior.df):
        return np.where(np.isnan(variances), np.nan, prior.var)
    if prior.df == 0:
        return variances.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (prior.df * prior.var + df * variances) / (prior.df + df)


def combination_factors(standardized: np.ndarray, median_to_sd: np.ndarray) -> tuple[np.ndarray, Prior]:
    """(c_j, prior): each row's robust scale median |x_j| x median_to_sd_j, its square squeezed toward the prior
    fitted across rows (0.37 (n_j - 1) degrees of freedom each); NaN for a row with no finite value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = (np.nanmedian(np.abs(standardized), axis=1) * median_to_sd) ** 2
    counts = np.isfinite(standardized).sum(axis=1)
    df = np.maximum(MAD_EFFICIENCY * (counts - 1.0), 0.0)
    prior = fit_prior(raw, df)
    squeezed = np.where(raw > 0, posterior_variance(raw, df, prior), raw)
    return np.sqrt(squeezed), prior


def unit_sums(values: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of squares, count) of the finite values of each unit: rows of one unit label x the same column,
    broadcast back to every entry (n_rows x n_cols each)."""
    squares = np.where(np.isfinite(values), values**2, 0.0)
    finite = np.isfinite(values).astype(np.float64)
    total, count = np.empty_like(squares), np.empty_like(squares)
    for label in np.unique(units):
        rows = units == label
        total[rows] = squares[rows].sum(axis=0)
        count[rows] = finite[rows].sum(axis=0)
    return total, count


def unit_mean_squares(values: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean square, count) of each unit and column once (flattened; units without a value left out)."""
    total, count = unit_sums(values, units)
    _, first = np.unique(units, return_index=True)
    total, count = total[first].ravel(), count[first].ravel()
    keep = count > 0
    return total[keep] / count[keep], count[keep]


def _pit(variances: np.ndarray, df: np.ndarray, prior_df: float, log_prior_var: float) -> np.ndarray:
    """P(s2 <= variances) where s2 ~ s0^2 F(df, d0), the units' marginal law under the prior (chi2_df / df at
    d0 = inf)."""
    ratio = variances / np.exp(log_prior_var)
    if np.isinf(prior_df):
        return chi2.cdf(ratio * df, df)
    return f_dist.cdf(ratio, df, prior_df)


def central_prior(variances: np.ndarray, df: np.ndarray, tail: float = CENTRAL_TAIL,
                  max_units: int = CENTRAL_MAX_UNITS) -> Prior:
    """The prior fitted to the bulk of the units' variances: s0^2 puts their median at the marginal law's median
    (the law's own probability 1/2), d0 makes the share of units between the law's `1 - tail` and `tail`
    quantiles the data's (tail - (1 - tail)). Unlike the moments of log s2 (which a few units holding interactions
    move: heavier tails, a smaller d0), only the central units decide, as in Efron's empirical null. d0 is inf
    where the units spread no more than sampling alone explains, and at least MIN_PRIOR_DF. At most `max_units`
    units (evenly spaced) are used."""
    variances, df = np.asarray(variances, dtype=np.float64), np.asarray(df, dtype=np.float64)
    usable = np.isfinite(variances) & (variances > 0) & (df > 0)
    variances, df = variances[usable], df[usable]
    if variances.size < 2:
        return fit_prior(variances, df)
    if variances.size > max_units:
        picked = np.linspace(0, variances.size - 1, max_units).round().astype(int)
        variances, df = variances[picked], df[picked]
    span = np.log(variances)
    bracket = (float(span.min()) - 5.0, float(span.max()) + 5.0)

    def log_scale(prior_df: float) -> float:
        return float(brentq(lambda log_var: np.median(_pit(variances, df, prior_df, log_var)) - 0.5, *bracket,
                            xtol=1e-6))

    def excess(prior_df: float) -> float:
        pit = _pit(variances, df, prior_df, log_scale(prior_df))
        return float(np.mean((pit > 1.0 - tail) & (pit < tail)) - (2.0 * tail - 1.0))

    if excess(np.inf) >= 0:
        return Prior(df=np.inf, var=float(np.exp(log_scale(np.inf))))
    if excess(MIN_PRIOR_DF) <= 0:
        prior_df = MIN_PRIOR_DF
    else:
        prior_df = float(np.exp(brentq(lambda log_df: excess(np.exp(log_df)), np.log(MIN_PRIOR_DF),
                                       np.log(MAX_PRIOR_DF), xtol=1e-4)))
    return Prior(df=prior_df, var=float(np.exp(log_scale(prior_df))))


def leave_one_out(values: np.ndarray, units: np.ndarray, prior_df: np.ndarray | float,
                  prior_var: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(posterior variance, degrees of freedom) of each entry's unit without the entry:
    (d0 s0^2 + S_u - x^2) / (d0 + K_u - 1) with d0 + K_u - 1 degrees of freedom; an infinite d0 gives s0^2 and inf.
    prior_df, prior_var: scalars or per entry."""
    total, count = unit_sums(values, units)
    others = np.where(np.isfinite(values), total - values**2, np.nan)
    others_df = count - 1.0
    prior_df = np.broadcast_to(np.asarray(prior_df, dtype=np.float64), values.shape)
    prior_var = np.broadcast_to(np.asarray(prior_var, dtype=np.float64), values.shape)
    infinite = np.isinf(prior_df)
    finite_df = np.where(infinite, 0.0, prior_df)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (finite_df * prior_var + np.maximum(others, 0.0)) / (finite_df + others_df)
    variance = np.where(infinite, prior_var, pooled)
    df = np.where(infinite, np.inf, finite_df + others_df)
    untestable = ~np.isfinite(values) | ~(df > 0)
    return np.where(untestable, np.nan, variance), np.where(untestable, np.nan, df)


def moderated_variance(values: np.ndarray, units: np.ndarray, prior_df: np.ndarray | float,
                       prior_var: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """leave_one_out, made robust to the unit's other interacting entries in one step: an entry beyond its null's
    two-sided WINSOR_P point (first pass) enters the others' sums at that point (winsorized). Under the null this
    touches one entry in 10^4 and lowers a sum by about 0.03 % of an entry's variance; an interaction of size s
    adds at most about 15 instead of s^2 to its unit's other entries' sums."""
    variance, df = leave_one_out(values, units, prior_df, prior_var)
    with np.errstate(invalid="ignore"):
        bound = student_t.isf(WINSOR_P / 2.0, df) * np.sqrt(variance)
        capped = np.where(np.abs(values) > bound, np.sign(values) * bound, values)
    return leave_one_out(capped, units, prior_df, prior_var)
