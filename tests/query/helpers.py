"""Small hand-made drug libraries and an independent (slow, obvious) reference scorer for the query tests."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from combomap.data.library import DrugLibrary
from combomap.query.search import Query, QueryResult, run_query
from combomap.query.settings import DrugOptions, PairOptions, QueryOptions

# the tests' flat keywords for pairs.* (ranked(..., pair_model="stacked", pairs_top_k=None))
PAIR_KEYWORDS = {"pairs": "enabled", "pair_model": "model", "include": "include", "pairs_top_k": "top_k",
                 "method": "method", "block_pairs": "block_pairs", "inference": "inference",
                 "stacker_predictor": "stacker_predictor"}


def small_library(n_drugs: int = 24, n_genes: int = 60, seed: int = 0, missing: float = 0.1, variances: bool = True) -> DrugLibrary:
    rng = np.random.default_rng(seed)
    effects = rng.normal(size=(n_drugs, n_genes)).astype(np.float32)
    effects[rng.random(effects.shape) < missing] = np.nan
    var = None
    if variances:
        var = (np.abs(rng.normal(size=(n_drugs, n_genes))) * 0.1 + 0.05).astype(np.float32)
        var[rng.random(var.shape) < missing / 2] = np.nan
    return DrugLibrary(
        effects=effects, genes=[f"G{j}" for j in range(n_genes)], drugs=[f"D{i:02d}" for i in range(n_drugs)], variances=var
    )


def query_from(library: DrugLibrary, row: int, sign: float = 1.0) -> pd.Series:
    """A drug's own signature as a query (unmeasured genes as 0, as the library is scored)."""
    return pd.Series(sign * np.nan_to_num(library.effects[row]).astype(np.float64), index=library.genes)


def options_of(drugs_top_k: int | None = None, **options: Any) -> QueryOptions:
    """Checked QueryOptions from flat keywords: score, top_n, xsum_extreme, direction, drugs_top_k and the
    PAIR_KEYWORDS for pairs.*."""
    pairs = {PAIR_KEYWORDS[name]: options.pop(name) for name in list(options) if name in PAIR_KEYWORDS}
    return QueryOptions(**options, drugs=DrugOptions(top_k=drugs_top_k), pairs=PairOptions(**pairs)).check()


def ranked(signature: pd.Series, library: DrugLibrary, stacked_model: Any = None, engine: Any = None,
           library_source: Any = None, stacked_model_dir: str | None = None, **options: Any) -> QueryResult:
    """`run_query` of the signature prepared under options_of(**options): the whole query in one call."""
    settings = options_of(**options)
    query = Query.prepare(signature, library, settings, stacked_model, stacked_model_dir)
    return run_query(query, library, settings, engine, library_source)


def reference_score(score: str, query: np.ndarray, signature: np.ndarray) -> float:
    """One signature against the query on the genes used, from textbook formulas (scipy)."""
    if score == "pearson":
        return float(stats.pearsonr(query, signature)[0])
    if score == "spearman":
        return float(stats.spearmanr(query, signature)[0])
    if score == "cosine":
        return float(query @ signature / np.linalg.norm(query) / np.linalg.norm(signature))
    if score == "xsum":
        return float(signature[query > 0].sum() - signature[query < 0].sum())
    raise ValueError(score)


def reference_es(signature: np.ndarray, members: np.ndarray) -> float:
    """Weighted KS enrichment from the running sum over the whole ranked list."""
    order = np.argsort(-signature, kind="stable")
    in_set = np.zeros(len(signature), dtype=bool)
    in_set[members] = True
    hit = in_set[order]
    weight = np.abs(signature[order]) * hit
    if weight.sum() == 0:
        return 0.0
    running = np.concatenate([[0.0], np.cumsum(weight / weight.sum() - (~hit) / (len(signature) - len(members)))])
    high, low = running.max(), running.min()
    return float(high if abs(high) > abs(low) else low)


def reference_wtcs(signature: np.ndarray, up: np.ndarray, down: np.ndarray) -> float:
    es_up, es_down = reference_es(signature, up), reference_es(signature, down)
    return (es_up - es_down) / 2 if np.sign(es_up) != np.sign(es_down) else 0.0


def all_pairs(n: int, include: list[int] | None = None) -> list[tuple[int, int]]:
    pairs = list(itertools.combinations(range(n), 2))
    if include is not None:
        pairs = [p for p in pairs if p[0] in include or p[1] in include]
    return pairs
