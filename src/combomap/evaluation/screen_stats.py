"""Statistics of a combination screen that the simulator's real-screen phenomena are calibrated to.

`screen_statistics(dataset)` measures, on the entries where d1, d2 and the combination y are all
measured:

| key                    | definition                                                                                  |
|------------------------|---------------------------------------------------------------------------------------------|
| sign_acc               | sign accuracy of the average baseline (d1 + d2) / 2 against y (metrics.sign_accuracy)          |
| pearson_sum            | Pearson(y, d1 + d2), pooled over entries                                                      |
| slope_sum              | least-squares slope through the origin of y on d1 + d2, pooled over entries                   |
| shift_fraction         | r = y - (d1 + d2); 1 - SS(r - m) / SS(r), m = r's per-gene mean over the combos of its study    |
|                        | (SS: sum of squares around 0), the share of the residual that is one shift common to a study   |
| shift_fraction_loo     | the same with m left-one-combination-out (the mean of the study's other combos), so a study     |
|                        | of pure noise gives about -1/(n - 1) instead of +1/n; combos alone in their study are left out |
| drug_fraction          | r' = r - m (what the shift leaves); fit r'_c = I_drug1 + I_drug2 per gene by least squares      |
|                        | over the combos (drug profiles keyed by drug name); in-sample R^2 = 1 - SS(fit residual)/SS(r') |
| drug_fraction_loo      | leave-combination-out R^2 of the model r_c = m_study + I_drug1 + I_drug2 against the shift-only  |
|                        | model's leave-combination-out residual (exact OLS hat-matrix formula; combos whose fit is       |
|                        | determined by themselves, h = 1, are left out)                                                 |
| coef1_median, coef2_median | median over combos of c1, c2 in y ~ c1 d1 + c2 d2 (per combo, least squares, no intercept) |

plus the shape: n_combos, n_genes, n_studies, n_drugs, combos_per_drug_median (within a study).
These are statistics of screens (many combinations per study, drugs recurring): on a GEO-like compendium
(1-4 combos per study, most drugs once) both residual models nearly interpolate, so the in-sample
fractions approach 1 and mean nothing; read the _loo ones there (NaN where no combo can be left out).
The two residual models use the genes measured in every combo (all genes of a fully measured
screen). The statistics are scale-free, so real log ratios (RPPA, Perturb-seq) and simulated d'
compare directly.

    python -m combomap.evaluation.screen_stats /work/shared/data/korkut2015_skmel133_rppa.csv preset=screen
    python -m combomap.evaluation.screen_stats preset=screen:seed=1 preset=screen:drug_interaction_scale=0
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.io import read_tidy
from combomap.data.simulate import simulate_compendium
from combomap.evaluation.metrics import sign_accuracy

STATISTICS = (
    "sign_acc",
    "pearson_sum",
    "slope_sum",
    "shift_fraction",
    "shift_fraction_loo",
    "drug_fraction",
    "drug_fraction_loo",
    "coef1_median",
    "coef2_median",
)
SHAPE = ("n_combos", "n_genes", "n_studies", "n_drugs", "combos_per_drug_median")


def _indicators(labels: np.ndarray) -> np.ndarray:
    """One column per distinct label: 1 where the row has it."""
    _, codes = np.unique(labels, return_inverse=True)
    out = np.zeros((labels.size, codes.max() + 1))
    out[np.arange(labels.size), codes] = 1.0
    return out


def _hat_diagonal(design: np.ndarray) -> np.ndarray:
    """Diagonal of the OLS hat matrix X pinv(X) (rank-deficient designs allowed)."""
    return np.einsum("ij,ji->i", design, np.linalg.pinv(design))


def _loo_residuals(design: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In-sample residuals, leave-one-row-out residuals e / (1 - h) and which rows have h < 1."""
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    residual = values - design @ coef
    hat = _hat_diagonal(design)
    usable = hat < 1.0 - 1e-8
    loo = np.where(usable[:, None], residual / np.where(usable, 1.0 - hat, 1.0)[:, None], np.nan)
    return residual, loo, usable


def _per_combo_coefficients(d1: np.ndarray, d2: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n_combos x 2): c1, c2 of y ~ c1 d1 + c2 d2 per combo (NaN where the 2 x 2 system is singular)."""
    out = np.full((y.shape[0], 2), np.nan)
    for row in range(y.shape[0]):
        keep = ~(np.isnan(d1[row]) | np.isnan(d2[row]) | np.isnan(y[row]))
        design = np.stack([d1[row, keep], d2[row, keep]], axis=1)
        if keep.sum() >= 3 and np.linalg.matrix_rank(design) == 2:
            out[row] = np.linalg.lstsq(design, y[row, keep], rcond=None)[0]
    return out


def screen_statistics(dataset: ComboDataset) -> dict[str, float]:
    """The screen statistics of a data set (see the module docstring for each key)."""
    d1 = dataset.drug1_effect.astype(np.float64)
    d2 = dataset.drug2_effect.astype(np.float64)
    y = dataset.combo_effect.astype(np.float64)
    single_sum = d1 + d2
    both = ~np.isnan(y) & ~np.isnan(single_sum)
    if not both.any():
        raise DataError(f"{dataset.source}: no entry has d1, d2 and the combination all measured")
    s, t = single_sum[both], y[both]
    combos = dataset.combos
    studies = combos["study"].to_numpy()
    drug_keys = np.concatenate([combos["drug1"].to_numpy(), combos["drug2"].to_numpy()])
    per_study_drug = combos.melt(id_vars="study", value_vars=["drug1", "drug2"]).groupby(["study", "value"]).size()

    stats: dict[str, float] = {
        "n_combos": float(dataset.n_combos),
        "n_genes": float(dataset.n_genes),
        "n_studies": float(len(np.unique(studies))),
        "n_drugs": float(len(np.unique(drug_keys))),
        "combos_per_drug_median": float(per_study_drug.median()),
        "sign_acc": sign_accuracy(np.where(both, y, np.nan), single_sum / 2.0),
        "pearson_sum": float(np.corrcoef(s, t)[0, 1]) if s.std() > 0 and t.std() > 0 else math.nan,
        "slope_sum": float(s @ t / (s @ s)) if s @ s > 0 else math.nan,
    }
    coefficients = _per_combo_coefficients(d1, d2, y)
    stats["coef1_median"] = float(np.nanmedian(coefficients[:, 0])) if np.isfinite(coefficients).any() else math.nan
    stats["coef2_median"] = float(np.nanmedian(coefficients[:, 1])) if np.isfinite(coefficients).any() else math.nan

    # the residual models: genes measured in every combo
    genes = both.all(axis=0)
    nan_keys = ("shift_fraction", "shift_fraction_loo", "drug_fraction", "drug_fraction_loo")
    if not genes.any():
        return {**stats, **{key: math.nan for key in nan_keys}}
    residual = (y - single_sum)[:, genes]
    study_design = _indicators(studies)
    names, codes = np.unique(drug_keys, return_inverse=True)
    drug_design = np.zeros((dataset.n_combos, names.size))
    rows = np.arange(dataset.n_combos)
    np.add.at(drug_design, (rows, codes[: dataset.n_combos]), 1.0)
    np.add.at(drug_design, (rows, codes[dataset.n_combos :]), 1.0)

    shift_residual, shift_loo, shift_usable = _loo_residuals(study_design, residual)
    total = float(np.sum(residual**2))
    stats["shift_fraction"] = 1.0 - float(np.sum(shift_residual**2)) / total if total > 0 else math.nan
    loo_total = float(np.sum(residual[shift_usable] ** 2))
    stats["shift_fraction_loo"] = (
        1.0 - float(np.nansum(shift_loo[shift_usable] ** 2)) / loo_total if loo_total > 0 else math.nan
    )

    full_design = np.concatenate([study_design, drug_design], axis=1)
    full_residual, full_loo, full_usable = _loo_residuals(full_design, residual)
    remaining = float(np.sum(shift_residual**2))
    stats["drug_fraction"] = 1.0 - float(np.sum(full_residual**2)) / remaining if remaining > 0 else math.nan
    usable = full_usable & shift_usable
    base = float(np.sum(shift_loo[usable] ** 2))
    stats["drug_fraction_loo"] = 1.0 - float(np.sum(full_loo[usable] ** 2)) / base if base > 0 else math.nan
    return stats


# ----------------------------------------------------------------------------------------------
# CLI: real files and simulated presets side by side
# ----------------------------------------------------------------------------------------------


def _parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def load_source(spec: str) -> tuple[str, ComboDataset]:
    """A data set from a tidy file path or `preset=NAME[:seed=S][:FIELD=VALUE...]` (a simulated preset)."""
    if spec.startswith("preset="):
        name, *options = spec[len("preset=") :].split(":")
        settings = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep:
                raise DataError(f"{spec!r}: option {option!r} is not FIELD=VALUE")
            settings[key] = _parse_value(value)
        seed = int(settings.pop("seed", 0))
        return spec, simulate_compendium(name, seed, **settings)
    return spec, read_tidy(spec)


def format_table(columns: list[tuple[str, dict[str, float]]]) -> str:
    """The statistics as a text table, one column per source."""
    header = ["statistic", *[name for name, _ in columns]]
    lines = []
    for key in (*SHAPE, *STATISTICS):
        cells = []
        for _, stats in columns:
            value = stats.get(key, math.nan)
            cells.append(f"{value:.0f}" if key in SHAPE[:4] else f"{value:.3f}")
        lines.append([key, *cells])
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    render = lambda row: "  ".join(cell.ljust(width) for cell, width in zip(row, widths))  # noqa: E731
    return "\n".join([render(header), *map(render, lines)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m combomap.evaluation.screen_stats",
        description="Screen statistics (shared shift, drug-specific interaction profiles, additivity) of tidy "
        "files and simulated presets, side by side.",
    )
    parser.add_argument(
        "sources", nargs="+", help="a tidy file (csv/tsv/parquet) or preset=NAME[:seed=S][:FIELD=VALUE...]"
    )
    args = parser.parse_args(argv)
    try:
        columns = [(name, screen_statistics(dataset)) for name, dataset in map(load_source, args.sources)]
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
