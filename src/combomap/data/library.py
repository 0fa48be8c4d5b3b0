"""A library of single-drug signatures (what connectivity mapping and prediction search over)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from combomap.data.dataset import DataError, _as_float32, check_unique


@dataclass
class DrugLibrary:
    """effects (and optional variances): float32 (n_drugs x n_genes), NaN = unmeasured."""

    effects: np.ndarray
    genes: list[str]
    drugs: list[str]
    variances: np.ndarray | None = None
    source: str = field(default="<memory>", compare=False)

    def __post_init__(self) -> None:
        self.effects = _as_float32("effects", self.effects, None, self.source)
        shape = self.effects.shape
        if shape[0] == 0 or shape[1] == 0:
            raise DataError(f"{self.source}: empty drug library, shape {shape}")
        self.variances = _as_float32("variances", self.variances, shape, self.source)
        if self.variances is not None and (self.variances < 0).any():
            raise DataError(f"{self.source}: negative variance in the drug library")
        self.genes = [str(g) for g in self.genes]
        self.drugs = [str(d) for d in self.drugs]
        if len(self.genes) != shape[1]:
            raise DataError(f"{self.source}: {len(self.genes)} gene names for {shape[1]} gene columns")
        if len(self.drugs) != shape[0]:
            raise DataError(f"{self.source}: {len(self.drugs)} drug names for {shape[0]} signatures")
        check_unique(self.genes, "gene", self.source)
        check_unique(self.drugs, "drug", self.source)

    @property
    def n_drugs(self) -> int:
        return self.effects.shape[0]

    @property
    def n_genes(self) -> int:
        return self.effects.shape[1]

    def index_of(self, drugs: list[str]) -> np.ndarray:
        """Row positions of named drugs; unknown names are a clear error."""
        position = {name: i for i, name in enumerate(self.drugs)}
        unknown = [d for d in drugs if d not in position]
        if unknown:
            raise DataError(f"{self.source}: unknown drug(s) {unknown[:10]} (library has {self.n_drugs} drugs)")
        return np.array([position[d] for d in drugs], dtype=np.int64)


def parse_pair(spec: Any) -> tuple[str, str]:
    """"A+B" or [A, B] -> (A, B): a pair of library drugs as the commands take it."""
    parts = [p.strip() for p in spec.split("+")] if isinstance(spec, str) else [str(p).strip() for p in spec]
    if len(parts) != 2 or not all(parts):
        raise DataError(f"pair {spec!r}: write a pair as 'drug1+drug2' or [drug1, drug2]")
    return parts[0], parts[1]
