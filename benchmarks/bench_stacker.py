"""Stacker fit time at the original's size: 2,961,925 (combination, gene) rows x 5 features, 2 threads.

    python benchmarks/bench_stacker.py                    # xgboost vs lightgbm, original parameters, 2 threads
    python benchmarks/bench_stacker.py --repeats 3 --threads 2 --backends xgboost lightgbm

Rows: every entry of the simulated default compendium (257 combinations x 11525 genes), features
[net_pred, d1, d2, v1, v2] built exactly as combomap-stack builds them (NaN kept, canonical drug
order). The original's 2,961,925 rows had every target filled (imputed); here the unmeasured targets
(about 27%) get the average baseline plus noise as a stand-in, and net_pred is a noisy copy of the
truth (no nets are trained), so only the timings are meaningful, not the accuracies.
Parameters (conf/stacker/*.yaml): max depth 15, 8 rounds, eta 0.5, 0.5, 0.15 x 6; lightgbm grows
leaf-wise with num_leaves = 2**15 - 1. Target: each fit under 60 s on 2 cores. Not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from combomap.data.pairs import PairBatch
from combomap.data.simulate import simulate_compendium
from combomap.evaluation.baselines import average
from combomap.evaluation.metrics import sign_accuracy
from combomap.stacking.backends import StackerSettings, make_backend
from combomap.stacking.features import FEATURES, build_features

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import record  # noqa: E402  (benchmarks/results.py: the figures the docs quote)

ORIGINAL_ROWS = 2_961_925


def original_sized_rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    data = simulate_compendium("default", seed=seed)
    rng = np.random.default_rng(seed)
    baseline = average(data.drug1_effect, data.drug2_effect)
    label = data.combo_effect.copy()
    unmeasured = np.isnan(label)
    label[unmeasured] = np.nan_to_num(baseline[unmeasured]) + 0.3 * rng.normal(size=int(unmeasured.sum())).astype(np.float32)
    net_pred = (label + 0.8 * rng.normal(size=label.shape)).astype(np.float32)
    features = build_features(FEATURES, PairBatch.from_dataset(data), net_pred=net_pred)
    return features, label.reshape(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["xgboost", "lightgbm"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lightgbm-num-leaves", type=int, default=None,
                        help="lightgbm num_leaves (default: the backend's min(2**15 - 1, 4095); 32767 = literal depth 15)")
    args = parser.parse_args()

    start = time.perf_counter()
    features, label = original_sized_rows(args.seed)
    assert features.shape == (ORIGINAL_ROWS, len(FEATURES)), features.shape
    print(f"{features.shape[0]:,} rows x {features.shape[1]} features ({', '.join(FEATURES)}), "
          f"{np.isnan(features).mean():.1%} of feature values missing; built in {time.perf_counter() - start:.1f} s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, {args.threads} threads used, "
          f"load average {load:.1f} (other processes slow the wall times; fit CPU s is the work done)")
    header = (f"{'backend':<10} {'version':<8} {'fit s (median)':>15} {'fit s (all)':>24} {'fit CPU s':>10} "
              f"{'predict s':>10} {'trees':>6} {'train sign acc':>15}")
    print(header)
    print("-" * len(header))
    figures: dict[str, float | str] = {"rows": int(features.shape[0]), "threads": args.threads}
    for name in args.backends:
        settings = StackerSettings.original(name=name, max_depth=15, n_rounds=8,
                                   learning_rates=[0.5, 0.5, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15],
                                   n_threads=args.threads, seed=args.seed,
                                   params={"num_leaves": args.lightgbm_num_leaves} if name == "lightgbm" and args.lightgbm_num_leaves else {})
        fit_seconds, cpu_seconds, backend = [], [], None
        for _ in range(args.repeats):
            backend = make_backend(settings)
            start, cpu_start = time.perf_counter(), time.process_time()
            backend.fit(features, label, feature_names=list(FEATURES))
            fit_seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu_start)
        start = time.perf_counter()
        prediction = backend.predict(features)
        predict_seconds = time.perf_counter() - start
        accuracy = sign_accuracy(label.reshape(1, -1), prediction.reshape(1, -1))
        version = __import__(name).__version__
        runs = ", ".join(f"{s:.1f}" for s in fit_seconds)
        print(f"{name:<10} {version:<8} {np.median(fit_seconds):>15.1f} {runs:>24} {np.median(cpu_seconds):>10.1f} "
              f"{predict_seconds:>10.1f} "
              f"{backend.n_trees:>6} {accuracy:>15.4f}")
        figures.update({f"{name}_version": version, f"{name}_fit_s": round(float(np.median(fit_seconds)), 1),
                        f"{name}_fit_cpu_s": round(float(np.median(cpu_seconds)), 1)})
    if {"xgboost_fit_s", "lightgbm_fit_s"} <= set(figures):
        figures["lightgbm_over_xgboost"] = round(figures["lightgbm_fit_s"] / figures["xgboost_fit_s"], 2)
    record("stacker", figures, "python benchmarks/bench_stacker.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
