"""The calibration report and its check (combomap.evaluation.calibration), and its command line."""

from __future__ import annotations

import json

import pytest

from combomap.data.simulate import PRESETS, simulate_compendium
from combomap.evaluation.calibration import CALIBRATION_TARGETS, calibration_report, check_calibration, main


def _printed(out: str) -> tuple[dict, list[str]]:
    """The JSON report and the verdict lines the command printed after it."""
    end = out.rindex("}") + 1
    return json.loads(out[:end]), out[end:].strip().splitlines()


def test_check_names_every_figure_outside_its_inclusive_range() -> None:
    middle = {name: (low + high) / 2 for name, (low, high) in CALIBRATION_TARGETS.items()}
    assert check_calibration(middle) == []
    edges = {name: low for name, (low, _) in CALIBRATION_TARGETS.items()}
    assert check_calibration(edges) == []  # both ends belong to the range
    assert check_calibration({name: high for name, (_, high) in CALIBRATION_TARGETS.items()}) == []
    report = {**middle, "sign_acc": 0.5, "slope_sum": 0.95}
    assert check_calibration(report) == ["sign_acc = 0.5000 outside [0.77, 0.81]",
                                         "slope_sum = 0.9500 outside [0.6, 0.9]"]
    del report["sign_acc"]  # a figure the report lacks fails too (NaN)
    assert [line.split(" ")[0] for line in check_calibration(report)] == ["sign_acc", "slope_sum"]
    assert check_calibration({"x": 2.0}, targets={"x": (0.0, 1.0)}) == ["x = 2.0000 outside [0.0, 1.0]"]


def test_default_preset_passes_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--preset", "default", "--seed", "0"]) == 0
    report, verdict = _printed(capsys.readouterr().out)
    assert verdict == ["calibration: OK"]
    assert (report["preset"], report["seed"], report["n_combos"], report["n_genes"]) == ("default", 0, 257, 11525)


def test_tiny_preset_fails_on_the_command_line_naming_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """12 combinations are too few for the per-combination tails and the |effect| ~ 1 bin: exit 1, named."""
    assert main(["--preset", "tiny", "--seed", "1"]) == 1
    report, verdict = _printed(capsys.readouterr().out)
    expected = calibration_report(simulate_compendium("tiny", 1))
    assert {name: report[name] for name in expected} == pytest.approx(expected)
    assert report["n_combos"] == PRESETS["tiny"]["n_combos"]
    assert verdict[0] == "calibration: FAILED"
    assert [line.strip() for line in verdict[1:]] == check_calibration(expected)
    assert [line.split()[0] for line in verdict[1:]] == ["combo_error_min", "acc_effect_near1"]
