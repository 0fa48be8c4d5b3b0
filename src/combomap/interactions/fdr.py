"""Benjamini-Hochberg q-values: the one implementation every FDR in combomap.interactions goes through; and the
hierarchical FDR of Benjamini & Bogomolov (2014) built on it (combinations first, then genes within the selected)."""

from __future__ import annotations

import numpy as np


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted q-values of the finite p-values (same shape; NaN stays NaN and is not counted).

    q_(i) = min over j >= i of p_(j) * m / j (sorted ascending, m = number of finite p-values), capped at 1."""
    p_values = np.asarray(p_values, dtype=np.float64)
    q_values = np.full(p_values.shape, np.nan)
    tested = ~np.isnan(p_values)
    values = p_values[tested]
    count = values.size
    if count == 0:
        return q_values
    order = np.argsort(values, kind="stable")
    scaled = values[order] * count / np.arange(1, count + 1)
    monotone = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(count)
    adjusted[order] = np.minimum(monotone, 1.0)
    q_values[tested] = adjusted
    return q_values


def benjamini_hochberg_rows(p_values: np.ndarray) -> np.ndarray:
    """BH within each row of a (n_combos x n_genes) array: the FDR of one combination's genes."""
    p_values = np.asarray(p_values, dtype=np.float64)
    return np.vstack([benjamini_hochberg(row) for row in p_values]) if p_values.size else p_values.copy()


def hierarchical_q(p_values: np.ndarray, fdr: float) -> tuple[np.ndarray, np.ndarray]:
    """(q, selected) of the hierarchical FDR (Benjamini & Bogomolov 2014, BH selection and BH within):
    each combination's (row's) p-value is the Simes test of its genes (the smallest of its BH q-values: "no gene
    of this combination departs"), BH at `fdr` over the m tested combinations selects R of them, and within each
    selected combination its genes are called by BH at fdr R / m. The q returned is the within-combination BH
    q-value x m / R in the selected combinations (NaN elsewhere and where untested), so q <= fdr is the call.
    This controls the FDR of the selected combinations at `fdr` and the expected average, over them, of the
    false discovery proportion within each (independent or positively dependent p-values)."""
    p_values = np.asarray(p_values, dtype=np.float64)
    within = benjamini_hochberg_rows(p_values)
    tested = ~np.isnan(p_values).all(axis=1)
    simes = np.full(p_values.shape[0], np.nan)
    simes[tested] = np.nanmin(within[tested], axis=1)
    selected = np.nan_to_num(benjamini_hochberg(simes), nan=1.0) <= fdr
    if not selected.any():
        return np.full(p_values.shape, np.nan), selected
    inflation = tested.sum() / selected.sum()
    return np.where(selected[:, None], np.minimum(within * inflation, 1.0), np.nan), selected
