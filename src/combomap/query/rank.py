"""Exact compiled kernels for the rank-based scores: WTCS and extreme XSum (numba, `_rank_kernels`).

The numpy implementations in `combomap.query.scores` sort every signature; these kernels need, per
signature, only its query members' positions in the descending order (ties by column order), which one
pass over the genes with a binary search in the members' sorted values gives, and the same enrichment and
sums as numpy, operation for operation (equal results, tested). Pair signatures of the linear pair models
are built row by row inside the kernel (no block of pair signatures in memory). Rows with a NaN (or an
infinite member value) are recomputed by the numpy implementation, so they behave as there. Without numba everything falls back to
numpy (`rank_kernels_available`).
"""

from __future__ import annotations

import numpy as np

KERNEL_SCORES = ("wtcs", "xsum")


def rank_kernels_available() -> bool:
    from combomap.stacking.forest import numba_available

    return numba_available()


def _kernels(n_threads: int | None = None):
    """The numba kernels (compiled on first use, cached on disk by numba), set to use n_threads threads."""
    import numba

    from combomap.query import _rank_kernels

    threads = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(max(1, min(int(n_threads), threads)) if n_threads else threads)
    return _rank_kernels


class RankKernel:
    """WTCS or extreme XSum of one query's up / down members (columns of the scored space)."""

    def __init__(self, score: str, up: np.ndarray, down: np.ndarray, n_genes: int, extreme: int | None = None) -> None:
        if score not in KERNEL_SCORES or (score == "xsum" and extreme is None):
            raise ValueError(f"no rank kernel for score {score!r} (extreme {extreme})")
        self.score = score
        self.up = np.asarray(up, dtype=np.int64)
        self.down = np.asarray(down, dtype=np.int64)
        self.members = np.ascontiguousarray(np.concatenate([self.up, self.down]))
        self.n_genes = int(n_genes)
        self.member_of = np.full(self.n_genes, -1, dtype=np.int64)
        self.member_of[self.members] = np.arange(len(self.members))
        if len(np.unique(self.members)) != len(self.members):
            raise ValueError("up and down members must be distinct columns")
        self.extreme = int(extreme) if extreme is not None else 0

    def _mode(self, kernels) -> int:
        return kernels.WTCS if self.score == "wtcs" else kernels.XSUM

    def _reference(self, signatures: np.ndarray) -> np.ndarray:
        from combomap.query.scores import wtcs, xsum_extreme

        if self.score == "wtcs":
            return wtcs(signatures, self.up, self.down)
        return xsum_extreme(signatures, self.up, self.down, self.extreme)

    def _fix_nan(self, out: np.ndarray, rows) -> np.ndarray:
        bad = np.flatnonzero(np.isnan(out))
        if len(bad):
            out[bad] = self._reference(rows(bad))
        return out

    def score_rows(self, signatures: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """Scores of a (B x n_genes) block, as `scores.wtcs` / `scores.xsum_extreme`."""
        s = np.ascontiguousarray(signatures, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != self.n_genes:
            raise ValueError(f"signature block of shape {s.shape}, expected (B, {self.n_genes})")
        if len(s) == 0:
            return np.empty(0)
        kernels = _kernels(n_threads)
        out = kernels.score_rows(s, self.members, self.member_of, len(self.up), self._mode(kernels), self.extreme)
        return self._fix_nan(out, lambda bad: s[bad])

    def score_pairs(
        self, values: np.ndarray, left: np.ndarray, right: np.ndarray, weight: float, n_threads: int | None = None
    ) -> np.ndarray:
        """Scores of the pair signatures float64(values[left] + values[right]) * weight (NaN-free values)."""
        if values.ndim != 2 or values.shape[1] != self.n_genes:
            raise ValueError(f"values of shape {values.shape}, expected (n_drugs, {self.n_genes})")
        left = np.ascontiguousarray(left, dtype=np.int64)
        right = np.ascontiguousarray(right, dtype=np.int64)
        if len(left) == 0:
            return np.empty(0)
        kernels = _kernels(n_threads)
        values = np.ascontiguousarray(values)  # pass a C-contiguous array: this copies any other
        out = kernels.score_pairs(values, left, right, float(weight), self.members, self.member_of, len(self.up),
                                  self._mode(kernels), self.extreme)

        def rows(bad: np.ndarray) -> np.ndarray:
            pair = np.add(values[left[bad]], values[right[bad]], dtype=np.float64)
            pair *= float(weight)
            return pair

        return self._fix_nan(out, rows)
