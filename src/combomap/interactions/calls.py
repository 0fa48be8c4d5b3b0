"""Per entry: t = (observed - expected) / scale, its two-sided p-value under Student t with the combination's
degrees of freedom (the normal where they are infinite), z = the normal score of that p-value (signed as t), BH
q-values over all entries and within each combination, and a call.

An entry is called where its q (over all entries, within its combination, or hierarchical: combinations first,
then genes within the selected ones, Benjamini & Bogomolov 2014: `fdr_scope`) is at most the FDR:
synergy where the combination is stronger than expected (|observed| > |expected|), buffering where it is weaker.
The effect size of a call is its departure, observed - expected, in the data's units (with its noise SD).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t

from combomap.interactions.fdr import benjamini_hochberg, benjamini_hochberg_rows, hierarchical_q

NONE, SYNERGY, BUFFERING = 0, 1, -1
CALL_NAMES = {NONE: "none", SYNERGY: "synergy", BUFFERING: "buffering"}


@dataclass(frozen=True)
class EntryTests:
    """(n_combos x n_genes) arrays; NaN (call 0) where the entry is untested."""

    observed: np.ndarray
    expected: np.ndarray
    scale: np.ndarray
    t: np.ndarray
    z: np.ndarray
    p: np.ndarray
    q: np.ndarray
    q_combo: np.ndarray
    call: np.ndarray  # int8: 1 synergy, -1 buffering, 0 none or untested
    fdr: float
    fdr_scope: str
    q_hierarchical: np.ndarray | None = None  # fdr_scope=hierarchical: q_combo x m / R in the selected combinations

    @property
    def tested(self) -> np.ndarray:
        return ~np.isnan(self.p)

    @property
    def departure(self) -> np.ndarray:
        return self.observed - self.expected

    @property
    def q_scope(self) -> np.ndarray:
        """The q-values the calls use."""
        if self.fdr_scope == "hierarchical":
            return self.q_hierarchical
        return self.q if self.fdr_scope == "all" else self.q_combo


def two_sided_p(statistic: np.ndarray, df: np.ndarray | float = np.inf) -> np.ndarray:
    """P(|T| >= |t|) under Student t with `df` (inf: the normal), accurate far in the tail; NaN stays NaN."""
    return 2.0 * student_t.sf(np.abs(statistic), df)


def normal_score(p_values: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """The z whose two-sided normal p-value is p, signed (finite: p is floored at the smallest double)."""
    return np.sign(sign) * norm.isf(np.maximum(p_values / 2.0, np.finfo(np.float64).tiny))


def classify(observed: np.ndarray, expected: np.ndarray, significant: np.ndarray) -> np.ndarray:
    """1 (synergy: stronger than expected), -1 (buffering: weaker), 0 (not significant)."""
    stronger = np.abs(observed) > np.abs(expected)
    return np.where(significant, np.where(stronger, SYNERGY, BUFFERING), NONE).astype(np.int8)


def call_entries(observed: np.ndarray, expected: np.ndarray, scale: np.ndarray, df: np.ndarray, fdr: float,
                 fdr_scope: str = "all") -> EntryTests:
    """The tests of every entry where observed, expected and scale are all finite; df: per entry, or one per
    combination (row)."""
    observed = np.asarray(observed, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    tested = np.isfinite(observed) & np.isfinite(expected) & np.isfinite(scale) & (scale > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = np.where(tested, (observed - expected) / scale, np.nan)
    df = np.asarray(df, dtype=np.float64)
    p = two_sided_p(statistic, df if df.ndim == 2 else df[:, None])
    q = benjamini_hochberg(p)
    q_combo = benjamini_hochberg_rows(p)
    q_hierarchical = hierarchical_q(p, fdr)[0] if fdr_scope == "hierarchical" else None
    scoped = {"all": q, "combination": q_combo, "hierarchical": q_hierarchical}[fdr_scope]
    significant = tested & (np.nan_to_num(scoped, nan=1.0) <= fdr)
    return EntryTests(observed=np.where(tested, observed, np.nan), expected=np.where(tested, expected, np.nan),
                      scale=np.where(tested, scale, np.nan), t=statistic, z=normal_score(p, statistic), p=p, q=q,
                      q_combo=q_combo, call=classify(observed, expected, significant), fdr=fdr, fdr_scope=fdr_scope,
                      q_hierarchical=q_hierarchical)
