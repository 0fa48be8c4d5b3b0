"""Atomic writers: a failed overwrite keeps the old output whole; what a killed writer left is recovered."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from combomap.data.atomic import host_tag, recover
from combomap.data.io import read_npy_dir, write_npy_dir
from combomap.stacking.predict import write_predictions
from tests.conftest import random_dataset


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leftover(target: Path, tag: str, pid: int) -> Path:
    return target.with_name(f".{target.name}.{tag}-{host_tag()}-{pid}-{uuid.uuid4().hex[:12]}")


def test_npy_overwrite_killed_between_renames_is_restored_on_read_and_on_write(tmp_path: Path, caplog) -> None:
    first, second = random_dataset(seed=0), random_dataset(seed=1)
    target = write_npy_dir(first, tmp_path / "data")
    backup = leftover(target, "old", dead_pid())
    os.rename(target, backup)  # what a writer killed between its two renames leaves: no target, a hidden backup
    staging = leftover(target, "tmp", dead_pid())
    staging.mkdir()
    (staging / "X.npy").write_bytes(b"half")

    with caplog.at_level("WARNING"):
        restored = read_npy_dir(target)
    assert "restored the previous data" in caplog.text
    np.testing.assert_array_equal(restored.combo_effect, first.combo_effect)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # stale staging folder removed too

    os.rename(target, leftover(target, "old", dead_pid()))
    write_npy_dir(second, target, overwrite=True)  # the writer restores first, then replaces as asked
    np.testing.assert_array_equal(read_npy_dir(target).combo_effect, second.combo_effect)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_staging_of_a_live_process_or_another_host_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "data"
    mine = leftover(target, "tmp", os.getpid())
    mine.mkdir()
    foreign = target.with_name(f".data.tmp-zzzzzz-{dead_pid()}-{uuid.uuid4().hex[:12]}")
    foreign.mkdir()
    recover(target)
    assert mine.is_dir() and foreign.is_dir() and not target.exists()


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_predict_overwrite_on_a_full_disk_keeps_the_old_predictions_whole(tmp_path: Path, monkeypatch, fmt: str) -> None:
    genes = ["g1", "g2", "g3"]
    old = np.arange(6, dtype=np.float32).reshape(2, 3)
    files = write_predictions(old, [("a", "b"), ("c", "d")], genes, tmp_path / "predictions", fmt)
    before = {path: path.read_bytes() for path in files}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)  # predictions.npy is written, then the disk fills up
    with pytest.raises(OSError, match="No space"):
        write_predictions(old + 1, [("e", "f"), ("g", "h")], genes, tmp_path / "predictions", fmt)
    assert {path: path.read_bytes() for path in files} == before
    assert not [p for p in tmp_path.rglob(".*")], "no staging left behind"
    if fmt == "npy":
        assert [p.name for p in files] == ["predictions.npy", "pairs.csv", "genes.txt"]
        assert files[0].parent == tmp_path / "predictions"


def test_a_model_save_that_fails_leaves_the_previous_model_whole(tmp_path: Path, monkeypatch) -> None:
    from combomap.stacking.final_model import StackedModel

    model = StackedModel.average(["g1", "g2"], info={"feature_set": "average"})
    folder = model.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def half_written(self, directory: Path) -> None:
        (directory / "genes.txt").write_text("g1\n")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StackedModel, "_write", half_written)
    with pytest.raises(OSError, match="No space"):
        model.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert StackedModel.load(folder).genes == ["g1", "g2"]
