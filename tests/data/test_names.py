"""Gene and drug names are keys: a data set, a library or a query signature with a repeated name is refused, naming
it (one rule: combomap.data.dataset.check_unique)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.query.signature import as_signature
from tests.conftest import random_dataset


def test_a_data_set_with_repeated_genes_is_refused_naming_them() -> None:
    data = random_dataset(4, 5, seed=0)
    with pytest.raises(DataError, match=r"<memory>: duplicate gene name 'A'$"):
        dataclasses.replace(data, genes=["A", "B", "A", "D", "E"])
    with pytest.raises(DataError, match=r"<memory>: duplicate gene names \['B', 'A'\] \(2 in all\)$"):
        dataclasses.replace(data, genes=["A", "B", "B", "A", "A"])
    assert dataclasses.replace(data, genes=["A", "B", "C", "D", "E"]).genes == ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize("genes,drugs,message", [
    (["G0", "G1", "G1"], ["D0", "D1"], "lib.npy: duplicate gene name 'G1'"),
    (["G0", "G1", "G2"], ["D0", "D0"], "lib.npy: duplicate drug name 'D0'"),
    (["G0", "G0", "G1"], ["D0", "D0"], "lib.npy: duplicate gene name 'G0'"),  # genes are checked first
])
def test_a_library_with_a_repeated_gene_or_drug_is_refused(genes: list[str], drugs: list[str], message: str) -> None:
    effects = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(DataError) as error:
        DrugLibrary(effects=effects, genes=genes, drugs=drugs, source="lib.npy")
    assert str(error.value) == message


def test_a_query_signature_with_repeated_genes_is_refused_by_the_same_rule() -> None:
    with pytest.raises(DataError, match=r"^q.csv: duplicate gene names \['G2', 'G1'\] \(2 in all\)$"):
        as_signature(pd.Series([1.0, 2.0, 3.0, 4.0], index=["G1", "G2", "G2", "G1"]), source="q.csv")
