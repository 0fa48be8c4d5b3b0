"""The Dask engine (engine=dask): all pairs of a query, or many pair predictions, on a Dask cluster.

The driver cuts the pair enumeration into the numbered units of `combomap.query.plan.PairPlan` (Gram
tiles or streamed blocks) and submits contiguous ranges of units as tasks. A task carries only where
the library and the model live (`PairQuery`: the library's source, the model directory) and the query:
each worker process loads the library and the model once (cached per process, keyed by path / config)
and scores its units with `score_pair_units`, the local ranking's code, into its own top-k. The driver
merges the tasks' top-k lists with the same `RunningTopK`, whose result does not depend on how the
pairs were split or in which order they arrive (ties by (drug1, drug2)), so the ranking equals the local
one exactly. A worker that dies has its tasks re-run by the scheduler (and a task that raises is retried
`retries` times); a scheduler that cannot be reached is an `EngineError`, one line and exit status 2 in
the CLIs.

    combomap-query signature=q.csv engine=dask                                  # a LocalCluster on 127.0.0.1
    combomap-query signature=q.csv engine=dask engine.address=tcp://host:8786   # a running scheduler
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from combomap.data.library import DrugLibrary
from combomap.errors import UserError
from combomap.query.pair_scoring import RunningTopK
from combomap.query.plan import PairPlan, PairRanking, pair_ranking, query_for, score_pair_units
from combomap.query.settings import EngineSettings, QueryOptions
from combomap.query.stacked import LearnedPairModel, StackedPairModel, load_stacked_model
from combomap.stacking.final_model import StackedModel
from combomap.stacking.predict import predict_pairs

log = logging.getLogger(__name__)


class EngineError(UserError):
    """The Dask engine cannot run: the scheduler is unreachable or has no workers, or the tasks ran out of time."""


class LibraryLoader(Protocol):
    """Where the workers load the library from: a picklable object (a typed library source of
    combomap.data.library_io, with absolute paths) whose `load()` gives the driver's library; its repr names it."""

    def load(self) -> DrugLibrary: ...


@contextmanager
def dask_client(settings: EngineSettings) -> Iterator[Any]:
    """A connected `distributed.Client`: to `settings.address`, or to a LocalCluster on 127.0.0.1 (worker
    processes), closed (with timeouts, never hanging) on exit."""
    from distributed import Client, LocalCluster

    timeout = float(settings.connect_timeout_s)
    cluster = None
    if settings.address:
        try:
            client = Client(str(settings.address), timeout=timeout)
        except (OSError, TimeoutError) as error:
            raise EngineError(f"cannot reach the Dask scheduler at {settings.address} (engine.address): {error}: "
                              "start one there (`dask scheduler`) or correct engine.address") from None
        except Exception as error:  # its reply is not Dask's protocol: a bogus frame size, undecodable bytes
            raise EngineError(f"engine.address={settings.address} answers, but not as a Dask scheduler "
                              f"({type(error).__name__} on its reply): give the address of a running "
                              "`dask scheduler` (tcp://HOST:8786), or leave engine.address unset for a local "
                              "cluster") from None
    else:
        cluster = LocalCluster(
            n_workers=int(settings.n_workers), threads_per_worker=int(settings.threads_per_worker), processes=True,
            host="127.0.0.1", dashboard_address=":0", silence_logs=logging.ERROR,  # any free port
        )
        try:
            client = Client(cluster, timeout=timeout)
        except BaseException:
            cluster.close(timeout=timeout)
            raise
    try:
        try:  # a scheduler without workers would leave the tasks waiting forever
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            where = f"{settings.address} (engine.address)" if settings.address else "LocalCluster"
            raise EngineError(f"the Dask scheduler at {where} has no workers "
                              f"(waited {timeout:g} s); start some with `dask worker ADDRESS`") from None
        yield client
    finally:
        client.close(timeout=timeout)
        if cluster is not None:
            cluster.close(timeout=timeout)


@dataclass
class DaskEngine:
    """A connected client and the engine settings (tasks per worker, retries) the queries use."""

    client: Any
    settings: EngineSettings


@contextmanager
def open_engine(settings: EngineSettings) -> Iterator[DaskEngine | None]:
    """The Dask engine of `settings` for a with-block (None for the local engine): connect once, before any
    work, so that an unreachable scheduler fails first."""
    if settings.name != "dask":
        yield None
        return
    with dask_client(settings) as client:
        yield DaskEngine(client, settings)


def split_units(unit_pairs: np.ndarray, n_tasks: int) -> list[tuple[int, int]]:
    """Contiguous ranges of units with about equal numbers of pairs (at most n_tasks, none empty)."""
    n_units = len(unit_pairs)
    if n_units == 0:
        return []
    ends = np.cumsum(unit_pairs)
    targets = ends[-1] * np.arange(1, n_tasks) / n_tasks
    cuts = np.unique(np.concatenate([[0], np.searchsorted(ends, targets, side="left") + 1, [n_units]]))
    cuts = cuts[(cuts >= 0) & (cuts <= n_units)]
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _n_workers(client: Any) -> int:
    return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))


# ---- worker side: what each worker process loads once -------------------------------------------------

_CACHE: dict[str, OrderedDict[str, Any]] = {}
_CACHE_LOCK = threading.RLock()  # re-entrant: a query's build loads its model through _cached
_CACHE_SIZE = {"library": 2, "model": 2, "predict-model": 2, "query": 4}  # per worker process; the oldest goes
LOADS: dict[str, int] = {}  # builds per kind in this process (what `worker_loads` reports)


def _cached(kind: str, key: str, build: Callable[[], Any]) -> Any:
    """build() once per worker process and key (libraries, models and prepared queries are reused by every
    task of a query, and by later queries)."""
    with _CACHE_LOCK:
        entries = _CACHE.setdefault(kind, OrderedDict())
        if key in entries:
            entries.move_to_end(key)
            return entries[key]
        value = build()
        LOADS[kind] = LOADS.get(kind, 0) + 1
        entries[key] = value
        while len(entries) > _CACHE_SIZE.get(kind, 2):
            entries.popitem(last=False)
        return value


def worker_loads() -> dict[str, int]:
    """How many libraries, models and queries this process has built (run it on the workers with
    `client.run(worker_loads)`: each should load a library once, however many tasks it ran)."""
    with _CACHE_LOCK:
        return dict(LOADS)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def worker_library(source: LibraryLoader) -> DrugLibrary:
    """The library of this source, loaded once per worker process from its own file / directory."""
    return _cached("library", repr(source), source.load)


def _worker_threads() -> int | None:
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except ValueError:  # not in a worker (a task run in the driver, e.g. by a test)
        return None


@dataclass(frozen=True, eq=False)  # identity: `key` names the query (a Series does not compare to one truth value)
class PairQuery:
    """What a worker needs to build the driver's pair scorer itself: where the library and the stacked model
    live, and the query (a few thousand numbers) with its options."""

    library: LibraryLoader
    signature: pd.Series
    options: QueryOptions
    model: str  # average | additive | stacked
    stacked_model_dir: str | None = None  # a stacked model's genes limit the query (also one served as the average)
    key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        signature = pd.Series(self.signature, dtype=np.float64)
        digest = hashlib.sha256(pd.util.hash_pandas_object(signature).to_numpy().tobytes())
        settings = [repr(self.library), asdict(self.options), self.model, self.stacked_model_dir]
        digest.update(_key({"settings": settings}).encode())
        object.__setattr__(self, "signature", signature)
        object.__setattr__(self, "key", digest.hexdigest())


def _worker_scorer(query: PairQuery) -> tuple[DrugLibrary, Any, Any]:
    """(library, prepared query, pair model) on this worker, each built once per process."""
    library = worker_library(query.library)
    options, inference = query.options, query.options.pairs.inference

    def build() -> tuple[Any, Any]:
        stacked = None
        if query.stacked_model_dir:
            stacked = _cached("model", f"{query.stacked_model_dir}|{inference}",
                              lambda: load_stacked_model(str(query.stacked_model_dir), inference))
        prepared = replace(query_for(query.signature, library, options, stacked), n_threads=_worker_threads())
        if query.model != "stacked":
            return prepared, query.model
        if stacked.kind == "linear":
            return prepared, LearnedPairModel(stacked, library, prepared)
        return prepared, StackedPairModel(stacked, library, prepared, inference=inference,
                                          stacker_predictor=options.pairs.stacker_predictor)

    prepared, model = _cached("query", query.key, build)
    return library, prepared, model


def score_units_task(
    query: PairQuery, plan: PairPlan, units: tuple[int, int], top_k: int | None, direction: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One task: the top-k (scores, left, right) of units[0]..units[1]-1 and the number of pairs scored."""
    library, prepared, model = _worker_scorer(query)
    topk = RunningTopK(top_k, direction)
    score_pair_units(plan, library, prepared, model, topk, range(*units))
    scores, left, right = topk.result()
    return scores, left, right, topk.n_seen


def rank_pairs_dask(
    engine: DaskEngine,
    query: PairQuery,
    library: DrugLibrary,
    plan: PairPlan,
    top_k: int | None,
    direction: str,
    single_scores: np.ndarray | None = None,
) -> tuple[PairRanking, dict[str, Any]]:
    """The pair ranking of `rank_pairs`, its units scored as tasks on the cluster and merged exactly."""
    from distributed import as_completed

    client, settings = engine.client, engine.settings
    start = time.perf_counter()
    n_workers = _n_workers(client)
    tasks = split_units(plan.unit_pairs(), n_workers * int(settings.tasks_per_worker))
    futures = [
        client.submit(score_units_task, query, plan, units, top_k, direction, retries=int(settings.retries), pure=False)
        for units in tasks
    ]
    merged = RunningTopK(top_k, direction)
    seen = 0
    try:
        for future in as_completed(futures, timeout=settings.timeout_s):
            scores, left, right, n_seen = future.result()
            merged.push(scores, left, right)
            seen += n_seen
    except TimeoutError:
        client.cancel(futures)
        raise EngineError(f"the pair tasks did not finish within engine.timeout_s={settings.timeout_s} s") from None
    merged.n_seen = seen
    ranking = pair_ranking(library, plan, merged, time.perf_counter() - start, single_scores)
    return ranking, {"engine": "dask", "n_workers": n_workers, "n_tasks": len(tasks), "n_units": plan.n_units}


# ---- combomap-predict ------------------------------------------------------------------------------------

def predict_task(model_dir: str, inference: str | None, library: LibraryLoader,
                 pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """One task of `predict_pairs_dask`: the model and library loaded once per worker process."""
    model = _cached("predict-model", f"{model_dir}|{inference}",
                    lambda: StackedModel.load(Path(model_dir).expanduser(), inference=inference))
    return predict_pairs(model, worker_library(library), pairs)


def predict_pairs_dask(
    engine: DaskEngine,
    model_dir: str,
    inference: str | None,
    library: LibraryLoader,
    pairs: Sequence[tuple[str, str]],
    rows_per_chunk: int,
) -> np.ndarray:
    """`predict_pairs` on the cluster: blocks of whole model chunks (`rows_per_chunk` pairs, the chunk the
    model predicts at once, so every pair is computed as locally), gathered in pair order."""
    client, settings = engine.client, engine.settings
    n_tasks = _n_workers(client) * int(settings.tasks_per_worker)
    per_task = rows_per_chunk * max(1, -(-len(pairs) // (n_tasks * rows_per_chunk)))
    futures = [
        client.submit(predict_task, model_dir, inference, library, list(pairs[start : start + per_task]),
                      retries=int(settings.retries), pure=False)
        for start in range(0, len(pairs), per_task)
    ]
    try:
        from distributed import wait

        wait(futures, timeout=settings.timeout_s)
    except TimeoutError:
        client.cancel(futures)
        raise EngineError(f"the prediction tasks did not finish within engine.timeout_s={settings.timeout_s} s") from None
    return np.concatenate(client.gather(futures), axis=0)
