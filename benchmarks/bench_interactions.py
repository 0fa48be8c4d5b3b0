"""Interaction maps on the simulator with planted interactions: are the calls right, at the error rate they promise?

    python benchmarks/bench_interactions.py     # default compendium (GEO-like) and screen preset, seeds 0-2,
                                                # + the real fixtures as the job runs them (2 to 10 min on 2 cores)

Per cell (combomap.interactions.planted: every combination's truth exactly additive or average plus planted
departures of 1-8 noise SDs in 2 % of the genes of half the combinations, measured again as the simulator measures):
- precision, recall and the realised false discovery proportion of the calls at nominal FDR 0.05, 0.1 and 0.2
  (the same q-values over all entries), per seed and averaged over seeds 0-2;
- recall per planted size at FDR 0.1, and what an ideal test that knew each entry's noise SD exactly would recall
  at the same threshold (the realised BH cut in z): the ceiling a calibrated test can reach at this sparsity;
- the same threshold's "t ceiling": the power of a test that knew each entry's noise SD up to the error its null's
  t degrees of freedom stand for (noncentral t): with measured d' variances, the gene SD's error of small
  replicate groups, carried by every d', which no test on d' can remove;
- the hierarchical FDR (fdr_scope=hierarchical, Benjamini & Bogomolov 2014): the false discovery proportion of
  the selected combinations, its average within them, over all calls, and the recall, at each level;
- the null (nothing planted): entries called, the KS test of the p-values against the uniform, the calibration k.
Cells: additive and average expectations with the measured variances; additive with the variances dropped (the
robust residual scale the job uses on data without variances; null_shape bulk, and the normal); the screen
preset (one study, 150 combinations), with and without variances; and the empirical-Bayes `variance=moderated`
in the default and screen cells, with and without variances; and a screen of 30 combinations without variances
(each gene's scale from few residuals), with the job's default and with `moderated`. Then the job's own summaries on the Korkut panel
and the Norman double (every null shape) and the default compendium as-is.
The issue's targets (realised FDR <= nominal + 0.02 averaged over seeds; recall >= 0.8 on interactions of at least
3 noise SDs) are measured and printed, not asserted. Writes benchmarks/results/interactions.json. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kstest, norm, nct
from scipy.stats import t as student_t

from combomap.data.io import read_tidy
from combomap.data.simulate import simulate_compendium_with_truth
from combomap.interactions.calls import call_entries, classify
from combomap.interactions.expected import simple_expectation
from combomap.interactions.fdr import hierarchical_q
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
SMALL_SCREEN = {"n_combos": 30}  # a screen of 30 combinations: each gene's scale rests on 30 residuals
CELLS = {  # name: (preset, expected, keep the variances, null_shape of the robust scales, interactions.variance,
    #               simulator overrides)
    "default_additive": ("default", "additive", True, "bulk", "auto", {}),
    "default_average": ("default", "average", True, "bulk", "auto", {}),
    "default_additive_no_variances": ("default", "additive", False, "bulk", "auto", {}),
    "default_additive_no_variances_normal": ("default", "additive", False, "normal", "auto", {}),
    "screen_additive": ("screen", "additive", True, "bulk", "auto", {}),
    "screen_additive_no_variances": ("screen", "additive", False, "bulk", "auto", {}),
    "screen_additive_no_variances_normal": ("screen", "additive", False, "normal", "auto", {}),
    "screen30_additive_no_variances": ("screen", "additive", False, "bulk", "auto", SMALL_SCREEN),
    "default_additive_moderated": ("default", "additive", True, "bulk", "moderated", {}),
    "default_additive_no_variances_moderated": ("default", "additive", False, "bulk", "moderated", {}),
    "screen_additive_moderated": ("screen", "additive", True, "bulk", "moderated", {}),
    "screen_additive_no_variances_moderated": ("screen", "additive", False, "bulk", "moderated", {}),
    "screen30_additive_no_variances_moderated": ("screen", "additive", False, "bulk", "moderated", SMALL_SCREEN),
}


def calls_of(dataset, expected: str, null_shape: str, variance: str) -> tuple:
    """(tests, null) of the job's statistics, without the per-combination summaries."""
    expectation = simple_expectation(dataset, expected)
    null = null_scale(dataset, expectation.values, expectation.single_weight, variance, 10, True, null_shape)
    return call_entries(dataset.combo_effect, expectation.values, null.scale, null.df, 0.1), null


def planted_cell(preset: str, expected: str, variances: bool, null_shape: str, variance: str, overrides: dict,
                 seed: int) -> dict[str, float]:
    dataset, truth = simulate_compendium_with_truth(preset, seed, **overrides)
    planted = plant_interactions(dataset, truth, PlantSettings(seed=seed), expected)
    data = planted.dataset if variances else replace(planted.dataset, drug1_var=None, drug2_var=None)
    tests, null = calls_of(data, expected, null_shape, variance)
    tested = tests.tested
    figures: dict[str, float] = {"n_tested": float(tested.sum()), "n_true": float((planted.truth & tested).sum()),
                                 "calibration": null.calibration, "df_median": float(np.median(null.df[tested]))}
    for level in LEVELS:
        call = classify(tests.observed, tests.expected, tested & (np.nan_to_num(tests.q, nan=1.0) <= level))
        for name, value in score_calls(call, planted, tested).items():
            figures[f"{name}_at{level_key(level)}"] = value
    figures.update(hierarchical_cell(tests, planted))
    called = tests.call != 0
    threshold = float(np.min(np.abs(tests.z[called]))) if called.any() else float("inf")
    figures["z_threshold_at10"] = threshold
    by_size = recall_by_size(tests.call, planted, tested).set_index("size_sd")
    for size in SIZES:
        figures[f"recall_size{size:g}"] = float(by_size.loc[size, "recall"])
        figures[f"ideal_recall_size{size:g}"] = float(norm.sf(threshold - size) + norm.cdf(-threshold - size))
        entries = (np.nan_to_num(planted.size) == size) & tested
        figures[f"t_ideal_recall_size{size:g}"] = t_ceiling(null.df[entries], threshold, size)
    at_least_3 = (np.nan_to_num(planted.size) >= 3) & tested
    figures["recall_3sd_or_more"] = float((called & at_least_3).sum() / at_least_3.sum())
    figures.update(null_cell(dataset, truth, expected, variances, null_shape, variance, seed))
    return figures


def hierarchical_cell(tests, planted) -> dict[str, float]:
    """fdr_scope=hierarchical at each level: the false discovery proportion of the selected combinations, its
    average within them, over all calls, and the recall (all planted, >= 3 SD)."""
    figures: dict[str, float] = {}
    tested, truth = tests.tested, planted.truth & tests.tested
    interacting = truth.any(axis=1)
    big = (np.nan_to_num(planted.size) >= 3) & tested
    for level in LEVELS:
        q, selected = hierarchical_q(tests.p, level)
        called = np.nan_to_num(q, nan=1.0) <= level
        rows = np.flatnonzero(selected)
        key = level_key(level)
        figures[f"hier_combo_fdp_at{key}"] = float((selected & ~interacting).sum() / max(selected.sum(), 1))
        figures[f"hier_within_fdp_at{key}"] = float(np.mean([(called[row] & ~truth[row]).sum() / called[row].sum()
                                                             for row in rows])) if rows.size else 0.0
        figures[f"hier_fdp_at{key}"] = float((called & ~truth).sum() / max(called.sum(), 1))
        figures[f"hier_recall_at{key}"] = float((called & truth).sum() / truth.sum())
        figures[f"hier_recall_3sd_or_more_at{key}"] = float((called & big).sum() / big.sum())
    return figures


def t_ceiling(df: np.ndarray, z_threshold: float, size: float) -> float:
    """Mean power at the same realised p-value threshold of a test whose null is the entry's t (df) and whose only
    error is the one those degrees of freedom stand for: departure / scale is noncentral t (df, size). With the
    measured variances that error is the gene SD's in d' (the small replicate groups), which no test on d' removes."""
    if np.size(df) == 0:
        return float("nan")
    p_threshold = 2.0 * norm.sf(z_threshold)
    values, counts = np.unique(np.round(np.asarray(df, dtype=np.float64), 1), return_counts=True)
    # the lower tail as the upper tail at -size: scipy's nct.cdf far below a large noncentrality is NaN
    power = [norm.sf(z_threshold - size) + norm.cdf(-z_threshold - size) if not np.isfinite(value) else
             nct.sf(student_t.isf(p_threshold / 2, value), value, size)
             + nct.sf(student_t.isf(p_threshold / 2, value), value, -size) for value in values]
    return float(np.average(power, weights=counts))


def null_cell(dataset, truth, expected: str, variances: bool, null_shape: str, variance: str,
              seed: int) -> dict[str, float]:
    null_data = plant_interactions(dataset, truth, PlantSettings(combo_fraction=0.0, seed=seed), expected).dataset
    if not variances:
        null_data = replace(null_data, drug1_var=None, drug2_var=None)
    tests, null = calls_of(null_data, expected, null_shape, variance)
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
                           "t_ceiling": figures[f"{cell}_t_ideal_recall_size{size:g}"],
                           "ideal_at_same_threshold": figures[f"{cell}_ideal_recall_size{size:g}"]} for size in SIZES])
    print(f"recall per size at FDR 0.1 (realised |z| threshold {figures[f'{cell}_z_threshold_at10']:.2f}):")
    print(sizes.round(3).to_string(index=False))
    print(f"recall on >= 3 SD: {figures[f'{cell}_recall_3sd_or_more']:.3f}; null: {figures[f'{cell}_null_called']:.1f} "
          f"called, KS p {figures[f'{cell}_null_ks_p']:.3g}, P(p < 0.05) {figures[f'{cell}_null_p_below_005']:.4f}")
    hierarchical = pd.DataFrame([{"nominal": level, **{name: figures[f"{cell}_hier_{name}_at{level_key(level)}"] for name
                                                     in ("combo_fdp", "within_fdp", "fdp", "recall",
                                                         "recall_3sd_or_more")}} for level in LEVELS])
    print("fdr_scope=hierarchical (combinations, then genes within the selected):")
    print(hierarchical.round(4).to_string(index=False))
    worst = max(figures[f"{cell}_fdp_at{level_key(level)}"] - level for level in LEVELS)
    print(f"targets: realised FDR <= nominal + 0.02: {'met' if worst <= 0.02 else 'NOT met'} (worst excess "
          f"{worst:+.3f}); recall >= 0.8 on >= 3 SD: "
          f"{'met' if figures[f'{cell}_recall_3sd_or_more'] >= 0.8 else 'NOT met'}")


def _median(values: pd.Series) -> float:
    finite = values.to_numpy(dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if finite.size else float("nan")


def real_cell(name: str, dataset, null_shape: str = "bulk", variance: str = "auto") -> dict[str, float]:
    result = call_interactions(dataset, InteractionSettings(null_shape=null_shape, variance=variance)
                               .check("interactions"))
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
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    start = time.perf_counter()
    figures: dict[str, float] = {}
    for cell, (preset, expected, variances, null_shape, variance, overrides) in CELLS.items():
        per_seed = []
        for seed in SEEDS:
            per_seed.append(planted_cell(preset, expected, variances, null_shape, variance, overrides, seed))
            last = per_seed[-1]
            print(f"{cell} seed {seed}: FDP at 0.1 {last['fdp_at10']:.3f}, recall {last['recall_at10']:.3f}"
                  f" ({time.perf_counter() - start:.0f} s)", flush=True)
        figures.update(summarize(cell, per_seed))
        print_cell(cell, figures)
    for shape in ("bulk", "normal"):
        suffix = "" if shape == "bulk" else f"_{shape}"
        figures.update(real_cell(f"korkut{suffix}", read_tidy(FIXTURES / "korkut2015_skmel133_rppa.csv"), shape))
        figures.update(real_cell(f"norman{suffix}", read_tidy(FIXTURES / "norman_cebpe_cebpb_tidy.csv"), shape))
    figures.update(real_cell("korkut_moderated", read_tidy(FIXTURES / "korkut2015_skmel133_rppa.csv"),
                             variance="moderated"))
    figures.update(real_cell("norman_moderated", read_tidy(FIXTURES / "norman_cebpe_cebpb_tidy.csv"),
                             variance="moderated"))
    figures.update(real_cell("default_as_is", simulate_compendium_with_truth("default", 0)[0]))
    figures["seconds"] = time.perf_counter() - start
    record("interactions", figures, "python benchmarks/bench_interactions.py",
           note="planted interactions: 50 % of combinations, 2 % of their genes, sizes 1-8 noise SDs; means over seeds "
                "0-2 unless a key names a seed")


if __name__ == "__main__":
    main()
