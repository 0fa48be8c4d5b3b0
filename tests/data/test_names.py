"""Gene and drug names are keys: a data set or a library with a repeated name is refused, naming it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from tests.conftest import random_dataset


def test_a_data_set_with_a_repeated_gene_is_refused_naming_the_first_repeat() -> None:
    data = random_dataset(4, 5, seed=0)
    genes = ["A", "B", "A", "B", "C"]
    with pytest.raises(DataError, match=r"<memory>: duplicate gene name 'A'$"):
        dataclasses.replace(data, genes=genes)
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
