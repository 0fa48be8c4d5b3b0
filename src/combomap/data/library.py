"""A library of single-drug signatures (what connectivity mapping and prediction search over)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from combomap.data.dataset import DataError, _as_float32, check_unique, values_digest

# the one answer to "A+A" of every command: combomap-query ranks pairs of two different drugs, so predict does too
SELF_PAIR = "a drug paired with itself is not a combination here (pairs are of two different drugs)"


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

    def digest(self) -> str:
        """A fingerprint of the signatures, variances, genes and drugs (combomap.data.dataset.values_digest)."""
        return values_digest([self.effects, self.variances], [self.genes, self.drugs])

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

    def uninformative(self, columns: np.ndarray | None = None) -> np.ndarray:
        """Per drug, True when its measured values (on `columns`, None: every gene) are all equal (all 0, or one
        constant) or absent: such a signature ranks no gene above another, so its correlations are undefined and a
        pair with it only repeats its partner."""
        effects = self.effects if columns is None else self.effects[:, columns]
        if effects.shape[1] == 0:
            return np.ones(self.n_drugs, dtype=bool)
        return ~(np.fmax.reduce(effects, axis=1) > np.fmin.reduce(effects, axis=1))  # NaN rows compare False

    def without(self, drugs: Iterable[str]) -> DrugLibrary:
        """The library less the named drugs (rows kept in order)."""
        dropped = set(drugs)
        keep = np.array([name not in dropped for name in self.drugs], dtype=bool)
        return DrugLibrary(effects=self.effects[keep], genes=list(self.genes),
                           drugs=[d for d, kept in zip(self.drugs, keep) if kept],
                           variances=None if self.variances is None else self.variances[keep], source=self.source)


def uninformative_text(names: list[str]) -> str:
    """The drugs at fault, named in one line (the first ten, then the count)."""
    shown = ", ".join(repr(name) for name in names[:10])
    return f"{shown} and {len(names) - 10} more" if len(names) > 10 else shown


def informative_library(library: DrugLibrary) -> tuple[DrugLibrary, list[str]]:
    """The library without its uninformative drugs (`DrugLibrary.uninformative`) and their names; a library with
    no informative drug is refused, since every score and pair of it would be blank."""
    mask = library.uninformative()
    names = [name for name, bad in zip(library.drugs, mask) if bad]
    if not names:
        return library, []
    if len(names) == library.n_drugs:
        raise DataError(f"{library.source}: no drug has an informative signature: the measured values of all "
                        f"{library.n_drugs} drugs are constant (e.g. all 0) or missing ({uninformative_text(names)}); "
                        "check the library's values")
    return library.without(names), names


@dataclass(frozen=True)
class WithoutDrugs:
    """A library source (anything with load()) less some drugs: what a Dask worker loads when the driver skipped
    uninformative drugs, so that both enumerate the same pairs."""

    source: Any
    drugs: tuple[str, ...]

    def load(self) -> DrugLibrary:
        return self.source.load().without(self.drugs)


def parse_pair(spec: Any) -> tuple[str, str]:
    """"A+B" or [A, B] -> (A, B): a pair of two different library drugs as the commands take it."""
    parts = [p.strip() for p in spec.split("+")] if isinstance(spec, str) else [str(p).strip() for p in spec]
    if len(parts) != 2 or not all(parts):
        raise DataError(f"pair {spec!r}: write a pair as 'drug1+drug2' or [drug1, drug2]")
    if parts[0] == parts[1]:
        raise DataError(f"pair {spec!r}: {SELF_PAIR}")
    return parts[0], parts[1]
