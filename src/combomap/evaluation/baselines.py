"""The bars every model must clear: average, additive and no-change predictions.

The original's "Simple Model" is the average (dA + dB) / 2 (78.96% sign accuracy); peers
(Ahlmann-Eltze et al. 2025) find the additive dA + dB hard to beat. Both have the same signs
wherever both drugs were measured; they differ in scale (L2, Pearson is scale-free).

Missing single-drug values (NaN), the policy: a prediction is NaN only where NEITHER drug was
measured for that gene (nothing to predict from; the metrics count such entries as wrong signs
and as 0 in L2). Where one drug is missing:
- average: the measured drug's value (the mean of the values that exist), not half of it;
- additive: the missing drug counts as 0 (no effect), which is again the measured drug's value.
So the two baselines agree wherever only one drug was measured. `no_change` is 0 everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from combomap.data.dataset import ComboDataset

AVERAGE = "average"
BASELINES = (AVERAGE, "additive", "no_change")


def average(drug1_effect: np.ndarray, drug2_effect: np.ndarray) -> np.ndarray:
    """(d1 + d2) / 2; the measured one where the other is missing; NaN only if both are missing."""
    drug1_effect = np.asarray(drug1_effect, dtype=np.float32)
    drug2_effect = np.asarray(drug2_effect, dtype=np.float32)
    total = np.nan_to_num(drug1_effect, nan=0.0) + np.nan_to_num(drug2_effect, nan=0.0)
    count = (~np.isnan(drug1_effect)).astype(np.float32) + (~np.isnan(drug2_effect)).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


def additive(drug1_effect: np.ndarray, drug2_effect: np.ndarray) -> np.ndarray:
    """d1 + d2 with a missing drug counted as 0; NaN only if both are missing."""
    drug1_effect = np.asarray(drug1_effect, dtype=np.float32)
    drug2_effect = np.asarray(drug2_effect, dtype=np.float32)
    total = np.nan_to_num(drug1_effect, nan=0.0) + np.nan_to_num(drug2_effect, nan=0.0)
    both_missing = np.isnan(drug1_effect) & np.isnan(drug2_effect)
    return np.where(both_missing, np.nan, total).astype(np.float32)


def no_change(drug1_effect: np.ndarray, drug2_effect: np.ndarray) -> np.ndarray:
    """0 everywhere: the combination changes nothing (every sign is wrong unless the truth is exactly 0)."""
    return np.zeros(np.shape(drug1_effect), dtype=np.float32)


def baseline_predictions(dataset: ComboDataset) -> dict[str, np.ndarray]:
    """{'average', 'additive', 'no_change'} (in that order) -> float32 (n_combos x n_genes) predictions."""
    makers = {"average": average, "additive": additive, "no_change": no_change}
    return {name: makers[name](dataset.drug1_effect, dataset.drug2_effect) for name in BASELINES}


def noise_aware_oracle(dataset: ComboDataset, truth: Any) -> tuple[np.ndarray, float]:
    """The ceiling on simulated data: the noise-free combination plus the part of its measurement noise that
    the singles reveal, truth.combo + c * ((d1 - truth.drug1) + (d2 - truth.drug2)).

    Why c: the three contrasts of a study share one vehicle control, so the singles' noise carries the
    control's noise, which is also in the measured combination (about c = 1/3 with equal group sizes).
    c is fitted by pooled least squares against the measured combination (an oracle may use the truth).
    Returns (prediction, c).
    """
    noise = (dataset.drug1_effect - truth.drug1).astype(np.float64) + (dataset.drug2_effect - truth.drug2)
    residual = dataset.combo_effect.astype(np.float64) - truth.combo
    usable = np.isfinite(noise) & np.isfinite(residual)
    denominator = float(np.sum(noise[usable] ** 2))
    c = float(np.sum(noise[usable] * residual[usable]) / denominator) if denominator > 0 else 0.0
    prediction = truth.combo + c * np.where(np.isfinite(noise), noise, 0.0)
    return prediction.astype(np.float32), c
