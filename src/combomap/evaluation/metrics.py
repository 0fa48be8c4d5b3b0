"""Every metric of the project, defined once. NaN-aware: entries whose truth is missing are skipped.

Metric names (keys) are the same everywhere; a split prefix is added with `prefixed`
(`val/sign_acc`, `test/spearman_median`, ...). See README "Metrics".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

EFFECT_BIN_WIDTH = 0.1
EFFECT_BIN_MAX = 6.1


def _check(truth: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if truth.shape != prediction.shape:
        raise ValueError(f"prediction shape {prediction.shape} != truth shape {truth.shape}")
    if truth.ndim != 2:
        raise ValueError(f"expected (n_combos x n_genes) arrays, got shape {truth.shape}")
    return truth, prediction


def scored_mask(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Entries that count: truth measured. A missing prediction on a measured entry counts as wrong."""
    return ~np.isnan(np.asarray(truth))


def sign_hits(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """1.0 where sign(prediction) == sign(truth) (the original's definition), NaN where truth is missing."""
    truth, prediction = _check(truth, prediction)
    hits = (np.sign(truth) == np.sign(prediction)).astype(np.float64)
    hits[np.isnan(truth)] = np.nan
    return hits


def sign_accuracy(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Fraction of measured entries whose predicted sign matches the truth's."""
    hits = sign_hits(truth, prediction)
    return float(np.nanmean(hits)) if np.isfinite(hits).any() else float("nan")


def per_combo_error_rate(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Per combination: fraction of its measured genes with the wrong sign."""
    hits = sign_hits(truth, prediction)
    counts = np.sum(~np.isnan(hits), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - np.nansum(hits, axis=1) / np.where(counts > 0, counts, np.nan)


def _spearman_row(truth_row: np.ndarray, prediction_row: np.ndarray) -> float:
    keep = ~np.isnan(truth_row) & ~np.isnan(prediction_row)
    if keep.sum() < 3:
        return float("nan")
    truth_rank = rankdata(truth_row[keep])
    prediction_rank = rankdata(prediction_row[keep])
    if truth_rank.std() == 0 or prediction_rank.std() == 0:
        return float("nan")
    return float(np.corrcoef(truth_rank, prediction_rank)[0, 1])


def per_combo_spearman(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Per combination: Spearman correlation of prediction and truth over genes measured in both."""
    truth, prediction = _check(truth, prediction)
    return np.array([_spearman_row(t, p) for t, p in zip(truth, prediction)])


def sign_accuracy_by_effect(
    truth: np.ndarray,
    prediction: np.ndarray,
    bin_width: float = EFFECT_BIN_WIDTH,
    max_effect: float = EFFECT_BIN_MAX,
) -> pd.DataFrame:
    """Sign accuracy in |truth| bins [0, w), [w, 2w), ... up to max_effect (the last bin is open-ended)."""
    hits = sign_hits(truth, prediction)
    magnitude = np.abs(np.asarray(truth, dtype=np.float64))
    keep = ~np.isnan(hits)
    n_bins = int(round(max_effect / bin_width))
    index = np.minimum((magnitude[keep] / bin_width).astype(np.int64), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    correct = np.bincount(index, weights=hits[keep], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = correct / counts
    lower = np.arange(n_bins) * bin_width
    return pd.DataFrame({"effect_lo": lower, "effect_hi": lower + bin_width, "n": counts, "sign_acc": accuracy})


def prefixed(metrics: Mapping[str, float], split: str) -> dict[str, float]:
    """{'sign_acc': x} -> {'val/sign_acc': x}."""
    return {f"{split}/{name}": value for name, value in metrics.items()}
