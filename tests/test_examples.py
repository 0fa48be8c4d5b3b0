"""examples/README.md: its commands, read from the file (so the walkthrough cannot rot), run in a temporary folder.

The only change to a command: combomap-* jobs get `paths.log_dir=<tmp>` so that Hydra's run folders of the jobs
without a `hydra.run.dir` land in the temporary folder, not in the checkout. The MLflow runs go to the test's store.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests import REPO_ROOT

WALKTHROUGH = REPO_ROOT / "examples" / "README.md"


def walkthrough_commands(text: str) -> list[str]:
    """The ```bash blocks of the walkthrough, one command each."""
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_walkthrough_commands_run_end_to_end(tmp_path: Path, mlflow_store: Path) -> None:
    commands = walkthrough_commands(WALKTHROUGH.read_text())
    assert len(commands) == 10 and all("\n" not in command for command in commands)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    printed = {}
    for command in commands:
        if command.startswith("combomap-"):
            command += f" paths.log_dir={shlex.quote(str(tmp_path / 'outputs'))}"
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])
        printed[command] = done.stdout
    out = tmp_path / "walkthrough"

    assert "| model |" in printed[next(c for c in commands if c.startswith("cat "))]
    assert np.load(out / "predict" / "predictions" / "predictions.npy").shape == (2, 300)
    # the disease signature's known answer: the pair it was built to be reversed by ranks first
    planted = re.search(r"reversed by (\S+)\+(\S+),", "".join(printed.values()))
    assert planted is not None
    ranked = pd.read_csv(out / "ranked" / "pairs.csv")
    assert len(ranked) == 780 and tuple(ranked.loc[0, ["drug1", "drug2"]]) == planted.groups()
    assert tuple(pd.read_csv(out / "ranked_pair" / "pairs.csv").loc[0, ["drug1", "drug2"]]) == ("drug0005", "drug0006")

    # the Hydra job logs of predict and query are not empty: they name the model and where the results went
    predict_log = (out / "predict" / "predict.log").read_text()
    assert str(out / "stack" / "model") in predict_log and str(out / "predict" / "predictions" / "predictions.npy") in predict_log
    query_log = (out / "ranked" / "query.log").read_text()
    assert f"pair model stacked from {out / 'stack' / 'model'}" in query_log
    assert str(out / "ranked" / "pairs.csv") in query_log and "drug0" in query_log


def test_real_screen_example_runs_from_the_repository_root(tmp_path: Path, mlflow_store: Path) -> None:
    """examples/real-screen.md: its commands as written, from a copy of the fixture laid out as in the checkout."""
    commands = walkthrough_commands((REPO_ROOT / "examples" / "real-screen.md").read_text())
    assert len(commands) == 3
    fixture = tmp_path / "tests" / "data" / "fixtures"
    fixture.mkdir(parents=True)
    (fixture / "korkut2015_skmel133_rppa.csv").write_bytes(
        (REPO_ROOT / "tests" / "data" / "fixtures" / "korkut2015_skmel133_rppa.csv").read_bytes())
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for command in commands:
        if command.startswith("combomap-"):
            command += f" paths.log_dir={shlex.quote(str(tmp_path / 'outputs'))} progress=false"
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])
    printed = done.stdout
    assert "| interaction |" in printed and "none_seen" in printed and "chosen: best CV sign accuracy" in printed
    table = pd.read_csv(tmp_path / "korkut" / "ablation.csv").set_index("model")
    final = table.index[table["final"] == "*"][0]
    assert table.loc[final, "sign_acc"] >= table.loc["average", "sign_acc"] + 0.05
