"""Connectivity mapping: rank drugs and drug pairs against a query signature (exact, fast, memory-bounded)."""

from combomap.query.scores import SCORES, PreparedQuery, prepare_query
from combomap.query.search import Query, QueryResult, rank_drugs, rank_pairs, run_query
from combomap.query.settings import EngineSettings, QueryOptions
from combomap.query.signature import read_signature

__all__ = [
    "SCORES",
    "EngineSettings",
    "PreparedQuery",
    "Query",
    "QueryOptions",
    "QueryResult",
    "prepare_query",
    "rank_drugs",
    "rank_pairs",
    "read_signature",
    "run_query",
]
