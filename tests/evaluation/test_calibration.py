"""The calibration report and its check (combomap.evaluation.calibration), and its command line."""

from __future__ import annotations

import json
import re

import pytest

from combomap.data.simulate import PRESETS
from combomap.evaluation.calibration import CALIBRATION_TARGETS, check_calibration, main


def test_calibration_checks_and_cli(capsys: pytest.CaptureFixture[str]) -> None:
    report = {name: (low + high) / 2 for name, (low, high) in CALIBRATION_TARGETS.items()}
    assert check_calibration(report) == []
    report["sign_acc"] = 0.5
    failures = check_calibration(report)
    assert len(failures) == 1 and failures[0].startswith("sign_acc")
    code = main(["--preset", "tiny", "--seed", "1"])
    out = capsys.readouterr().out
    printed = json.loads(out[: out.rindex("}") + 1])
    assert printed["preset"] == "tiny" and printed["n_combos"] == PRESETS["tiny"]["n_combos"]
    assert code in (0, 1) and re.search(r"calibration: (OK|FAILED)", out)
