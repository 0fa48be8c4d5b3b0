"""Schemas of the query side: the engine group (combomap-query, combomap-predict) and conf/query.yaml as a whole,
and the typed objects the jobs build from them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

from omegaconf import MISSING, DictConfig

from combomap.config.base import SCHEMA_NAME, typed
from combomap.query.settings import EngineSettings, QueryOptions
from combomap.settings import Checked, limits

QUERY_OUTPUT_FORMATS = ("csv", "h5ad")


@dataclass
class QueryOutput(Checked):
    """How combomap-query writes its rankings: csv (drugs.csv, pairs.csv) or h5ad (drugs.h5ad, pairs.h5ad: AnnData,
    obs = the ranked drugs / pairs with their scores, var = the query's genes), for scverse users."""

    format: str = field(default="csv", metadata=limits(choices=QUERY_OUTPUT_FORMATS))


@dataclass
class QueryConfig(QueryOptions):
    """The schema of conf/query.yaml as a whole: the query's options typed, the groups typed by their own."""

    task_name: str = "query"
    progress: bool = True
    signature: str = MISSING  # CSV/TSV of gene, value
    gene_column: Optional[str] = None
    value_column: Optional[str] = None
    output: QueryOutput = field(default_factory=QueryOutput)
    paths: Any = None
    logger: Any = None
    library: Any = None
    engine: Any = None


QUERY_SCHEMA = "query_schema"

# engine/schema/engine, not engine/schema: the group's options are listed to a user who picks one (engine=dask)
SCHEMAS: list[tuple[Any, ...]] = [
    (f"engine/{SCHEMA_NAME}", EngineSettings, "engine"),
    ("", QueryConfig, QUERY_SCHEMA),
]


def query_options(cfg: DictConfig) -> QueryOptions:
    """conf/query.yaml's score, top_n, xsum_extreme, direction, drugs.* and pairs.*, checked (errors name the keys)."""
    return typed({item.name: cfg.get(item.name, MISSING) for item in fields(QueryOptions)}, QueryOptions, "")


def query_output(cfg: DictConfig) -> QueryOutput:
    """conf/query.yaml's output, checked (a config without one writes CSV)."""
    node = cfg.get("output")
    return QueryOutput() if node is None else typed(node, QueryOutput, "output")


def engine_settings(cfg: DictConfig) -> EngineSettings:
    """The `engine` group, checked; a config without one runs locally."""
    node = cfg.get("engine")
    return EngineSettings() if node is None else typed(node, EngineSettings, "engine")
