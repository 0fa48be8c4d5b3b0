"""Compiled WTCS / extreme XSum kernels (combomap.query.rank) equal the numpy implementations they replace."""

from __future__ import annotations

import numpy as np
import pytest

from combomap.query import rank as rank_module
from combomap.query.pair_scoring import LinearPairModel, RunningTopK, streamed_pair_scores
from combomap.query.rank import RankKernel, wtcs, xsum_extreme
from combomap.query.scores import prepare_query
from combomap.query.search import drug_scores, rank_pairs
from combomap.settings import SettingsError
from tests.query.helpers import query_from, reference_wtcs, small_library

pytestmark = [
    pytest.mark.skipif(not rank_module.rank_kernels_available(), reason="numba is not installed"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # numpy on the rows with inf / NaN
]

TOL = 1e-12


def hard_signatures(n_rows: int, n_genes: int, members: np.ndarray, seed: int) -> np.ndarray:
    """Rows with ties (rounded values), exact zeros, -0.0, members at the extremes, all-equal rows."""
    rng = np.random.default_rng(seed)
    s = np.round(rng.normal(size=(n_rows, n_genes)), 1)
    s[rng.random(s.shape) < 0.15] = 0.0
    s[rng.random(s.shape) < 0.05] = -0.0
    s[0] = 0.0
    s[1] = 1.5
    s[2] = -0.7
    s[3, members] = s[3].max()  # members tied at the top
    s[4, members] = s[4].min()  # and at the bottom
    s[5, members[::2]] = s[5].max() + 1.0
    s[5, members[1::2]] = s[5].min() - 1.0
    s[6] = np.arange(n_genes) % 3  # three values, many ties
    s[7, members] = 0.0  # every member tied with the zeros
    s[8] = rng.normal(size=n_genes) * 1e-300  # a tiny range
    s[9, members[:2]] = [np.inf, -np.inf]
    s[10, members[-1]] = 1e300
    return s


def reference(score: str, s: np.ndarray, up: np.ndarray, down: np.ndarray, extreme: int | None) -> np.ndarray:
    return wtcs(s, up, down) if score == "wtcs" else xsum_extreme(s, up, down, extreme)


def assert_equal_scores(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected) & (got != expected)  # equal infinities are equal
    assert np.all(np.abs(got[ok] - expected[ok]) <= TOL), np.abs(got[ok] - expected[ok]).max()


CASES = [("wtcs", None), ("xsum", 1), ("xsum", 7), ("xsum", 40), ("xsum", 500)]


@pytest.mark.parametrize("score,extreme", CASES)
@pytest.mark.parametrize("n_up,n_down", [(12, 9), (20, 0), (0, 15), (1, 1)])
def test_kernel_equals_numpy_on_hard_signatures(score: str, extreme: int | None, n_up: int, n_down: int) -> None:
    n_genes = 230
    rng = np.random.default_rng(n_up * 100 + n_down)
    columns = 1 + rng.permutation(n_genes - 2)[: n_up + n_down]
    columns[0] = 0  # members in the first and last columns
    if len(columns) > 1:
        columns[-1] = n_genes - 1
    up, down = columns[:n_up], columns[n_up:]
    s = hard_signatures(300, n_genes, columns, seed=n_up + n_down)
    kernel = RankKernel(score, up, down, n_genes, extreme)
    expected = reference(score, s, up, down, extreme)
    one = kernel.score_rows(s, n_threads=1)
    two = kernel.score_rows(s, n_threads=2)
    assert_equal_scores(one, expected)
    np.testing.assert_array_equal(one, two)
    if score == "wtcs":  # exact operation for operation
        np.testing.assert_array_equal(one, expected)
        for row in range(9):  # the finite rows
            if n_up and n_down:
                assert one[row] == pytest.approx(reference_wtcs(s[row], up, down), abs=1e-12)
    for row in (0, 3, 9):  # a single row (numpy sums one row pairwise: last bits may differ)
        assert_equal_scores(kernel.score_rows(s[row : row + 1]), expected[row : row + 1])


@pytest.mark.parametrize("score,extreme", CASES)
def test_rows_with_nan_are_scored_as_numpy_does(score: str, extreme: int | None) -> None:
    rng = np.random.default_rng(5)
    s = np.round(rng.normal(size=(40, 90)), 1)
    up, down = np.array([3, 10, 50]), np.array([0, 89, 7])
    s[2, 5] = np.nan  # a gene
    s[4, 10] = np.nan  # a member
    s[6] = np.nan
    kernel = RankKernel(score, up, down, 90, extreme)
    with np.errstate(invalid="ignore"):
        expected = reference(score, s, up, down, extreme)
    assert_equal_scores(kernel.score_rows(s, 1), expected)
    np.testing.assert_array_equal(kernel.score_rows(s, 1), kernel.score_rows(s, 2))


@pytest.mark.parametrize("score,extreme", CASES)
def test_pair_kernel_equals_materialized_pairs(score: str, extreme: int | None) -> None:
    rng = np.random.default_rng(6)
    values = np.round(rng.normal(size=(30, 120)), 1).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = 0.0
    left, right = np.triu_indices(30, 1)
    up, down = np.array([1, 5, 9, 60, 119]), np.array([0, 33, 70])
    kernel = RankKernel(score, up, down, 120, extreme)
    for weight in (0.5, 1.0):
        pairs = np.add(values[left], values[right], dtype=np.float64)
        pairs *= weight
        expected = reference(score, pairs, up, down, extreme)
        one = kernel.score_pairs(values, left, right, weight, n_threads=1)
        assert_equal_scores(one, expected)
        np.testing.assert_array_equal(one, kernel.score_pairs(values, left, right, weight, n_threads=2))
        np.testing.assert_array_equal(one, kernel.score_rows(pairs))


@pytest.mark.parametrize("score,extreme", CASES[:3])
@pytest.mark.parametrize("top_n", [15, None])
def test_single_drug_and_pair_rankings_equal_the_numpy_scorer(score: str, extreme: int | None, top_n: int | None) -> None:
    library = small_library(n_drugs=26, n_genes=70, seed=8)
    query = query_from(library, 3) + query_from(library, 11)
    compiled = prepare_query(query, library, score, top_n, extreme)
    numpy_scorer = prepare_query(query, library, score, top_n, extreme)
    numpy_scorer.rank_scorer = "numpy"
    assert compiled.rank_kernel() is not None and numpy_scorer.rank_kernel() is None
    assert_equal_scores(drug_scores(library, compiled), drug_scores(library, numpy_scorer))
    for include in (None, [library.drugs[4], library.drugs[20]]):
        for model in ("average", "additive"):
            fast = rank_pairs(library, compiled, model, include=include, top_k=None)
            slow = rank_pairs(library, numpy_scorer, model, include=include, top_k=None)
            assert list(zip(fast.table.drug1, fast.table.drug2)) == list(zip(slow.table.drug1, slow.table.drug2))
            assert np.abs(fast.table.score.to_numpy() - slow.table.score.to_numpy()).max() <= TOL
            top = rank_pairs(library, compiled, model, include=include, top_k=10)
            assert list(top.table.drug1) == list(slow.table.drug1[:10])


def test_streamed_blocks_and_threads_give_identical_rankings() -> None:
    library = small_library(n_drugs=30, n_genes=60, seed=9)
    prepared = prepare_query(query_from(library, 2), library, "wtcs", 20)
    model = LinearPairModel(library, prepared.space, 0.5)
    results = []
    for block_pairs, threads in ((7, 1), (7, 2), (1000, 2)):
        prepared.n_threads = threads
        topk = RunningTopK(None)
        streamed_pair_scores(prepared, model, library.n_drugs, topk, block_pairs=block_pairs)
        results.append(topk.result())
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_fallback_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    library = small_library(n_drugs=12, n_genes=40, seed=10)
    prepared = prepare_query(query_from(library, 1), library, "wtcs", 10)
    expected = drug_scores(library, prepared)
    monkeypatch.setattr(rank_module, "_rank_kernels", None)  # as without numba
    fallback = prepare_query(query_from(library, 1), library, "wtcs", 10)
    assert fallback.rank_kernel() is None
    np.testing.assert_array_equal(drug_scores(library, fallback), expected)
    fallback.rank_scorer = "compiled"
    with pytest.raises(SettingsError, match="numba"):
        fallback.rank_kernel()
    fallback.rank_scorer = "fast"
    with pytest.raises(SettingsError, match="unknown rank scorer 'fast'"):
        fallback.rank_kernel()


def test_scores_without_a_kernel_are_untouched() -> None:
    library = small_library(n_drugs=10, n_genes=40, seed=11)
    for score, extreme in (("pearson", None), ("spearman", None), ("xsum", None)):
        assert prepare_query(query_from(library, 1), library, score, 10, extreme).rank_kernel() is None


@pytest.mark.parametrize("score,extreme", [("wtcs", None), ("xsum", 7)])
def test_any_histogram_cell_count_gives_the_same_scores(score: str, extreme: int | None) -> None:
    rng = np.random.default_rng(41)
    members = rng.choice(300, 30, replace=False)
    up, down = members[:18], members[18:]
    s = hard_signatures(40, 300, members, seed=6)
    expected = reference(score, s, up, down, extreme)
    assert rank_module.cells_for(300) == 1024 and rank_module.cells_for(11525) == 16384
    for n_cells in (4, 7, 64, 1024, 16384):
        assert_equal_scores(RankKernel(score, up, down, 300, extreme, n_cells=n_cells).score_rows(s), expected)
