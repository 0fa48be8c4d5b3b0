"""Norman et al. 2019 summaries and the per-combination classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from combomap.interactions.settings import ClassSettings
from combomap.interactions.summaries import (
    classify_combinations,
    distance_correlation,
    norman_fit,
    summarize_combination,
)


def test_norman_fit_recovers_the_coefficients() -> None:
    rng = np.random.default_rng(0)
    d1, d2 = rng.normal(size=300), rng.normal(size=300)
    c1, c2, identifiable = norman_fit(d1, d2, 1.5 * d1 + 0.25 * d2)
    assert (c1, c2, identifiable) == (pytest.approx(1.5), pytest.approx(0.25), True)


def test_proportional_singles_are_not_identifiable() -> None:
    # the Norman fixture gives only the singles' sum, split in halves: d1 = d2
    d = np.random.default_rng(1).normal(size=200)
    c1, c2, identifiable = norman_fit(d, d, 2.0 * d)
    assert not identifiable
    assert c1 == pytest.approx(1.0) and c2 == pytest.approx(1.0)  # minimum norm: the sum split evenly
    summary = summarize_combination(d, d, 2.0 * d, 2.0 * d, np.arange(200))
    assert np.isnan(summary["dominance"])
    assert summary["magnitude"] == pytest.approx(np.sqrt(2.0))
    assert summary["relative_magnitude"] == pytest.approx(1.0)
    assert summary["equality_of_contribution"] == pytest.approx(1.0)


def test_distance_correlation() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=400)
    assert distance_correlation(x, x) == pytest.approx(1.0)
    assert distance_correlation(x, -3 * x + 1) == pytest.approx(1.0)  # invariant to scale, shift and sign
    assert distance_correlation(x, x**2) > 0.3  # sees a dependence Pearson misses
    assert abs(np.corrcoef(x, x**2)[0, 1]) < 0.15
    assert distance_correlation(x, rng.normal(size=400)) < 0.15
    assert np.isnan(distance_correlation(x, np.ones(400)))


def test_summaries_of_a_dominant_and_a_buffered_combination() -> None:
    rng = np.random.default_rng(3)
    d1, d2 = rng.normal(size=500), rng.normal(size=500)
    rows = np.arange(500)
    dominant = summarize_combination(d1, d2, 1.0 * d1 + 0.1 * d2, d1 + d2, rows)
    assert dominant["dominance"] == pytest.approx(1.0)
    assert dominant["drug1_dominates"]
    assert dominant["equality_of_contribution"] < 0.3
    assert dominant["model_fit"] == pytest.approx(1.0) and dominant["r2"] == pytest.approx(1.0)
    buffered = summarize_combination(d1, d2, 0.4 * (d1 + d2), d1 + d2, rows)
    assert buffered["relative_magnitude"] == pytest.approx(0.4)
    assert buffered["response_ratio"] == pytest.approx(0.4)
    assert buffered["dominance"] == pytest.approx(0.0, abs=1e-12)


def test_classes_follow_the_rules_in_order() -> None:
    table = pd.DataFrame({
        "n_tested": [1000, 1000, 1000, 1000, 1000, 50],
        "n_called": [5, 40, 40, 40, 40, 1],
        "n_synergy": [5, 30, 30, 30, 10, 1],
        "n_buffering": [0, 10, 10, 10, 30, 0],
        "dominance": [2.0, 0.7, 0.1, np.nan, 0.1, 0.0],
        "response_ratio": [1.0, 0.3, 0.3, 1.2, 0.9, 1.0],
    })
    classes = classify_combinations(table, ClassSettings(min_called_fraction=0.01, dominance_min=0.5,
                                                         suppressive_max=0.5))
    assert classes.tolist() == ["additive", "dominant", "suppressive", "synergistic", "buffering", "synergistic"]
