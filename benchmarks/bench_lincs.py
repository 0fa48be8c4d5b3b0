"""LINCS-sized connectivity mapping on 2 cores: 20,000 simulated drugs (~2e8 pairs), local vs Dask.

    python benchmarks/bench_lincs.py                 # 20,000 drugs x 978 genes: everything (~10 min on 2 quiet cores)
    python benchmarks/bench_lincs.py --quick         # 2,000 drugs, small samples: a smoke run (~1-2 min)
    python benchmarks/bench_lincs.py --cmap          # + WTCS / extreme XSum over all 856,086 CMap pairs, local vs dask
    python benchmarks/bench_lincs.py --skip-dask     # local engine only
    python benchmarks/bench_lincs.py --skip-growth --skip-samples --cmap   # only local vs dask

The library comes from the same generative model (`combomap.data.simulate.simulate_library`, n_genes=978,
the landmark count), is written as npy, and is read back from there, by this process and by the Dask
workers alike. Sections, each printed as a table:
1. average model (exact Gram path), pearson on the top-200 query genes, top-1000 pairs: time vs number of
   pairs (the first N drugs), up to all pairs of the library (target: 20,000 drugs <= 60 s on 2 cores),
   peak RSS (bounded by the Gram tile, not by the number of pairs);
2. WTCS, extreme XSum and the stacked model (a stand-in of 2 fold nets 1956 -> hidden -> 978 and an
   xgboost stacker) on a measured sample of pairs (the pairs of the first drugs), extrapolated to all pairs;
3. local vs distributed on the same 2 cores (a LocalCluster of 2 worker processes x 1 thread): the same
   queries, identical results checked, time ratio (target <= 1.25x). The cluster's start is reported apart;
   the first query on a fresh cluster includes the workers' library loads, the second shows steady state.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query import CORES, best_of, make_query, peak_rss_gb, pin_cores, section, stand_in_model  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from combomap.data.library import DrugLibrary  # noqa: E402
from combomap.data.library_io import NpyLibrary, read_library_npy, write_library_npy  # noqa: E402
from combomap.query.distributed import open_engine  # noqa: E402
from combomap.query.pair_scoring import n_pairs  # noqa: E402
from combomap.query.scores import prepare_query  # noqa: E402
from combomap.query.search import Query, rank_pairs, run_query  # noqa: E402
from combomap.query.settings import EngineSettings, PairOptions, QueryOptions  # noqa: E402
from combomap.query.stacked import StackedPairModel  # noqa: E402

PER_1E8 = 1e8


def sub_library(library: DrugLibrary, n_drugs: int) -> DrugLibrary:
    """The first n_drugs drugs (views, no copy)."""
    variances = None if library.variances is None else library.variances[:n_drugs]
    return DrugLibrary(effects=library.effects[:n_drugs], genes=library.genes, drugs=library.drugs[:n_drugs],
                       variances=variances, source=library.source)


def bench_average_growth(library: DrugLibrary, query: pd.Series, sizes: list[int]) -> dict[str, float]:
    section("average model, exact Gram path, pearson top-200 genes, top_k=1000: time vs number of pairs")
    print(f"  {'drugs':>7s} {'pairs':>13s} {'seconds':>9s} {'M pairs/s':>10s} {'s per 1e8 pairs':>16s} {'peak RSS GB':>12s}")
    figures = {}
    warm = sub_library(library, min(50, library.n_drugs))
    rank_pairs(warm, prepare_query(query, warm, "pearson", 200), "average", top_k=10)  # compile / load the kernel first
    for n in sizes:
        sub = sub_library(library, n)
        prepared = prepare_query(query, sub, "pearson", 200)
        seconds, ranking = best_of(1, lambda: rank_pairs(sub, prepared, "average", top_k=1000))
        assert ranking.method == "gram" and ranking.n_pairs == n_pairs(n)
        figures[f"average_{n}"] = seconds
        print(f"  {n:>7,d} {ranking.n_pairs:>13,d} {seconds:>9.2f} {ranking.n_pairs / seconds / 1e6:>10.1f} "
              f"{seconds / ranking.n_pairs * PER_1E8:>16.2f} {peak_rss_gb():>12.2f}")
    return figures


def bench_sampled(library: DrugLibrary, query: pd.Series, sample_drugs: int, stacked_drugs: int, hidden: int) -> None:
    total = n_pairs(library.n_drugs)
    section(f"measured samples, extrapolated to all {total:,} pairs (pairs of the first drugs)")
    print(f"  {'score / model':<28s} {'pairs':>10s} {'seconds':>9s} {'pairs/s':>11s} {'s per 1e8 pairs':>16s} {'all pairs':>11s}")

    def row(label: str, pairs: int, seconds: float) -> None:
        print(f"  {label:<28s} {pairs:>10,d} {seconds:>9.2f} {pairs / seconds:>11,.0f} {seconds / pairs * PER_1E8:>16,.0f} "
              f"{seconds / pairs * total / 60:>9.1f} min")

    for score, extreme in (("wtcs", None), ("xsum", 100), ("spearman", None)):
        prepared = prepare_query(query, library, score, 200, extreme)
        include = library.drugs[:sample_drugs]
        rank_pairs(library, prepared, "average", include=include[:1], top_k=10)  # compile / load kernels first
        seconds, ranking = best_of(1, lambda: rank_pairs(library, prepared, "average", include=include, top_k=1000))
        row(f"average, {score}" + (f"(extreme={extreme})" if extreme else ""), ranking.n_pairs, seconds)
    start = time.perf_counter()
    model = stand_in_model(library, hidden)
    print(f"  (stand-in stacked model: 2 nets {2 * library.n_genes} -> {hidden} -> {library.n_genes}, xgboost stacker "
          f"depth 15 x 8, built in {time.perf_counter() - start:.0f} s)")
    prepared = prepare_query(query, library, "pearson", 200, allowed_genes=model.genes)
    start = time.perf_counter()
    pair_model = StackedPairModel(model, library, prepared)
    setup = time.perf_counter() - start
    include = library.drugs[:stacked_drugs]
    rank_pairs(library, prepared, pair_model, include=include[:1], top_k=10)
    seconds, ranking = best_of(1, lambda: rank_pairs(library, prepared, pair_model, include=include, top_k=1000))
    row(f"stacked ({pair_model.stacker_predictor}), pearson", ranking.n_pairs, seconds)
    print(f"  stacked setup (per-drug projections of {library.n_drugs:,} drugs): {setup:.1f} s, once per query")


def bench_local_vs_dask(source: NpyLibrary, library: DrugLibrary, query: pd.Series, cases: list[tuple[str, str, int | None]],
                        label: str) -> None:
    section(f"local vs distributed on the same {CORES} cores ({label}): LocalCluster of 2 processes x 1 thread")
    settings = EngineSettings(name="dask", n_workers=CORES, threads_per_worker=1)
    start = time.perf_counter()
    with open_engine(settings) as engine:
        engine.client.wait_for_workers(CORES, timeout=120)
        print(f"  cluster started in {time.perf_counter() - start:.1f} s")
        print(f"  {'query':<26s} {'pairs':>12s} {'local s':>9s} {'dask 1st s':>11s} {'dask s':>9s} {'ratio':>7s} {'tasks':>6s} identical")
        for score, model, extreme in cases:
            options = QueryOptions(score=score, top_n=200, xsum_extreme=extreme, pairs=PairOptions(top_k=1000, model=model))
            prepared = Query.prepare(query, library, options)
            local = run_query(prepared, library, options)
            first = run_query(prepared, library, options, engine, source)
            again = run_query(prepared, library, options, engine, source)
            same = local.pairs.equals(first.pairs) and local.pairs.equals(again.pairs)
            local_s, first_s, again_s = (r.report["seconds_pairs"] for r in (local, first, again))
            name = f"{model}, {score}" + (f"({extreme})" if extreme else "")
            print(f"  {name:<26s} {local.report['n_pairs']:>12,d} {local_s:>9.2f} {first_s:>11.2f} {again_s:>9.2f} "
                  f"{again_s / local_s:>6.2f}x {again.report['n_tasks']:>6d} {same}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 drugs and small samples (a smoke run)")
    parser.add_argument("--n-drugs", type=int, default=20000)
    parser.add_argument("--n-genes", type=int, default=978)
    parser.add_argument("--sample-drugs", type=int, default=10, help="wtcs / xsum / spearman: pairs of this many drugs")
    parser.add_argument("--stacked-drugs", type=int, default=2, help="stacked: pairs of this many drugs")
    parser.add_argument("--hidden", type=int, default=1000, help="stand-in nets' hidden size")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-growth", action="store_true", help="skip the average-model growth table")
    parser.add_argument("--skip-samples", action="store_true", help="skip the sampled wtcs / xsum / spearman / stacked table")
    parser.add_argument("--cmap", action="store_true", help="also local vs dask over all CMap pairs (1309 x 11525): wtcs, xsum(100)")
    parser.add_argument("--workdir", default=None, help="where the npy libraries go (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_drugs, args.sample_drugs, args.stacked_drugs, args.hidden = 2000, 3, 1, 200

    print(f"combomap LINCS-sized benchmark: {pin_cores(CORES)}; numpy {np.__version__}; python {sys.version.split()[0]}")
    from combomap.data.simulate import simulate_library

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="combomap-lincs-"))
    start = time.perf_counter()
    core = max(1, round(args.n_genes * 3483 / 11525))  # the default preset's share of core (always measured) genes
    simulated = simulate_library(n_drugs=args.n_drugs, preset="default", seed=0, n_genes=args.n_genes, n_core_genes=core)
    library_dir = write_library_npy(simulated, workdir / f"lincs_{args.n_drugs}")
    del simulated
    library = read_library_npy(library_dir)
    source = NpyLibrary(dir=str(library_dir))
    print(f"library: {library.n_drugs:,} drugs x {library.n_genes} genes ({n_pairs(library.n_drugs):,} pairs), simulated "
          f"and written to {library_dir} in {time.perf_counter() - start:.0f} s; peak RSS {peak_rss_gb():.2f} GB")
    query = make_query(library)

    sizes = sorted({max(2, args.n_drugs // d) for d in (8, 4, 2, 1)})
    if not args.skip_growth:
        bench_average_growth(library, query, sizes)
    if not args.skip_samples:
        bench_sampled(library, query, args.sample_drugs, args.stacked_drugs, args.hidden)
    if not args.skip_dask:
        bench_local_vs_dask(source, library, query, [("pearson", "average", None), ("cosine", "average", None)],
                            f"{library.n_drugs:,} drugs, all pairs")
        if args.cmap:
            cmap = simulate_library(n_drugs=1309, preset="default", seed=0)
            cmap_dir = write_library_npy(cmap, workdir / "cmap")
            cmap = read_library_npy(cmap_dir)
            bench_local_vs_dask(NpyLibrary(dir=str(cmap_dir)), cmap, make_query(cmap),
                                [("wtcs", "average", None), ("xsum", "average", 100)], "CMap, 1309 drugs x 11525 genes, all pairs")
    print(f"\npeak RSS of this process {peak_rss_gb():.2f} GB (library {library.effects.nbytes * 2 / 2**30:.2f} GB with variances)")


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    main()
