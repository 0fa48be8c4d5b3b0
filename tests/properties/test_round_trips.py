"""The writers and readers are inverses: a data set or a drug library written in any format reads back with the
same values (NaN where unmeasured, float32 bit for bit), the same gene, drug, study and combination names, in the
same order."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.export import DATASET_FORMATS, GCTX_VARIANCES_FILE, LIBRARY_FORMATS, write_dataset, write_library
from combomap.data.h5ad import read_combo_h5ad, read_library_h5ad, write_library_h5ad
from combomap.data.io import read_npy_dir, read_tidy, write_npy_dir
from combomap.data.library import DrugLibrary
from combomap.data.library_io import read_gctx, read_library_npy, read_library_tidy
from tests.conftest import random_dataset
from tests.properties.strategies import NAMES, fast, unique_names

# Every finite float32 (subnormals and the extremes too) and NaN; variances are >= 0.
ANY_FLOAT32 = st.floats(width=32, allow_infinity=False, allow_nan=True)
NON_NEGATIVE_FLOAT32 = st.floats(0.0, width=32, allow_infinity=False) | st.just(float("nan"))


def _arrays(shape: tuple[int, int], elements=ANY_FLOAT32):
    return hnp.arrays(np.float32, shape, elements=elements)


@st.composite
def datasets(draw) -> ComboDataset:
    n_combos, n_genes = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    shape = (n_combos, n_genes)
    combo_effect = draw(_arrays(shape))
    for row in range(n_combos):  # every combination has a measured gene
        if np.isnan(combo_effect[row]).all():
            combo_effect[row, draw(st.integers(0, n_genes - 1))] = draw(st.floats(-5, 5, width=32))
    measured = combo_effect[~np.isnan(combo_effect)]
    if np.unique(measured).size < 2:  # a data set whose combinations all measure one value is refused (degenerate)
        combo_effect[0, 0], combo_effect[0, 1] = np.float32(0.5), np.float32(-1.25)
    with_variances = draw(st.booleans())
    combos = pd.DataFrame({
        "combo": draw(unique_names(n_combos)),
        "study": draw(st.lists(NAMES, min_size=n_combos, max_size=n_combos)),
        "drug1": draw(st.lists(NAMES, min_size=n_combos, max_size=n_combos)),
        "drug2": draw(st.lists(NAMES, min_size=n_combos, max_size=n_combos)),
    })  # fmt: skip
    return ComboDataset(
        drug1_effect=draw(_arrays(shape)), drug2_effect=draw(_arrays(shape)), combo_effect=combo_effect,
        genes=draw(unique_names(n_genes)), combos=combos,
        drug1_var=draw(_arrays(shape, NON_NEGATIVE_FLOAT32)) if with_variances else None,
        drug2_var=draw(_arrays(shape, NON_NEGATIVE_FLOAT32)) if with_variances else None,
    )  # fmt: skip


@st.composite
def libraries(draw, names: st.SearchStrategy[str] = NAMES) -> DrugLibrary:
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 5)))
    variances = draw(st.none() | _arrays(shape, NON_NEGATIVE_FLOAT32))
    return DrugLibrary(effects=draw(_arrays(shape)), genes=draw(unique_names(shape[1], names)),
                       drugs=draw(unique_names(shape[0], names)), variances=variances)  # fmt: skip


def _same_block(read: np.ndarray | None, written: np.ndarray | None, name: str) -> None:
    if written is None:
        assert read is None, name
        return
    assert read is not None and read.dtype == np.float32, name
    np.testing.assert_array_equal(read, written, err_msg=name)  # NaN at the same places
    same = np.isnan(written) | (read.view(np.uint32) == written.view(np.uint32))
    assert same.all(), f"{name}: not bit for bit (signed zero?)"


READ_DATASET = {"npy": read_npy_dir, "h5ad": read_combo_h5ad}


@pytest.mark.parametrize("fmt", DATASET_FORMATS)
def test_dataset_round_trip(fmt: str) -> None:
    @fast(12)
    @given(datasets())
    def round_trip(dataset: ComboDataset) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = write_dataset(dataset, Path(folder) / "out", fmt)
            read = READ_DATASET.get(fmt, read_tidy)(path)
        for name in ("drug1_effect", "drug2_effect", "combo_effect", "drug1_var", "drug2_var"):
            _same_block(getattr(read, name), getattr(dataset, name), name)
        assert read.genes == dataset.genes
        pd.testing.assert_frame_equal(read.combos, dataset.combos)

    round_trip()


def _read_gctx_with_variances(path: Path) -> DrugLibrary:
    variances = path.parent / GCTX_VARIANCES_FILE
    return read_gctx(path, variances_path=variances if variances.is_file() else None)


READ_LIBRARY = {"npy": read_library_npy, "gctx": _read_gctx_with_variances}


@pytest.mark.parametrize("fmt", [*LIBRARY_FORMATS, "h5ad"])
def test_library_round_trip(fmt: str) -> None:
    @fast(12)
    @given(libraries(NAMES))
    def round_trip(library: DrugLibrary) -> None:
        with tempfile.TemporaryDirectory() as folder:
            if fmt == "h5ad":
                path = write_library_h5ad(library, Path(folder) / "library.h5ad")
                read = read_library_h5ad(path)
            else:
                path = write_library(library, Path(folder) / "out", fmt)
                read = READ_LIBRARY.get(fmt, read_library_tidy)(path)
        _same_block(read.effects, library.effects, "effects")
        _same_block(read.variances, library.variances, "variances")
        assert (read.genes, read.drugs) == (library.genes, library.drugs)

    round_trip()


@pytest.mark.parametrize("name", ["a\u2028b", "a\x0bb", "a\x85b", "\ufeffa"])
@pytest.mark.parametrize("fmt", ["npy", "dataset"])
def test_a_name_a_line_file_cannot_give_back_is_refused_on_writing(tmp_path: Path, fmt: str, name: str) -> None:
    """Line breaks other than \\n and \\r split a line on reading, a leading byte-order mark is dropped: refused."""
    with pytest.raises(DataError, match="cannot be written"):
        if fmt == "npy":
            write_library(DrugLibrary(effects=np.zeros((1, 2), dtype=np.float32), genes=[name, "g"], drugs=["d"]),
                          tmp_path / "out", "npy")
        else:
            write_npy_dir(replace(random_dataset(2, 2), genes=[name, "g"]), tmp_path / "data")
