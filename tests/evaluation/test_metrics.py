"""Every metric against numbers worked out by hand; NaN policy; speed at the original's size."""

from __future__ import annotations


import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from combomap.evaluation import metrics
from combomap.evaluation.metrics import (
    per_combo_error_rate,
    per_combo_spearman,
    prefixed,
    score,
    sign_accuracy,
    sign_accuracy_by_effect,
    sign_hits,
    top_k_metrics,
)

NAN = np.nan
# Row 0: gene 3 unmeasured. Row 1: gene 2 measured but predicted NaN (counts as a wrong sign).
TRUTH = np.array([[1.0, -2.0, 3.0, NAN], [-1.0, 0.5, -0.5, 2.0]])
PRED = np.array([[0.5, 1.0, 2.0, -1.0], [-2.0, 1.0, NAN, 1.0]])


def test_sign_hits_and_accuracy_by_hand() -> None:
    hits = sign_hits(TRUTH, PRED)
    np.testing.assert_array_equal(hits[0, :3], [1, 0, 1])
    assert np.isnan(hits[0, 3])
    np.testing.assert_array_equal(hits[1], [1, 1, 0, 1])
    assert sign_accuracy(TRUTH, PRED) == pytest.approx(5 / 7)


def test_per_combo_error_rate_by_hand() -> None:
    np.testing.assert_allclose(per_combo_error_rate(TRUTH, PRED), [1 / 3, 1 / 4])


def test_per_combo_spearman_by_hand() -> None:
    # Row 0 over genes 0-2: ranks truth (2, 1, 3), pred (1, 2, 3): 1 - 6 * 2 / (3 * 8) = 0.5.
    # Row 1 over genes 0, 1, 3 (gene 2 has no prediction): ranks (1, 2, 3) vs (1, 2.5, 2.5):
    # centred (-1, 0, 1) and (-1, .5, .5): 1.5 / sqrt(2 * 1.5) = sqrt(3) / 2.
    np.testing.assert_allclose(per_combo_spearman(TRUTH, PRED), [0.5, np.sqrt(3) / 2])


def test_spearman_and_pearson_on_four_values() -> None:
    truth = np.array([[1.0, 2.0, 3.0, 4.0]])
    # d = (0, -1, 1, 0): 1 - 6 * 2 / (4 * 15) = 0.8
    assert per_combo_spearman(truth, np.array([[1.0, 3.0, 2.0, 4.0]]))[0] == pytest.approx(0.8)
    # centred (-1.5, -.5, .5, 1.5) and (-.5, -1.5, 1.5, .5): 3 / sqrt(5 * 5) = 0.6
    pearson = top_k_metrics(truth, np.array([[2.0, 1.0, 4.0, 3.0]]), k=4)["pearson_delta"]
    assert pearson[0] == pytest.approx(0.6)


def test_correlations_undefined_for_constant_or_too_few() -> None:
    truth = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, NAN, NAN]])
    constant = np.zeros_like(truth)
    assert np.isnan(per_combo_spearman(truth, constant)).all()
    assert np.isnan(top_k_metrics(truth, constant, k=4)["pearson_delta"]).all()
    # two genes: Spearman needs 3, Pearson 2
    spearman = per_combo_spearman(truth, truth)
    assert spearman[0] == pytest.approx(1.0) and np.isnan(spearman[1])
    assert top_k_metrics(truth, truth, k=4)["pearson_delta"][1] == pytest.approx(1.0)


def test_top_k_by_hand() -> None:
    # k=2. Row 0: genes 2, 1 (|3|, |-2|): truth (3, -2), pred (2, 1): Pearson 1, L2 sqrt(1 + 9), 1 of 2 signs.
    # Row 1: genes 3, 0: truth (2, -1), pred (1, -2): Pearson 1, L2 sqrt(2), 2 of 2 signs.
    top2 = top_k_metrics(TRUTH, PRED, k=2)
    np.testing.assert_allclose(top2["pearson_delta"], [1.0, 1.0])
    np.testing.assert_allclose(top2["l2"], [np.sqrt(10), np.sqrt(2)])
    np.testing.assert_allclose(top2["direction"], [0.5, 1.0])
    # k=3. Row 1 has a tie |0.5| (genes 1 and 2): gene order decides, gene 1.
    # Row 0: truth (3, -2, 1), pred (2, 1, .5): cov 13/6, ss 114/9 and 7/6; L2 sqrt(10.25); 2 of 3.
    # Row 1: truth (2, -1, .5), pred (1, -2, 1): centred (1.5, -1.5, 0), (1, -2, 1): 4.5 / sqrt(4.5 * 6).
    top3 = top_k_metrics(TRUTH, PRED, k=3)
    np.testing.assert_allclose(top3["pearson_delta"], [(13 / 6) / np.sqrt(114 / 9 * 7 / 6), np.sqrt(3) / 2])
    np.testing.assert_allclose(top3["l2"], [np.sqrt(10.25), 1.5])
    np.testing.assert_allclose(top3["direction"], [2 / 3, 1.0])


def test_top_k_larger_than_measured_uses_all_and_nan_prediction_policy() -> None:
    top10 = top_k_metrics(TRUTH, PRED, k=10)
    # Row 0 has 3 measured genes: same as k=3.
    np.testing.assert_allclose(top10["l2"][0], np.sqrt(10.25))
    # Row 1: gene 2 predicted NaN: 0 in L2 (residual -0.5), wrong in direction, left out of Pearson.
    np.testing.assert_allclose(top10["l2"][1], np.sqrt(1 + 1 + 0.25 + 0.25))
    np.testing.assert_allclose(top10["direction"][1], 3 / 4)
    expected_pearson = pearsonr([-1.0, 0.5, 2.0], [-2.0, 1.0, 1.0])[0]
    np.testing.assert_allclose(top10["pearson_delta"][1], expected_pearson)


def test_score_by_hand() -> None:
    result = score(TRUTH, PRED, top_k=(2, 3))
    assert list(result) == [
        "sign_acc", "wrong_genes", "n_scored", "combo_error_median", "combo_error_mean",
        "spearman_median", "spearman_mean",
        "pearson_delta_top2", "l2_top2", "direction_top2",
        "pearson_delta_top3", "l2_top3", "direction_top3",
    ]  # fmt: skip
    assert result["sign_acc"] == pytest.approx(5 / 7)
    assert result["wrong_genes"] == pytest.approx(2 / 7 * 4)
    assert result["n_scored"] == 7
    assert result["combo_error_median"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert result["combo_error_mean"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert result["spearman_median"] == pytest.approx((0.5 + np.sqrt(3) / 2) / 2)
    assert result["pearson_delta_top2"] == pytest.approx(1.0)
    assert result["l2_top2"] == pytest.approx((np.sqrt(10) + np.sqrt(2)) / 2)
    assert result["direction_top2"] == pytest.approx(0.75)
    assert result["direction_top3"] == pytest.approx((2 / 3 + 1) / 2)


def test_score_default_keys() -> None:
    keys = set(score(TRUTH, PRED))
    for k in (20, 200, 1000):
        assert {f"pearson_delta_top{k}", f"l2_top{k}", f"direction_top{k}"} <= keys
    assert len(keys) == 7 + 9


def test_unmeasured_truth_is_skipped_whatever_the_prediction() -> None:
    other = PRED.copy()
    other[0, 3] = 123.0  # truth NaN there: nothing may change
    assert score(TRUTH, other) == pytest.approx(score(TRUTH, PRED), nan_ok=True)
    assert score(TRUTH, PRED)["n_scored"] == np.count_nonzero(~np.isnan(TRUTH))


def test_nan_prediction_counts_as_wrong_not_skipped() -> None:
    truth = np.array([[1.0, 1.0, -1.0, -1.0]])
    assert sign_accuracy(truth, np.array([[1.0, NAN, -1.0, NAN]])) == pytest.approx(0.5)


def test_spearman_and_pearson_agree_with_scipy_on_random_rows() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(6, 50))
    prediction = truth + rng.normal(size=truth.shape)
    truth[rng.random(truth.shape) < 0.2] = NAN
    prediction[rng.random(truth.shape) < 0.05] = NAN
    prediction[2, ::3] = np.round(prediction[2, ::3])  # ties
    spearman = per_combo_spearman(truth, prediction)
    pearson = top_k_metrics(truth, prediction, k=20)["pearson_delta"]
    for row in range(truth.shape[0]):
        keep = ~np.isnan(truth[row]) & ~np.isnan(prediction[row])
        assert spearman[row] == pytest.approx(spearmanr(truth[row, keep], prediction[row, keep])[0])
        measured = np.flatnonzero(~np.isnan(truth[row]))
        top = measured[np.argsort(-np.abs(truth[row, measured]), kind="stable")[:20]]
        top = top[~np.isnan(prediction[row, top])]
        assert pearson[row] == pytest.approx(pearsonr(truth[row, top], prediction[row, top])[0])


def test_sign_accuracy_by_effect_bin_edges() -> None:
    truth = np.array([[0.0, 0.05, 0.1, 0.3, 5.99, 6.0, 7.5, NAN]])
    prediction = np.ones_like(truth)  # every sign right except the exact 0
    bins = sign_accuracy_by_effect(truth, prediction)
    assert len(bins) == 61
    np.testing.assert_allclose(bins["effect_lo"][[0, 1, 3, 60]], [0.0, 0.1, 0.3, 6.0])
    np.testing.assert_allclose(bins["effect_hi"][[0, 60]], [0.1, 6.1])
    counts = dict(zip(range(61), bins["n"]))
    assert {i: n for i, n in counts.items() if n} == {0: 2, 1: 1, 3: 1, 59: 1, 60: 2}  # 0.3 in [0.3, 0.4)
    assert bins["n"].sum() == 7  # the NaN is not counted
    assert bins["sign_acc"][0] == pytest.approx(0.5)
    assert bins["sign_acc"][60] == pytest.approx(1.0)
    assert np.isnan(bins["sign_acc"][2])


def test_prefixed() -> None:
    assert prefixed({"sign_acc": 0.7, "l2_top20": 3.0}, "val") == {"val/sign_acc": 0.7, "val/l2_top20": 3.0}


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        score(TRUTH, PRED[:, :3])


def test_full_size_scoring_matches_scipy_on_sampled_rows() -> None:
    """At the original's size (timings: benchmarks/bench_scoring.py) the vectorised Spearman equals scipy's."""
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(257, 11525)).astype(np.float32)
    prediction = truth + rng.normal(size=truth.shape).astype(np.float32)
    truth[rng.random(truth.shape) < 0.25] = NAN
    spearman = per_combo_spearman(truth, prediction)
    for row in (0, 128, 256):
        measured = ~np.isnan(truth[row])
        expected = spearmanr(truth[row, measured], prediction[row, measured]).statistic
        assert spearman[row] == pytest.approx(expected, abs=1e-9)
    result = score(truth, prediction)
    assert result["n_scored"] == np.count_nonzero(~np.isnan(truth))


def test_docstring_defines_every_score_key() -> None:
    for key in score(TRUTH, PRED, top_k=(20,)):
        generic = key.replace("top20", "top{k}")
        assert f"| {generic}" in metrics.__doc__, key
