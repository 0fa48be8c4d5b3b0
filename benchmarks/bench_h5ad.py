"""Benchmark single-cell .h5ad conversion (pseudobulk -> d') against reading the file alone, 2 cores.

    python benchmarks/bench_h5ad.py                          # 100,000 cells x 20,000 genes, ~10 % non-zero
    python benchmarks/bench_h5ad.py --cells 20000 --genes 5000 --keep
    python benchmarks/bench_h5ad.py --path cells.h5ad --skip-generate   # an existing file (e.g. real Norman 2019)

Generates (untimed; once, reused with --keep) a simulated Perturb-seq file (combomap.data.simulate_cells:
negative-binomial counts, CSR float32, 100 groups: control, singles and their pairs), then runs each task in
its own fresh process so that each peak RSS is its own:
- read alone: anndata.read_h5ad (the whole CSR matrix into memory), the floor any h5ad user pays;
- convert: combomap.data.single_cell.read_single_cell (streamed pseudobulk, moderated t, d', var(d'));
- convert + write: the same plus write_npy_dir, what `combomap-data data=h5ad ... format=npy` does.
Targets (issue 13): convert <= 120 s and <= 6 GB peak on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import record  # noqa: E402  (benchmarks/results.py: the figures the docs quote)

CORES = 2
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(CORES))

TARGETS = {"convert_s": 120.0, "convert_gb": 6.0}

# Each task runs in a fresh interpreter; it prints one JSON line (seconds, peak RSS in GB, a detail).
PRELUDE = """
import json, os, resource, sys, time
try:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:{cores}]))
except (AttributeError, OSError):
    pass
path = sys.argv[1]
import numpy, scipy.sparse, anndata, h5py  # imports outside the timed part
import combomap.data.single_cell, combomap.data.io
start = time.perf_counter()
"""
TASKS = {
    "read alone (anndata.read_h5ad)": """
adata = anndata.read_h5ad(path)
detail = f"{adata.n_obs} x {adata.n_vars}, nnz {adata.X.nnz:,}"
""",
    "convert (read_single_cell)": """
dataset, report = combomap.data.single_cell.read_single_cell(path)
detail = report.summary().split(": ", 1)[1]
""",
    "convert + write npy": """
import tempfile
dataset, report = combomap.data.single_cell.read_single_cell(path)
with tempfile.TemporaryDirectory() as folder:
    combomap.data.io.write_npy_dir(dataset, os.path.join(folder, "out"))
detail = f"{dataset.n_combos} combos x {dataset.n_genes} genes written"
""",
}
# VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child would report its parent's peak.
EPILOGUE = """
seconds = time.perf_counter() - start
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2**20
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"seconds": seconds, "peak_gb": peak, "detail": detail}))
"""
BASELINE = "detail = 'python + numpy, scipy, anndata, h5py, combomap imported'\n"


def run_task(body: str, path: Path) -> dict:
    code = PRELUDE.format(cores=CORES) + body + EPILOGUE
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"task failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def generate(path: Path, cells: int, genes: int, groups: int, depth: float, seed: int) -> None:
    from combomap.data.simulate_cells import write_perturb_seq_h5ad

    n_pairs = max(1, (groups - 1) // 3)
    per_group = cells // (1 + 3 * n_pairs)
    start = time.perf_counter()
    write_perturb_seq_h5ad(
        path, n_pairs=n_pairs, cells_per_group=per_group, preset="small", seed=seed, depth=depth,
        n_genes=genes, n_core_genes=min(genes, 6000),
    )
    print(f"generated {path} in {time.perf_counter() - start:.0f} s ({n_pairs} pairs, {per_group} cells per group)")


def describe(path: Path) -> str:
    import h5py

    with h5py.File(path, "r") as handle:
        shape = tuple(int(n) for n in handle["X"].attrs["shape"])
        nnz = handle["X/data"].shape[0]
    return f"{shape[0]:,} cells x {shape[1]:,} genes, {nnz:,} non-zero ({nnz / (shape[0] * shape[1]):.1%}), " \
           f"{path.stat().st_size / 2**30:.2f} GiB on disk"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=100, help="control + 3 per pair (singles A, B and A+B)")
    parser.add_argument("--depth", type=float, default=3000.0, help="mean counts per cell (3000: ~10 %% non-zero)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", type=Path, default=Path("/tmp/combomap_bench_cells.h5ad"))
    parser.add_argument("--skip-generate", action="store_true", help="use --path as it is")
    parser.add_argument("--keep", action="store_true", help="keep the generated file for the next run")
    args = parser.parse_args()

    generated = False
    if not args.skip_generate and not args.path.exists():
        generate(args.path, args.cells, args.genes, args.groups, args.depth, args.seed)
        generated = True
    print(f"file: {describe(args.path)}; {CORES} cores")
    rows = [("imports only", run_task(BASELINE, args.path))]
    for name, body in TASKS.items():
        rows.append((name, run_task(body, args.path)))
    print(f"{'task':34s} {'seconds':>8s} {'peak GB':>8s}  detail")
    for name, row in rows:
        print(f"{name:34s} {row['seconds']:8.1f} {row['peak_gb']:8.2f}  {row['detail']}")
    convert = dict(rows)["convert (read_single_cell)"]
    ok_time = convert["seconds"] <= TARGETS["convert_s"]
    ok_memory = convert["peak_gb"] <= TARGETS["convert_gb"]
    print(
        f"target: convert <= {TARGETS['convert_s']:.0f} s ({'met' if ok_time else 'MISSED'}) and "
        f"<= {TARGETS['convert_gb']:.0f} GB peak ({'met' if ok_memory else 'MISSED'})"
    )
    figures = {"cells": args.cells, "genes": args.genes}
    for name, row in rows:
        key = name.split(" (")[0].replace(" + ", "_and_").replace(" ", "_")  # read_alone, convert, ...
        figures.update({f"{key}_s": round(row["seconds"], 1), f"{key}_peak_gb": round(row["peak_gb"], 2)})
    record("h5ad", figures, "python benchmarks/bench_h5ad.py " + " ".join(sys.argv[1:]))
    if generated and not args.keep:
        args.path.unlink()


if __name__ == "__main__":
    main()
