"""Rank drugs and drug pairs against a query: the functions the CLI, the benchmark and tests call.

Pair models: "average" (a + b) / 2, "additive" a + b (same ranking as average for every score but
xsum, which scales by 2), "stacked" (the trained stacked model, `combomap.query.stacked`).
Which pair scores have an exact shortcut (no pair signatures built): pearson, cosine and linear
xsum (xsum_extreme null) under average/additive. Everything else (spearman, wtcs, xsum with
extreme genes, the stacked model) streams pair signatures in blocks: exact, memory-bounded, slower.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.query.pairs import (
    DIRECTIONS,
    LinearPairModel,
    PairModel,
    GRAM_TILE_MB,
    RunningTopK,
    anchor_pair_counts,
    gram_pair_scores,
    gram_tiles,
    include_indices,
    n_pair_blocks,
    n_pairs,
    streamed_block_pairs,
    streamed_pair_scores,
)
from combomap.query.scores import SCORES, PreparedQuery, library_block, prepare_query
from combomap.query.stacked import LearnedPairModel, StackedPairModel, check_query_genes_only, check_stacker_engine
from combomap.settings import choice, integer
from combomap.stacking.final_model import INFERENCE_MODES

PAIR_MODELS = ("average", "additive", "stacked")
PAIR_WEIGHTS = {"average": 0.5, "additive": 1.0}
PAIR_METHODS = ("auto", "gram", "streamed")


def has_gram_path(prepared: PreparedQuery, model: str) -> bool:
    """True when pair scores follow from per-drug projections (+ Gram matrix) without pair signatures."""
    if model not in PAIR_WEIGHTS:
        return False
    return prepared.score in ("pearson", "cosine") or (prepared.score == "xsum" and not prepared.needs_universe)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise DataError(f"unknown direction {direction!r}; choose one of {list(DIRECTIONS)}")


def drug_scores(library: DrugLibrary, prepared: PreparedQuery, block_mb: float = 128.0) -> np.ndarray:
    """Every library drug's score (float64, library order), scored in blocks of drugs."""
    rows_per_block = max(1, int(block_mb * 2**20 / (8 * 4 * max(1, len(prepared.space)))))
    out = np.empty(library.n_drugs, dtype=np.float64)
    for start in range(0, library.n_drugs, rows_per_block):
        rows = slice(start, min(start + rows_per_block, library.n_drugs))
        out[rows] = prepared.score_block(library_block(library, rows, prepared.space))
    return out


def _order(scores: np.ndarray, direction: str) -> np.ndarray:
    key = scores if direction == "mimic" else -scores
    key = np.where(np.isnan(key), -np.inf, key)
    return np.lexsort((np.arange(len(scores)), -key))


def rank_drugs(
    library: DrugLibrary, prepared: PreparedQuery, direction: str = "mimic", top_k: int | None = None
) -> pd.DataFrame:
    """Table rank, drug, score: best first (mimic: highest score; reverse: lowest), NaN last."""
    _check_direction(direction)
    return drug_table(library, drug_scores(library, prepared), direction, top_k)


def drug_table(library: DrugLibrary, scores: np.ndarray, direction: str, top_k: int | None = None) -> pd.DataFrame:
    order = _order(scores, direction)
    if top_k is not None:
        order = order[: int(top_k)]
    names = np.asarray(library.drugs, dtype=object)
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "drug": names[order], "score": scores[order]})


@dataclass
class PairRanking:
    table: pd.DataFrame
    n_pairs: int
    method: str
    seconds: float


@dataclass(frozen=True)
class PairPlan:
    """How one pair ranking splits into units that every engine scores the same way, so that any split of
    the units gives the same scores: Gram tiles of anchor drugs (`gram_tiles`) or streamed blocks of pairs
    (`iter_pair_blocks`)."""

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
        raise DataError(f"unknown pair method {method!r}; choose one of {list(PAIR_METHODS)}")
    if library.n_drugs < 2:
        raise DataError(f"{library.source}: pairs need at least 2 drugs, the library has {library.n_drugs}")
    n = library.n_drugs
    if isinstance(model, str) and model in PAIR_WEIGHTS:
        if method == "gram" or (method == "auto" and has_gram_path(prepared, model)):
            if not has_gram_path(prepared, model):
                raise DataError(f"score {prepared.score!r} has no Gram shortcut for pairs; use method=streamed")
            return PairPlan("gram", n, include, 0, len(gram_tiles(n, include, tile_mb)), tile_mb)
        size = streamed_block_pairs(prepared, True, block_pairs)
    elif isinstance(model, str) and model != "model":
        raise DataError(f"pair model {model!r}: use one of {list(PAIR_WEIGHTS)} here, or pass a stacked PairModel")
    else:
        if method == "gram":
            raise DataError("a model pair scorer has no Gram shortcut; use method=auto or streamed")
        size = streamed_block_pairs(prepared, False, block_pairs)
    return PairPlan("streamed", n, include, size, n_pair_blocks(n, include, size))


def score_pair_units(
    plan: PairPlan, library: DrugLibrary, prepared: PreparedQuery, model: str | PairModel, topk: RunningTopK, units: range
) -> None:
    """Score the plan's `units` into `topk`: the one code path of the local and the distributed engines."""
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


def rank_pairs(
    library: DrugLibrary,
    prepared: PreparedQuery,
    model: str | PairModel = "average",
    include: Sequence[str] | None = None,
    top_k: int | None = 1000,
    direction: str = "mimic",
    method: str = "auto",
    block_pairs: int | None = None,
    single_scores: np.ndarray | None = None,
) -> PairRanking:
    """Score every unordered pair (or those with an `include` drug) and keep the best `top_k` (None: all).

    model: "average" | "additive" | a PairModel (e.g. `StackedPairModel`). method: "auto" takes the exact
    Gram shortcut when there is one, "streamed" always builds pair signatures block by block (the naive
    reference), "gram" insists on the shortcut. Table: rank, drug1, drug2, score, drug1_score, drug2_score
    (drug1 comes first in library order).
    """
    _check_direction(direction)
    plan = plan_pairs(library, prepared, model, include_indices(library, include), method, block_pairs)
    topk = RunningTopK(top_k, direction)
    start = time.perf_counter()
    score_pair_units(plan, library, prepared, model, topk, range(plan.n_units))
    return pair_ranking(library, plan, topk, time.perf_counter() - start, single_scores)


@dataclass(frozen=True)
class QueryOptions:
    """How a query is scored and ranked: conf/query.yaml's settings, checked once, here, and named in errors by
    their config keys (`CONFIG_KEYS`). `from_config` reads them from the config; code and tests construct them."""

    score: str = "pearson"
    top_n: int | None = 200
    xsum_extreme: int | None = None
    direction: str = "mimic"
    drugs_top_k: int | None = None
    pairs: bool = True  # rank the pairs as well as the drugs
    pair_model: str = "average"
    include: tuple[str, ...] = ()  # only pairs with one of these drugs; () = all pairs
    pairs_top_k: int | None = 1000
    method: str = "auto"
    block_pairs: int | None = None
    inference: str | None = None  # stacked only; None = the model's own
    stacker_engine: str = "auto"  # stacked only

    # field -> its key in conf/query.yaml
    CONFIG_KEYS: ClassVar[dict[str, str]] = {
        "score": "score", "top_n": "top_n", "xsum_extreme": "xsum_extreme", "direction": "direction",
        "drugs_top_k": "drugs.top_k", "pairs": "pairs.enabled", "pair_model": "pairs.model", "include": "pairs.include",
        "pairs_top_k": "pairs.top_k", "method": "pairs.method", "block_pairs": "pairs.block_pairs",
        "inference": "pairs.inference", "stacker_engine": "pairs.stacker_engine",
    }

    def __post_init__(self) -> None:
        settings: dict[str, Any] = {}
        for name, key in self.CONFIG_KEYS.items():  # nested as in the config, so that errors name its keys
            parent, _, leaf = key.rpartition(".")
            (settings.setdefault(parent, {}) if parent else settings)[leaf] = getattr(self, name)
        for name, options in (("score", SCORES), ("direction", DIRECTIONS), ("pair_model", PAIR_MODELS),
                              ("method", PAIR_METHODS)):
            choice(settings, self.CONFIG_KEYS[name], options)
        for name in ("top_n", "xsum_extreme", "drugs_top_k", "pairs_top_k", "block_pairs"):
            object.__setattr__(self, name, integer(settings, self.CONFIG_KEYS[name], minimum=1, allow_none=True))
        if self.inference is not None:
            choice(settings, "pairs.inference", INFERENCE_MODES)
        check_stacker_engine(self.stacker_engine)
        object.__setattr__(self, "pairs", bool(self.pairs))
        object.__setattr__(self, "include", tuple(str(drug) for drug in self.include or ()))

    @classmethod
    def from_config(cls, cfg: Any) -> QueryOptions:
        """The options of a composed conf/query.yaml (a key it lacks keeps the default)."""
        values = {name: OmegaConf.select(cfg, key, default=cls.__dataclass_fields__[name].default)
                  for name, key in cls.CONFIG_KEYS.items()}
        return cls(**values)


@dataclass(frozen=True)
class Query:
    """A query signature matched to the library (`prepared`, under the options' score, top_n and xsum_extreme)
    and, for the stacked pair model, to the model's genes: what `run_query` ranks."""

    signature: pd.Series | Mapping[str, float]  # as given: a Dask engine's workers match it to their library
    prepared: PreparedQuery
    stacked_model: Any = None
    stacked_model_dir: str | None = None  # where a Dask engine's workers load the stacked model from

    @classmethod
    def prepare(cls, signature: pd.Series | Mapping[str, float], library: DrugLibrary, options: QueryOptions,
                stacked_model: Any = None, stacked_model_dir: str | None = None) -> Query:
        """Match the signature; bad input (no gene overlap, a duplicated gene) fails here."""
        return cls(signature, query_for(signature, library, options, stacked_model), stacked_model, stacked_model_dir)


@dataclass
class QueryResult:
    """The ranked tables and what the query used (genes matched / missing, timings)."""

    drugs: pd.DataFrame
    pairs: pd.DataFrame | None
    report: dict[str, Any] = field(default_factory=dict)


def query_for(
    signature: pd.Series | Mapping[str, float], library: DrugLibrary, options: QueryOptions, stacked_model: Any = None
) -> PreparedQuery:
    """The matched query; with a stacked model, only genes the model predicts are used."""
    allowed = list(stacked_model.genes) if stacked_model is not None else None
    return prepare_query(signature, library, options.score, options.top_n, options.xsum_extreme, allowed_genes=allowed)


def run_query(
    query: Query,
    library: DrugLibrary,
    options: QueryOptions,
    engine: Any = None,
    library_cfg: Mapping[str, Any] | None = None,
) -> QueryResult:
    """Rank the drugs and (optionally) the pairs of a prepared query under one pair model.

    `engine` (a `combomap.query.distributed.DaskEngine`, from `open_engine`) scores the pairs on a Dask cluster
    whose workers load the library from `library_cfg` and the stacked model from `query.stacked_model_dir`
    themselves; the ranking is the local one exactly."""
    stacked_model, prepared = query.stacked_model, query.prepared
    if options.pairs and options.pair_model == "stacked" and stacked_model is None:
        raise DataError("pair model 'stacked' needs a stacked model (pairs.stacked_model_dir)")
    report: dict[str, Any] = dict(prepared.report)
    report.update(score=options.score, top_n=options.top_n, direction=options.direction, n_drugs=library.n_drugs,
                  library=library.source)
    start = time.perf_counter()
    single = drug_scores(library, prepared)
    drugs = drug_table(library, single, options.direction, options.drugs_top_k)
    report["seconds_drugs"] = time.perf_counter() - start
    if not options.pairs:
        return QueryResult(drugs=drugs, pairs=None, report=report)
    kind = options.pair_model
    if kind == "stacked" and stacked_model.kind in ("average", "additive"):
        kind = stacked_model.kind  # the guard saved a simple model: its exact Gram path serves it
        report["stacked_model_kind"] = kind
    elif kind == "stacked" and stacked_model.unseen_pairs == "additive" and stacked_model.unseen(
            library.drugs, library.n_drugs).all():
        kind = "additive"  # no library drug was in a training combination: every pair is d1 + d2 (the guard's rule)
        report["stacked_model_kind"] = "additive (every pair unseen)"
    if engine is not None:
        ranking = _rank_pairs_on_dask(engine, query, library, options, kind, single, library_cfg, report)
    else:
        model: str | PairModel = kind
        if kind == "stacked" and stacked_model.kind == "linear":
            model = LearnedPairModel(stacked_model, library, prepared)
            report["stacked_model_kind"] = "linear"
            report["n_drugs_with_profiles"] = model.n_seen
        elif kind == "stacked":
            start = time.perf_counter()
            model = StackedPairModel(stacked_model, library, prepared, inference=options.inference,
                                     stacker_engine=options.stacker_engine)
            report["seconds_stacked_setup"] = time.perf_counter() - start
            report["stacker_engine"] = model.stacker_engine
        ranking = rank_pairs(
            library, prepared, model, include=options.include, top_k=options.pairs_top_k,
            direction=options.direction, method=options.method, block_pairs=options.block_pairs, single_scores=single,
        )
        report["engine"] = "local"
    report.update(
        pair_model=options.pair_model, n_pairs=ranking.n_pairs, pair_method=ranking.method,
        seconds_pairs=ranking.seconds, include=list(options.include),
    )
    return QueryResult(drugs=drugs, pairs=ranking.table, report=report)


def _rank_pairs_on_dask(
    engine: Any, query: Query, library: DrugLibrary, options: QueryOptions, kind: str, single: np.ndarray,
    library_cfg: Mapping[str, Any] | None, report: dict[str, Any],
) -> PairRanking:
    """The pairs of `run_query` on a Dask cluster (`combomap.query.distributed`), under pair model `kind`."""
    from combomap.query.distributed import PairQuery, rank_pairs_dask

    if library_cfg is None:
        raise DataError("engine=dask: the workers load the library themselves; give its config (library_cfg)")
    stacked = kind == "stacked"
    if stacked and not query.stacked_model_dir:
        raise DataError("engine=dask: the workers load the stacked model themselves; give its directory")
    if stacked:
        check_query_genes_only(query.prepared)
    pair_query = PairQuery(library=dict(library_cfg), signature=query.signature, options=options, model=kind,
                           stacked_model_dir=query.stacked_model_dir if options.pair_model == "stacked" else None)
    plan = plan_pairs(library, query.prepared, "model" if kind == "stacked" else kind,
                      include_indices(library, options.include), options.method, options.block_pairs)
    ranking, info = rank_pairs_dask(engine, pair_query, library, plan, options.pairs_top_k, options.direction, single)
    report.update(info, engine_address=engine.settings.address or "LocalCluster")
    return ranking
