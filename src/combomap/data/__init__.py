"""Data sets: the in-memory contract, the simulator, loaders and writers."""

from combomap.data.dataset import ComboDataset, DataError

__all__ = ["ComboDataset", "DataError"]
