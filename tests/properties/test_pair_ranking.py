"""The query's pair enumeration scores each unordered pair of distinct drugs once, and its top-k is the first k of
a full sort (best first, NaN last, ties by (drug1, drug2) in library order; drugs: ties by library order)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from combomap.data.library import DrugLibrary
from combomap.query import prepare_query, rank_drugs, rank_pairs
from combomap.query.pair_scoring import RunningTopK, iter_pair_blocks, n_pairs
from tests.properties.strategies import blocks, fast

N_GENES = 6


@st.composite
def enumerations(draw) -> tuple[int, np.ndarray | None, int]:
    """(n_drugs, include (None: all pairs) as library rows, pairs per block)."""
    n_drugs = draw(st.integers(2, 14))
    include = draw(st.none() | st.sets(st.integers(0, n_drugs - 1), min_size=1).map(lambda s: np.array(sorted(s))))
    return n_drugs, include, draw(st.integers(1, 30))


def _expected_pairs(n_drugs: int, include: np.ndarray | None) -> set[tuple[int, int]]:
    wanted = set(range(n_drugs)) if include is None else set(include.tolist())
    return {(i, j) for i in range(n_drugs) for j in range(i + 1, n_drugs) if i in wanted or j in wanted}


@fast(80)
@given(enumerations(), st.data())
def test_blocks_enumerate_each_unordered_pair_once(setup: tuple[int, np.ndarray | None, int], data) -> None:
    n_drugs, include, block_pairs = setup
    blocks_ = list(iter_pair_blocks(n_drugs, include, block_pairs))
    left = np.concatenate([b.left for b in blocks_])
    right = np.concatenate([b.right for b in blocks_])
    assert (left < right).all()  # never (A, A), and each pair in one orientation
    pairs = list(zip(left.tolist(), right.tolist()))
    assert len(pairs) == len(set(pairs)) == n_pairs(n_drugs, include)
    assert set(pairs) == _expected_pairs(n_drugs, include)
    assert all(len(b) == block_pairs for b in blocks_[:-1]) and 0 < len(blocks_[-1]) <= block_pairs
    # a task that scores blocks lo..hi gets exactly those blocks of the full pass
    lo = data.draw(st.integers(0, len(blocks_) - 1))
    hi = data.draw(st.integers(lo, len(blocks_)))
    for part, whole in zip(iter_pair_blocks(n_drugs, include, block_pairs, blocks=range(lo, hi)), blocks_[lo:hi],
                           strict=True):  # fmt: skip
        assert np.array_equal(part.left, whole.left) and np.array_equal(part.right, whole.right)


class RecordingAverage:
    """The average pair model that remembers every pair it was asked to score."""

    def __init__(self, library: DrugLibrary, columns: np.ndarray) -> None:
        self.values = np.nan_to_num(library.effects[:, columns]).astype(np.float64)
        self.scored: list[tuple[int, int]] = []

    def signatures(self, block) -> np.ndarray:
        self.scored += list(zip(block.left.tolist(), block.right.tolist()))
        return 0.5 * (self.values[block.left] + self.values[block.right])


@st.composite
def libraries(draw, min_drugs: int = 2, max_drugs: int = 12) -> DrugLibrary:
    """Effects with ties, signed zeros and NaN; drugs D00.. (library order = name order)."""
    n_drugs = draw(st.integers(min_drugs, max_drugs))
    effects = draw(blocks((n_drugs, N_GENES), low=-2.0, high=2.0))
    effects[:, 0], effects[0, 1] = 1.0, -1.0  # correlations need two measured genes; any other may be unmeasured
    genes, drugs = [f"G{j}" for j in range(N_GENES)], [f"D{i:02d}" for i in range(n_drugs)]
    return DrugLibrary(effects=effects, genes=genes, drugs=drugs)


def _query(library: DrugLibrary, score: str, seed: int):
    values = np.random.default_rng(seed).normal(size=N_GENES)
    return prepare_query(pd.Series(values, index=library.genes), library, score, top_n=None)


@fast(40)
@given(libraries(), st.data())
def test_a_pair_query_scores_each_unordered_pair_once(library: DrugLibrary, data) -> None:
    include = data.draw(st.none() | st.lists(st.sampled_from(library.drugs), min_size=1, unique=True))
    prepared = _query(library, data.draw(st.sampled_from(["pearson", "spearman", "cosine"])), seed=0)
    model = RecordingAverage(library, prepared.space)
    ranking = rank_pairs(library, prepared, model, include=include, top_k=None, method="streamed",
                         block_pairs=data.draw(st.integers(1, 20)))  # fmt: skip
    rows = None if include is None else library.index_of(include)
    expected = _expected_pairs(library.n_drugs, rows)
    assert len(model.scored) == len(set(model.scored)) == ranking.n_pairs == len(expected)
    assert set(model.scored) == expected
    table = set(zip(ranking.table["drug1"], ranking.table["drug2"]))
    assert table == {(library.drugs[i], library.drugs[j]) for i, j in expected}


def _full_sort(scores: np.ndarray, left: np.ndarray, right: np.ndarray, direction: str) -> np.ndarray:
    """Positions best first, as documented: by score (mimic: highest first, reverse: lowest), NaN last, ties by
    (left, right)."""
    sign = 1.0 if direction == "mimic" else -1.0

    def key(i: int) -> tuple:
        missing = bool(np.isnan(scores[i]))
        return (missing, 0.0 if missing else -sign * scores[i], left[i], right[i])

    return np.array(sorted(range(len(scores)), key=key), dtype=np.int64)


@fast(120)
@given(st.integers(1, 36).flatmap(lambda n: st.tuples(  # 36 = the pairs of 9 drugs
    st.lists(st.sampled_from([-1.0, -0.0, 0.0, 0.5, 1.0, np.nan]) | st.floats(-3, 3), min_size=n, max_size=n),
    st.permutations([(i, j) for i in range(9) for j in range(i + 1, 9)]).map(lambda p: p[:n]),
)), st.none() | st.integers(1, 45), st.sampled_from(["mimic", "reverse"]), st.lists(st.integers(1, 10), min_size=1))
def test_running_top_k_is_the_first_k_of_a_full_sort(entries, k: int | None, direction: str, chunks: list[int]) -> None:
    values, pairs = entries
    scores = np.array(values, dtype=np.float64)
    left = np.array([p[0] for p in pairs], dtype=np.int64)
    right = np.array([p[1] for p in pairs], dtype=np.int64)
    topk = RunningTopK(k, direction)
    start = 0
    for size in chunks * len(scores):  # offered in blocks of varying size, as the engines do
        if start >= len(scores):
            break
        topk.push(scores[start : start + size], left[start : start + size], right[start : start + size])
        start += size
    got_scores, got_left, got_right = topk.result()
    best = _full_sort(scores, left, right, direction)[:k]
    np.testing.assert_array_equal(got_scores, scores[best])
    assert got_left.tolist() == left[best].tolist() and got_right.tolist() == right[best].tolist()
    assert topk.n_seen == len(scores)


@fast(40)
@given(libraries(min_drugs=3), st.sampled_from(["pearson", "cosine", "spearman", "xsum"]),
       st.sampled_from(["mimic", "reverse"]), st.sampled_from(["average", "additive"]), st.integers(1, 80))
def test_rank_pairs_top_k_is_the_head_of_all_pairs_ranked(library: DrugLibrary, score: str, direction: str, model: str,
                                                           k: int) -> None:
    prepared = _query(library, score, seed=1)
    every = rank_pairs(library, prepared, model, top_k=None, direction=direction).table
    top = rank_pairs(library, prepared, model, top_k=k, direction=direction).table
    pd.testing.assert_frame_equal(top, every.head(k))
    position = {drug: i for i, drug in enumerate(library.drugs)}
    left = every["drug1"].map(position).to_numpy()
    right = every["drug2"].map(position).to_numpy()
    order = _full_sort(every["score"].to_numpy(), left, right, direction)
    np.testing.assert_array_equal(order, np.arange(len(every)))  # the full table is itself fully sorted


@fast(60)
@given(libraries(), st.sampled_from(["pearson", "cosine", "spearman", "xsum"]), st.sampled_from(["mimic", "reverse"]),
       st.integers(1, 15))
def test_rank_drugs_top_k_is_the_head_of_a_full_sort(library: DrugLibrary, score: str, direction: str, k: int) -> None:
    prepared = _query(library, score, seed=2)
    every = rank_drugs(library, prepared, direction, top_k=None)
    pd.testing.assert_frame_equal(rank_drugs(library, prepared, direction, top_k=k), every.head(k))
    assert sorted(every["drug"]) == library.drugs and every["rank"].tolist() == list(range(1, library.n_drugs + 1))
    rows = every["drug"].map({drug: i for i, drug in enumerate(library.drugs)}).to_numpy()
    order = _full_sort(every["score"].to_numpy(), rows, rows, direction)
    np.testing.assert_array_equal(order, np.arange(library.n_drugs))  # the full table is itself fully sorted
