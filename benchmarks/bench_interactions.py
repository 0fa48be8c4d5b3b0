"""Interaction maps on the simulator with planted interactions: are the calls right, at the error rate they promise?

    python benchmarks/bench_interactions.py     # default compendium (GEO-like) and screen preset, seeds 0-2,
                                                # + the real fixtures as the job runs them (2 to 10 min on 2 cores)

Per cell (combomap.interactions.planted: every combination's truth exactly additive or average plus planted
departures of 1-8 noise SDs in 2 % of the genes of half the combinations, measured again as the simulator measures):
- precision, recall and the realised false discovery proportion of the calls at nominal FDR 0.05, 0.1 and 0.2
  (the same q-values over all entries), per seed and averaged over seeds 0-2;
- recall per planted size at FDR 0.1, and what an ideal test that knew each entry's noise SD exactly would recall
  at the same threshold (the realised BH cut in z): the ceiling a calibrated test can reach at this sparsity;
- the null (nothing planted): entries called, the KS test of the p-values against the uniform, the calibration k.
Cells: additive and average expectations with the measured variances; additive with the variances dropped (the
robust residual scale the job uses on data without variances; null_shape bulk, and the normal); the screen
preset (one study, 150 combinations), with and without variances. Then the job's own summaries on the Korkut panel
and the Norman double (every null shape) and the default compendium as-is.
The issue's targets (realised FDR <= nominal + 0.02 averaged over seeds; recall >= 0.8 on interactions of at least
3 noise SDs) are measured and printed, not asserted. Writes benchmarks/results/interactions.json. Not a test.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kstest, norm

from combomap.data.io import read_tidy
from combomap.data.simulate import simulate_compendium_with_truth
from combomap.interactions.calls import call_entries, classify
from combomap.interactions.expected import simple_expectation
from combomap.interactions.noise import null_scale
from combomap.interactions.pipeline import call_interactions
from combomap.interactions.planted import plant_interactions, recall_by_size, score_calls
from combomap.interactions.settings import InteractionSettings, PlantSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "fixtures"
SEEDS = (0, 1, 2)
LEVELS = (0.05, 0.1, 0.2)


def level_key(level: float) -> str:
    """A nominal level in a figure's key (the docs' tags take letters, digits and _ only): 0.05 -> 05, 0.1 -> 10."""
    return f"{round(level * 100):02d}"
SIZES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
CELLS = {  # name: (preset, expected, keep the variances, null_shape of the robust scales)
    "default_additive": ("default", "additive", True, "bulk"),
    "default_average": ("default", "average", True, "bulk"),
    "default_additive_no_variances": ("default", "additive", False, "bulk"),
    "default_additive_no_variances_normal": ("default", "additive", False, "normal"),
    "screen_additive": ("screen", "additive", True, "bulk"),
    "screen_additive_no_variances": ("screen", "additive", False, "bulk"),
    "screen_additive_no_variances_normal": ("screen", "additive", False, "normal"),
}


def calls_of(dataset, expected: str, null_shape: str) -> tuple:
    """(tests, null) of the job's statistics (variance=auto), without the per-combination summaries."""
    expectation = simple_expectation(dataset, expected)
    null = null_scale(dataset, expectation.values, expectation.single_weight, "auto", 10, True, null_shape)
    return call_entries(dataset.combo_effect, expectation.values, null.scale, null.df, 0.1), null


def planted_cell(preset: str, expected: str, variances: bool, null_shape: str, seed: int) -> dict[str, float]:
    dataset, truth = simulate_compendium_with_truth(preset, seed)
    planted = plant_interactions(dataset, truth, PlantSettings(seed=seed), expected)
    data = planted.dataset if variances else replace(planted.dataset, drug1_var=None, drug2_var=None)
    tests, null = calls_of(data, expected, null_shape)
    tested = tests.tested
    figures: dict[str, float] = {"n_tested": float(tested.sum()), "n_true": float((planted.truth & tested).sum()),
                                 "calibration": null.calibration, "df_median": float(np.median(null.df[tested]))}
    for level in LEVELS:
        call = classify(tests.observed, tests.expected, tested & (np.nan_to_num(tests.q, nan=1.0) <= level))
        for name, value in score_calls(call, planted, tested).items():
            figures[f"{name}_at{level_key(level)}"] = value
    called = tests.call != 0
    threshold = float(np.min(np.abs(tests.z[called]))) if called.any() else float("inf")
    figures["z_threshold_at10"] = threshold
    by_size = recall_by_size(tests.call, planted, tested).set_index("size_sd")
    for size in SIZES:
        figures[f"recall_size{size:g}"] = float(by_size.loc[size, "recall"])
        figures[f"ideal_recall_size{size:g}"] = float(norm.sf(threshold - size) + norm.cdf(-threshold - size))
    at_least_3 = (np.nan_to_num(planted.size) >= 3) & tested
    figures["recall_3sd_or_more"] = float((called & at_least_3).sum() / at_least_3.sum())
    figures.update(null_cell(dataset, truth, expected, variances, null_shape, seed))
    return figures


def null_cell(dataset, truth, expected: str, variances: bool, null_shape: str, seed: int) -> dict[str, float]:
    null_data = plant_interactions(dataset, truth, PlantSettings(combo_fraction=0.0, seed=seed), expected).dataset
    if not variances:
        null_data = replace(null_data, drug1_var=None, drug2_var=None)
    tests, null = calls_of(null_data, expected, null_shape)
    p_values = tests.p[tests.tested]
    return {"null_called": float((tests.call != 0).sum()), "null_ks_p": float(kstest(p_values, "uniform").pvalue),
            "null_ks_d": float(kstest(p_values, "uniform").statistic),
            "null_p_below_005": float(np.mean(p_values < 0.05)),
            "null_calibration": null.calibration, "null_method": null.method}


def summarize(cell: str, per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Means over seeds of every numeric figure (the per-seed values are kept too)."""
    figures: dict[str, float] = {}
    for key in per_seed[0]:
        values = [row[key] for row in per_seed]
        if isinstance(values[0], str):
            figures[f"{cell}_{key}"] = values[0]
            continue
        figures[f"{cell}_{key}"] = float(np.mean(values))
        for seed, value in zip(SEEDS, values):
            figures[f"{cell}_seed{seed}_{key}"] = float(value)
    return figures


def print_cell(cell: str, figures: dict[str, float]) -> None:
    rows = [{"nominal": level, **{name: figures[f"{cell}_{name}_at{level_key(level)}"] for name in
                                  ("precision", "recall", "fdp", "n_called")}} for level in LEVELS]
    print(f"\n== {cell}: mean over seeds {list(SEEDS)} (method {figures[f'{cell}_null_method']}, calibration "
          f"{figures[f'{cell}_calibration']:.3f}, t df median {figures[f'{cell}_df_median']:.1f})")
    print(pd.DataFrame(rows).round(4).to_string(index=False))
    sizes = pd.DataFrame([{"size_sd": size, "recall": figures[f"{cell}_recall_size{size:g}"],
                           "ideal_at_same_threshold": figures[f"{cell}_ideal_recall_size{size:g}"]} for size in SIZES])
    print(f"recall per size at FDR 0.1 (realised |z| threshold {figures[f'{cell}_z_threshold_at10']:.2f}):")
    print(sizes.round(3).to_string(index=False))
    print(f"recall on >= 3 SD: {figures[f'{cell}_recall_3sd_or_more']:.3f}; null: {figures[f'{cell}_null_called']:.1f} "
          f"called, KS p {figures[f'{cell}_null_ks_p']:.3g}, P(p < 0.05) {figures[f'{cell}_null_p_below_005']:.4f}")
    worst = max(figures[f"{cell}_fdp_at{level_key(level)}"] - level for level in LEVELS)
    print(f"targets: realised FDR <= nominal + 0.02: {'met' if worst <= 0.02 else 'NOT met'} (worst excess "
          f"{worst:+.3f}); recall >= 0.8 on >= 3 SD: "
          f"{'met' if figures[f'{cell}_recall_3sd_or_more'] >= 0.8 else 'NOT met'}")


def _median(values: pd.Series) -> float:
    finite = values.to_numpy(dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if finite.size else float("nan")


def real_cell(name: str, dataset, null_shape: str = "bulk") -> dict[str, float]:
    result = call_interactions(dataset, InteractionSettings(null_shape=null_shape).check("interactions"))
    numbers = result.headline()
    combinations = result.combinations
    figures = {f"{name}_{key}": value for key, value in numbers.items()}
    figures[f"{name}_method"] = result.null.method
    figures[f"{name}_df"] = float(np.median(result.null.df[result.tests.tested]))
    for column in ("magnitude", "relative_magnitude", "model_fit", "equality_of_contribution", "dominance",
                   "response_ratio"):
        figures[f"{name}_median_{column}"] = _median(combinations[column])
    print(f"\n== {name}: {dataset.n_combos} x {dataset.n_genes}; {result.null.note}")
    print({key: round(value, 4) if isinstance(value, float) else value for key, value in figures.items()})
    top = combinations.sort_values("n_called", ascending=False).head(5)
    print(top[["combo", "class", "n_called", "n_synergy", "n_buffering", "c1", "c2", "magnitude", "model_fit",
               "dominance"]].round(3).to_string(index=False))
    if dataset.n_combos == 1:
        for column in ("c1", "c2", "magnitude", "model_fit", "r2", "response_ratio"):
            figures[f"{name}_{column}"] = float(combinations[column].iloc[0])
    return figures


def main() -> None:
    start = time.perf_counter()
    figures: dict[str, float] = {}
    for cell, (preset, expected, variances, null_shape) in CELLS.items():
        per_seed = []
        for seed in SEEDS:
            per_seed.append(planted_cell(preset, expected, variances, null_shape, seed))
            last = per_seed[-1]
            print(f"{cell} seed {seed}: FDP at 0.1 {last['fdp_at10']:.3f}, recall {last['recall_at10']:.3f}"
                  f" ({time.perf_counter() - start:.0f} s)", flush=True)
        figures.update(summarize(cell, per_seed))
        print_cell(cell, figures)
    for shape in ("bulk", "normal"):
        suffix = "" if shape == "bulk" else f"_{shape}"
        figures.update(real_cell(f"korkut{suffix}", read_tidy(FIXTURES / "korkut2015_skmel133_rppa.csv"), shape))
        figures.update(real_cell(f"norman{suffix}", read_tidy(FIXTURES / "norman_cebpe_cebpb_tidy.csv"), shape))
    figures.update(real_cell("default_as_is", simulate_compendium_with_truth("default", 0)[0]))
    figures["seconds"] = time.perf_counter() - start
    record("interactions", figures, "python benchmarks/bench_interactions.py",
           note="planted interactions: 50 % of combinations, 2 % of their genes, sizes 1-8 noise SDs; means over seeds "
                "0-2 unless a key names a seed")


if __name__ == "__main__":
    main()
