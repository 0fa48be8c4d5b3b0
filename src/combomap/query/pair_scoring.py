"""Drug pairs: exact enumeration (each unordered pair once), blocks, a running top-k, and the pair scorers.

Two ways to score pairs, both exact:
- `gram_pair_scores` (average / additive models; pearson, cosine, linear xsum): the pair signature
  w (a + b) is never built. Over the query genes, pearson(q, a + b) = (u_a + u_b) / (|q_c| sqrt(n_a + n_b
  + 2 G_ab)) with u = X_c q_c, n = |x_c|^2 and G = X_c X_c^T (X_c: drug signatures centred over the
  query genes; cosine: uncentred); the weight w cancels. Linear xsum is w (xsum_a + xsum_b).
  Anchor rows are processed in tiles, so memory is O(tile x n_drugs) whatever the library size.
- `streamed_pair_scores` (any score, any pair model): materialize pair signatures block by block and
  score them; memory is one block plus the running top-k.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from combomap.data.library import DrugLibrary
from combomap.progress import Progress
from combomap.query.rank import compiled_kernels, rank_kernels_available
from combomap.query.scores import PreparedQuery
from combomap.settings import SettingsError

DIRECTIONS = ("mimic", "reverse")
PAIRS_DESC = "query pairs"  # the progress task of a pair query (combomap.progress)
FUSED_BLOCK_PAIRS = 16384  # pairs per block when a kernel builds the pair signatures itself
STACKED_BLOCK_PAIRS = 2048  # pairs per block of the stacked model


def n_pairs(n_drugs: int, include: np.ndarray | None = None) -> int:
    """Unordered pairs of distinct drugs (that involve at least one `include` drug)."""
    if include is None:
        return n_drugs * (n_drugs - 1) // 2
    outside = n_drugs - len(np.unique(include))
    return n_drugs * (n_drugs - 1) // 2 - outside * (outside - 1) // 2


@dataclass
class Piece:
    """Pairs of one anchor drug with some partners: (anchor, p) when anchor_first, else (p, anchor)."""

    anchor: int
    partners: np.ndarray
    anchor_first: bool
    contiguous: tuple[int, int] | None = None  # partners == range(*contiguous)


@dataclass
class PairBlock:
    """A block of pairs, left < right, made of pieces laid end to end (piece k covers spans[k])."""

    left: np.ndarray
    right: np.ndarray
    pieces: list[Piece]
    spans: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.left)


def pair_anchors(n_drugs: int, include: np.ndarray | None = None) -> np.ndarray:
    """The anchor drugs of the enumeration, in its order: every drug but the last, or the `include` drugs."""
    if include is None:
        return np.arange(max(n_drugs - 1, 0), dtype=np.int64)
    return np.unique(np.asarray(include, dtype=np.int64))


def _outside(n_drugs: int, include: np.ndarray | None) -> np.ndarray | None:
    """True for drugs outside `include` (None: all pairs)."""
    if include is None:
        return None
    outside = np.ones(n_drugs, dtype=bool)
    outside[pair_anchors(n_drugs, include)] = False
    return outside


def _anchored_pairs(rows: np.ndarray, n_drugs: int, outside: np.ndarray | None) -> int:
    """How many pairs the anchor `rows` own: partners above them, or any outside `include`."""
    if outside is None:
        return int(np.sum(n_drugs - 1 - rows.astype(np.int64)))
    inside_below = np.concatenate([[0], np.cumsum(~outside)])[rows]
    return int(np.sum(n_drugs - 1 - inside_below))


def _piece_table(n_drugs: int, include: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(anchor, anchor_first, n_pairs) of every piece of `iter_pieces`, in its order, without building partners."""
    anchors = pair_anchors(n_drugs, include)
    after = n_drugs - 1 - anchors
    if include is None:
        return anchors, np.ones(len(anchors), dtype=bool), after
    outside = _outside(n_drugs, include)
    below = np.concatenate([[0], np.cumsum(outside)])[anchors]  # drugs outside `include` below each anchor
    anchor = np.repeat(anchors, 2)
    first = np.tile([True, False], len(anchors))
    length = np.stack([after, below], axis=1).reshape(-1)
    keep = length > 0
    return anchor[keep], first[keep], length[keep]


def anchor_pair_counts(n_drugs: int, include: np.ndarray | None = None) -> np.ndarray:
    """Pairs enumerated from each anchor of `pair_anchors` (its pieces together)."""
    anchors = pair_anchors(n_drugs, include)
    anchor, _, length = _piece_table(n_drugs, include)
    return np.bincount(np.searchsorted(anchors, anchor), weights=length, minlength=len(anchors)).astype(np.int64)


def _partners(n_drugs: int, outside: np.ndarray | None, anchor: int, anchor_first: bool, offset: int, take: int) -> Piece:
    """Partners offset..offset+take-1 of one piece (anchor_first: anchor+1.., else the outside drugs below)."""
    if anchor_first:
        first = anchor + 1 + offset
        return Piece(anchor, np.arange(first, first + take), True, (first, first + take))
    assert outside is not None
    return Piece(anchor, np.flatnonzero(outside[:anchor])[offset : offset + take], False)


def iter_pieces(n_drugs: int, include: np.ndarray | None = None, anchors: np.ndarray | None = None) -> Iterator[Piece]:
    """Every unordered pair exactly once (only those of `anchors`, a subset of `pair_anchors`, when given).

    All pairs: anchor i with partners i+1..n-1. With `include` S: anchor s in S with partners s+1..n-1
    (any), and with partners j < s outside S; a pair with both drugs in S comes from its lower drug only.
    """
    outside = _outside(n_drugs, include)
    for anchor in (pair_anchors(n_drugs, include) if anchors is None else np.asarray(anchors)).tolist():
        if anchor + 1 < n_drugs:
            yield _partners(n_drugs, outside, anchor, True, 0, n_drugs - 1 - anchor)
        if outside is not None:
            below = int(outside[:anchor].sum())
            if below:
                yield _partners(n_drugs, outside, anchor, False, 0, below)


def n_pair_blocks(n_drugs: int, include: np.ndarray | None, block_pairs: int) -> int:
    """Blocks of `iter_pair_blocks`."""
    return -(-n_pairs(n_drugs, include) // max(1, int(block_pairs)))


def iter_pair_blocks(
    n_drugs: int, include: np.ndarray | None = None, block_pairs: int = 65536, blocks: range | None = None
) -> Iterator[PairBlock]:
    """Blocks of `block_pairs` pairs (the last may be shorter; pieces are split to fit); left < right.

    Block b holds pairs b * block_pairs .. (b + 1) * block_pairs - 1 of the enumeration (`iter_pieces`
    order), so `blocks` (a range of block numbers) yields exactly the blocks a full pass yields there:
    a distributed task scores the same blocks, built the same way, as the local pass."""
    block_pairs = max(1, int(block_pairs))
    anchor, first, length = _piece_table(n_drugs, include)
    ends = np.cumsum(length)
    total = int(ends[-1]) if len(ends) else 0
    outside = _outside(n_drugs, include)
    for b in range(-(-total // block_pairs)) if blocks is None else blocks:
        lo, hi = b * block_pairs, min((b + 1) * block_pairs, total)
        pieces: list[Piece] = []
        spans: list[tuple[int, int]] = []
        k = int(np.searchsorted(ends, lo, side="right"))
        position = lo
        while position < hi:
            start = int(ends[k] - length[k])
            take = min(hi, int(ends[k])) - position
            pieces.append(_partners(n_drugs, outside, int(anchor[k]), bool(first[k]), position - start, take))
            spans.append((position - lo, position - lo + take))
            position += take
            k += 1
        lefts = [np.full(len(p.partners), p.anchor, dtype=np.int64) if p.anchor_first else p.partners for p in pieces]
        rights = [p.partners if p.anchor_first else np.full(len(p.partners), p.anchor, dtype=np.int64) for p in pieces]
        yield PairBlock(np.concatenate(lefts), np.concatenate(rights), pieces, spans)


class RunningTopK:
    """The k best pairs seen so far (k None keeps all); mimic ranks high scores first, reverse low.

    NaN scores rank last. Final order: best first, ties by (left, right).
    """

    def __init__(self, k: int | None, direction: str = "mimic") -> None:
        if direction not in DIRECTIONS:
            raise SettingsError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")
        if k is not None and int(k) < 1:
            raise SettingsError(f"top_k must be >= 1 or null (all), got {k}")
        self.k = None if k is None else int(k)
        self.sign = 1.0 if direction == "mimic" else -1.0
        self.n_seen = 0
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._best: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _key(self, scores: np.ndarray) -> np.ndarray:
        key = self.sign * scores
        return np.where(np.isnan(key), -np.inf, key)

    def floor(self) -> float:
        """The lowest key (sign x score, NaN lowest) a new pair needs to be kept: -inf until k pairs are
        kept (always with k None). A scorer may drop pairs below it before pushing (`push(n_scored=)`)."""
        if self.k is None or self._best is None or len(self._best[0]) < self.k:
            return -np.inf
        return float(self._key(self._best[0]).min())

    def push(self, scores: np.ndarray, left: np.ndarray, right: np.ndarray, n_scored: int | None = None) -> None:
        """Offer scored pairs; n_scored: how many pairs were scored when the caller dropped those below floor()."""
        scores = np.asarray(scores, dtype=np.float64)
        self.n_seen += len(scores) if n_scored is None else int(n_scored)
        if self.k is None:
            self._parts.append((scores, np.asarray(left), np.asarray(right)))
            return
        key = self._key(scores)
        if self._best is not None and len(self._best[0]) >= self.k:
            floor = self._key(self._best[0]).min()
            keep = key >= floor
            if not keep.any():
                return
            scores, left, right, key = scores[keep], left[keep], right[keep], key[keep]
        if self._best is not None:
            scores = np.concatenate([self._best[0], scores])
            left = np.concatenate([self._best[1], left])
            right = np.concatenate([self._best[2], right])
            key = self._key(scores)
        if len(scores) > self.k:
            top = self._select(key, np.asarray(left), np.asarray(right))
            scores, left, right = scores[top], left[top], right[top]
        self._best = (scores, np.asarray(left), np.asarray(right))

    def _select(self, key: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Positions of the k best keys; ties at the cut go to the smallest (left, right), so the kept set
        does not depend on block boundaries."""
        kth = np.partition(key, len(key) - self.k)[len(key) - self.k]
        above = np.flatnonzero(key > kth)
        tied = np.flatnonzero(key == kth)
        tied = tied[np.lexsort((right[tied], left[tied]))[: self.k - len(above)]]
        return np.concatenate([above, tied])

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, left, right), best first."""
        if self.k is None:
            if not self._parts:
                return np.empty(0), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
            scores, left, right = (np.concatenate(p) for p in zip(*self._parts))
        elif self._best is None:
            return np.empty(0), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        else:
            scores, left, right = self._best
        order = np.lexsort((right, left, -self._key(scores)))
        return scores[order], left[order], right[order]


def _tile_rows(n_columns: int, budget_mb: float) -> int:
    """Anchor rows per tile so that one (rows x n_columns) float64 matrix takes about budget_mb / 6."""
    return max(1, int(budget_mb * 2**20 / 6 / 8 / max(1, n_columns)))


GRAM_TILE_MB = 256.0
FILL_ROWS = 4  # anchor rows per compiled call while the running top-k is not yet full


def gram_tiles(n_drugs: int, include: np.ndarray | None = None, tile_mb: float = GRAM_TILE_MB) -> list[np.ndarray]:
    """The anchor rows of each Gram tile, in order (fixed by the library size, so the local and the Dask ranking cut the same)."""
    anchors = pair_anchors(n_drugs, include)
    step = _tile_rows(n_drugs, tile_mb)
    return [anchors[start : start + step] for start in range(0, len(anchors), step)]


def gram_pair_scores(
    prepared: PreparedQuery,
    drug_signatures: np.ndarray,
    weight: float,
    topk: RunningTopK,
    include: np.ndarray | None = None,
    tile_mb: float = GRAM_TILE_MB,
    tiles: range | None = None,
    compiled: bool | None = None,
) -> None:
    """Exact pair scores of w (a + b) from per-drug projections and Gram tiles (module docstring).

    `tiles` (numbers of `gram_tiles`) scores only those tiles' anchors: the split the Dask engine uses.
    compiled (None: when numba is installed) scores each tile in one compiled pass (`_rank_kernels.
    gram_tile_pairs`, the same operations, bit for bit) and keeps only pairs that can enter the top-k."""
    n = np.asarray(drug_signatures).shape[0]
    all_tiles = gram_tiles(n, include, tile_mb)
    outside = _outside(n, include)
    total = sum(_anchored_pairs(all_tiles[t], n, outside) for t in (range(len(all_tiles)) if tiles is None else tiles))
    with Progress(total, PAIRS_DESC, unit="pair") as progress:
        _gram_pair_scores(prepared, drug_signatures, weight, topk, include, tile_mb, tiles, compiled, progress)


def _gram_pair_scores(
    prepared: PreparedQuery,
    drug_signatures: np.ndarray,
    weight: float,
    topk: RunningTopK,
    include: np.ndarray | None,
    tile_mb: float,
    tiles: range | None,
    compiled: bool | None,
    progress: Progress,
) -> None:
    score = prepared.score
    x = np.asarray(drug_signatures, dtype=np.float64)
    n = x.shape[0]
    all_tiles = gram_tiles(n, include, tile_mb)
    chosen = [all_tiles[t] for t in (range(len(all_tiles)) if tiles is None else tiles)]
    if score == "xsum" and not prepared.needs_universe:
        per_drug = x @ np.sign(prepared.values)
        for rows in chosen:
            for piece in iter_pieces(n, include, rows):
                left = np.full(len(piece.partners), piece.anchor) if piece.anchor_first else piece.partners
                right = piece.partners if piece.anchor_first else np.full(len(piece.partners), piece.anchor)
                topk.push(weight * (per_drug[left] + per_drug[right]), left, right)
                progress.update(len(piece.partners))
        return
    if score not in ("pearson", "cosine") or prepared.needs_universe:
        raise SettingsError(f"score {score!r} has no Gram shortcut for pairs; it is scored on streamed pair signatures")
    if not weight > 0:
        raise ValueError(f"pair weight must be > 0, got {weight}")
    if score == "pearson":
        x = x - x.mean(axis=1, keepdims=True)
        q = prepared.values - prepared.values.mean()
    else:
        q = prepared.values
    projection = x @ q
    norm2 = np.einsum("ij,ij->i", x, x)
    q_norm = float(np.linalg.norm(q))
    outside = _outside(n, include)
    if compiled is None:
        compiled = rank_kernels_available()
    if compiled:  # one pass per tile, only pairs that can enter the top-k leave it: the same scores
        kernel = compiled_kernels().gram_tile_pairs
        flags = np.zeros(0, dtype=np.bool_) if outside is None else outside
        for rows in chosen:
            col0 = int(rows[0]) + 1 if include is None else 0
            if col0 >= n:
                continue
            gram = np.ascontiguousarray(x[rows] @ x[col0:].T)
            rows = np.ascontiguousarray(rows, dtype=np.int64)
            # until the top-k is full (a task's first tile) a few rows at a time, so that the floor rises early
            start = 0
            while start < len(rows):
                filling = topk.k is not None and topk.floor() == -np.inf
                part = slice(start, start + FILL_ROWS if filling else len(rows))
                scores, lower, higher, n_valid = kernel(gram[part], rows[part], col0, projection, norm2, q_norm, flags,
                                                        topk.sign, topk.floor())
                topk.push(scores, lower, higher, n_scored=n_valid)
                progress.update(_anchored_pairs(rows[part], n, outside))
                start = part.stop
        return
    for rows in chosen:
        col0 = int(rows[0]) + 1 if include is None else 0
        cols = np.arange(col0, n)
        if len(cols) == 0:
            continue
        if include is None:
            valid = cols[None, :] > rows[:, None]
        else:
            valid = (cols[None, :] != rows[:, None]) & (outside[cols][None, :] | (cols[None, :] > rows[:, None]))
        gram = np.ascontiguousarray(x[rows] @ x[col0:].T)
        r_idx, c_idx = np.nonzero(valid)
        a, b = rows[r_idx], cols[c_idx]
        scale = norm2[a] + norm2[b]
        den2 = gram[r_idx, c_idx]
        den2 *= 2.0
        den2 += scale
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (projection[a] + projection[b]) / (np.sqrt(np.maximum(den2, 0.0)) * q_norm)
        value = np.where(den2 > 1e-12 * scale, np.clip(value, -1.0, 1.0), np.nan)
        topk.push(value, np.minimum(a, b), np.maximum(a, b))
        progress.update(len(a))


class PairModel(Protocol):
    """Anything that turns a block of pairs into pair signatures on the query's gene space."""

    def signatures(self, block: PairBlock) -> np.ndarray: ...


class LinearPairModel:
    """w (a + b): average (w = 1/2) or additive (w = 1); NaN counts as 0; float64 on `columns`."""

    def __init__(self, library: DrugLibrary, columns: np.ndarray, weight: float) -> None:
        self.weight = float(weight)
        self.values = np.nan_to_num(library.effects[:, columns], nan=0.0)  # float32, exact in float64

    def signatures(self, block: PairBlock) -> np.ndarray:
        pair = np.add(self.values[block.left], self.values[block.right], dtype=np.float64)
        pair *= self.weight
        return pair


def block_pairs_for(n_columns: int, budget_mb: float = 256.0, floor: int = 64) -> int:
    """Pairs per streamed block so that a block's few float64 temporaries fit in budget_mb."""
    return max(floor, int(budget_mb * 2**20 / (8 * 6 * max(1, n_columns))))


def streamed_block_pairs(prepared: PreparedQuery, linear: bool, block_pairs: int | None = None) -> int:
    """Pairs per streamed block: the given size, else what the scorer's memory needs allow (linear: a
    LinearPairModel, else a model such as the stacked one)."""
    if block_pairs:
        return int(block_pairs)
    if linear:
        return FUSED_BLOCK_PAIRS if prepared.rank_kernel() is not None else block_pairs_for(len(prepared.space))
    return STACKED_BLOCK_PAIRS


def streamed_pair_scores(
    prepared: PreparedQuery,
    model: PairModel,
    n_drugs: int,
    topk: RunningTopK,
    include: np.ndarray | None = None,
    block_pairs: int | None = None,
    blocks: range | None = None,
) -> None:
    """Materialize pair signatures block by block, score them, keep the running top-k.

    WTCS and extreme XSum of the linear models run in a compiled kernel that builds each pair signature
    itself (`combomap.query.rank`; no block of pair signatures in memory), when numba is installed.
    `blocks` (numbers of `iter_pair_blocks`) scores only those blocks: the split the Dask engine uses."""
    size = streamed_block_pairs(prepared, isinstance(model, LinearPairModel), block_pairs)
    kernel = prepared.rank_kernel() if isinstance(model, LinearPairModel) else None
    every_pair = n_pairs(n_drugs, include)
    chosen = range(-(-every_pair // size)) if blocks is None else blocks
    total = sum(min(size, every_pair - block * size) for block in chosen)
    with Progress(total, PAIRS_DESC, unit="pair") as progress:
        if kernel is not None:
            values = np.ascontiguousarray(model.values)  # rows read whole by the kernel
            for block in iter_pair_blocks(n_drugs, include, size, blocks):
                scores = kernel.score_pairs(values, block.left, block.right, model.weight, prepared.n_threads)
                topk.push(scores, block.left, block.right)
                progress.update(len(block))
            return
        for block in iter_pair_blocks(n_drugs, include, size, blocks):
            topk.push(prepared.score_block(model.signatures(block)), block.left, block.right)
            progress.update(len(block))


def include_indices(library: DrugLibrary, include: Sequence[str] | None) -> np.ndarray | None:
    """Library rows of the `include` drugs (None = all pairs); unknown names are a clear error."""
    if include is None or len(include) == 0:
        return None
    names = [str(d) for d in include]
    if len(set(names)) != len(names):
        dup = next(d for i, d in enumerate(names) if d in names[:i])
        raise SettingsError(f"pairs.include: drug {dup!r} is listed twice")
    return library.index_of(names)

