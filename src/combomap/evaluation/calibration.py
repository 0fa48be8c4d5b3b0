"""Calibration of the simulated compendium against the original data's published statistics.

`calibration_report(dataset)` measures, on measured entries, the statistics the original data
is known by (ccmap notes, sections 1-3): how well the average (d1 + d2) / 2 predicts the
combination's sign, per combination and by effect size, how the combination scales with the
sum of the single effects, and the platform coverage. `CALIBRATION_TARGETS` holds the ranges
the simulator is tuned to; `check_calibration(report)` lists the figures outside them.

    python -m combomap.evaluation.calibration --preset default --seed 0
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from combomap.data.dataset import ComboDataset
from combomap.data.simulate import simulate_compendium
from combomap.evaluation.metrics import (
    per_combo_error_rate,
    per_combo_spearman,
    sign_accuracy,
    sign_accuracy_by_effect,
)

# name -> (low, high), inclusive. Sources: ccmap notes sections 1-3 (the original data and its
# published figures) and section 5 (Norman 2019: doubles scale as ~0.8 x the sum of singles).
CALIBRATION_TARGETS: dict[str, tuple[float, float]] = {
    "sign_acc": (0.77, 0.81),  # average baseline, 78.96% in the original
    "spearman_median": (0.75, 0.85),  # 0.804 in the original
    "combo_error_min": (0.0, 0.08),
    "combo_error_median": (0.15, 0.25),  # 0.199 in the original
    "combo_error_max": (0.40, 0.65),  # above 0.5: a dominant inhibitor flips its partner's program
    "acc_effect_near0": (0.50, 0.60),  # |combo| in [0, 0.1): about 0.53 in the original
    "acc_effect_near1": (0.78, 0.92),  # |combo| in [0.9, 1.1): about 0.85
    "acc_effect_beyond3": (0.95, 1.0),  # |combo| >= 3
    "slope_sum": (0.60, 0.90),  # combo on (d1 + d2), least squares through the origin
    "measured_fraction": (0.70, 0.80),
    "core_gene_fraction": (0.29, 0.315),  # 3483 / 11525 = 0.302 genes measured in every study
}


def _pooled_accuracy(by_effect, low: float, high: float) -> float:
    """Sign accuracy over the |effect| bins whose lower edge lies in [low, high), pooled by count."""
    lower = by_effect["effect_lo"].to_numpy()
    pick = (lower >= low - 1e-9) & (lower < high - 1e-9)
    n = by_effect["n"].to_numpy()[pick]
    correct = (by_effect["sign_acc"].to_numpy()[pick] * n)[n > 0]
    return float(correct.sum() / n.sum()) if n.sum() else float("nan")


def calibration_report(dataset: ComboDataset) -> dict[str, float]:
    """The calibration figures of a data set (the average baseline against the measured combination)."""
    truth = dataset.combo_effect.astype(np.float64)
    single_sum = dataset.drug1_effect.astype(np.float64) + dataset.drug2_effect.astype(np.float64)
    average = single_sum / 2.0
    errors = per_combo_error_rate(truth, average)
    spearman = per_combo_spearman(truth, average)
    by_effect = sign_accuracy_by_effect(truth, average)
    measured = ~np.isnan(truth)
    both = measured & ~np.isnan(single_sum)
    slope = float(np.sum(truth[both] * single_sum[both]) / np.sum(single_sum[both] ** 2))
    core_genes = int(measured.all(axis=0).sum())
    return {
        "n_combos": dataset.n_combos,
        "n_genes": dataset.n_genes,
        "n_studies": int(dataset.combos["study"].nunique()),
        "sign_acc": sign_accuracy(truth, average),
        "spearman_median": float(np.nanmedian(spearman)),
        "combo_error_min": float(np.nanmin(errors)),
        "combo_error_median": float(np.nanmedian(errors)),
        "combo_error_max": float(np.nanmax(errors)),
        "acc_effect_near0": _pooled_accuracy(by_effect, 0.0, 0.1),
        "acc_effect_near1": _pooled_accuracy(by_effect, 0.9, 1.1),
        "acc_effect_beyond3": _pooled_accuracy(by_effect, 3.0, np.inf),
        "slope_sum": slope,
        "measured_fraction": float(measured.mean()),
        "core_genes": core_genes,
        "core_gene_fraction": core_genes / dataset.n_genes,
    }


def check_calibration(report: dict[str, float], targets: dict[str, tuple[float, float]] | None = None) -> list[str]:
    """One line per figure outside its target range (empty list = calibrated)."""
    failures = []
    for name, (low, high) in (targets or CALIBRATION_TARGETS).items():
        value = report.get(name, float("nan"))
        if not (low <= value <= high):
            failures.append(f"{name} = {value:.4f} outside [{low}, {high}]")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Calibration figures of the simulated compendium.")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    dataset = simulate_compendium(args.preset, args.seed)
    elapsed = time.perf_counter() - start
    report = calibration_report(dataset)
    header = {"preset": args.preset, "seed": args.seed, "simulate_seconds": round(elapsed, 2)}
    print(json.dumps({**header, **report}, indent=2))
    failures = check_calibration(report)
    print("calibration: OK" if not failures else "calibration: FAILED\n  " + "\n  ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
