"""The `data` group's typed sources: each option composes into its own schema and loads its data set."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from hydra.errors import ConfigCompositionException

from combomap.config.data import data_source
from combomap.data.dataset import ComboDataset
from combomap.data.io import write_npy_dir, write_tidy
from combomap.data.loading import H5adData, NpyData, SimulatedData, TidyData, load_dataset, load_dataset_with_truth
from combomap.errors import UserError
from combomap.settings import SettingsError
from combomap.data.simulate import simulate_compendium
from tests.conftest import random_dataset
from tests.data.test_io import assert_same


def test_npy_source_from_the_real_config(tmp_path: Path, compose_cfg) -> None:
    dataset = random_dataset(seed=1)
    write_npy_dir(dataset, tmp_path / "set")
    cfg = compose_cfg("data_tool", ["data=npy", f"data.dir={tmp_path / 'set'}", "out=unused"])
    source = data_source(cfg.data)
    assert source == NpyData(dir=str(tmp_path / "set"))
    assert_same(load_dataset(source), dataset)


@pytest.mark.parametrize("name", ["table.csv", "table.parquet"])
def test_tidy_source_from_the_real_config(tmp_path: Path, compose_cfg, name: str) -> None:
    dataset = random_dataset(seed=2)
    write_tidy(dataset, tmp_path / name)
    cfg = compose_cfg("data_tool", ["data=tidy", f"data.path={tmp_path / name}", "out=unused"])
    assert_same(load_dataset(data_source(cfg.data)), dataset)


def test_plain_mapping_works(tmp_path: Path) -> None:
    dataset = random_dataset(seed=3)
    write_npy_dir(dataset, tmp_path / "set")
    assert_same(load_dataset(data_source({"source": "npy", "dir": str(tmp_path / "set")})), dataset)


def test_unknown_source_missing_path_and_raw_configs_refused(tmp_path: Path, compose_cfg) -> None:
    with pytest.raises(SettingsError, match=r"data.source must be one of \['h5ad', 'npy', 'simulated', 'tidy'\], got 'hdf5'"):
        data_source({"source": "hdf5"})
    with pytest.raises(SettingsError, match="data.dir is missing"):
        data_source(OmegaConf.create({"source": "npy", "dir": "???"}))
    with pytest.raises(SettingsError, match="data.bogus is not a setting of data"):
        data_source({"source": "tidy", "path": "p", "bogus": 1})
    with pytest.raises(SettingsError, match="^data.dir is missing: give data.dir=...$"):
        data_source(compose_cfg("data_tool", ["data=npy", "out=unused"]).data)
    with pytest.raises(TypeError, match="typed data source"):
        load_dataset(OmegaConf.create({"source": "npy", "dir": str(tmp_path)}))  # type: ignore[arg-type]


def test_simulated_source_tiny_preset(compose_cfg) -> None:
    cfg = compose_cfg("data_tool", ["data=simulated", "data.preset=tiny", "data.seed=3", "out=unused"])
    source = data_source(cfg.data)
    assert source == SimulatedData(preset="tiny", seed=3)
    dataset = load_dataset(source)
    assert isinstance(dataset, ComboDataset)
    expected = simulate_compendium(preset="tiny", seed=3)
    assert dataset.combo_effect.shape == expected.combo_effect.shape
    np.testing.assert_array_equal(dataset.combo_effect, expected.combo_effect)  # same seed, same numbers


@pytest.mark.parametrize(("option", "required", "schema"), [
    ("simulated", {}, SimulatedData), ("npy", {"dir": "d"}, NpyData), ("tidy", {"path": "p"}, TidyData),
    ("h5ad", {"path": "p"}, H5adData),
])
def test_each_option_composes_into_its_schema(compose_cfg, option: str, required: dict, schema: type) -> None:
    cfg = compose_cfg("data_tool", [f"data={option}", *[f"data.{k}={v}" for k, v in required.items()], "out=unused"])
    source = data_source(cfg.data)
    assert type(source) is schema and source.source == option and source == schema(**required)


def test_composition_refuses_wrong_types_and_unknown_keys(compose_cfg) -> None:
    with pytest.raises(ConfigCompositionException, match="data.seed=abc"):
        compose_cfg("data_tool", ["data.seed=abc", "out=unused"])
    with pytest.raises(ConfigCompositionException, match="data.dir"):
        compose_cfg("data_tool", ["data.dir=d", "out=unused"])  # a simulated data set has no dir
    with pytest.raises(ConfigCompositionException, match="data.min_cells=many"):
        compose_cfg("data_tool", ["data=h5ad", "data.path=p", "data.min_cells=many", "out=unused"])


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.preset=huge"], "data.preset must be one of ['default', 'screen', 'small', 'tiny'], got 'huge'"),
    (["+data.overrides.n_combos=abc"], "overrides.n_combos must be an integer, got 'abc'"),
    (["+data.overrides.effect_scale=[1]"], "overrides.effect_scale must be a number, got [1]"),
    (["+data.overrides.n_combos=-3"], "n_combos=-3 cannot be spread"),
    (["+data.overrides.nope=1"], "unknown simulator parameter(s) ['nope']"),
    (["data=h5ad", "data.path=p", "data.values=tpm"], "data.values must be one of ['counts', 'log'], got 'tpm'"),
    (["data=h5ad", "data.path=p", "data.n_replicates=1"], "data.n_replicates must be >= 2, got 1"),
    (["data=h5ad", "data.path=p", "data.kind=cells"], "data.kind must be one of ['auto', 'combination', 'single_cell']"),
])
def test_bad_settings_fail_before_any_work_naming_the_key(compose_cfg, overrides: list[str], message: str) -> None:
    cfg = compose_cfg("data_tool", [*overrides, "out=unused"])
    with pytest.raises(Exception, match=re.escape(message)) as error:
        data_source(cfg.data)
    assert "\n" not in str(error.value) and isinstance(error.value, UserError)


def test_simulated_overrides_keep_their_numbers_and_truth(compose_cfg) -> None:
    cfg = compose_cfg("data_tool", ["data.preset=tiny", "+data.overrides.n_combos=10", "+data.overrides.effect_scale=0",
                                    "out=unused"])
    dataset, truth = load_dataset_with_truth(data_source(cfg.data))
    expected, expected_truth = SimulatedData(preset="tiny", overrides={"n_combos": 10, "effect_scale": 0.0}).load_with_truth()
    assert dataset.n_combos == 10 and truth.params.effect_scale == 0
    np.testing.assert_array_equal(dataset.combo_effect, expected.combo_effect)
    np.testing.assert_array_equal(truth.combo, expected_truth.combo)
