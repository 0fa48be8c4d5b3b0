"""One entry for every job: build the ComboDataset a `data` config group describes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.io import read_npy_dir, read_tidy

SOURCES = ("simulated", "npy", "tidy", "h5ad")


def load_dataset(data_cfg: Mapping[str, Any]) -> ComboDataset:
    """data_cfg.source picks the loader: simulated (preset, seed, overrides), npy (dir), tidy (path) or h5ad (path)."""
    return load_dataset_with_truth(data_cfg)[0]


def load_dataset_with_truth(data_cfg: Mapping[str, Any]) -> tuple[ComboDataset, Any]:
    """The data set and, for simulated data only, its noise-free truth (`SimulationTruth`; None otherwise)."""
    source = data_cfg.get("source")
    if source == "simulated":
        from combomap.data.simulate import simulate_compendium_with_truth  # lazy: only this source needs it

        overrides = dict(data_cfg.get("overrides") or {})
        return simulate_compendium_with_truth(
            preset=str(data_cfg.get("preset", "default")), seed=int(data_cfg.get("seed", 0)), **overrides
        )
    return _load_measured(data_cfg, source), None


def _load_measured(data_cfg: Mapping[str, Any], source: Any) -> ComboDataset:
    if source == "npy":
        return read_npy_dir(data_cfg["dir"])
    if source == "tidy":
        return read_tidy(data_cfg["path"])
    if source == "h5ad":
        return read_h5ad_dataset(data_cfg)
    raise DataError(f"unknown data source {source!r}; expected one of {list(SOURCES)}")


def read_h5ad_dataset(data_cfg: Mapping[str, Any]) -> ComboDataset:
    """kind=auto reads combomap's bulk combination layout as is and pseudobulks anything else as cells."""
    from combomap.data.h5ad import is_combination_file, open_h5ad, read_combo_h5ad
    from combomap.data.single_cell import options_from_config, read_single_cell

    path = data_cfg["path"]
    kind = str(data_cfg.get("kind", "auto"))
    if kind not in ("auto", "combination", "single_cell"):
        raise DataError(f"data.kind must be auto, combination or single_cell, got {kind!r}")
    if kind == "auto":
        with open_h5ad(path) as handle:
            kind = "combination" if is_combination_file(handle) else "single_cell"
    if kind == "combination":
        return read_combo_h5ad(path)
    return read_single_cell(path, options_from_config(data_cfg))[0]
