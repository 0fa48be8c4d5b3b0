"""Benjamini-Hochberg q-values: the one implementation every FDR in combomap.interactions goes through."""

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
