"""The one in-memory type for a combination data set, validated on construction."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from combomap.errors import UserError

COMBO_COLUMNS = ["combo", "study", "drug1", "drug2"]


class DataError(UserError):
    """Bad input data; the message names the file, shape or gene at fault."""


def _as_float32(name: str, values: np.ndarray | None, shape: tuple[int, int] | None, source: str) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values)
    if array.ndim != 2:
        raise DataError(f"{source}: {name} must be 2-D (n_combos x n_genes), got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise DataError(f"{source}: {name} has shape {array.shape}, expected {shape} (n_combos x n_genes)")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{source}: {name} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if np.isinf(array).any():
        row, col = np.argwhere(np.isinf(array))[0]
        raise DataError(f"{source}: {name} holds +/-inf (first at combo row {row}, gene column {col})")
    return array


def values_digest(arrays: Iterable[np.ndarray | None], names: Iterable[Iterable[str] | str]) -> str:
    """10 hex digits of SHA-256 over arrays (None counts as absent) and names: the fingerprint of a data set's values
    (the length MLflow's dataset inputs show)."""
    hashed = hashlib.sha256()
    for values in arrays:
        hashed.update(b"-" if values is None else np.ascontiguousarray(values).tobytes())
    for part in names:
        hashed.update((part if isinstance(part, str) else "\n".join(part)).encode())
    return hashed.hexdigest()[:10]


def check_unique(names: Iterable[str], kind: str, source: str) -> None:
    """Names index the columns (genes) or rows (drugs, signature genes) by name, so a repeat would be ambiguous:
    refuse it, naming the repeated names (the first ten)."""
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for name in names:
        if name in seen:
            repeated[name] = None
        seen.add(name)
    if repeated:
        names_shown = list(repeated)
        shown = f"name {names_shown[0]!r}" if len(names_shown) == 1 else f"names {names_shown[:10]} ({len(names_shown)} in all)"
        raise DataError(f"{source}: duplicate {kind} {shown}")


@dataclass
class ComboDataset:
    """Single-drug effects, their variances and the combination effect for each combo.

    Arrays are float32 (n_combos x n_genes); NaN means not measured. Variances may be None
    when the source had none (e.g. an X/y pair without Xv).
    """

    drug1_effect: np.ndarray
    drug2_effect: np.ndarray
    combo_effect: np.ndarray
    genes: list[str]
    combos: pd.DataFrame
    drug1_var: np.ndarray | None = None
    drug2_var: np.ndarray | None = None
    source: str = field(default="<memory>", compare=False)

    def __post_init__(self) -> None:
        source = self.source
        self.drug1_effect = _as_float32("drug1_effect", self.drug1_effect, None, source)
        shape = self.drug1_effect.shape
        if shape[0] == 0 or shape[1] == 0:
            raise DataError(f"{source}: empty data set, shape {shape}")
        self.drug2_effect = _as_float32("drug2_effect", self.drug2_effect, shape, source)
        self.combo_effect = _as_float32("combo_effect", self.combo_effect, shape, source)
        self.drug1_var = _as_float32("drug1_var", self.drug1_var, shape, source)
        self.drug2_var = _as_float32("drug2_var", self.drug2_var, shape, source)
        for name in ("drug1_var", "drug2_var"):
            var = getattr(self, name)
            if var is not None and (var < 0).any():
                row, col = np.argwhere(var < 0)[0]
                raise DataError(
                    f"{source}: {name} has a negative variance at combo row {row}, gene {self.genes[col] if col < len(self.genes) else col}"
                )
        self.genes = [str(g) for g in self.genes]
        if len(self.genes) != shape[1]:
            raise DataError(f"{source}: {len(self.genes)} gene names for {shape[1]} gene columns")
        check_unique(self.genes, "gene", source)
        combos = pd.DataFrame(self.combos).reset_index(drop=True)
        missing = [c for c in COMBO_COLUMNS if c not in combos.columns]
        if missing:
            raise DataError(f"{source}: combos table lacks columns {missing}")
        if len(combos) != shape[0]:
            raise DataError(f"{source}: combos table has {len(combos)} rows for {shape[0]} combos")
        combos = combos[COMBO_COLUMNS].astype(str)
        if combos["combo"].duplicated().any():
            raise DataError(f"{source}: duplicate combo id {combos['combo'][combos['combo'].duplicated()].iloc[0]!r}")
        self.combos = combos
        empty = np.isnan(self.combo_effect).all(axis=1)
        if empty.all():
            raise DataError(f"{source}: no combination effect is measured (all {empty.size} combos are NaN)")
        if empty.any():
            raise DataError(f"{source}: combo {combos['combo'].iloc[int(np.argmax(empty))]!r} has no measured gene")
        high, low = np.nanmax(self.combo_effect), np.nanmin(self.combo_effect)
        if high == low and np.count_nonzero(~np.isnan(self.combo_effect)) > 1:
            raise DataError(f"{source}: every measured combination effect is {float(high):g}: nothing to learn or "
                            "evaluate (check the combination values: y)")

    @property
    def n_combos(self) -> int:
        return self.combo_effect.shape[0]

    @property
    def n_genes(self) -> int:
        return self.combo_effect.shape[1]

    @property
    def has_variances(self) -> bool:
        return self.drug1_var is not None and self.drug2_var is not None

    def digest(self) -> str:
        """A fingerprint of the values (effects, variances, genes, combos): equal data sets, equal digests, whatever
        file or generator they came from."""
        return values_digest([self.drug1_effect, self.drug2_effect, self.combo_effect, self.drug1_var, self.drug2_var],
                             [self.genes, self.combos.to_csv(index=False)])

    def subset(self, rows: np.ndarray | list[int]) -> "ComboDataset":
        """Rows (combos) by position, as a new validated data set."""
        rows = np.asarray(rows)
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return ComboDataset(
            drug1_effect=self.drug1_effect[rows],
            drug2_effect=self.drug2_effect[rows],
            combo_effect=self.combo_effect[rows],
            genes=list(self.genes),
            combos=self.combos.iloc[rows].reset_index(drop=True),
            drug1_var=pick(self.drug1_var),
            drug2_var=pick(self.drug2_var),
            source=self.source,
        )

    def swapped(self) -> "ComboDataset":
        """The same combos with drug1 and drug2 exchanged (for order-invariance checks)."""
        combos = self.combos.copy()
        combos[["drug1", "drug2"]] = combos[["drug2", "drug1"]].to_numpy()
        return ComboDataset(
            drug1_effect=self.drug2_effect,
            drug2_effect=self.drug1_effect,
            combo_effect=self.combo_effect,
            genes=list(self.genes),
            combos=combos,
            drug1_var=self.drug2_var,
            drug2_var=self.drug1_var,
            source=self.source,
        )
