"""Search a drug library with a query signature: rank its drugs and drug pairs (`run_query`; the functions the
CLI, the benchmarks and tests call).

Pair models: "average" (a + b) / 2, "additive" a + b (same ranking as average for every score but
xsum, which scales by 2), "stacked" (the trained stacked model, `combomap.query.stacked`).
Which pair scores have an exact shortcut (no pair signatures built): pearson, cosine and linear
xsum (xsum_extreme null) under average/additive. Everything else (spearman, wtcs, xsum with
extreme genes, the stacked model) streams pair signatures in blocks: exact, memory-bounded, slower.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary, informative_library, uninformative_text
from combomap.query.distributed import DaskEngine, LibraryLoader, PairQuery, rank_pairs_dask
from combomap.query.pair_scoring import DIRECTIONS, PairModel, RunningTopK, include_indices
from combomap.query.plan import PairRanking, pair_ranking, plan_pairs, query_for, score_pair_units
from combomap.query.scores import PreparedQuery, library_block
from combomap.query.settings import QueryOptions
from combomap.query.stacked import LearnedPairModel, StackedPairModel, check_query_genes_only
from combomap.settings import SettingsError

log = logging.getLogger(__name__)


def skip_uninformative(library: DrugLibrary, include: Sequence[str] = ()) -> tuple[DrugLibrary, list[str]]:
    """The library less its drugs of constant (e.g. all 0) or unmeasured signature, whose scores would be blank
    and whose pairs would only repeat their partner, and their names (logged as a warning); a library of no other
    drug, or a `pairs.include` drug among them, is refused."""
    kept, skipped = informative_library(library)
    at_fault = frozenset(skipped)
    named = [d for d in include if d in at_fault]
    if named:
        raise DataError(f"pairs.include: drug(s) {uninformative_text(named)} have constant (e.g. all 0) or missing "
                        f"values in {library.source}, so their pairs cannot be scored; remove them from pairs.include")
    if skipped:
        log.warning("%s: skipped %d drug(s) whose values are constant (e.g. all 0) or missing: %s", library.source,
                    len(skipped), uninformative_text(skipped))
    return kept, skipped


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise SettingsError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")


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


def run_query(
    query: Query,
    library: DrugLibrary,
    options: QueryOptions,
    engine: DaskEngine | None = None,
    library_source: LibraryLoader | None = None,
) -> QueryResult:
    """Rank the drugs and (optionally) the pairs of a prepared query under one pair model.

    `engine` (a `combomap.query.distributed.DaskEngine`, from `open_engine`) scores the pairs on a Dask cluster
    whose workers load the library from `library_source` and the stacked model from `query.stacked_model_dir`
    themselves; the ranking is the local one exactly."""
    stacked_model, prepared, pairs = query.stacked_model, query.prepared, options.pairs
    if pairs.enabled and pairs.model == "stacked" and stacked_model is None:
        raise SettingsError("pair model 'stacked' needs a stacked model (pairs.stacked_model_dir)")
    report: dict[str, Any] = dict(prepared.report)
    report.update(score=options.score, top_n=options.top_n, direction=options.direction, n_drugs=library.n_drugs,
                  library=library.source)
    start = time.perf_counter()
    single = drug_scores(library, prepared)
    drugs = drug_table(library, single, options.direction, options.drugs.top_k)
    report["seconds_drugs"] = time.perf_counter() - start
    if not pairs.enabled:
        return QueryResult(drugs=drugs, pairs=None, report=report)
    kind = pairs.model
    if kind == "stacked" and stacked_model.kind in ("average", "additive"):
        kind = stacked_model.kind  # the guard saved a simple model: its exact Gram path serves it
        report["stacked_model_kind"] = kind
    elif kind == "stacked" and stacked_model.unseen_pairs == "additive" and stacked_model.unseen(
            library.drugs, library.n_drugs).all():
        kind = "additive"  # no library drug was in a training combination: every pair is d1 + d2 (the guard's rule)
        report["stacked_model_kind"] = "additive (every pair unseen)"
    if engine is not None:
        ranking = _rank_pairs_on_dask(engine, query, library, options, kind, single, library_source, report)
    else:
        model: str | PairModel = kind
        if kind == "stacked" and stacked_model.kind == "linear":
            model = LearnedPairModel(stacked_model, library, prepared)
            report["stacked_model_kind"] = "linear"
            report["n_drugs_with_profiles"] = model.n_seen
        elif kind == "stacked":
            start = time.perf_counter()
            model = StackedPairModel(stacked_model, library, prepared, inference=pairs.inference,
                                     stacker_predictor=pairs.stacker_predictor)
            report["seconds_stacked_setup"] = time.perf_counter() - start
            report["stacker_predictor"] = model.stacker_predictor
        ranking = rank_pairs(
            library, prepared, model, include=pairs.include, top_k=pairs.top_k, direction=options.direction,
            method=pairs.method, block_pairs=pairs.block_pairs, single_scores=single,
        )
        report["engine"] = "local"
    report.update(
        pair_model=pairs.model, n_pairs=ranking.n_pairs, pair_method=ranking.method,
        seconds_pairs=ranking.seconds, include=list(pairs.include),
    )
    return QueryResult(drugs=drugs, pairs=ranking.table, report=report)


def _rank_pairs_on_dask(
    engine: DaskEngine, query: Query, library: DrugLibrary, options: QueryOptions, kind: str, single: np.ndarray,
    library_source: LibraryLoader | None, report: dict[str, Any],
) -> PairRanking:
    """The pairs of `run_query` on a Dask cluster (`combomap.query.distributed`), under pair model `kind`."""
    if library_source is None:
        raise SettingsError("engine=dask: the workers load the library themselves; give its source (library_source)")
    stacked = kind == "stacked"
    if stacked and not query.stacked_model_dir:
        raise SettingsError("engine=dask: the workers load the stacked model themselves; give its directory")
    if stacked:
        check_query_genes_only(query.prepared)
    pairs = options.pairs
    pair_query = PairQuery(library=library_source, signature=query.signature, options=options, model=kind,
                           stacked_model_dir=query.stacked_model_dir if pairs.model == "stacked" else None)
    plan = plan_pairs(library, query.prepared, "model" if stacked else kind, include_indices(library, pairs.include),
                      pairs.method, pairs.block_pairs)
    ranking, info = rank_pairs_dask(engine, pair_query, library, plan, pairs.top_k, options.direction, single)
    report.update(info, engine_address=engine.settings.address or "LocalCluster")
    return ranking
