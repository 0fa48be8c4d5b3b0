"""A full disk (ENOSPC, simulated) names the output the user asked for, not the Hydra run dir nor a hidden staging
name: the file being written when it is known, else the output setting (combomap-data's out, combomap-predict's
output.path). One line, exit 2, the earlier output whole, no staging left behind."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from combomap.cli import data as data_cli
from combomap.console import describe
from combomap.stacking.predict import write_predictions

NO_SPACE = os.strerror(errno.ENOSPC)


def _no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, NO_SPACE)


def _no_space_at(path: object, *args: object, **kwargs: object) -> None:
    """As an open() of a new file on a full disk: the error carries the (staging) file's name."""
    raise OSError(errno.ENOSPC, NO_SPACE, str(path))


def _run_data(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setattr(sys, "argv", ["combomap-data", "data.preset=tiny", "progress=false", *args,
                                      f"hydra.run.dir={tmp_path / 'run'}"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        data_cli.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


def _listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture()
def earlier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """An earlier npy data set at tmp/out, which a failed overwrite must leave as it was."""
    monkeypatch.setattr(sys, "argv", ["combomap-data", "data.preset=tiny", "data.seed=1", f"out={tmp_path / 'out'}",
                                      "progress=false", f"hydra.run.dir={tmp_path / 'run0'}"])
    data_cli.main()
    capsys.readouterr()
    return tmp_path / "out"


def test_a_full_disk_in_a_staged_folder_names_the_folder(earlier: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    before = _listing(earlier)
    monkeypatch.setattr(np, "save", _no_space)
    line = _run_data([f"out={earlier}", "overwrite=true"], tmp_path, monkeypatch, capsys)
    assert line == f"combomap-data: error: {earlier}: {NO_SPACE}"
    assert _listing(earlier) == before
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_a_full_disk_naming_a_staging_file_names_the_file_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tables"
    out.mkdir()
    (out / "dataset.parquet").write_bytes(b"earlier")
    monkeypatch.setattr(pq, "write_table", lambda table, where, **kwargs: _no_space_at(where))
    line = _run_data([f"out={out}", "format=parquet", "overwrite=true"], tmp_path, monkeypatch, capsys)
    assert line == f"combomap-data: error: {out / 'dataset.parquet'}: {NO_SPACE}"
    assert _listing(out) == {"dataset.parquet": b"earlier"}


def test_a_full_disk_elsewhere_in_the_job_names_the_output_setting_not_the_run_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("combomap.jobs.data.write_dataset", _no_space)
    line = _run_data([f"out={tmp_path / 'out'}"], tmp_path, monkeypatch, capsys)
    assert line == f"combomap-data: error: {NO_SPACE} (while writing {tmp_path / 'out'})"
    assert str(tmp_path / "run") not in line


@pytest.mark.parametrize(("fmt", "patch", "named"), [
    ("npy", "numpy.save", "predictions"),
    ("csv", "pandas.DataFrame.to_csv", "predictions.csv"),
    ("parquet", "pandas.DataFrame.to_parquet", "predictions.parquet"),
])
def test_predictions_on_a_full_disk_name_their_output(fmt: str, patch: str, named: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patch, _no_space)
    with pytest.raises(OSError) as error:
        write_predictions(np.zeros((1, 2), np.float32), [("a", "b")], ["g1", "g2"], tmp_path / "predictions", fmt)
    assert describe(error.value) == (f"error: {tmp_path / named}: {NO_SPACE}", 2)
    assert list(tmp_path.iterdir()) == []
