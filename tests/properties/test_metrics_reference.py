"""combomap.evaluation.metrics against the definitions of its docstring, written out entry by entry with scipy, on
random truths and predictions with ties, signed zeros and unmeasured (NaN) entries on both sides."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from combomap.evaluation.metrics import (
    per_combo_error_rate,
    per_combo_spearman,
    score,
    sign_accuracy,
    sign_accuracy_by_effect,
    top_k_metrics,
)
from tests.properties.strategies import fast

# A grid of tenths (ties, exact bin edges 0.1, 0.3, 6.0, 6.1, values beyond the last edge), signed zeros, NaN.
VALUES = st.one_of(st.integers(-75, 75).map(lambda i: i / 10), st.sampled_from([0.0, -0.0, float("nan")]))


@st.composite
def truth_and_prediction(draw) -> tuple[np.ndarray, np.ndarray]:
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 9)))
    return draw(hnp.arrays(np.float64, shape, elements=VALUES)), draw(hnp.arrays(np.float64, shape, elements=VALUES))


def _sign(x: float) -> int:
    return int(x > 0) - int(x < 0)


def _hit(truth: float, prediction: float) -> bool:
    """A missing prediction is a wrong sign; 0 is right only against 0."""
    return not math.isnan(prediction) and _sign(prediction) == _sign(truth)


def _measured(row: np.ndarray) -> list[int]:
    return [g for g, value in enumerate(row) if not math.isnan(value)]


def _quiet(function, *args) -> float:
    """scipy's statistic; NaN for a constant input (scipy warns and returns NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(function(*args)[0])


def reference_spearman(truth: np.ndarray, prediction: np.ndarray) -> list[float]:
    """Per combination: Spearman over genes measured in both; NaN under 3 genes or a constant side."""
    out = []
    for t, p in zip(truth, prediction):
        both = [g for g in _measured(t) if not math.isnan(p[g])]
        out.append(_quiet(stats.spearmanr, t[both], p[both]) if len(both) >= 3 else float("nan"))
    return out


def reference_top_k(truth: np.ndarray, prediction: np.ndarray, k: int) -> dict[str, list[float]]:
    """Per combination, on its k measured genes of largest |truth| (ties: gene order)."""
    out: dict[str, list[float]] = {"pearson_delta": [], "l2": [], "direction": []}
    for t, p in zip(truth, prediction):
        top = sorted(_measured(t), key=lambda g: (-abs(t[g]), g))[:k]
        if not top:
            out["direction"].append(float("nan"))
            out["l2"].append(float("nan"))
        else:
            out["direction"].append(sum(_hit(t[g], p[g]) for g in top) / len(top))
            out["l2"].append(math.sqrt(sum((t[g] - (0.0 if math.isnan(p[g]) else p[g])) ** 2 for g in top)))
        both = [g for g in top if not math.isnan(p[g])]
        out["pearson_delta"].append(_quiet(stats.pearsonr, t[both], p[both]) if len(both) >= 2 else float("nan"))
    return out


def _mean(values: list[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else float("nan")


def _median(values: list[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return float(np.median(defined)) if defined else float("nan")


def reference_score(truth: np.ndarray, prediction: np.ndarray, top_k: list[int]) -> dict[str, float]:
    entries = [(t, p) for t_row, p_row in zip(truth, prediction) for t, p in zip(t_row, p_row) if not math.isnan(t)]
    accuracy = sum(_hit(t, p) for t, p in entries) / len(entries) if entries else float("nan")
    errors = []
    for t_row, p_row in zip(truth, prediction):
        genes = _measured(t_row)
        errors.append(1 - sum(_hit(t_row[g], p_row[g]) for g in genes) / len(genes) if genes else float("nan"))
    spearman = reference_spearman(truth, prediction)
    metrics = {
        "sign_acc": accuracy, "wrong_genes": (1 - accuracy) * truth.shape[1], "n_scored": float(len(entries)),
        "combo_error_median": _median(errors), "combo_error_mean": _mean(errors),
        "spearman_median": _median(spearman), "spearman_mean": _mean(spearman),
    }  # fmt: skip
    for k in top_k:
        for name, values in reference_top_k(truth, prediction, k).items():
            metrics[f"{name}_top{k}"] = _mean(values)
    return metrics


def _close(got, expected) -> None:
    assert np.asarray(got, dtype=np.float64) == pytest.approx(np.asarray(expected, dtype=np.float64), rel=1e-9,
                                                              abs=1e-12, nan_ok=True)  # fmt: skip


@fast(150)
@given(truth_and_prediction(), st.lists(st.integers(1, 10), min_size=1, max_size=3, unique=True))
def test_score_and_its_parts_match_the_definitions(arrays: tuple[np.ndarray, np.ndarray], top_k: list[int]) -> None:
    truth, prediction = arrays
    expected = reference_score(truth, prediction, top_k)
    got = score(truth, prediction, top_k=top_k)
    assert list(got) == list(expected)
    for key in expected:
        _close(got[key], expected[key])
    _close(sign_accuracy(truth, prediction), expected["sign_acc"])
    _close(per_combo_spearman(truth, prediction), reference_spearman(truth, prediction))
    for k in top_k:
        reference = reference_top_k(truth, prediction, k)
        for name, values in top_k_metrics(truth, prediction, k).items():
            _close(values, reference[name])
    measured = ~np.isnan(truth)
    rates = per_combo_error_rate(truth, prediction)
    assert np.array_equal(np.isnan(rates), ~measured.any(axis=1))


@fast(100)
@given(truth_and_prediction())
def test_sign_accuracy_by_effect_bins_match_the_definition(arrays: tuple[np.ndarray, np.ndarray]) -> None:
    """0.1-wide bins of |truth| by decimal value ([0.3, 0.4) holds 0.3), the last bin [6.0, 6.1) open-ended."""
    truth, prediction = arrays
    table = sign_accuracy_by_effect(truth, prediction)
    assert len(table) == 61
    counts, correct = [0] * 61, [0] * 61
    for t_row, p_row in zip(truth, prediction):
        for t, p in zip(t_row, p_row):
            if not math.isnan(t):
                position = min(int(Decimal(repr(abs(float(t)))) / Decimal("0.1")), 60)
                counts[position] += 1
                correct[position] += _hit(t, p)
    assert table["n"].tolist() == counts
    _close(table["sign_acc"].to_numpy(), [c / n if n else float("nan") for c, n in zip(correct, counts)])
    _close(table["effect_lo"].to_numpy(), [i / 10 for i in range(61)])
