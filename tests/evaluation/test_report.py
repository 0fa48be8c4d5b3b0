"""The results table: columns, numbers by hand and equal to score(), files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from combomap.evaluation.metrics import score
from combomap.evaluation.report import FINAL, results_table, table_metrics, to_markdown, to_text, write_results
from tests.conftest import random_dataset

TRUTH = np.array([[1.0, -1.0, 2.0, -2.0], [1.0, 1.0, np.nan, -1.0]])
PREDICTIONS = {
    "average": np.array([[1.0, 1.0, 2.0, -2.0], [1.0, 1.0, 1.0, -1.0]]),  # 1 of 7 wrong
    "perfect": TRUTH.copy(),
    "no_change": np.zeros_like(TRUTH),
}


def test_columns_and_numbers_by_hand() -> None:
    table = results_table(TRUTH, PREDICTIONS, top_k=(2,))
    assert list(table.columns[:7]) == [
        "model", "sign_acc_pct", "wrong_genes", "delta_wrong_vs_average",
        "combo_error_median", "spearman_median", "n_scored",
    ]  # fmt: skip
    assert list(table["model"]) == ["average", "perfect", "no_change"]
    row = table.set_index("model")
    assert row.loc["average", "sign_acc_pct"] == pytest.approx(600 / 7)
    assert row.loc["average", "wrong_genes"] == pytest.approx(4 / 7)  # 1/7 wrong x 4 genes
    assert row.loc["perfect", "delta_wrong_vs_average"] == pytest.approx(-4 / 7)  # negative = fewer wrong
    assert row.loc["no_change", "delta_wrong_vs_average"] == pytest.approx(4 - 4 / 7)
    assert row.loc["average", "combo_error_median"] == pytest.approx(1 / 8)  # (1/4 + 0) / 2
    assert (row["n_scored"] == 7).all() and (row["n_genes"] == 4).all()
    assert np.isnan(row.loc["no_change", "spearman_median"])


def test_rows_equal_score() -> None:
    dataset = random_dataset(n_combos=8, n_genes=30, seed=2)
    predictions = {"a": dataset.drug1_effect, "average": (dataset.drug1_effect + dataset.drug2_effect) / 2}
    table = results_table(dataset, predictions).set_index("model")
    for model, prediction in predictions.items():
        for key, value in score(dataset.combo_effect, prediction).items():
            assert table.loc[model, key] == pytest.approx(value, nan_ok=True), (model, key)


def test_reference_is_generic() -> None:
    table = results_table(TRUTH, PREDICTIONS, reference="perfect", top_k=(2,))
    assert table.set_index("model").loc["average", "delta_wrong_vs_perfect"] == pytest.approx(4 / 7)
    assert not any(c.startswith("delta_wrong") for c in results_table(TRUTH, PREDICTIONS, reference=None).columns)
    with pytest.raises(ValueError, match="reference model 'missing'"):
        results_table(TRUTH, PREDICTIONS, reference="missing")


def test_write_results_csv_and_markdown(tmp_path: Path) -> None:
    table = results_table(TRUTH, PREDICTIONS, top_k=(2,))
    paths = write_results(table, tmp_path / "out", stem="ablation")
    assert [p.name for p in paths] == ["ablation.csv", "ablation.md"]
    pd.testing.assert_frame_equal(pd.read_csv(paths[0]), table, check_dtype=False)
    read_back = pd.read_csv(paths[0], float_precision="round_trip")  # the table artifact reports read back
    np.testing.assert_array_equal(read_back.select_dtypes("number"), table.select_dtypes("number"))  # bit for bit
    markdown = paths[1].read_text()
    assert "| model | sign_acc_pct | wrong_genes | delta_wrong_vs_average |" in markdown
    assert "| average | 85.71 | 1 | +0 | 0.125 |" in markdown
    assert "| perfect | 100.00 | 0 | -1 |" in markdown
    assert "n/a" in markdown  # the constant baseline's correlations
    assert "direction_top2" in markdown


def test_printed_table_is_headline_only() -> None:
    text = to_text(results_table(TRUTH, PREDICTIONS, top_k=(2,)))
    assert "sign accuracy %" in text and "wrong genes per 4" in text and "delta wrong vs average" in text
    assert "median combo Spearman" in text and "l2_top2" not in text


def test_table_metrics_logs_every_metric_column_and_no_display_column() -> None:
    table = results_table(TRUTH, PREDICTIONS, top_k=(2,), ceiling="perfect")
    table[FINAL] = np.where(table["model"] == "perfect", "*", "")
    metrics = table_metrics(table, "ablation")
    metric_columns = [*score(TRUTH, PREDICTIONS["average"], top_k=(2,)), "delta_wrong_vs_average"]
    assert sorted(metrics) == sorted(f"ablation/{m}/{c}" for m in PREDICTIONS for c in metric_columns)
    row = table.set_index("model")
    assert metrics["ablation/average/wrong_genes"] == row.loc["average", "wrong_genes"] == pytest.approx(4 / 7)
    assert metrics["ablation/perfect/delta_wrong_vs_average"] == pytest.approx(-4 / 7)
    assert np.isnan(metrics["ablation/no_change/spearman_median"])  # kept here; log_metrics skips NaN
    assert table_metrics(table.drop(columns=FINAL))["perfect/sign_acc"] == 1.0  # no prefix: "<model>/<metric>"


def test_markdown_table_aligns_text_left_and_numbers_right() -> None:
    cells = pd.DataFrame({"model": ["average", "perfect"], "sign_acc_pct": ["85.71", "100.00"]})
    assert to_markdown(cells) == "| model | sign_acc_pct |\n|:---|---:|\n| average | 85.71 |\n| perfect | 100.00 |"
    assert to_markdown(cells, aligned=False).splitlines()[1] == "|---|---|"
