"""load_dataset dispatches on data.source; the npy and tidy paths need nothing from the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.io import write_npy_dir, write_tidy
from combomap.data.loading import load_dataset
from combomap.data.simulate import simulate_compendium
from tests.conftest import random_dataset
from tests.data.test_io import assert_same


def test_npy_source_from_the_real_config(tmp_path: Path, compose_cfg) -> None:
    dataset = random_dataset(seed=1)
    write_npy_dir(dataset, tmp_path / "set")
    cfg = compose_cfg("data_tool", ["data=npy", f"data.dir={tmp_path / 'set'}", "out=unused"])
    assert_same(load_dataset(cfg.data), dataset)


@pytest.mark.parametrize("name", ["table.csv", "table.parquet"])
def test_tidy_source_from_the_real_config(tmp_path: Path, compose_cfg, name: str) -> None:
    dataset = random_dataset(seed=2)
    write_tidy(dataset, tmp_path / name)
    cfg = compose_cfg("data_tool", ["data=tidy", f"data.path={tmp_path / name}", "out=unused"])
    assert_same(load_dataset(cfg.data), dataset)


def test_plain_mapping_works(tmp_path: Path) -> None:
    dataset = random_dataset(seed=3)
    write_npy_dir(dataset, tmp_path / "set")
    assert_same(load_dataset({"source": "npy", "dir": str(tmp_path / "set")}), dataset)


def test_unknown_source_and_missing_path() -> None:
    with pytest.raises(DataError, match="unknown data source 'hdf5'; expected one of"):
        load_dataset({"source": "hdf5"})
    with pytest.raises(MissingMandatoryValue):
        load_dataset(OmegaConf.create({"source": "npy", "dir": "???"}))


def test_simulated_source_tiny_preset(compose_cfg) -> None:
    cfg = compose_cfg("data_tool", ["data=simulated", "data.preset=tiny", "data.seed=3", "out=unused"])
    dataset = load_dataset(cfg.data)
    assert isinstance(dataset, ComboDataset)
    expected = simulate_compendium(preset="tiny", seed=3)
    assert dataset.combo_effect.shape == expected.combo_effect.shape
    np.testing.assert_array_equal(dataset.combo_effect, expected.combo_effect)  # same seed, same numbers
