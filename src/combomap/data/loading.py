"""Where a data set comes from: one typed source per format of the `data` config group (conf/data/<source>.yaml),
each with `load()` -> ComboDataset. The dataclasses are the group's schemas (combomap.config.data), so their
defaults are the group's defaults; jobs build them with `combomap.config.data.data_source(cfg.data)`.

Adding a format: a dataclass here with `source`, its settings and `load()`, an entry in DATA_SOURCES, and
conf/data/<source>.yaml starting with `defaults: [schema/<source>@_here_, _self_]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

from omegaconf import MISSING

from combomap.data.dataset import ComboDataset
from combomap.data.h5ad import is_combination_file, open_h5ad, read_combo_h5ad
from combomap.data.io import read_npy_dir, read_tidy
from combomap.data.simulate import PRESETS, SimulationTruth, simulate_compendium_with_truth, simulation_params
from combomap.data.single_cell import SingleCellOptions, read_single_cell
from combomap.paths import file_label
from combomap.settings import SEED, Checked, limits

H5AD_KINDS = ("auto", "combination", "single_cell")


def _source(name: str) -> Any:
    """The `source` field of a format's schema: its own name, the key a plain mapping is dispatched on."""
    return field(default=name, metadata=limits(choices=(name,)))


class Measured:
    """A measured data set: no simulator's truth."""

    def load(self) -> ComboDataset:
        raise NotImplementedError

    def load_with_truth(self) -> tuple[ComboDataset, Optional[SimulationTruth]]:
        return self.load(), None

    @property
    def label(self) -> str:
        """A short name for run names: the file's or folder's name without its extensions."""
        return file_label(getattr(self, "path", None) or getattr(self, "dir", "data")) or "data"


@dataclass
class SimulatedData(Checked):
    """The simulated compendium (combomap.data.simulate, docs/simulator.md): a preset's SimulationParams with
    `overrides` (any of its fields by name) and a seed."""

    source: str = _source("simulated")
    preset: str = field(default="default", metadata=limits(choices=sorted(PRESETS)))
    seed: int = field(default=0, metadata=SEED)
    overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        """The simulator's parameters are checked here, before any work (unknown names, types, ranges)."""
        simulation_params(self.preset, **self.overrides)

    def load(self) -> ComboDataset:
        return self.load_with_truth()[0]

    @property
    def label(self) -> str:
        """A short name for run names: the preset, and the data seed when it is not 0 (e.g. tiny, default.d3)."""
        return self.preset if self.seed == 0 else f"{self.preset}.d{self.seed}"

    def load_with_truth(self) -> tuple[ComboDataset, Optional[SimulationTruth]]:
        return simulate_compendium_with_truth(preset=self.preset, seed=self.seed, **self.overrides)


@dataclass
class NpyData(Measured, Checked):
    """The original's format: a directory with X.npy, y.npy, optional Xv.npy, genes.txt, combos.csv."""

    source: str = _source("npy")
    dir: str = MISSING

    def load(self) -> ComboDataset:
        return read_npy_dir(self.dir)


@dataclass
class TidyData(Measured, Checked):
    """A tidy long table, one row per (combo, gene) (combomap.data.io.read_tidy)."""

    source: str = _source("tidy")
    path: str = MISSING

    def load(self) -> ComboDataset:
        return read_tidy(self.path)


@dataclass
class H5adData(Measured, SingleCellOptions):
    """An AnnData .h5ad file: combomap's bulk combination layout, or single cells pseudobulked with the
    SingleCellOptions this class inherits (docs/single-cell.md)."""

    source: str = _source("h5ad")
    path: str = MISSING
    kind: str = field(default="auto", metadata=limits(choices=H5AD_KINDS))

    def load(self) -> ComboDataset:
        """kind=auto reads combomap's bulk combination layout as is and pseudobulks anything else as cells."""
        kind = self.kind
        if kind == "auto":
            with open_h5ad(self.path) as handle:
                kind = "combination" if is_combination_file(handle) else "single_cell"
        if kind == "combination":
            return read_combo_h5ad(self.path)
        return read_single_cell(self.path, self)[0]


DataSource = Union[SimulatedData, NpyData, TidyData, H5adData]
DATA_SOURCES: dict[str, type] = {"simulated": SimulatedData, "npy": NpyData, "tidy": TidyData, "h5ad": H5adData}


def load_dataset(source: DataSource) -> ComboDataset:
    """The data set of a typed source (combomap.config.data.data_source turns a `data` config into one)."""
    return _checked(source).load()


def load_dataset_with_truth(source: DataSource) -> tuple[ComboDataset, Optional[SimulationTruth]]:
    """The data set and, for simulated data only, its noise-free truth (None otherwise)."""
    return _checked(source).load_with_truth()


def _checked(source: Any) -> Any:
    if not isinstance(source, tuple(DATA_SOURCES.values())):
        raise TypeError(f"expected a typed data source ({', '.join(c.__name__ for c in DATA_SOURCES.values())}; "
                        f"combomap.config.data.data_source builds one from a config), got {type(source).__name__}")
    return source

