"""The real-data fixture (one Norman 2019 double perturbation, tests/data/fixtures/README.md) through
combomap-evaluate: the average baseline's figures equal those computed independently from the source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from combomap.data.io import read_tidy
from combomap.jobs import evaluate

FIXTURE = Path(__file__).parent / "fixtures" / "norman_cebpe_cebpb_tidy.csv"


def test_fixture_is_one_real_double_perturbation() -> None:
    dataset = read_tidy(FIXTURE)
    assert dataset.combos.to_dict("records") == [
        {"combo": "CEBPE+CEBPB", "study": "norman2019", "drug1": "CEBPE", "drug2": "CEBPB"}
    ]
    assert dataset.combo_effect.shape == (1, 1000) and not np.isnan(dataset.combo_effect).any()
    np.testing.assert_array_equal(dataset.drug1_effect, dataset.drug2_effect)  # only the singles' sum is published


def test_evaluate_on_the_norman_fixture_gives_the_published_figures(compose_cfg) -> None:
    cfg = compose_cfg("evaluate", ["data=tidy", f"data.path={FIXTURE}", "plots=false"])
    metrics = evaluate.run(cfg)
    assert metrics["average/sign_acc"] == pytest.approx(0.891, abs=1e-12)
    assert metrics["average/wrong_genes"] == pytest.approx(109.0, abs=1e-9)  # of 1000
    assert metrics["average/n_scored"] == 1000
    assert metrics["average/spearman_median"] == pytest.approx(0.894677, abs=5e-6)  # 0.8947
    assert metrics["additive/sign_acc"] == pytest.approx(0.891, abs=1e-12)
    table = pd.read_csv(Path(cfg.paths.output_dir) / "results.csv").set_index("model")
    assert table.loc["average", "spearman_median"] == pytest.approx(0.8947, abs=5e-5)
