"""The null distribution of observed - expected where the combination does not interact: a scale per entry and
degrees of freedom per combination; departure / scale is Student t with those degrees of freedom.

Methods (`interactions.variance`):
- measured: from the singles' variances. combomap's effects are metaMA standardized effect sizes d' (GEO
  compendia, pseudobulked single cells, the simulator), whose variance has the form
      var(d') = a + b d'^2,  a = cm^2 m / ((m - 2) n~),  b = cm^2 m / (m - 2) - 1
  (combomap.data.effect_size; m the degrees of freedom of the gene variances, cm the Hedges correction). The
  d'^2 part is the uncertainty of the gene's SD estimate, which multiplies every arm of a study alike and cancels
  in observed - expected of a non-interacting combination; so per combination the singles' variances are fitted
  as v = a_k + b d_k^2 (one a per single, one b), the residual's variance is built from the base parts
  a_k = v_k - b d_k^2 only, var = (v1' + v2') / 2 + single_weight (v1' + v2') (the combination's own variance is not
  in a ComboDataset; it is measured in the same study, so it is taken as the singles' mean), and m is solved from
  b (b <= 0: variances of another form, m = infinity, a normal null).
  Calibration (`calibrate`, the default): one factor for the whole data set, k = median |t| / median |T_m| over the
  tested entries (Efron's empirical null, scale only): the variances set each entry's relative precision, the bulk
  of the entries the scale. It is needed where the singles and the combination share a control (GEO studies,
  Perturb-seq pseudobulk, the simulator): their noises are then positively correlated and the summed variance is
  too large (k is about 0.8 on the simulator). Without it the scale is the theoretical one for independent arms.
- gene_mad: per gene, 1.4826 x the median |residual| over the combinations that test it (robust to the few
  interacting combinations; needs min_combos_per_gene of them). A scale from K residuals is itself uncertain:
  the null is Student t with at most 0.37 (K - 1) degrees of freedom (0.37: the MAD's efficiency at the normal).
- combo_mad: per combination, the same over its genes (one combination, e.g. a single double perturbation).
  The null's shape (`null_shape`): normal, or fitted to the bulk of the standardized residuals u: Student t whose
  ratio of quantiles q90(|u|) / q50(|u|) is the data's (2.44 is the normal's; noise that differs between the entries
  pooled in one scale gives heavier tails and fewer degrees of freedom), scaled so its median |u| is the data's. The
  central 90 % of the entries decide it, so a few per cent of interacting entries barely move it; more widen the
  null too (the safe side: fewer calls). bulk is the default: where the tails are no heavier than the normal's it
  is the normal (one screen), where they are (entries of unequal noise pooled in one scale) it keeps the FDR that
  the normal loses on the simulator (docs/interactions.md).
- moderated: an empirical-Bayes scale in the limma style (combomap.interactions.moderation): the measured SD
  (with variances; else 1) x a factor per combination, squeezed across combinations (one factor for the data set
  when they agree) x a scale per (study, gene) from the study's other combinations, moderated toward a scaled
  inverse chi-square prior (the d' degrees of freedom with variances, fitted to the bulk without): Student t
  with d0 + K - 1 degrees of freedom (leave one out). Without variances it serves one study and many (a gene's
  noise per study); with them it adds to the measured null what the study's other combinations say of each gene.
- auto: measured where the data have variances; else gene_mad for one study whose every tested gene is tested in
  at least min_combos_per_gene combinations (one design: a gene's combinations share its noise), else combo_mad
  (a combination's genes share its study's design; a gene's noise differs between studies). Said in one log line.
A scale of 0 (a constant residual) leaves those entries untested.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import t as student_t

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.effect_size import hedges_correction
from combomap.interactions.moderation import (
    MAD_EFFICIENCY,
    central_prior,
    combination_factors,
    moderated_variance,
    unit_mean_squares,
)

MAD_TO_SD = 1.482602218505602  # 1 / Phi^-1(3/4): the MAD of a normal sample times this is its SD
MAX_DF = 1e6  # above this the t is the normal
TAIL_QUANTILE = 0.9  # the null's shape: q(TAIL_QUANTILE) / q(0.5) of |standardized residual|
BASE_FLOOR = 0.05  # a base variance is at least this share of the combination's median singles' variance


@dataclass(frozen=True)
class NullScale:
    """scale and df (n_combos x n_genes; NaN scale where untested, inf df = normal): departure / scale ~ t_df.
    method used, calibration factor k (1: none), the log line."""

    scale: np.ndarray
    df: np.ndarray
    method: str
    calibration: float
    note: str


def entries_to_test(dataset: ComboDataset, expected: np.ndarray) -> np.ndarray:
    """Entries with the combination, both singles and the expectation measured."""
    return (~np.isnan(dataset.combo_effect) & ~np.isnan(dataset.drug1_effect) & ~np.isnan(dataset.drug2_effect)
            & ~np.isnan(expected))


def check_singles(dataset: ComboDataset, tested: np.ndarray) -> None:
    """A combination with no gene where its singles (and its expectation) are measured cannot be tested: one line."""
    empty = ~tested.any(axis=1)
    if empty.any():
        row = int(np.argmax(empty))
        combo = dataset.combos.iloc[row]
        lacking = [name for name, values in (("drug1", dataset.drug1_effect), ("drug2", dataset.drug2_effect))
                   if np.isnan(values[row]).all()]
        what = (f"its single(s) {', '.join(repr(str(combo[name])) for name in lacking)} are not measured on any gene"
                if lacking else "no gene has the combination, both singles and the expectation measured")
        raise DataError(f"{dataset.source}: combination {combo['combo']!r} cannot be tested: {what} "
                        f"({int(empty.sum())} combination(s) in all); drop them or give their singles")


def robust_scale(residual: np.ndarray, axis: int) -> np.ndarray:
    """1.4826 x the median |residual| along `axis`, ignoring NaN (NaN where all are): the SD of a normal residual
    centered on 0. Not centered on the residuals' median, so a departure shared by every entry of the unit (a
    shared control's noise in a screen, or a shift common to a gene's combinations) widens the scale instead of
    being called everywhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN slice is an untested gene, not news
        return MAD_TO_SD * np.nanmedian(np.abs(residual), axis=axis)


def _d2_growth(m: float) -> float:
    """b of var(d') = a + b d'^2 at m degrees of freedom: cm^2 m / (m - 2) - 1 (decreasing from +inf to 0)."""
    return float(hedges_correction(m)) ** 2 * m / (m - 2.0) - 1.0


def effect_size_df(b: float) -> float:
    """The degrees of freedom m of d' whose variance grows as b d'^2; inf where b is too small to tell (b <= 0)."""
    if not b > _d2_growth(MAX_DF):
        return float("inf")
    return float(brentq(lambda m: _d2_growth(m) - b, 2.0 + 1e-6, MAX_DF, xtol=1e-6))


def variance_structure(v1: np.ndarray, v2: np.ndarray, d1: np.ndarray,
                       d2: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """One combination's singles' variances as v = a_k + b d_k^2 (least squares over its genes): (base1, base2, b)
    with base_k = v_k - b d_k^2 per gene (floored), b >= 0."""
    n = v1.size
    design = np.zeros((2 * n, 3))
    design[:n, 0], design[n:, 1] = 1.0, 1.0
    design[:, 2] = np.concatenate([d1, d2]) ** 2
    coefficients, *_ = np.linalg.lstsq(design, np.concatenate([v1, v2]), rcond=None)
    b = max(float(coefficients[2]), 0.0)
    floor = BASE_FLOOR * float(np.median(np.concatenate([v1, v2])))
    return np.maximum(v1 - b * d1**2, floor), np.maximum(v2 - b * d2**2, floor), b


def _tail_ratio(df: float) -> float:
    """q_TAIL(|T|) / q_0.5(|T|) of Student t with df degrees of freedom (decreasing to the normal's 2.44)."""
    return float(student_t.ppf(0.5 + TAIL_QUANTILE / 2, df) / student_t.ppf(0.75, df))


def bulk_shape(standardized: np.ndarray) -> tuple[float, float]:
    """(df, factor): the Student t matching the tail ratio of |standardized| (finite values), and the factor
    to multiply the scale by so its median |u| is that t's; (inf, factor) when the tails are not heavier than
    the normal's."""
    values = np.abs(standardized[np.isfinite(standardized)])
    median, tail = np.quantile(values, [0.5, TAIL_QUANTILE])
    ratio = tail / median if median > 0 else float("nan")
    df = float("inf")
    if np.isfinite(ratio) and ratio > _tail_ratio(MAX_DF):
        heaviest = ratio >= _tail_ratio(1.0)
        df = 1.0 if heaviest else float(brentq(lambda m: _tail_ratio(m) - ratio, 1.0, MAX_DF, xtol=1e-6))
    return df, float(median / student_t.ppf(0.75, df)) if median > 0 else 1.0


def resolve_method(method: str, dataset: ComboDataset, tested: np.ndarray, min_combos_per_gene: int) -> tuple[str, str]:
    """(method, why) for `auto`; an explicit method is checked against the data (one line when it cannot work)."""
    per_gene = tested.sum(axis=0)
    thin_gene = int(per_gene[per_gene > 0].min()) if (per_gene > 0).any() else 0
    if method == "measured" and not dataset.has_variances:
        raise DataError(f"{dataset.source}: interactions.variance=measured needs the singles' variances (v1, v2) "
                        "and the data have none; use variance=auto, gene_mad or combo_mad")
    if method == "gene_mad" and thin_gene < min_combos_per_gene:
        gene = dataset.genes[int(np.flatnonzero((per_gene > 0) & (per_gene < min_combos_per_gene))[0])]
        raise DataError(f"{dataset.source}: interactions.variance=gene_mad needs every gene tested in >= "
                        f"interactions.min_combos_per_gene={min_combos_per_gene} combinations; gene {gene!r} is "
                        f"tested in {thin_gene}; use variance=combo_mad or lower min_combos_per_gene")
    if method != "auto":
        return method, f"interactions.variance={method}"
    if dataset.has_variances:
        return "measured", "the data have variances"
    n_studies = dataset.combos["study"].nunique()
    if n_studies == 1 and thin_gene >= min_combos_per_gene:
        return "gene_mad", (f"the data have no variances: one study, every gene tested in >= {thin_gene} combinations, "
                            "so each gene's noise is its robust residual scale over them")
    reason = (f"{n_studies} studies" if n_studies > 1
              else f"some gene is tested in only {thin_gene} combination(s) (< {min_combos_per_gene})")
    return "combo_mad", (f"the data have no variances and {reason}: each combination's noise is its robust residual "
                         "scale over its genes")


def measured_scale(dataset: ComboDataset, tested: np.ndarray, single_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """(sd, df): the SD of observed - expected from the base parts of the singles' variances, and each
    combination's degrees of freedom (module docstring)."""
    sd = np.full(tested.shape, np.nan)
    df = np.full(tested.shape[0], np.inf)
    for row in range(tested.shape[0]):
        genes = np.flatnonzero(tested[row])
        base1, base2, b = variance_structure(*(values[row, genes].astype(np.float64) for values in (
            dataset.drug1_var, dataset.drug2_var, dataset.drug1_effect, dataset.drug2_effect)))
        sd[row, genes] = np.sqrt((0.5 + single_weight) * (base1 + base2))
        df[row] = effect_size_df(b)
    return sd, df


def moderated_scale(dataset: ComboDataset, tested: np.ndarray, residual: np.ndarray,
                    single_weight: float) -> tuple[np.ndarray, np.ndarray, float, str]:
    """(scale, df, median combination factor, detail) of `variance=moderated` (combomap.interactions.moderation):
    the measured SD where the data have variances (else 1) x a squeezed factor per combination x the leave-one-out
    moderated scale of the entry's (study, gene)."""
    if dataset.has_variances:
        sd, row_df = measured_scale(dataset, tested, single_weight)
        median_to_sd = 1.0 / student_t.ppf(0.75, row_df)
    else:
        sd, row_df, median_to_sd = np.where(tested, 1.0, np.nan), None, np.full(tested.shape[0], MAD_TO_SD)
    with np.errstate(invalid="ignore", divide="ignore"):
        standardized = residual / sd
        factors, combo_prior = combination_factors(standardized, median_to_sd)
        within = standardized / factors[:, None]
    units = dataset.combos["study"].astype(str).to_numpy()
    if row_df is not None:
        prior_df, prior_var, prior_text = row_df[:, None], 1.0, "the d' degrees of freedom m of each combination"
    else:
        prior = central_prior(*unit_mean_squares(within, units))
        prior_df, prior_var = prior.df, prior.var
        prior_text = f"fitted: d0 = {prior.df:.1f}, s0 = {np.sqrt(prior.var):.3f}"
    variance, df = moderated_variance(within, units, prior_df, prior_var)
    scale = sd * factors[:, None] * np.sqrt(variance)
    pooled = "one factor" if np.isinf(combo_prior.df) else f"prior d0 = {combo_prior.df:.0f}"
    detail = (("the measured base variances" if row_df is not None else "no variances")
              + f" x a factor per combination (median {np.nanmedian(factors):.3f}, squeezed across combinations: "
              f"{pooled}) x each (study, gene)'s moderated scale from its other combinations (prior {prior_text}); "
              f"t degrees of freedom median {np.nanmedian(df[tested]):.1f}")
    return scale, df, float(np.nanmedian(factors)), detail


def null_scale(dataset: ComboDataset, expected: np.ndarray, single_weight: float, method: str,
               min_combos_per_gene: int, calibrate: bool, null_shape: str = "bulk") -> NullScale:
    """The null scale and degrees of freedom of observed - expected by `method` (see the module docstring)."""
    tested = entries_to_test(dataset, expected)
    method, why = resolve_method(method, dataset, tested, min_combos_per_gene)
    residual = np.where(tested, dataset.combo_effect.astype(np.float64) - expected, np.nan)
    calibration = 1.0
    df = np.full(residual.shape, np.inf)
    if method == "moderated":
        scale, df, calibration, detail = moderated_scale(dataset, tested, residual, single_weight)
    elif method == "measured":
        sd, row_df = measured_scale(dataset, tested, single_weight)
        df = np.broadcast_to(row_df[:, None], residual.shape)
        quartile = student_t.ppf(0.75, df)
        if calibrate:
            calibration = float(np.nanmedian(np.abs(residual / sd) / quartile))
            scale = sd * calibration
        else:
            scale = sd * np.sqrt(np.where(np.isfinite(df), (df - 2.0) / df, 1.0))
        finite = row_df[np.isfinite(row_df)]
        detail = (f"var = (v1' + v2') / 2 + {single_weight:g} (v1' + v2') from the base variances v' = v - b d^2; "
                  f"t degrees of freedom median {np.median(finite):.1f}" if finite.size else "normal null")
        detail += f"; calibrated by k = {calibration:.3f}" if calibrate else "; not calibrated"
    else:
        axis = 0 if method == "gene_mad" else 1
        robust = np.expand_dims(robust_scale(residual, axis=axis), axis)
        scale = np.where(tested & (robust > 0), np.broadcast_to(robust, residual.shape), np.nan)
        unit, over = ("gene", "combinations") if axis == 0 else ("combination", "genes")
        detail = f"1.4826 median |residual| of each {unit} over its {over}; "
        if null_shape == "bulk":
            shape_df, calibration = bulk_shape(residual / scale)
            scale = scale * calibration
            df = np.full(residual.shape, shape_df)
            detail += f"null shape from the bulk: t with {shape_df:.1f} degrees of freedom, scale x {calibration:.3f}"
        else:
            detail += "normal null"
        if axis == 0:  # a gene's scale rests on its K combinations: t with at most 0.37 (K - 1) degrees of freedom
            estimated = np.maximum(MAD_EFFICIENCY * (tested.sum(axis=0) - 1.0), 1.0)[None, :]
            df = np.minimum(df, estimated)
            detail += f"; at most {MAD_EFFICIENCY} (K - 1) for a gene in K combinations"
    scale = np.where(tested & (scale > 0), scale, np.nan)
    return NullScale(scale=scale, df=df, method=method, calibration=calibration,
                     note=f"null of observed - expected: {method} ({why}); {detail}")
