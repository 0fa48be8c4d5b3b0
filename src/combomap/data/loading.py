"""One entry for every job: build the ComboDataset a `data` config group describes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.io import read_npy_dir, read_tidy

SOURCES = ("simulated", "npy", "tidy")


def load_dataset(data_cfg: Mapping[str, Any]) -> ComboDataset:
    """data_cfg.source picks the loader: simulated (preset, seed), npy (dir) or tidy (path)."""
    source = data_cfg.get("source")
    if source == "simulated":
        from combomap.data.simulate import simulate_compendium  # lazy: only this source needs it

        return simulate_compendium(preset=str(data_cfg.get("preset", "default")), seed=int(data_cfg.get("seed", 0)))
    if source == "npy":
        return read_npy_dir(data_cfg["dir"])
    if source == "tidy":
        return read_tidy(data_cfg["path"])
    raise DataError(f"unknown data source {source!r}; expected one of {list(SOURCES)}")
