"""The query's typed settings: how a query is scored and ranked (`QueryOptions`, the query keys of conf/query.yaml)
and where its pairs are computed (`EngineSettings`, the conf/engine group). Their schemas are registered by
combomap.config.query; the defaults here are the configs' defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from combomap.query.pair_scoring import DIRECTIONS
from combomap.query.scores import SCORES
from combomap.settings import Checked, SettingsError, key_of, limits
from combomap.stacking.final_model import INFERENCE_MODES

PAIR_MODELS = ("average", "additive", "stacked")
PAIR_METHODS = ("auto", "gram", "streamed")
# how the stacked model's stacker predicts the query's pairs: the numba tree kernel (same outputs, 3x / 8x faster
# than xgboost / lightgbm predict), the GBM library's own predict, or auto (compiled where the trees allow it)
STACKER_PREDICTORS = ("auto", "compiled", "backend")
ENGINES = ("local", "dask")


@dataclass
class DrugOptions(Checked):
    """drugs.*: the drug table."""

    top_k: Optional[int] = field(default=None, metadata=limits(1))  # rows of drugs.csv; None = every drug


@dataclass
class PairOptions(Checked):
    """pairs.*: which pairs are ranked, under which pair model, and how they are scored."""

    enabled: bool = True
    model: str = field(default="average", metadata=limits(choices=PAIR_MODELS))
    include: list[str] = field(default_factory=list)  # only pairs with one of these drugs; [] = all pairs
    top_k: Optional[int] = field(default=1000, metadata=limits(1))  # rows of pairs.csv; None = every pair
    method: str = field(default="auto", metadata=limits(choices=PAIR_METHODS))
    block_pairs: Optional[int] = field(default=None, metadata=limits(1))  # pairs per streamed block; None = by memory
    stacked_model_dir: Optional[str] = None  # the combomap-stack model directory, for model=stacked
    inference: Optional[str] = field(default=None, metadata=limits(choices=INFERENCE_MODES))  # None = the model's
    stacker_predictor: str = field(default="auto", metadata=limits(choices=STACKER_PREDICTORS))


@dataclass
class QueryOptions(Checked):
    """How a query is scored and ranked: the score on the query's top_n genes, the direction, the drug table and
    the pairs (conf/query.yaml documents every key)."""

    score: str = field(default="pearson", metadata=limits(choices=SCORES))
    top_n: Optional[int] = field(default=200, metadata=limits(1))  # the query's top genes by |value|; None = all
    xsum_extreme: Optional[int] = field(default=None, metadata=limits(1))  # xsum only; None = the plain sum
    direction: str = field(default="mimic", metadata=limits(choices=DIRECTIONS))
    drugs: DrugOptions = field(default_factory=DrugOptions)
    pairs: PairOptions = field(default_factory=PairOptions)


@dataclass
class EngineSettings(Checked):
    """engine.*: the pairs (combomap-query) and predictions (combomap-predict) in this process (local), or on a
    Dask cluster: a running scheduler at `address`, or a LocalCluster of n_workers processes (address None)."""

    name: str = field(default="local", metadata=limits(choices=ENGINES))
    address: Optional[str] = None  # tcp://HOST:PORT
    n_workers: int = field(default=2, metadata=limits(1))  # LocalCluster only
    threads_per_worker: int = field(default=1, metadata=limits(1))  # LocalCluster only
    tasks_per_worker: int = field(default=4, metadata=limits(1))  # units are grouped into ~workers x this many tasks
    retries: int = field(default=2, metadata=limits(0))  # re-runs of a task that raised
    connect_timeout_s: float = field(default=10.0, metadata=limits(0.0))
    timeout_s: Optional[float] = field(default=None, metadata=limits(0.0))  # None = no limit

    def validate(self, prefix: str) -> None:
        if not self.connect_timeout_s > 0:
            raise SettingsError(f"{key_of(prefix, 'connect_timeout_s')} must be > 0, got {self.connect_timeout_s!r}")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise SettingsError(f"{key_of(prefix, 'timeout_s')} must be > 0 or null, got {self.timeout_s!r}")
        if self.address is not None and "://" not in self.address:
            raise SettingsError(f"{key_of(prefix, 'address')} {self.address!r}: give the scheduler as tcp://HOST:PORT")
