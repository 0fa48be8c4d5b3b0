"""Pairs: every unordered pair exactly once, the running top-k, and fast (Gram) == naive for each fast score."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.query.pair_scoring import (
    RunningTopK,
    _anchored_pairs,
    _outside,
    gram_pair_scores,
    gram_tiles,
    iter_pair_blocks,
    n_pairs,
)
from combomap.query.rank import rank_kernels_available
from combomap.query.scores import library_block, prepare_query
from combomap.query.search import rank_pairs
from combomap.settings import SettingsError
from tests.query.helpers import all_pairs, query_from, ranked, reference_score, reference_wtcs, small_library

WEIGHTS = {"average": 0.5, "additive": 1.0}


@pytest.mark.parametrize("n", [2, 3, 17])
@pytest.mark.parametrize("include", [None, [0], [2, 5, 1], "all"])
@pytest.mark.parametrize("block", [1, 7, 1000])
def test_every_pair_exactly_once(n: int, include, block: int) -> None:
    if include == "all":
        include = list(range(n))
    if include is not None:
        include = [i for i in include if i < n]
    blocks = list(iter_pair_blocks(n, None if include is None else np.array(include), block))
    pairs = [(int(a), int(b)) for blk in blocks for a, b in zip(blk.left, blk.right)]
    assert all(a < b for a, b in pairs)
    assert max(Counter(pairs).values(), default=1) == 1
    assert set(pairs) == set(all_pairs(n, include))
    assert len(pairs) == n_pairs(n, None if include is None else np.array(include))
    assert all(len(blk) <= block for blk in blocks)
    for blk in blocks:  # pieces tile the block and agree with left/right
        for piece, (start, stop) in zip(blk.pieces, blk.spans):
            anchor_side = blk.left if piece.anchor_first else blk.right
            partner_side = blk.right if piece.anchor_first else blk.left
            assert (anchor_side[start:stop] == piece.anchor).all()
            assert (partner_side[start:stop] == piece.partners).all()
    assert n_pairs(1309) == 856_086


def test_running_top_k_equals_a_full_sort() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=5000)
    scores[::97] = np.nan
    left, right = np.arange(5000), np.arange(5000) + 1
    for direction, sign in (("mimic", 1), ("reverse", -1)):
        top = RunningTopK(50, direction)
        everything = RunningTopK(None, direction)
        for start in range(0, 5000, 333):
            top.push(scores[start : start + 333], left[start : start + 333], right[start : start + 333])
            everything.push(scores[start : start + 333], left[start : start + 333], right[start : start + 333])
        got, got_left, _ = top.result()
        expected = np.argsort(-sign * np.nan_to_num(scores, nan=-sign * np.inf), kind="stable")[:50]
        np.testing.assert_array_equal(got_left, left[expected])
        all_scores, _, _ = everything.result()
        assert len(all_scores) == 5000 and np.isnan(all_scores[-50:]).all()
        assert top.n_seen == 5000
    with pytest.raises(SettingsError, match="direction must be one of"):
        RunningTopK(5, "sideways")
    tied = RunningTopK(3)  # ties at the cut keep the smallest pairs, whatever the block boundaries
    for start in (6, 3, 0):
        tied.push(np.ones(3), np.arange(start, start + 3), np.arange(start, start + 3) + 10)
    np.testing.assert_array_equal(tied.result()[1], [0, 1, 2])


def _naive_table(library: DrugLibrary, prepared, weight: float, include: list[int] | None) -> pd.DataFrame:
    """Materialize every pair's signature w (a + b) on all genes, then score on the genes used."""
    effects = np.nan_to_num(library.effects).astype(np.float64)
    rows = []
    q = prepared.values
    for a, b in all_pairs(library.n_drugs, include):
        pair = weight * (effects[a] + effects[b])
        if prepared.score == "wtcs":
            universe = pair[prepared.universe]
            value = reference_wtcs(universe, prepared.query_in_universe[prepared.up], prepared.query_in_universe[prepared.down])
        else:
            value = reference_score(prepared.score, q, pair[prepared.columns])
        rows.append((library.drugs[a], library.drugs[b], value))
    return pd.DataFrame(rows, columns=["drug1", "drug2", "naive"])


@pytest.mark.parametrize("score", ["pearson", "cosine", "xsum"])
@pytest.mark.parametrize("model", ["average", "additive"])
@pytest.mark.parametrize("include", [None, [3, 11, 12]])
def test_fast_pair_scores_equal_naive_materialize_and_score(score: str, model: str, include) -> None:
    library = small_library(n_drugs=22, n_genes=90, seed=7, missing=0.15)
    query = pd.Series(np.random.default_rng(1).normal(size=90), index=library.genes)
    prepared = prepare_query(query, library, score, top_n=40)
    names = None if include is None else [library.drugs[i] for i in include]
    fast = rank_pairs(library, prepared, model, include=names, top_k=None)
    assert fast.method == "gram"
    streamed = rank_pairs(library, prepared, model, include=names, top_k=None, method="streamed", block_pairs=13)
    naive = _naive_table(library, prepared, WEIGHTS[model], include)
    merged = fast.table.merge(naive, on=["drug1", "drug2"], validate="one_to_one").merge(
        streamed.table, on=["drug1", "drug2"], suffixes=("", "_streamed")
    )
    assert len(merged) == len(naive) == fast.n_pairs
    np.testing.assert_allclose(merged.score, merged.naive, atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose(merged.score, merged.score_streamed, atol=1e-10, rtol=1e-10)
    assert (fast.table.score.diff().dropna() <= 0).all()  # best (highest) first


@pytest.mark.parametrize("score", ["spearman", "wtcs"])
def test_streamed_scores_without_a_shortcut_equal_naive(score: str) -> None:
    library = small_library(n_drugs=12, n_genes=50, seed=8, missing=0.2)
    query = pd.Series(np.random.default_rng(2).normal(size=50), index=library.genes)
    prepared = prepare_query(query, library, score, top_n=20)
    ranking = rank_pairs(library, prepared, "average", top_k=None, block_pairs=9)
    assert ranking.method == "streamed"
    with pytest.raises(SettingsError, match="no Gram shortcut"):
        rank_pairs(library, prepared, "average", method="gram")
    merged = ranking.table.merge(_naive_table(library, prepared, 0.5, None), on=["drug1", "drug2"])
    assert len(merged) == n_pairs(12)
    np.testing.assert_allclose(merged.score, merged.naive, atol=1e-10)


def test_top_k_and_direction_agree_with_the_full_ranking() -> None:
    library = small_library(n_drugs=30, n_genes=60, seed=9)
    prepared = prepare_query(query_from(library, 5), library, "pearson", 30)
    full = rank_pairs(library, prepared, "average", top_k=None).table
    top = rank_pairs(library, prepared, "average", top_k=25).table
    pd.testing.assert_frame_equal(top, full.head(25))
    reverse = rank_pairs(library, prepared, "average", top_k=25, direction="reverse").table
    expected = full.sort_values("score", kind="stable").head(25)
    np.testing.assert_allclose(reverse.score, expected.score)
    assert list(top["rank"]) == list(range(1, 26))


def test_a_pair_that_cancels_out_scores_nan_in_both_paths() -> None:
    effects = np.array([[1.0, -2.0, 0.5, 3.0], [-1.0, 2.0, -0.5, -3.0], [0.3, 0.1, -1.0, 2.0]], dtype=np.float32)
    library = DrugLibrary(effects=effects, genes=list("abcd"), drugs=["x", "minus_x", "z"])
    prepared = prepare_query(pd.Series([1.0, 2.0, -1.0, 0.5], index=list("abcd")), library, "pearson", None)
    for method in ("gram", "streamed"):
        table = rank_pairs(library, prepared, "average", top_k=None, method=method).table
        cancelled = table[(table.drug1 == "x") & (table.drug2 == "minus_x")]
        assert np.isnan(cancelled.score.iloc[0]) and cancelled["rank"].iloc[0] == 3  # NaN ranks last


def test_run_query_tables_and_include_errors() -> None:
    library = small_library(n_drugs=10, n_genes=40, seed=10)
    result = ranked(query_from(library, 2), library, top_n=30, include=["D02"], pairs_top_k=None)
    assert result.drugs.drug.iloc[0] == "D02"
    assert len(result.pairs) == 9 and set(result.pairs.drug1).union(result.pairs.drug2) >= {"D02"}
    assert {"drug1_score", "drug2_score"} <= set(result.pairs.columns)
    assert result.report["n_pairs"] == 9 and result.report["pair_method"] == "gram"
    with pytest.raises(DataError, match="unknown drug"):
        ranked(query_from(library, 2), library, include=["nope"])
    with pytest.raises(SettingsError, match="pairs.include: drug 'D01' is listed twice"):
        ranked(query_from(library, 2), library, include=["D01", "D01"])
    with pytest.raises(SettingsError, match="stacked model"):
        ranked(query_from(library, 2), library, pair_model="stacked")


@pytest.mark.parametrize("score", ["pearson", "cosine"])
@pytest.mark.parametrize("include", [None, [1, 6, 7, 20]])
@pytest.mark.parametrize("top_k,direction", [(None, "mimic"), (9, "mimic"), (9, "reverse"), (1, "reverse")])
@pytest.mark.parametrize("tile_mb", [0.0004, 1.0])  # one anchor per tile; one tile (filled a few rows at a time)
def test_compiled_gram_tiles_equal_the_numpy_path_bit_for_bit(score, include, top_k, direction, tile_mb) -> None:
    if not rank_kernels_available():
        pytest.skip("numba missing")
    library = small_library(n_drugs=23, n_genes=40, seed=8)
    library.effects[4] = library.effects[3]  # a tie, and pair (3, 4) scores like (3, 3) would
    library.effects[12] = 0.0  # a drug with zero signature: NaN scores for nothing, but a degenerate row
    prepared = prepare_query(query_from(library, 2), library, score, 25)
    x = library_block(library, slice(None), prepared.columns)
    rows = None if include is None else np.array(include)
    results = []
    for compiled in (False, True):
        topk = RunningTopK(top_k, direction)
        gram_pair_scores(prepared, x, 0.5, topk, rows, tile_mb=tile_mb, compiled=compiled)
        results.append((topk.n_seen, *topk.result()))
    assert results[0][0] == results[1][0] == n_pairs(23, rows)
    for fast, slow in zip(results[1][1:], results[0][1:]):
        np.testing.assert_array_equal(fast, slow)


def test_progress_counts_every_pair_of_the_gram_tiles_once() -> None:
    """The query's progress total (pairs owned by each tile's anchors) equals the pairs the tiles score."""
    rng = np.random.default_rng(0)
    for n in (2, 5, 37, 200):
        for include in (None, rng.choice(n, size=max(1, n // 4), replace=False)):
            tiles, outside = gram_tiles(n, include, 0.01), _outside(n, include)
            assert sum(_anchored_pairs(rows, n, outside) for rows in tiles) == n_pairs(n, include)
