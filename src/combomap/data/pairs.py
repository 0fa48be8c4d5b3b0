"""The inputs of a batch of drug combinations: one value instead of four loose arrays.

Every model of a combination (the MLP and its NumPy predictor, the latent net, the fold nets, the stacker's
features, the saved stacked model, the query) reads the same thing per pair: each drug's effect on each gene
and, when the source has them, the variances of those effects. `PairBatch` carries them together, checked
once (float32, equal shapes, variances both or neither), so a caller cannot swap drug2's variance in for
drug1's or pass variances of another batch. NaN = unmeasured; the measured masks are derived, not stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.library import DrugLibrary


def _rows(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise DataError(f"{name} must be (n_pairs x n_genes), got shape {array.shape}")
    return array


@dataclass(frozen=True)
class PairBatch:
    """(n_pairs x n_genes) float32 effects of drug 1 and drug 2 per pair, and optionally their variances.

    A 1-D input is one pair. Variances come both or not at all (one without the other is dropped, as every
    consumer would ignore it).
    """

    drug1_effect: np.ndarray
    drug2_effect: np.ndarray
    drug1_var: np.ndarray | None = None
    drug2_var: np.ndarray | None = None
    drug1_name: np.ndarray | None = None  # the drugs' names per pair, when known (learned per-drug profiles use them)
    drug2_name: np.ndarray | None = None

    def __post_init__(self) -> None:
        first, second = _rows("drug1_effect", self.drug1_effect), _rows("drug2_effect", self.drug2_effect)
        if first.shape != second.shape:
            raise DataError(f"drug1_effect {first.shape} and drug2_effect {second.shape} differ in shape")
        object.__setattr__(self, "drug1_effect", first)
        object.__setattr__(self, "drug2_effect", second)
        if self.drug1_name is None or self.drug2_name is None:
            object.__setattr__(self, "drug1_name", None)
            object.__setattr__(self, "drug2_name", None)
        else:
            for name in ("drug1_name", "drug2_name"):
                names = np.asarray(getattr(self, name), dtype=object).reshape(-1)
                if names.shape[0] != first.shape[0]:
                    raise DataError(f"{name} names {names.shape[0]} drugs for {first.shape[0]} pairs")
                object.__setattr__(self, name, names)
        if self.drug1_var is None or self.drug2_var is None:
            object.__setattr__(self, "drug1_var", None)
            object.__setattr__(self, "drug2_var", None)
            return
        for name in ("drug1_var", "drug2_var"):
            variance = _rows(name, getattr(self, name))
            if variance.shape != first.shape:
                raise DataError(f"{name} of shape {variance.shape} differs from the effects' {first.shape}")
            object.__setattr__(self, name, variance)

    @classmethod
    def from_dataset(cls, dataset: ComboDataset, rows: np.ndarray | None = None) -> "PairBatch":
        """The combinations of a data set (all, or the given row positions)."""
        pick = (lambda a: a) if rows is None else (lambda a: None if a is None else a[rows])
        names = dataset.combos[["drug1", "drug2"]].astype(str).to_numpy(dtype=object)
        return cls(pick(dataset.drug1_effect), pick(dataset.drug2_effect), pick(dataset.drug1_var), pick(dataset.drug2_var),
                   pick(names[:, 0]), pick(names[:, 1]))

    @classmethod
    def from_drugs(cls, effects: np.ndarray, variances: np.ndarray | None, left: np.ndarray,
                   right: np.ndarray, names: np.ndarray | None = None) -> "PairBatch":
        """Pairs (left[i], right[i]) of per-drug rows (n_drugs x n_genes), with the drugs' names if given."""
        return cls(effects[left], effects[right], None if variances is None else variances[left],
                   None if variances is None else variances[right],
                   None if names is None else names[left], None if names is None else names[right])

    @classmethod
    def from_library(cls, library: DrugLibrary, left: np.ndarray, right: np.ndarray,
                     columns: np.ndarray | None = None) -> "PairBatch":
        """Pairs of library drugs by row position, on the library's gene `columns` (None: all genes)."""
        effects, variances = library.effects, library.variances
        if columns is not None:
            effects = effects[:, columns]
            variances = None if variances is None else variances[:, columns]
        names = np.asarray(library.drugs, dtype=object)
        return cls.from_drugs(effects, variances, left, right, names)

    @property
    def n_pairs(self) -> int:
        return self.drug1_effect.shape[0]

    @property
    def n_genes(self) -> int:
        return self.drug1_effect.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return self.drug1_effect.shape

    @property
    def has_variances(self) -> bool:
        return self.drug1_var is not None

    @property
    def drug1_measured(self) -> np.ndarray:
        return ~np.isnan(self.drug1_effect)

    @property
    def drug2_measured(self) -> np.ndarray:
        return ~np.isnan(self.drug2_effect)

    def drug_axis(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Effects and variances as (n_pairs x 2 x n_genes), drug 1 then drug 2 on axis 1: the torch nets' batch
        layout (augmentation swaps along that axis); variances None when the batch has none."""
        effects = np.stack([self.drug1_effect, self.drug2_effect], axis=1)
        return effects, (np.stack([self.drug1_var, self.drug2_var], axis=1) if self.has_variances else None)

    def swapped(self) -> "PairBatch":
        """The same pairs with drug 1 and drug 2 exchanged (a combination is unordered)."""
        return PairBatch(self.drug2_effect, self.drug1_effect, self.drug2_var, self.drug1_var, self.drug2_name,
                         self.drug1_name)

    def take(self, rows: np.ndarray | slice) -> "PairBatch":
        """The pairs at `rows` (positions, a mask or a slice)."""
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return PairBatch(pick(self.drug1_effect), pick(self.drug2_effect), pick(self.drug1_var), pick(self.drug2_var),
                         pick(self.drug1_name), pick(self.drug2_name))
