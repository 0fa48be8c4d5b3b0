"""Bad inputs to combomap-interactions end in one stderr line naming the problem, exit 2, and no MLflow run."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from combomap.cli import interactions as cli
from combomap.data.io import read_tidy
from combomap.models.learned import LinearComboModel
from combomap.stacking.final_model import StackedModel
from tests import REPO_ROOT

KORKUT = REPO_ROOT / "tests" / "data" / "fixtures" / "korkut2015_skmel133_rppa.csv"


def _missing_single(tmp: Path) -> Path:
    table = pd.read_csv(KORKUT)
    table.loc[table["combo"] == table["combo"].iloc[0], "d1"] = float("nan")
    path = tmp / "missing_single.csv"
    table.to_csv(path, index=False)
    return path


def _seen_model(tmp: Path) -> Path:
    dataset = read_tidy(KORKUT)
    drugs = sorted(set(dataset.combos["drug1"]) | set(dataset.combos["drug2"]))
    model = replace(StackedModel.linear(LinearComboModel.fit(dataset, "additive_shift")), training_drugs=drugs)
    return model.save(tmp / "model")


CASES = {
    "no variances for measured": (["interactions.variance=measured"],
                                  ["interactions.variance=measured needs the singles' variances"]),
    "singles missing": (["data.path={missing}"], ["combination '901@1.5+HN@6' cannot be tested",
                                                  "'901@1.5' are not measured"]),
    "model saw the combinations": (["interactions.expected=model", "interactions.model_dir={model}"],
                                   ["{model}", "never judged by a model that saw it", "66 of 66"]),
    "model without its folder": (["interactions.expected=model"], ["needs interactions.model_dir"]),
    "planting into measured data": (["interactions=planted"], ["interactions.plant", "needs data=simulated"]),
    "planting with a learned expectation": (["interactions=planted", "interactions.expected=interaction"],
                                            ["interactions.plant", "expected"]),
    "fdr out of range": (["interactions.fdr=1.5"], ["interactions.fdr", "1.5"]),
    "unknown expectation": (["interactions.expected=multiplicative"], ["interactions.expected", "multiplicative"]),
    "unknown null shape": (["interactions.null_shape=laplace"], ["interactions.null_shape", "laplace"]),
    "negative seed": (["seed=-1"], ["seed", "-1"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_ends_in_one_line(case: str, tmp_path: Path, mlflow_store: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    paths = {"missing": _missing_single(tmp_path) if case == "singles missing" else None,
             "model": _seen_model(tmp_path) if case == "model saw the combinations" else None}
    args, names = CASES[case]
    argv = ["data=tidy", f"data.path={KORKUT}", *(arg.format(**paths) for arg in args),
            f"hydra.run.dir={tmp_path / 'run'}"]
    monkeypatch.setattr(sys, "argv", ["combomap-interactions", *argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        cli.main()
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert stop.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith("combomap-interactions: error: "), err
    for name in names:
        assert name.format(**paths) in lines[0], lines[0]
    client = MlflowClient(f"sqlite:///{mlflow_store / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert not experiments or client.search_runs(experiments) == []
