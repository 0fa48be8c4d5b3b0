"""The rank-based scores, WTCS and extreme XSum: the numpy reference and exact compiled kernels (numba, `_rank_kernels`).

The numpy implementations (`wtcs`, `xsum_extreme`, at the end) sort every signature; the kernels need, per
signature, only its query members' positions in the descending order (ties by column order), which one
pass over the genes with a binary search in the members' sorted values gives, and the same enrichment and
sums as numpy, operation for operation (equal results, tested). Pair signatures of the linear pair models
are built row by row inside the kernel (no block of pair signatures in memory). Rows with a NaN (or an
infinite member value) are recomputed by the numpy implementation, so they behave as there. Without numba everything falls back to
numpy (`rank_kernels_available`).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

try:
    import numba
except ImportError:  # numba is not installed: every rank score runs in numpy
    numba = None
if numba is not None:
    from combomap.query import _rank_kernels
else:
    _rank_kernels = None

KERNEL_SCORES = ("wtcs", "xsum")


def rank_kernels_available() -> bool:
    return _rank_kernels is not None


def compiled_kernels(n_threads: int | None = None) -> ModuleType:
    """The numba kernels (compiled on first use, cached on disk by numba), set to use n_threads threads."""
    if _rank_kernels is None:
        raise RuntimeError("the compiled rank kernels need numba, which is not installed")
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
        if self.score == "wtcs":
            return wtcs(signatures, self.up, self.down)
        return xsum_extreme(signatures, self.up, self.down, self.extreme)

    def _fix_nan(self, out: np.ndarray, rows) -> np.ndarray:
        bad = np.flatnonzero(np.isnan(out))
        if len(bad):
            out[bad] = self._reference(rows(bad))
        return out

    def score_rows(self, signatures: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """Scores of a (B x n_genes) block, as `wtcs` / `xsum_extreme`."""
        s = np.ascontiguousarray(signatures, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != self.n_genes:
            raise ValueError(f"signature block of shape {s.shape}, expected (B, {self.n_genes})")
        if len(s) == 0:
            return np.empty(0)
        kernels = compiled_kernels(n_threads)
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
        kernels = compiled_kernels(n_threads)
        values = np.ascontiguousarray(values)  # pass a C-contiguous array: this copies any other
        out = kernels.score_pairs(values, left, right, float(weight), self.members, self.member_of, len(self.up),
                                  self._mode(kernels), self.extreme, self.n_cells)

        def rows(bad: np.ndarray) -> np.ndarray:
            pair = np.add(values[left[bad]], values[right[bad]], dtype=np.float64)
            pair *= float(weight)
            return pair

        return self._fix_nan(out, rows)


def descending_positions(signatures: np.ndarray, members: np.ndarray) -> np.ndarray:
    """(B x k) 0-based position of each member column in its row's descending order, ties by column order.

    position = #(values greater) + #(equal values in earlier columns): one value sort per row (fast, no
    argsort) and a search per member; ties (e.g. unmeasured genes, all 0) are counted exactly.
    """
    n_rows, n_genes = signatures.shape
    members = np.asarray(members, dtype=np.int64)
    ordered = np.sort(signatures, axis=1)
    values = signatures[:, members]
    positions = np.empty((n_rows, len(members)), dtype=np.int64)
    for i in range(n_rows):
        right = np.searchsorted(ordered[i], values[i], side="right")
        left = np.searchsorted(ordered[i], values[i], side="left")
        positions[i] = n_genes - right
        tied = right - left > 1
        if tied.any():
            for value in np.unique(values[i, tied]):
                equal_columns = np.flatnonzero(signatures[i] == value)
                which = np.flatnonzero(tied & (values[i] == value))
                positions[i, which] += np.searchsorted(equal_columns, members[which])
    return positions


def _enrichment(weights: np.ndarray, positions: np.ndarray, n_genes: int) -> np.ndarray:
    """Weighted KS enrichment score of a gene set, given its members' |s| and positions in the ranking."""
    n_rows, k = positions.shape
    if k == 0:
        return np.zeros(n_rows)
    order = np.argsort(positions, axis=1, kind="stable")
    positions = np.take_along_axis(positions, order, axis=1).astype(np.float64)
    weights = np.take_along_axis(weights, order, axis=1)
    cumulative = np.cumsum(weights, axis=1)
    total = cumulative[:, -1:]
    safe_total = np.where(total > 0, total, 1.0)
    misses = (positions - np.arange(k)) / max(n_genes - k, 1)
    after_hit = cumulative / safe_total - misses
    before_hit = (cumulative - weights) / safe_total - misses
    highest = after_hit.max(axis=1)
    lowest = before_hit.min(axis=1)
    es = np.where(np.abs(highest) > np.abs(lowest), highest, lowest)
    return np.where(total[:, 0] > 0, es, 0.0)


def wtcs(signatures: np.ndarray, up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """CMap's weighted connectivity score of each row for the up / down gene sets (column positions)."""
    n_genes = signatures.shape[1]
    members = np.concatenate([up, down]).astype(np.int64)
    positions = descending_positions(signatures, members)
    weights = np.abs(signatures[:, members])
    k_up = len(up)
    es_up = _enrichment(weights[:, :k_up], positions[:, :k_up], n_genes)
    es_down = _enrichment(weights[:, k_up:], positions[:, k_up:], n_genes)
    if len(down) == 0:
        return es_up
    if len(up) == 0:
        return -es_down
    return np.where(np.sign(es_up) != np.sign(es_down), (es_up - es_down) / 2.0, 0.0)


def xsum_extreme(signatures: np.ndarray, up: np.ndarray, down: np.ndarray, extreme: int) -> np.ndarray:
    """XSum keeping only each row's `extreme` largest (> 0) and smallest (< 0) values."""
    n_genes = signatures.shape[1]
    if extreme >= n_genes:
        return signatures[:, up].sum(axis=1) - signatures[:, down].sum(axis=1)
    parted = np.partition(signatures, [extreme - 1, n_genes - extreme], axis=1)
    low, high = parted[:, extreme - 1 : extreme], parted[:, n_genes - extreme : n_genes - extreme + 1]

    def kept(values: np.ndarray) -> np.ndarray:
        keep = ((values >= high) & (values > 0)) | ((values <= low) & (values < 0))
        return np.where(keep, values, 0.0).sum(axis=1)

    return kept(signatures[:, up]) - kept(signatures[:, down])
