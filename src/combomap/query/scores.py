"""Connectivity scores of signatures against one query, and the query's gene matching.

Definitions (a drug or pair signature s against the query q; +1 mimics, -1 reverses):
- genes used: the query genes found (and measured) in the library, the top `top_n` of them by |q|
  (ties: query order); top_n None uses all matched genes.
- pearson / cosine / spearman: over the genes used (spearman: average ranks for ties).
- xsum: sum of s over the query's up genes (q > 0 among those used) minus over its down genes. With
  `xsum_extreme` = X, only the signature's own X largest and X smallest values (over all library genes)
  count, the rest is 0 (the eXtreme sum); xsum_extreme None is the plain (linear) sum.
- wtcs: CMap's weighted connectivity score. The signature is ranked over all library genes (descending,
  ties by library column order); ES_up / ES_down are weighted (|s|^1) Kolmogorov-Smirnov enrichment
  scores of the up / down sets; wtcs = (ES_up - ES_down) / 2 when they have opposite signs, else 0
  (only an up set: ES_up; only a down set: -ES_down).

Unmeasured library values (NaN) count as 0 (no change) everywhere, for drugs and for pairs alike;
genes that no library drug measured are treated as absent from the library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.query.rank import RankKernel, rank_kernels_available, wtcs, xsum_extreme
from combomap.query.signature import as_signature
from combomap.settings import SettingsError

SCORES = ("pearson", "cosine", "spearman", "xsum", "wtcs")
# Scores whose pair values follow exactly from per-drug projections and a Gram matrix (no pair signatures).
GRAM_SCORES = ("pearson", "cosine")
RANK_SCORERS = ("auto", "numpy", "compiled")


@dataclass
class PreparedQuery:
    """A query matched to a library: the genes used, their values, and what a score needs."""

    score: str
    genes: list[str]
    columns: np.ndarray  # library columns of the genes used, by |q| descending
    values: np.ndarray  # float64 query values on those genes
    universe: np.ndarray | None  # library columns of the ranked list (wtcs, xsum with extreme); else None
    xsum_extreme: int | None = None
    report: dict[str, Any] = field(default_factory=dict)
    # wtcs / extreme xsum: "auto" scores with the compiled kernels (combomap.query.rank) when numba is installed,
    # "numpy" with the reference implementations (combomap.query.rank.wtcs, xsum_extreme), "compiled" requires numba
    rank_scorer: str = "auto"
    n_threads: int | None = None  # compiled kernels' threads (None: numba's default)

    def __post_init__(self) -> None:
        q = self.values
        self.up = np.flatnonzero(q > 0)
        self.down = np.flatnonzero(q < 0)
        if self.universe is not None:
            where = {int(c): i for i, c in enumerate(self.universe)}
            self.query_in_universe = np.array([where[int(c)] for c in self.columns], dtype=np.int64)
        else:
            self.query_in_universe = None
        self._q_centered = q - q.mean()
        self._q_rank = rankdata(q)
        self._q_rank_centered = self._q_rank - self._q_rank.mean()
        self._sign = np.sign(q)
        self._rank_kernel: Any = None

    def rank_kernel(self) -> Any:
        """The compiled kernel (`combomap.query.rank.RankKernel`) for this score, or None (numpy path)."""
        if self.rank_scorer not in RANK_SCORERS:
            raise SettingsError(f"unknown rank scorer {self.rank_scorer!r}; choose one of {list(RANK_SCORERS)}")
        if self.rank_scorer == "numpy" or not (self.score == "wtcs" or (self.score == "xsum" and self.universe is not None)):
            return None
        if not rank_kernels_available():
            if self.rank_scorer == "compiled":
                raise SettingsError("rank_scorer=compiled needs numba, which is not installed")
            return None
        if self._rank_kernel is None:
            up, down = self.query_in_universe[self.up], self.query_in_universe[self.down]
            self._rank_kernel = RankKernel(self.score, up, down, len(self.universe), self.xsum_extreme)
        return self._rank_kernel

    @property
    def n_used(self) -> int:
        return len(self.columns)

    @property
    def needs_universe(self) -> bool:
        """True when a signature must be known on every library gene, not only the query genes."""
        return self.universe is not None

    @property
    def space(self) -> np.ndarray:
        """Library columns on which signatures are materialized for this score."""
        return self.universe if self.universe is not None else self.columns

    def score_block(self, signatures: np.ndarray) -> np.ndarray:
        """Scores of a (B x len(space)) block of NaN-free signatures (float64 recommended)."""
        s = np.asarray(signatures, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != len(self.space):
            raise ValueError(f"signature block of shape {s.shape}, expected (B, {len(self.space)})")
        kernel = self.rank_kernel()
        if kernel is not None:
            return kernel.score_rows(s, self.n_threads)
        if self.score == "wtcs":
            return wtcs(s, self.query_in_universe[self.up], self.query_in_universe[self.down])
        if self.score == "xsum":
            if self.universe is None:
                return s @ self._sign
            return xsum_extreme(s, self.query_in_universe[self.up], self.query_in_universe[self.down], self.xsum_extreme)
        if self.score == "pearson":
            return _correlation(s - s.mean(axis=1, keepdims=True), self._q_centered)
        if self.score == "cosine":
            return _correlation(s, self.values)
        if self.score == "spearman":
            ranks = rankdata(s, axis=1)
            return _correlation(ranks - ranks.mean(axis=1, keepdims=True), self._q_rank_centered)
        raise ValueError(f"unknown score {self.score!r}")


def _correlation(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """rows . query / (|rows| |query|), NaN where a row is all zero (undefined)."""
    numerator = rows @ query
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows)) * np.linalg.norm(query)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(norms > 0, numerator / np.where(norms > 0, norms, 1.0), np.nan)
    return np.clip(value, -1.0, 1.0)  # rounding can overshoot |r| = 1 by an ulp


def measured_columns(library: DrugLibrary) -> np.ndarray:
    """Library columns measured in at least one drug."""
    return np.flatnonzero(~np.isnan(library.effects).all(axis=0))


def unit_scaled(values: np.ndarray) -> np.ndarray:
    """`values` times the power of two that brings max |value| into [0.5, 1).

    Every score is invariant to a positive scale of the query, and a power of two is exact, so this changes
    no score; without it a query near 1e300 overflowed its sum of squares and scored every drug 0.
    """
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    if peak == 0.0:
        return values
    return np.ldexp(values, -int(np.frexp(peak)[1]))


def prepare_query(
    signature: pd.Series | Mapping[str, float],
    library: DrugLibrary,
    score: str = "pearson",
    top_n: int | None = 200,
    xsum_extreme: int | None = None,
    allowed_genes: list[str] | None = None,
) -> PreparedQuery:
    """Match the query's genes to the library and pick the genes the score uses (see module docstring)."""
    if score not in SCORES:
        raise SettingsError(f"score must be one of {list(SCORES)}, got {score!r}")
    source = str(getattr(signature, "attrs", {}).get("source", "<query>")) if isinstance(signature, pd.Series) else "<query>"
    query = as_signature(signature, source)
    if query.empty:
        raise DataError(f"{source}: the query signature has no values")
    measured = measured_columns(library)
    column_of = {library.genes[c]: int(c) for c in measured}
    all_library = set(library.genes)
    allowed = None if allowed_genes is None else set(allowed_genes)
    missing = [g for g in query.index if g not in all_library]
    unmeasured = [g for g in query.index if g in all_library and g not in column_of]
    not_predicted = [g for g in query.index if g in column_of and allowed is not None and g not in allowed]
    matched = [g for g in query.index if g in column_of and (allowed is None or g in allowed)]
    if not matched:
        raise DataError(
            f"{source}: none of the query's {len(query)} genes is in the library ({library.n_genes} genes, "
            f"source {library.source}); query genes e.g. {list(query.index[:5])}, library genes e.g. {library.genes[:5]}"
            + (f"; {len(unmeasured)} are in the library but never measured" if unmeasured else "")
            + (f"; {len(not_predicted)} are not predicted by the model" if not_predicted else "")
        )
    if top_n is not None and int(top_n) < 1:
        raise SettingsError(f"top_n must be >= 1 or null (all matched genes), got {top_n}")
    values = query.loc[matched].to_numpy(dtype=np.float64)
    order = np.argsort(-np.abs(values), kind="stable")
    if top_n is not None:
        order = order[: int(top_n)]
    used = [matched[i] for i in order]
    q = unit_scaled(values[order])
    if score in ("pearson", "spearman"):
        if len(used) < 2:
            raise DataError(f"{source}: {score} needs at least 2 query genes in the library, got {len(used)}")
        if np.ptp(q) == 0:
            raise DataError(f"{source}: the query is constant on the {len(used)} genes used; {score} is undefined")
    elif not np.any(q != 0):
        raise DataError(f"{source}: the query is 0 on all {len(used)} genes used; {score} is undefined")
    needs_universe = score == "wtcs" or (score == "xsum" and xsum_extreme is not None)
    if xsum_extreme is not None and int(xsum_extreme) < 1:
        raise SettingsError(f"xsum_extreme must be >= 1 or null, got {xsum_extreme}")
    report = {
        "n_query_genes": int(len(query) + query.attrs.get("n_missing_values", 0)),
        "n_query_missing_values": int(query.attrs.get("n_missing_values", 0)),
        "n_matched": len(matched),
        "n_used": len(used),
        "n_up": int((q > 0).sum()),
        "n_down": int((q < 0).sum()),
        "n_missing_from_library": len(missing),
        "n_unmeasured_in_library": len(unmeasured),
        "n_not_predicted_by_model": len(not_predicted),
        "missing_genes": missing,
        "unmeasured_genes": unmeasured,
        "not_predicted_genes": not_predicted,
        "n_universe": int(len(measured)) if needs_universe else None,
    }
    return PreparedQuery(
        score=score,
        genes=used,
        columns=np.array([column_of[g] for g in used], dtype=np.int64),
        values=q,
        universe=measured if needs_universe else None,
        xsum_extreme=int(xsum_extreme) if xsum_extreme is not None else None,
        report=report,
    )


def library_block(library: DrugLibrary, rows: np.ndarray | slice, columns: np.ndarray) -> np.ndarray:
    """float64 (rows x columns) of the library with NaN (unmeasured) as 0."""
    return np.nan_to_num(library.effects[rows][:, columns].astype(np.float64), nan=0.0)
