"""combomap-data: in-process run(cfg) on the real config, and one console-script smoke test."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from combomap.jobs.data import run
from combomap.data.dataset import DataError
from combomap.data.io import read_npy_dir, read_tidy, write_npy_dir
from combomap.settings import SettingsError
from tests import REPO_ROOT
from tests.conftest import random_dataset
from tests.data.test_io import assert_same


def test_run_converts_npy_to_parquet(tmp_path: Path, compose_cfg, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="combomap.jobs.data")
    dataset = random_dataset(n_combos=5, n_genes=8, seed=1)
    write_npy_dir(dataset, tmp_path / "in")
    cfg = compose_cfg("data_tool", ["data=npy", f"data.dir={tmp_path / 'in'}", f"out={tmp_path / 'conv'}", "format=parquet"])
    summary = run(cfg)
    written = tmp_path / "conv" / "dataset.parquet"
    assert summary["output"] == str(written.resolve())
    assert (summary["n_combos"], summary["n_genes"]) == (5, 8)
    assert summary["measured_fraction"] == pytest.approx(np.mean(~np.isnan(dataset.combo_effect)))
    assert_same(read_tidy(written), dataset)
    [line] = [record.getMessage() for record in caplog.records if record.name == "combomap.jobs.data"]
    assert line.count("\n") == 0 and "5 combos x 8 genes" in line and str(written.resolve()) in line


def test_run_to_npy_respects_overwrite(tmp_path: Path, compose_cfg) -> None:
    write_npy_dir(random_dataset(seed=1), tmp_path / "in")
    write_npy_dir(random_dataset(seed=2), tmp_path / "out")
    base = ["data=npy", f"data.dir={tmp_path / 'in'}", f"out={tmp_path / 'out'}", "format=npy"]
    with pytest.raises(DataError, match="not empty"):
        run(compose_cfg("data_tool", base))
    run(compose_cfg("data_tool", base + ["overwrite=true"]))
    assert_same(read_npy_dir(tmp_path / "out"), random_dataset(seed=1))


def test_run_rejects_unknown_format(tmp_path: Path, compose_cfg) -> None:
    cfg = compose_cfg("data_tool", ["data=npy", f"data.dir={tmp_path}", f"out={tmp_path / 'o'}", "format=xlsx"])
    with pytest.raises(SettingsError, match=r"format must be one of \['npy', .*'h5ad'\], got 'xlsx'"):
        run(cfg)


def test_console_script_writes_tiny_simulated_set(tmp_path: Path) -> None:
    if importlib.util.find_spec("combomap.data.simulate") is None:
        pytest.skip("combomap.data.simulate not written yet")
    script = shutil.which("combomap-data", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-c", "from combomap.cli.data import main; main()"]
    out = tmp_path / "tiny"
    result = subprocess.run(
        [*command, "data=simulated", "data.preset=tiny", f"out={out}", "format=npy", f"hydra.run.dir={tmp_path / 'hydra'}"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    dataset = read_npy_dir(out)
    assert f"{dataset.n_combos} combos x {dataset.n_genes} genes" in result.stdout
    assert str(out.resolve()) in result.stdout
