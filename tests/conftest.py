"""Shared fixtures: a temporary MLflow store per test and composition of the real configs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from combomap.config.registry import register as register_schemas
from combomap.data.dataset import ComboDataset
from combomap.paths import CONF_DIR
from tests.mlflow_template import new_store


@pytest.fixture()
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private SQLite MLflow store; nothing reaches the project's mlruns/."""
    store = new_store(tmp_path / "mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    return store


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a real top-level config as the CLI would, with its output dir set to `output_dir`."""
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]  # @hydra.main hands the task the config without its hydra node
    return cfg


@pytest.fixture()
def compose_cfg(tmp_path: Path, mlflow_store: Path):
    """compose_cfg("train", ["data.preset=tiny"]) -> config writing into tmp_path/out."""

    def _compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
        return compose_config(config_name, list(overrides or []), tmp_path / "out")

    yield _compose
    GlobalHydra.instance().clear()


def random_dataset(n_combos: int = 12, n_genes: int = 30, seed: int = 0, missing: float = 0.1) -> ComboDataset:
    """A small random data set with some unmeasured entries, for unit tests that need no realism."""
    rng = np.random.default_rng(seed)
    drug1 = rng.normal(size=(n_combos, n_genes)).astype(np.float32)
    drug2 = rng.normal(size=(n_combos, n_genes)).astype(np.float32)
    combo = (0.75 * (drug1 + drug2) + 0.3 * rng.normal(size=(n_combos, n_genes))).astype(np.float32)
    for block in (drug1, drug2, combo):
        block[rng.random(block.shape) < missing] = np.nan
    combo[:, 0] = 1.0  # every combo has a measured gene
    studies = [f"S{i // 2}" for i in range(n_combos)]
    combos = pd.DataFrame(
        {
            "combo": [f"C{i}" for i in range(n_combos)],
            "study": studies,
            "drug1": [f"D{i}a" for i in range(n_combos)],
            "drug2": [f"D{i}b" for i in range(n_combos)],
        }
    )
    return ComboDataset(
        drug1_effect=drug1,
        drug2_effect=drug2,
        combo_effect=combo,
        genes=[f"G{j}" for j in range(n_genes)],
        combos=combos,
        drug1_var=np.abs(rng.normal(size=(n_combos, n_genes))).astype(np.float32) * 0.1 + 0.05,
        drug2_var=np.abs(rng.normal(size=(n_combos, n_genes))).astype(np.float32) * 0.1 + 0.05,
    )


@pytest.fixture()
def small_random_dataset() -> ComboDataset:
    return random_dataset()


@pytest.fixture(autouse=True)
def _root_log_handlers_of_the_test_only():
    """An in-process Hydra job (a console entry called with patched argv) installs root handlers on the streams
    of that test's capture; later tests would write into the closed streams. Drop what a test added."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
