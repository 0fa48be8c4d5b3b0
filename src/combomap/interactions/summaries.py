"""Per-combination summaries in the manner of Norman et al. 2019 (Science 365:786, Fig. 4), and a class each.

Per combination, over its tested genes: the least-squares fit y ~ c1 d1 + c2 d2 (no intercept; Norman et al.
fit the same model robustly, Theil-Sen), and from it
- magnitude sqrt(c1^2 + c2^2) (sqrt 2 for an additive combination) and relative_magnitude, the magnitude over that
  of the same fit of the expected combination;
- model_fit: the distance correlation of the fit c1 d1 + c2 d2 with y; r2: 1 - RSS / sum(y^2) of the fit;
- equality_of_contribution: min(dcor(d1, y), dcor(d2, y)) / max(...);
- dominance: |log10(|c1| / |c2|)|, and dominant_drug, the drug with the larger coefficient;
- singles_similarity: dcor(d1, d2);
- response_ratio: rms(y) / rms(expected);
- the counts of called genes (synergy, buffering) at the chosen FDR.
Distance correlations use at most `dcor_genes` tested genes (a seeded random subset): they cost n^2. Where d1 and
d2 are proportional (e.g. a file that gives only their sum, split in halves) c1 and c2 are not identifiable: the
fit keeps the minimum-norm solution (c1 = c2), `identifiable` is false and dominance is NaN.

Classes (thresholds: interactions.classes), the first rule that holds:
1. additive: fewer called genes than max(1, min_called_fraction x tested genes) (no departure from the expected);
2. dominant: dominance >= dominance_min (one drug's profile carries the combination);
3. suppressive: response_ratio <= suppressive_max (the combination is much weaker than expected);
4. synergistic: at least as many synergy calls (stronger than expected) as buffering calls;
5. buffering: otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset
from combomap.interactions.calls import BUFFERING, SYNERGY, EntryTests
from combomap.interactions.settings import ClassSettings
from combomap.progress import track

CLASSES = ("additive", "dominant", "suppressive", "synergistic", "buffering")
IDENTIFIABLE_RCOND = 1e-3  # singular values below this fraction of the largest count as collinear singles


def _centered_distances(values: np.ndarray) -> np.ndarray:
    distances = np.abs(values[:, None] - values[None, :])
    return distances - distances.mean(axis=0) - distances.mean(axis=1)[:, None] + distances.mean()


def _dcor(first: np.ndarray, second: np.ndarray) -> float:
    covariance = float((first * second).mean())
    scale = float(np.sqrt((first * first).mean() * (second * second).mean()))
    return float(np.sqrt(max(covariance, 0.0) / scale)) if scale > 0 else float("nan")


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Székely's (biased, V-statistic) distance correlation of two 1-D samples; NaN if one is constant."""
    first, second = (_centered_distances(np.asarray(values, dtype=np.float64)) for values in (x, y))
    return _dcor(first, second)


def norman_fit(d1: np.ndarray, d2: np.ndarray, y: np.ndarray) -> tuple[float, float, bool]:
    """(c1, c2, identifiable) of the least-squares y ~ c1 d1 + c2 d2 (minimum norm where d1, d2 are collinear)."""
    design = np.column_stack([d1, d2]).astype(np.float64)
    coefficients, _, rank, _ = np.linalg.lstsq(design, np.asarray(y, dtype=np.float64), rcond=IDENTIFIABLE_RCOND)
    return float(coefficients[0]), float(coefficients[1]), bool(rank == 2)


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2))) if values.size else float("nan")


def summarize_combination(d1: np.ndarray, d2: np.ndarray, y: np.ndarray, expected: np.ndarray,
                          dcor_rows: np.ndarray) -> dict[str, float | bool]:
    """The Norman metrics of one combination over its tested genes (`dcor_rows`: the genes for the dcor's)."""
    c1, c2, identifiable = norman_fit(d1, d2, y)
    e1, e2, _ = norman_fit(d1, d2, expected)
    fit = c1 * d1 + c2 * d2
    magnitude = float(np.hypot(c1, c2))
    expected_magnitude = float(np.hypot(e1, e2))
    centered = {name: _centered_distances(values[dcor_rows].astype(np.float64))
                for name, values in (("y", y), ("fit", fit), ("d1", d1), ("d2", d2))}
    first, second = _dcor(centered["d1"], centered["y"]), _dcor(centered["d2"], centered["y"])
    larger = max(first, second)
    total = float(np.sum(y.astype(np.float64) ** 2))
    both = identifiable and c1 != 0 and c2 != 0
    expected_rms = _rms(expected)
    return {
        "c1": c1,
        "c2": c2,
        "identifiable": identifiable,
        "magnitude": magnitude,
        "relative_magnitude": magnitude / expected_magnitude if expected_magnitude > 0 else float("nan"),
        "model_fit": _dcor(centered["fit"], centered["y"]),
        "r2": 1.0 - float(np.sum((y - fit) ** 2)) / total if total > 0 else float("nan"),
        "equality_of_contribution": min(first, second) / larger if larger > 0 else float("nan"),
        "dominance": abs(float(np.log10(abs(c1) / abs(c2)))) if both else float("nan"),
        "drug1_dominates": abs(c1) > abs(c2),
        "singles_similarity": _dcor(centered["d1"], centered["d2"]),
        "response_ratio": _rms(y) / expected_rms if expected_rms > 0 else float("nan"),
    }


def classify_combinations(table: pd.DataFrame, classes: ClassSettings) -> np.ndarray:
    """The class of each row of a summaries table (rules in the module docstring)."""
    needed = np.maximum(1.0, np.ceil(classes.min_called_fraction * table["n_tested"].to_numpy()))
    dominance = table["dominance"].to_numpy(dtype=np.float64)
    ratio = table["response_ratio"].to_numpy(dtype=np.float64)
    return np.select(
        [table["n_called"].to_numpy() < needed, np.nan_to_num(dominance, nan=-np.inf) >= classes.dominance_min,
         np.nan_to_num(ratio, nan=np.inf) <= classes.suppressive_max,
         table["n_synergy"].to_numpy() >= table["n_buffering"].to_numpy()],
        ["additive", "dominant", "suppressive", "synergistic"], default="buffering")


def combination_summaries(dataset: ComboDataset, tests: EntryTests, classes: ClassSettings, dcor_genes: int,
                          seed: int = 0) -> pd.DataFrame:
    """One row per combination: its identity, class, call counts and the Norman metrics."""
    rows = []
    for row in track(range(dataset.n_combos), "combination summaries", unit="combination"):
        genes = np.flatnonzero(tests.tested[row])
        d1 = dataset.drug1_effect[row, genes].astype(np.float64)
        d2 = dataset.drug2_effect[row, genes].astype(np.float64)
        y, expected = tests.observed[row, genes], tests.expected[row, genes]
        rng = np.random.default_rng([seed, row])
        dcor_rows = np.sort(rng.choice(genes.size, size=min(genes.size, dcor_genes), replace=False))
        summary = summarize_combination(d1, d2, y, expected, dcor_rows)
        combo = dataset.combos.iloc[row]
        calls = tests.call[row, genes]
        drug = combo["drug1"] if summary.pop("drug1_dominates") else combo["drug2"]
        rows.append({
            "combo": combo["combo"], "study": combo["study"], "drug1": combo["drug1"], "drug2": combo["drug2"],
            "n_tested": int(genes.size), "n_called": int((calls != 0).sum()),
            "n_synergy": int((calls == SYNERGY).sum()), "n_buffering": int((calls == BUFFERING).sum()), **summary,
            "dominant_drug": drug if np.isfinite(summary["dominance"]) else "",
        })
    table = pd.DataFrame(rows)
    table["called_fraction"] = table["n_called"] / table["n_tested"]
    table.insert(4, "class", classify_combinations(table, classes))
    return table
