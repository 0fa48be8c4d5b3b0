"""Scoring and tidy-pivot speed at the original's size: vectorised paths against a per-row reference.

    python benchmarks/bench_scoring.py

Per-combination Spearman and the full `score` on 257 x 11,525 (a quarter missing), and reading a
500,000-row tidy Parquet file, each beside a per-row Python loop that computes the same thing
(a sample of rows, scaled up). Prints seconds and ratios, asserts nothing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from combomap.data.io import read_tidy, write_tidy
from combomap.evaluation.metrics import per_combo_spearman, score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' random data set, as in the unit test
from tests.conftest import random_dataset  # noqa: E402


def seconds(task) -> float:
    start = time.perf_counter()
    task()
    return time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(257, 11525)).astype(np.float32)
    prediction = truth + rng.normal(size=truth.shape).astype(np.float32)
    truth[rng.random(truth.shape) < 0.25] = np.nan
    vectorised = seconds(lambda: per_combo_spearman(truth, prediction))
    sample = range(0, 257, 16)

    def per_row() -> None:
        for row in sample:
            measured = ~np.isnan(truth[row])
            spearmanr(truth[row, measured], prediction[row, measured])

    loop = seconds(per_row) * 257 / len(sample)
    full_score = seconds(lambda: score(truth, prediction))
    print(f"per_combo_spearman 257 x 11525: {vectorised:.3f} s; scipy per row {loop:.3f} s; ratio {loop / vectorised:.1f}x")
    print(f"score (every metric) 257 x 11525: {full_score:.3f} s")

    dataset = random_dataset(n_combos=100, n_genes=5000, seed=5)
    with tempfile.TemporaryDirectory() as folder:
        path = write_tidy(dataset, Path(folder) / "big.parquet")
        pivot = seconds(lambda: read_tidy(path))
        table = pd.read_parquet(path)
        head = table.head(20_000)

        def row_loop() -> None:
            cells: dict[tuple[str, str], float] = {}
            for record in head.itertuples(index=False):
                cells[(record[0], record[1])] = record[-1]

        loop = seconds(row_loop) * len(table) / len(head)
    print(f"read_tidy {len(table):,} rows: {pivot:.3f} s; a per-row Python loop alone {loop:.3f} s; ratio {loop / pivot:.1f}x")


if __name__ == "__main__":
    main()
