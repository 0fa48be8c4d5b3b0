"""Libraries with uninformative drugs (constant, all 0, unmeasured): which drugs are skipped, what a query then
ranks, and when the library or an include list is refused."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary, WithoutDrugs, informative_library, parse_pair
from combomap.query.search import skip_uninformative
from tests.query.helpers import query_from, ranked, small_library


def _blanked(library: DrugLibrary) -> DrugLibrary:
    effects = library.effects.copy()
    effects[1] = 0.0  # all 0
    effects[3] = np.nan  # never measured
    effects[5] = np.where(np.arange(library.n_genes) % 2 == 0, np.nan, -2.5)  # measured values all -2.5
    effects[7] = np.nan
    effects[7, 4] = 1.0  # one measured value
    effects[8, :-1] = 0.0  # 0 but for the last gene: informative
    return DrugLibrary(effects=effects, genes=library.genes, drugs=library.drugs, variances=library.variances,
                       source="lib")


def test_uninformative_drugs_are_those_of_one_measured_value() -> None:
    library = _blanked(small_library(n_drugs=10, n_genes=12, missing=0.0))
    assert np.flatnonzero(library.uninformative()).tolist() == [1, 3, 5, 7]
    assert np.flatnonzero(library.uninformative(np.array([0, 2]))).tolist() == [1, 3, 5, 7, 8]  # 8 is 0 there
    assert library.uninformative(np.array([], dtype=np.int64)).all()


def test_informative_library_drops_them_and_keeps_the_rest_exactly() -> None:
    library = _blanked(small_library(n_drugs=10, n_genes=12, missing=0.0))
    kept, skipped = informative_library(library)
    assert skipped == ["D01", "D03", "D05", "D07"]
    rows = [0, 2, 4, 6, 8, 9]
    assert kept.drugs == [library.drugs[i] for i in rows] and kept.genes == library.genes and kept.source == "lib"
    np.testing.assert_array_equal(kept.effects, library.effects[rows])
    np.testing.assert_array_equal(kept.variances, library.variances[rows])
    plain = small_library(n_drugs=4, n_genes=6)
    assert informative_library(plain) == (plain, [])


def test_a_library_of_no_informative_drug_is_refused() -> None:
    for value in (0.0, 3.0, np.nan):
        library = DrugLibrary(effects=np.full((12, 5), value, dtype=np.float32), genes=list("abcde"),
                              drugs=[f"d{i}" for i in range(12)], source="zeros.npy")
        with pytest.raises(DataError) as error:
            informative_library(library)
        assert str(error.value) == (
            "zeros.npy: no drug has an informative signature: the measured values of all 12 drugs are constant "
            "(e.g. all 0) or missing ('d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9' and 2 more); "
            "check the library's values")


def test_a_query_skips_them_with_a_warning_and_an_include_of_one_is_refused(caplog) -> None:
    library = _blanked(small_library(n_drugs=10, n_genes=30, missing=0.0))
    with caplog.at_level(logging.WARNING, logger="combomap.query.search"):
        kept, skipped = skip_uninformative(library, ["D00"])
    assert "lib: skipped 4 drug(s) whose values are constant (e.g. all 0) or missing: 'D01', 'D03', 'D05', 'D07'" \
        in caplog.text
    result = ranked(query_from(kept, 0), kept, pairs_top_k=None)
    assert set(result.drugs["drug"]) == set(kept.drugs) and result.drugs["score"].notna().all()
    assert result.report["n_pairs"] == 15 and result.pairs["score"].notna().all()
    with pytest.raises(DataError, match=r"pairs.include: drug\(s\) 'D03', 'D07' have constant .* in lib"):
        skip_uninformative(library, ["D00", "D03", "D07"])


def test_workers_load_the_same_reduced_library() -> None:
    library = small_library(n_drugs=5, n_genes=6)

    class Source:
        def load(self) -> DrugLibrary:
            return library

        def __repr__(self) -> str:
            return "Source()"

    loader = WithoutDrugs(Source(), ("D01", "D04"))
    assert loader.load().drugs == ["D00", "D02", "D03"]
    assert "D01" in repr(loader) and "Source()" in repr(loader)  # the workers' cache key differs from the source's
    assert pickle.loads(pickle.dumps(WithoutDrugs("path", ("D01",)))) == WithoutDrugs("path", ("D01",))


def test_a_pair_is_of_two_different_drugs() -> None:
    assert parse_pair(" a + b ") == ("a", "b")
    with pytest.raises(DataError, match="'a\\+a': a drug paired with itself"):
        parse_pair("a+a")
