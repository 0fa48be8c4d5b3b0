"""The Dask engine on a 2-worker LocalCluster (processes, 127.0.0.1): the same rankings and predictions as
the local engine, exactly, also when a worker dies mid-query; an unreachable scheduler is one line, exit 2."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import combomap.jobs.query as query_job
from combomap.console import user_errors
from combomap.data.library_io import NpyLibrary, write_library_npy
from combomap.query.distributed import (
    DaskEngine,
    EngineError,
    PairQuery,
    dask_client,
    predict_pairs_dask,
    rank_pairs_dask,
    split_units,
    worker_loads,
)
from combomap.query.pair_scoring import RunningTopK, iter_pair_blocks, n_pair_blocks
from combomap.query.plan import pair_ranking, plan_pairs, score_pair_units
from combomap.query.scores import prepare_query
from combomap.query.settings import EngineSettings, QueryOptions
from combomap.query.stacked import StackedPairModel, load_stacked_model
from combomap.stacking.final_model import StackedModel
from combomap.stacking.predict import predict_pairs
from tests.query.helpers import query_from, ranked, small_library
from tests.query.test_stacked import _model

pytest.importorskip("distributed")
from tests.query.worker_faults import KillFirstTask  # noqa: E402  (needs distributed)

SEED, N_DRUGS, N_GENES = 31, 30, 48
SETTINGS = EngineSettings(name="dask", n_workers=2, threads_per_worker=1, tasks_per_worker=3, connect_timeout_s=20,
                          timeout_s=120)  # a hang fails the test instead of stalling CI


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """The library on disk (workers load it from there), a saved stacked model, and a 2-worker cluster whose
    first task kills its worker once the fault marker file is removed (KillFirstTask)."""
    root = tmp_path_factory.mktemp("distributed")
    library = small_library(n_drugs=N_DRUGS, n_genes=N_GENES, seed=SEED)
    source = NpyLibrary(dir=str(write_library_npy(library, root / "library")))
    model_dir = root / "model"
    _model(library).save(model_dir)
    marker = root / "killed"
    marker.write_text("armed later")
    with dask_client(SETTINGS) as client:
        client.wait_for_workers(2, timeout=60)
        client.register_plugin(KillFirstTask(str(marker)))  # also on a worker the nanny restarts
        yield {"library": library, "source": source, "model_dir": str(model_dir), "marker": marker,
               "engine": DaskEngine(client, SETTINGS)}


def _both(world, score: str, model: str = "average", top_k: int | None = 20, include=None, xsum_extreme=None,
          block_pairs: int | None = 23, tile_mb: float = 0.0006, direction: str = "mimic"):
    """(local table, distributed table, tasks) of one pair ranking, with units small enough for several tasks."""
    library = world["library"]
    stacked = load_stacked_model(world["model_dir"]) if model == "stacked" else None
    signature = query_from(library, 5)
    prepared = prepare_query(signature, library, score, 20, xsum_extreme, allowed_genes=None if stacked is None else stacked.genes)
    rows = None if include is None else library.index_of(include)
    local_model = model if stacked is None else StackedPairModel(stacked, library, prepared)
    plan = plan_pairs(library, prepared, model if stacked is None else "model", rows, "auto", block_pairs, tile_mb)
    topk = RunningTopK(top_k, direction)
    score_pair_units(plan, library, prepared, local_model, topk, range(plan.n_units))
    local = pair_ranking(library, plan, topk, 0.0).table
    options = QueryOptions(score=score, top_n=20, xsum_extreme=xsum_extreme)
    query = PairQuery(library=world["source"], signature=signature, options=options, model=model,
                      stacked_model_dir=world["model_dir"] if stacked is not None else None)
    ranking, info = rank_pairs_dask(world["engine"], query, library, plan, top_k, direction)
    return local, ranking.table, info


@pytest.mark.parametrize(
    "score,xsum_extreme,top_k,include,direction",
    [
        ("pearson", None, 20, None, "mimic"),
        ("cosine", None, None, ["D03", "D17"], "reverse"),
        ("wtcs", None, 20, None, "reverse"),
        ("xsum", 6, 15, None, "mimic"),
        ("xsum", None, None, None, "mimic"),
        ("spearman", None, 10, ["D11"], "mimic"),
    ],
)
def test_distributed_top_k_equals_local_exactly(world, score, xsum_extreme, top_k, include, direction) -> None:
    local, remote, info = _both(world, score, top_k=top_k, include=include, xsum_extreme=xsum_extreme, direction=direction)
    assert info["n_tasks"] > 1 and info["n_workers"] == 2
    assert len(local) == (top_k or len(local)) and len(local) > 0
    pd.testing.assert_frame_equal(remote, local, check_exact=True)


@pytest.mark.parametrize("score", ["pearson", "xsum"])
def test_distributed_stacked_model_equals_local_exactly(world, score) -> None:
    local, remote, info = _both(world, score, model="stacked", top_k=25)
    assert info["n_tasks"] > 1
    pd.testing.assert_frame_equal(remote, local, check_exact=True)


def test_run_query_on_dask_equals_local_for_the_average_and_the_stacked_model(world) -> None:
    library, signature = world["library"], query_from(world["library"], 9, sign=-1.0)
    common = dict(score="pearson", top_n=20, direction="reverse", pairs_top_k=30)
    local = ranked(signature, library, **common)
    remote = ranked(signature, library, **common, engine=world["engine"], library_source=world["source"])
    assert remote.report["engine"] == "dask" and local.report["engine"] == "local"
    pd.testing.assert_frame_equal(remote.pairs, local.pairs, check_exact=True)
    loads = world["engine"].client.run(worker_loads)
    libraries = [counts.get("library", 0) for counts in loads.values()]
    assert len(libraries) == 2 and max(libraries) == 1  # loaded once per worker process, for every task and query
    stacked = load_stacked_model(world["model_dir"])
    local = ranked(signature, library, stacked, **common, pair_model="stacked", block_pairs=41)
    remote = ranked(signature, library, stacked, **common, pair_model="stacked", block_pairs=41,
                    engine=world["engine"], library_source=world["source"], stacked_model_dir=world["model_dir"])
    pd.testing.assert_frame_equal(remote.pairs, local.pairs, check_exact=True)


def test_a_worker_killed_mid_query_has_its_blocks_rerun_and_the_result_is_exact(world) -> None:
    marker = world["marker"]
    marker.unlink()  # the next task to start kills its worker process (os._exit), once
    local, remote, _ = _both(world, "wtcs", top_k=None)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker process did die
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    world["engine"].client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_distributed_predictions_equal_local_in_pair_order(world) -> None:
    library = world["library"]
    model = StackedModel.load(Path(world["model_dir"]))
    rng = np.random.default_rng(0)
    pairs = [(library.drugs[a], library.drugs[b]) for a, b in rng.integers(0, N_DRUGS, size=(57, 2)) if a != b]
    remote = predict_pairs_dask(world["engine"], world["model_dir"], None, world["source"], pairs, rows_per_chunk=5)
    np.testing.assert_array_equal(remote, predict_pairs(model, library, pairs))


def test_units_split_and_block_ranges_match_a_full_pass() -> None:
    assert split_units(np.array([5, 5, 5, 5]), 2) == [(0, 2), (2, 4)]
    assert split_units(np.array([100, 1, 1, 1]), 3) == [(0, 1), (1, 4)]  # never an empty task
    tasks = split_units(np.arange(1, 30), 4)
    assert tasks[0][0] == 0 and tasks[-1][1] == 29 and all(a[1] == b[0] for a, b in zip(tasks, tasks[1:]))
    for include in (None, np.array([2, 7, 8])):
        full = list(iter_pair_blocks(13, include, 7))
        assert len(full) == n_pair_blocks(13, include, 7)
        for start, stop in [(0, 2), (2, 3), (3, len(full))]:
            for got, want in zip(iter_pair_blocks(13, include, 7, range(start, stop)), full[start:stop]):
                np.testing.assert_array_equal(got.left, want.left)
                np.testing.assert_array_equal(got.right, want.right)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_unreachable_scheduler_is_one_line_and_exit_2(compose_cfg, tmp_path: Path, capsys) -> None:
    library = small_library(n_drugs=8, n_genes=20, seed=1)
    library_dir = write_library_npy(library, tmp_path / "library")
    signature = tmp_path / "q.csv"
    signature.write_text("".join(f"{g},{v!r}\n" for g, v in query_from(library, 2).items()))
    address = f"tcp://127.0.0.1:{_free_port()}"
    cfg = compose_cfg("query", ["library=npy", f"library.dir={library_dir}", f"signature={signature}", "engine=dask",
                                f"engine.address={address}", "engine.connect_timeout_s=1"])
    with pytest.raises(SystemExit) as stop:
        user_errors("combomap-query")(query_job.run)(cfg)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"combomap-query: error: cannot reach the Dask scheduler at {address}")


def test_a_scheduler_without_workers_is_a_clear_error() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0", processes=True) as cluster:
        settings = EngineSettings(name="dask", address=cluster.scheduler_address, connect_timeout_s=1)
        with pytest.raises(EngineError, match="has no workers"):
            with dask_client(settings):
                pass
