"""How one query's pairs are cut into numbered units and scored: the one code path of the local ranking
(`combomap.query.search`) and the Dask engine (`combomap.query.distributed`), so that any split of the units gives
the same scores and the same ranked table.

Units are Gram tiles of anchor drugs (`gram_tiles`: the exact shortcut of the average / additive models for
pearson, cosine and linear xsum) or streamed blocks of pairs (`iter_pair_blocks`: any score, any pair model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.query.pair_scoring import (
    GRAM_TILE_MB,
    LinearPairModel,
    PairModel,
    RunningTopK,
    anchor_pair_counts,
    gram_pair_scores,
    gram_tiles,
    n_pair_blocks,
    n_pairs,
    streamed_block_pairs,
    streamed_pair_scores,
)
from combomap.query.scores import PreparedQuery, library_block, prepare_query
from combomap.query.settings import PAIR_METHODS, QueryOptions
from combomap.settings import SettingsError

PAIR_WEIGHTS = {"average": 0.5, "additive": 1.0}  # the linear pair models: weight x (a + b)


def has_gram_path(prepared: PreparedQuery, model: str) -> bool:
    """True when pair scores follow from per-drug projections (+ Gram matrix) without pair signatures."""
    if model not in PAIR_WEIGHTS:
        return False
    return prepared.score in ("pearson", "cosine") or (prepared.score == "xsum" and not prepared.needs_universe)


@dataclass
class PairRanking:
    """The ranked pairs (rank, drug1, drug2, score[, drug1_score, drug2_score]) and how they were scored."""

    table: pd.DataFrame
    n_pairs: int
    method: str
    seconds: float


@dataclass(frozen=True)
class PairPlan:
    """How one pair ranking splits into numbered units (Gram tiles of anchor drugs, `gram_tiles`, or streamed
    blocks of pairs, `iter_pair_blocks`) that are scored the same way wherever they run."""

    method: str  # "gram" | "streamed"
    n_drugs: int
    include: np.ndarray | None
    block_pairs: int  # streamed: pairs per block
    n_units: int
    tile_mb: float = GRAM_TILE_MB  # gram: the tiles' memory budget (sets the anchors per tile)

    def unit_pairs(self) -> np.ndarray:
        """Pairs in each unit (to balance tasks)."""
        if self.method == "streamed":
            total = n_pairs(self.n_drugs, self.include)
            sizes = np.full(self.n_units, self.block_pairs, dtype=np.int64)
            if self.n_units:
                sizes[-1] = total - self.block_pairs * (self.n_units - 1)
            return sizes
        counts = anchor_pair_counts(self.n_drugs, self.include)
        tiles = gram_tiles(self.n_drugs, self.include, self.tile_mb)
        bounds = np.cumsum([0] + [len(t) for t in tiles])
        return np.add.reduceat(counts, bounds[:-1]) if len(tiles) else np.zeros(0, dtype=np.int64)


def plan_pairs(
    library: DrugLibrary,
    prepared: PreparedQuery,
    model: str | PairModel,
    include: np.ndarray | None,
    method: str = "auto",
    block_pairs: int | None = None,
    tile_mb: float = GRAM_TILE_MB,
) -> PairPlan:
    """Check the settings and choose the path (model: "average" | "additive" | a PairModel, or "model" for
    one that a worker builds itself). Units: Gram tiles of about tile_mb, or blocks of block_pairs pairs."""
    if method not in PAIR_METHODS:
        raise SettingsError(f"pairs.method must be one of {list(PAIR_METHODS)}, got {method!r}")
    if library.n_drugs < 2:
        raise DataError(f"{library.source}: pairs need at least 2 drugs, the library has {library.n_drugs}")
    n = library.n_drugs
    if isinstance(model, str) and model in PAIR_WEIGHTS:
        if method == "gram" or (method == "auto" and has_gram_path(prepared, model)):
            if not has_gram_path(prepared, model):
                raise SettingsError(f"score {prepared.score!r} has no Gram shortcut for pairs; use pairs.method=streamed")
            return PairPlan("gram", n, include, 0, len(gram_tiles(n, include, tile_mb)), tile_mb)
        size = streamed_block_pairs(prepared, True, block_pairs)
    elif isinstance(model, str) and model != "model":
        raise SettingsError(f"pair model {model!r}: use one of {list(PAIR_WEIGHTS)} here, or pass a stacked PairModel")
    else:
        if method == "gram":
            raise SettingsError("a model pair scorer has no Gram shortcut; use pairs.method=auto or streamed")
        size = streamed_block_pairs(prepared, False, block_pairs)
    return PairPlan("streamed", n, include, size, n_pair_blocks(n, include, size))


def score_pair_units(
    plan: PairPlan, library: DrugLibrary, prepared: PreparedQuery, model: str | PairModel, topk: RunningTopK, units: range
) -> None:
    """Score the plan's `units` into `topk`: the one code path of the local ranking and the Dask engine."""
    if isinstance(model, str):
        weight = PAIR_WEIGHTS[model]
        if plan.method == "gram":
            signatures = library_block(library, slice(None), prepared.columns)
            gram_pair_scores(prepared, signatures, weight, topk, plan.include, plan.tile_mb, tiles=units)
            return
        model = LinearPairModel(library, prepared.space, weight)
    streamed_pair_scores(prepared, model, plan.n_drugs, topk, plan.include, plan.block_pairs, blocks=units)


def pair_ranking(
    library: DrugLibrary, plan: PairPlan, topk: RunningTopK, seconds: float, single_scores: np.ndarray | None = None
) -> PairRanking:
    """The ranked table of a finished top-k, after checking that every pair was scored exactly once."""
    scores, left, right = topk.result()
    expected = n_pairs(library.n_drugs, plan.include)
    if topk.n_seen != expected:  # the enumeration's contract: every pair exactly once
        raise RuntimeError(f"scored {topk.n_seen} pairs, expected {expected}")
    names = np.asarray(library.drugs, dtype=object)
    table = pd.DataFrame(
        {"rank": np.arange(1, len(scores) + 1), "drug1": names[left], "drug2": names[right], "score": scores}
    )
    if single_scores is not None:
        table["drug1_score"] = single_scores[left]
        table["drug2_score"] = single_scores[right]
    return PairRanking(table=table, n_pairs=expected, method=plan.method, seconds=seconds)


def query_for(
    signature: pd.Series | Mapping[str, float], library: DrugLibrary, options: QueryOptions, stacked_model: Any = None
) -> PreparedQuery:
    """The matched query; with a stacked model, only genes the model predicts are used."""
    allowed = list(stacked_model.genes) if stacked_model is not None else None
    return prepare_query(signature, library, options.score, options.top_n, options.xsum_extreme, allowed_genes=allowed)
