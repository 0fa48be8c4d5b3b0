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


def cells_for(n_genes: int) -> int:
    """Histogram cells of the one-pass kernel: a power of two, about twice the genes, within [1024, 16384].
    Each row clears and sums the cells, so few genes need few cells; on CMap's 11525 genes 16384 cells
    measured fastest (2048 - 8192 were 1.3-1.9x slower). Any count gives the same scores."""
    return int(min(16384, max(1024, 1 << max(0, 2 * int(n_genes) - 1).bit_length())))


class RankKernel:
    """WTCS or extreme XSum of one query's up / down members (columns of the scored space)."""

    def __init__(
        self, score: str, up: np.ndarray, down: np.ndarray, n_genes: int, extreme: int | None = None, n_cells: int | None = None
    ) -> None:
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
        self.n_cells = int(n_cells) if n_cells else cells_for(self.n_genes)
        if self.n_cells < 4:
            raise ValueError(f"n_cells must be >= 4, got {self.n_cells}")

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
        out = kernels.score_rows(s, self.members, self.member_of, len(self.up), self._mode(kernels), self.extreme, self.n_cells)
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
                                  self._mode(kernels), self.extreme, self.n_cells)

        def rows(bad: np.ndarray) -> np.ndarray:
            pair = np.add(values[left[bad]], values[right[bad]], dtype=np.float64)
            pair *= float(weight)
            return pair

        return self._fix_nan(out, rows)
