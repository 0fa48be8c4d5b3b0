"""Benchmark connectivity mapping on the CMap-sized simulated library (1309 drugs x 11525 genes), 2 cores.

    python benchmarks/bench_query.py                       # everything (the stacked part takes minutes)
    python benchmarks/bench_query.py --skip-stacked        # drugs + average-model pairs only (~1 min)
    python benchmarks/bench_query.py --model-dir DIR       # use a trained combomap-stack model directory
    python benchmarks/bench_query.py --stacked-pairs 50000 # stacked model on the first 50,000 pairs only
    python benchmarks/bench_query.py --only-stacked --model-dir DIR --inference mean_net

Prints figures and ratios:
- drugs: every score over all 1309 drugs;
- average model, all 856,086 pairs, exact Gram path (target < 1 s after loading), and the speed-up over
  naive materialize-and-score measured side by side on a subset (pairs of --subset-drugs drugs);
- scores without a Gram shortcut (spearman, wtcs, xsum with extreme genes): streamed pairs per second;
- wtcs and extreme xsum (100 genes), all pairs with the compiled rank kernels (combomap.query.rank; target
  <= 30 s each), and side by side with the numpy path on a subset: ratio, max difference, same ranking;
- stacked model, all pairs, top-200 query genes (target < 60 s, peak memory < 4 GB), with the speed-up over
  the naive path (full StackedModel.predict on materialized pairs, every gene) on a subset, and the stacker
  part side by side: compiled kernel (combomap.stacking.forest) vs the GBM library's own predict, same blocks.
    python benchmarks/bench_query.py --only-stacked --stacker-predictor backend   # the all-pairs run without the kernel
Without --model-dir a stand-in stacked model of the original's size is built: 2 fold nets
23050 -> 2500 -> 11525 (random weights; the time does not depend on them) and an xgboost stacker with the
original's settings (depth 15, 8 rounds) fitted on synthetic (pair, gene) rows.
Reference (the original R package): all pairs, average 2-10 min; model about 2 h and 8-10 GB.
"""

from __future__ import annotations

import argparse
import os

CORES = 2
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(CORES))
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as combomap/__init__.py (numpy is imported first here)

import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from combomap.data.library import DrugLibrary  # noqa: E402
from combomap.query.pair_scoring import RunningTopK, iter_pair_blocks, n_pairs  # noqa: E402
from combomap.query.scores import prepare_query  # noqa: E402
from combomap.query.search import drug_scores, rank_pairs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import record  # noqa: E402,I001  (benchmarks/results.py: the figures the docs quote)

FIGURES: dict[str, float] = {}  # what record() writes at the end (benchmarks/results/query*.json)

ORIGINAL = {"average_all_pairs_s": (120.0, 600.0), "model_all_pairs_s": 7200.0, "model_all_pairs_gb": (8.0, 10.0)}


def pin_cores(cores: int) -> str:
    try:
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(available[:cores]))
        return f"{min(cores, len(available))} of {len(available)} cores (affinity {sorted(os.sched_getaffinity(0))})"
    except (AttributeError, OSError):
        return f"{os.cpu_count()} cores (no affinity control)"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def best_of(repeats: int, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def make_query(library: DrugLibrary, seed: int = 0) -> pd.Series:
    """A realistic query: the sum of two library drugs' signatures plus noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.choice(library.n_drugs, 2, replace=False)
    values = np.nan_to_num(library.effects[a] + library.effects[b]) + rng.normal(0, 0.5, library.n_genes)
    return pd.Series(values.astype(np.float64), index=library.genes)


def naive_full_pair_scores(library: DrugLibrary, prepared, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The original's way: materialize (a + b) / 2 over every gene, then take the query genes and score."""
    effects = np.nan_to_num(library.effects)
    out = []
    for left, right in pairs:
        full = (effects[left].astype(np.float64) + effects[right]) / 2.0
        out.append(prepared.score_block(full[:, prepared.space]))
    return np.concatenate(out)


def subset_blocks(n_drugs: int, include: np.ndarray, block: int = 4096) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(b.left, b.right) for b in iter_pair_blocks(n_drugs, include, block)]


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def bench_drugs(library: DrugLibrary, query: pd.Series) -> None:
    section("single drugs: score all 1309 drugs (top-200 query genes)")
    for score, extreme in (("pearson", None), ("cosine", None), ("spearman", None), ("xsum", None), ("xsum", 100), ("wtcs", None)):
        prepared = prepare_query(query, library, score, 200, extreme)
        drug_scores(library, prepared)  # compiles the rank kernels once (cached on disk)
        seconds, fast = best_of(3, lambda: drug_scores(library, prepared))
        label = score + (f"(extreme={extreme})" if extreme else "")
        line = f"  {label:<20s} {seconds * 1000:8.1f} ms"
        if prepared.rank_kernel() is not None:
            prepared.rank_scorer = "numpy"
            numpy_s, slow = best_of(3, lambda: drug_scores(library, prepared))
            line += f"   (numpy path {numpy_s * 1000:.1f} ms, ratio {numpy_s / seconds:.1f}x, max diff {np.abs(fast - slow).max():.1e})"
        print(line)


def bench_average(library: DrugLibrary, query: pd.Series, subset_drugs: int) -> None:
    total = n_pairs(library.n_drugs)
    section(f"average model, all {total:,} pairs, exact Gram path (target < 1 s)")
    all_pairs_s = {}
    for score in ("pearson", "cosine", "xsum"):
        prepared = prepare_query(query, library, score, 200)
        for top_k in (1000, None):
            seconds, ranking = best_of(3, lambda: rank_pairs(library, prepared, "average", top_k=top_k))
            assert ranking.method == "gram" and ranking.n_pairs == total
            all_pairs_s[score, top_k] = seconds
            FIGURES[f"average_{score}_top{top_k or 'all'}_s"] = round(seconds, 3)
            print(f"  {score:<8s} top_k={str(top_k):<5s} {seconds:7.3f} s   ({total / seconds / 1e6:6.1f} M pairs/s)")

    include = np.arange(subset_drugs)
    subset = n_pairs(library.n_drugs, include)
    section(f"speed-up over naive materialize-and-score, side by side on {subset:,} pairs (pairs with {subset_drugs} drugs)")
    prepared = prepare_query(query, library, "pearson", 200)
    names = [library.drugs[i] for i in include]
    gram_s, gram = best_of(3, lambda: rank_pairs(library, prepared, "average", include=names, top_k=None, method="gram"))
    stream_s, stream = best_of(1, lambda: rank_pairs(library, prepared, "average", include=names, top_k=None, method="streamed"))
    blocks = subset_blocks(library.n_drugs, include)
    naive_s, naive = best_of(1, lambda: naive_full_pair_scores(library, prepared, blocks))
    merged = gram.table.merge(stream.table, on=["drug1", "drug2"])
    left = np.concatenate([b[0] for b in blocks])
    right = np.concatenate([b[1] for b in blocks])
    naive_table = pd.DataFrame({"drug1": np.asarray(library.drugs)[left], "drug2": np.asarray(library.drugs)[right], "naive": naive})
    merged = merged.merge(naive_table, on=["drug1", "drug2"])
    diff = max(np.abs(merged.score_x - merged.score_y).max(), np.abs(merged.score_x - merged.naive).max())
    print(f"  gram (exact shortcut)               {gram_s:8.3f} s")
    print(f"  streamed (pair signatures, 200 genes) {stream_s:6.3f} s   ratio {stream_s / gram_s:7.1f}x")
    print(f"  naive (full 11525-gene pair signatures) {naive_s:4.3f} s   ratio {naive_s / gram_s:7.1f}x")
    print(f"  max |gram - naive| = {diff:.2e} over {len(merged):,} pairs")
    naive_all = naive_s / subset * total
    fast_all = all_pairs_s["pearson", 1000]
    print(
        f"  naive extrapolated to all {total:,} pairs: {naive_all:.1f} s "
        f"(the original: {ORIGINAL['average_all_pairs_s'][0]:.0f}-{ORIGINAL['average_all_pairs_s'][1]:.0f} s); "
        f"all pairs, gram {fast_all:.3f} s: {naive_all / fast_all:,.0f}x faster than naive, "
        f"{ORIGINAL['average_all_pairs_s'][0] / fast_all:,.0f}-{ORIGINAL['average_all_pairs_s'][1] / fast_all:,.0f}x than the original"
    )


def bench_streamed_scores(library: DrugLibrary, query: pd.Series, subset_drugs: int) -> None:
    include = [library.drugs[i] for i in range(subset_drugs)]
    subset = n_pairs(library.n_drugs, np.arange(subset_drugs))
    total = n_pairs(library.n_drugs)
    section(f"scores without a Gram shortcut: streamed exact pair signatures ({subset:,} pairs, extrapolated to all)")
    for score, extreme in (("spearman", None), ("xsum", 100), ("wtcs", None)):
        prepared = prepare_query(query, library, score, 200, extreme)
        seconds, _ = best_of(1, lambda: rank_pairs(library, prepared, "average", include=include, top_k=1000))
        label = score + (f"(extreme={extreme})" if extreme else "")
        print(f"  {label:<20s} {subset / seconds:10,.0f} pairs/s   all pairs ~ {total / (subset / seconds):7.1f} s")


def bench_rank_kernels(library: DrugLibrary, query: pd.Series, subset_drugs: int) -> None:
    include = [library.drugs[i] for i in range(subset_drugs)]
    subset = n_pairs(library.n_drugs, np.arange(subset_drugs))
    total = n_pairs(library.n_drugs)
    section(f"wtcs and extreme xsum, compiled rank kernels: all {total:,} pairs (target <= 30 s each), "
            f"and vs the numpy path on {subset:,} pairs")
    for score, extreme in (("wtcs", None), ("xsum", 100)):
        label = score + (f"(extreme={extreme})" if extreme else "")
        prepared = prepare_query(query, library, score, 200, extreme)
        if prepared.rank_kernel() is None:
            print(f"  {label}: no compiled kernel (numba missing)")
            continue
        rank_pairs(library, prepared, "average", include=include[:1], top_k=10)  # compile / load the kernels first
        fast_s, fast = best_of(1, lambda: rank_pairs(library, prepared, "average", include=include, top_k=None))
        prepared.rank_scorer = "numpy"
        slow_s, slow = best_of(1, lambda: rank_pairs(library, prepared, "average", include=include, top_k=None))
        prepared.rank_scorer = "auto"
        same = list(zip(fast.table.drug1, fast.table.drug2)) == list(zip(slow.table.drug1, slow.table.drug2))
        diff = np.abs(fast.table.score.to_numpy() - slow.table.score.to_numpy()).max()
        print(f"  {label:<20s} subset: numpy {slow_s:6.2f} s ({subset / slow_s:8,.0f} pairs/s), kernel {fast_s:6.3f} s "
              f"({subset / fast_s:8,.0f} pairs/s), ratio {slow_s / fast_s:5.1f}x, max diff {diff:.1e}, same ranking {same}")
        all_s, ranking = best_of(1, lambda: rank_pairs(library, prepared, "average", top_k=1000))
        assert ranking.n_pairs == total
        numpy_all = slow_s / subset * total
        key = "".join(c if c.isalnum() else "_" for c in label).strip("_").lower()  # e.g. xsum_extreme_100
        FIGURES.update({f"{key}_all_pairs_s": round(all_s, 1), f"{key}_numpy_extrapolated_s": round(numpy_all, 0)})
        print(f"  {label:<20s} all pairs (top_k=1000): {all_s:6.1f} s ({total / all_s:8,.0f} pairs/s); "
              f"numpy path extrapolated {numpy_all:6.1f} s, ratio {numpy_all / all_s:5.1f}x")


def stand_in_model(library: DrugLibrary, hidden: int, seed: int = 0):
    """Two fold nets of the original's size (random weights) and an xgboost stacker (original settings)."""
    from combomap.data.pairs import PairBatch
    from combomap.models.portable import PortableMLP
    from combomap.stacking.backends import StackerSettings, make_backend
    from combomap.stacking.features import FEATURES, build_features, needs_projections
    from combomap.stacking.final_model import StackedModel

    rng = np.random.default_rng(seed)
    n_genes = library.n_genes
    nets = []
    for _ in range(2):
        weights = [
            rng.standard_normal((hidden, 2 * n_genes), dtype=np.float32) * np.float32(1 / np.sqrt(2 * n_genes)),
            rng.standard_normal((n_genes, hidden), dtype=np.float32) * np.float32(1 / np.sqrt(hidden)),
        ]
        biases = [np.zeros(hidden, np.float32), np.zeros(n_genes, np.float32)]
        nets.append(PortableMLP(weights, biases, "very_leaky_relu", library.genes))
    n_rows = 2_000_000
    a, b = rng.integers(0, library.n_drugs, n_rows), rng.integers(0, library.n_drugs, n_rows)
    genes = rng.integers(0, n_genes, n_rows)
    d1, d2 = library.effects[a, genes][:, None], library.effects[b, genes][:, None]
    v1, v2 = library.variances[a, genes][:, None], library.variances[b, genes][:, None]
    mean = (np.nan_to_num(d1) + np.nan_to_num(d2)) / 2
    net_pred = (0.8 * mean + rng.normal(0, 0.3, mean.shape)).astype(np.float32)
    label = (0.9 * mean + 0.2 * net_pred + rng.normal(0, 1, mean.shape) * np.sqrt(np.nan_to_num(v1 + v2, nan=1.0))).ravel()
    names = [f for f in FEATURES if not needs_projections([f])]  # the original's features (no gene-program basis)
    features = build_features(names, PairBatch(d1, d2, v1, v2), net_pred=net_pred)
    stacker = make_backend(StackerSettings.original(name="xgboost", n_threads=CORES)).fit(features, label, feature_names=names)
    return StackedModel(stacker=stacker, features=names, genes=list(library.genes), nets=nets)


def compare_stacker_predictors(model, library: DrugLibrary, prepared, compiled, args: argparse.Namespace) -> None:
    """The stacker part alone, compiled kernel vs the backend's predict, side by side on the same blocks."""
    from combomap.query.stacked import StackedPairModel

    backend = StackedPairModel(model, library, prepared, inference=args.inference, stacker_predictor="backend")
    blocks = [b for _, b in zip(range(args.predictor_blocks), iter_pair_blocks(library.n_drugs, None, args.block_pairs))]
    predictions = [[net.symmetric_prediction(b) for net in compiled.nets] for b in blocks]
    compiled.signatures_from(blocks[0], predictions[0])  # compile / load the kernel outside the timing
    times, outputs = {}, {}
    for name, pair_model in (("compiled", compiled), ("backend", backend)):
        start = time.perf_counter()
        outputs[name] = [pair_model.signatures_from(b, p) for b, p in zip(blocks, predictions)]
        times[name] = time.perf_counter() - start
    n_pairs_done = sum(len(b) for b in blocks)
    rows = n_pairs_done * len(prepared.genes) * max(1, len(compiled.nets) if compiled.inference == "per_net" else 1)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(outputs["compiled"], outputs["backend"]))
    print(f"  stacker predictors side by side on {n_pairs_done:,} pairs ({rows:,} stacker rows, features included): "
          f"backend {times['backend']:.2f} s ({rows / times['backend'] / 1e6:.1f} M rows/s), compiled {times['compiled']:.2f} s "
          f"({rows / times['compiled'] / 1e6:.1f} M rows/s), speed-up {times['backend'] / times['compiled']:.2f}x; "
          f"max |difference| {diff:.1e}")


def bench_stacked(library: DrugLibrary, query: pd.Series, args: argparse.Namespace) -> None:
    from combomap.query.stacked import StackedPairModel, load_stacked_model
    from combomap.stacking.predict import predict_pairs

    section("stacked model")
    start = time.perf_counter()
    if args.model_dir:
        model = load_stacked_model(args.model_dir)
        origin = args.model_dir
    else:
        model = stand_in_model(library, args.hidden)
        origin = f"stand-in (random nets 23050 -> {args.hidden} -> 11525, xgboost depth 15 x 8 on synthetic rows)"
        if args.save_model:
            model.save(args.save_model)
    try:
        from combomap.stacking.forest import compile_stacker

        forest = compile_stacker(model.stacker)
        nodes = np.diff(np.append(forest.roots, forest.n_nodes)).tolist()
    except ValueError:
        nodes = []
    print(f"  model: {origin}; {len(model.nets)} nets {model.nets[0].layer_sizes if model.nets else ''}; "
          f"stacker {model.stacker.name}, {model.stacker.n_trees} trees, nodes per tree {nodes}; inference {args.inference or model.inference}")
    print(f"  model ready in {time.perf_counter() - start:.1f} s; peak RSS so far {peak_rss_gb():.2f} GB")

    prepared = prepare_query(query, library, "pearson", 200, allowed_genes=model.genes)
    start = time.perf_counter()
    pair_model = StackedPairModel(model, library, prepared, inference=args.inference, stacker_predictor=args.stacker_predictor)
    setup_s = time.perf_counter() - start
    compiled_forest = getattr(pair_model.predictor, "forest", None)  # the compiled predictor's trees
    print(f"  stacker predictor: {pair_model.stacker_predictor}"
          + (f" (compiled forest: {compiled_forest.n_trees} trees, {compiled_forest.n_nodes:,} nodes, depth "
             f"{compiled_forest.depth})" if compiled_forest is not None else ""))
    total = n_pairs(library.n_drugs)
    limit = min(total, args.stacked_pairs or total)
    topk = RunningTopK(200)
    timing = {"nets": 0.0, "stacker+features": 0.0, "score+topk": 0.0}
    done = 0
    start = time.perf_counter()
    for block in iter_pair_blocks(library.n_drugs, None, args.block_pairs):
        if done >= limit:
            break
        t0 = time.perf_counter()
        predictions = [net.symmetric_prediction(block) for net in pair_model.nets]
        t1 = time.perf_counter()
        signatures = pair_model.signatures_from(block, predictions)
        t2 = time.perf_counter()
        topk.push(prepared.score_block(signatures), block.left, block.right)
        t3 = time.perf_counter()
        timing["nets"] += t1 - t0
        timing["stacker+features"] += t2 - t1
        timing["score+topk"] += t3 - t2
        done += len(block)
    pairs_s = time.perf_counter() - start
    scale = total / done
    print(f"  setup (per-drug first-layer projections, {len(pair_model.nets)} nets): {setup_s:.1f} s")
    print(f"  scored {done:,} pairs in {pairs_s:.1f} s ({done / pairs_s:,.0f} pairs/s): "
          + ", ".join(f"{k} {v:.1f} s" for k, v in timing.items()))
    if done < total:
        print(f"  extrapolated to all {total:,} pairs: {setup_s + pairs_s * scale:.0f} s")
    else:
        print(f"  all {total:,} pairs: {setup_s + pairs_s:.1f} s (target < 60 s)")
        FIGURES["stacked_all_pairs_s"] = round(setup_s + pairs_s, 1)
    FIGURES["stacked_peak_rss_gb"] = round(peak_rss_gb(), 2)
    print(f"  peak RSS of this process: {peak_rss_gb():.2f} GB (target < 4 GB; the original: 8-10 GB)")

    if compiled_forest is not None:
        compare_stacker_predictors(model, library, prepared, pair_model, args)

    n_check = args.naive_pairs
    block = next(iter_pair_blocks(library.n_drugs, np.arange(library.n_drugs - 1, library.n_drugs), n_check))
    pairs = list(zip(np.asarray(library.drugs)[block.left], np.asarray(library.drugs)[block.right]))
    columns = [model.genes.index(g) for g in prepared.genes]
    naive_s, naive = best_of(1, lambda: predict_pairs(model, library, pairs, inference=args.inference))
    fast_s, fast = best_of(1, lambda: pair_model.signatures(block))
    naive_scores = prepared.score_block(naive[:, columns].astype(np.float64))
    fast_scores = prepared.score_block(fast)
    print(f"  side by side on {len(pairs)} pairs: naive StackedModel.predict (every gene) {naive_s:.2f} s, fast {fast_s:.3f} s, "
          f"speed-up {naive_s / fast_s:.0f}x; max |score diff| {np.abs(naive_scores - fast_scores).max():.2e}")
    print(f"  naive extrapolated to all pairs: {naive_s / len(pairs) * total / 3600:.1f} h (the original: ~2 h, 8-10 GB)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-stacked", action="store_true")
    parser.add_argument("--model-dir", default=None, help="a combomap-stack model directory (default: a stand-in)")
    parser.add_argument("--save-model", default=None, help="save the stand-in model here (reuse with --model-dir)")
    parser.add_argument("--hidden", type=int, default=2500, help="stand-in nets' hidden size (the original: 2500)")
    parser.add_argument("--stacked-pairs", type=int, default=0, help="stacked: score only this many pairs (0 = all)")
    parser.add_argument("--block-pairs", type=int, default=2048)
    parser.add_argument("--naive-pairs", type=int, default=256)
    parser.add_argument("--inference", choices=["per_net", "mean_net"], default=None, help="stacked: override the model's")
    parser.add_argument("--stacker-predictor", choices=["auto", "compiled", "backend"], default="auto",
                        help="stacked: how the stacker predicts in the all-pairs run")
    parser.add_argument("--predictor-blocks", type=int, default=20,
                        help="stacked: blocks for the compiled / backend side-by-side")
    parser.add_argument("--subset-drugs", type=int, default=5)
    parser.add_argument("--only-stacked", action="store_true", help="skip the drug and average-model sections")
    parser.add_argument("--only-rank", action="store_true", help="only the compiled wtcs / extreme xsum section")
    args = parser.parse_args(argv)

    print(f"combomap query benchmark: {pin_cores(CORES)}; numpy {np.__version__}; python {sys.version.split()[0]}")
    start = time.perf_counter()
    from combomap.data.simulate import simulate_library

    library = simulate_library(n_drugs=1309, preset="default", seed=0)
    print(f"library: {library.n_drugs} drugs x {library.n_genes} genes, simulated in {time.perf_counter() - start:.1f} s")
    query = make_query(library)
    name = "query_rank" if args.only_rank else "query_stacked" if args.only_stacked else "query_average" if args.skip_stacked else "query"
    if args.only_rank:
        bench_rank_kernels(library, query, args.subset_drugs)
        record(name, FIGURES, "python benchmarks/bench_query.py " + " ".join(sys.argv[1:]))
        return
    if not args.only_stacked:
        bench_drugs(library, query)
        bench_average(library, query, args.subset_drugs)
        bench_streamed_scores(library, query, args.subset_drugs)
        bench_rank_kernels(library, query, args.subset_drugs)
    if not args.skip_stacked:
        bench_stacked(library, query, args)
    print(f"\npeak RSS {peak_rss_gb():.2f} GB")
    record(name, FIGURES, "python benchmarks/bench_query.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
