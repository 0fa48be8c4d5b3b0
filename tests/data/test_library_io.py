"""Drug library loaders: npy directory, tidy table, GCTX (round trip, memory-bounded slice read)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.data.library_io import (
    GCTX_COL_IDS,
    GCTX_MATRIX,
    GCTX_ROW_IDS,
    gctx_ids,
    load_library,
    read_gctx,
    read_library_npy,
    read_library_tidy,
    write_gctx,
    write_library_npy,
    write_library_tidy,
)
from tests.query.helpers import small_library


def _same(a: DrugLibrary, b: DrugLibrary) -> None:
    assert a.genes == b.genes and a.drugs == b.drugs
    np.testing.assert_array_equal(a.effects, b.effects)
    if a.variances is None:
        assert b.variances is None
    else:
        np.testing.assert_array_equal(a.variances, b.variances)


def test_npy_directory_round_trip_and_errors(tmp_path: Path) -> None:
    library = small_library(n_drugs=7, n_genes=12, seed=1)
    write_library_npy(library, tmp_path / "lib")
    _same(library, read_library_npy(tmp_path / "lib"))
    _same(library, load_library({"source": "npy", "dir": str(tmp_path / "lib")}))
    bare = tmp_path / "bare"
    bare.mkdir()
    np.save(bare / "effects.npy", np.ones((3, 4)))
    loaded = read_library_npy(bare)
    assert loaded.drugs == ["drug0001", "drug0002", "drug0003"] and loaded.genes[0] == "gene0001"
    (bare / "genes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="2 gene names for 4"):
        read_library_npy(bare)
    np.save(bare / "effects.npy", np.array([{"x": 1}], dtype=object))
    with pytest.raises(DataError, match="refusing to unpickle"):
        read_library_npy(bare)
    with pytest.raises(DataError, match="effects.npy"):
        read_library_npy(tmp_path / "nowhere")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_tidy_table_round_trip(tmp_path: Path, suffix: str) -> None:
    library = small_library(n_drugs=5, n_genes=9, seed=2, missing=0.2)
    path = write_library_tidy(library, tmp_path / f"lib{suffix}")
    _same(library, read_library_tidy(path))


def test_tidy_table_errors(tmp_path: Path) -> None:
    path = tmp_path / "lib.csv"
    path.write_text("drug,gene,effect\nA,g1,1\nA,g2,2\nB,g1,3\nA,g1,4\n")
    with pytest.raises(DataError, match=r"duplicate \(drug, gene\) = \('A', 'g1'\)"):
        read_library_tidy(path)
    path.write_text("drug,gene,effect\nA,g1,1\nB,g2,x\n")
    with pytest.raises(DataError, match="not numeric: 'x'"):
        read_library_tidy(path)
    path.write_text("drug,effect\nA,1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['gene'\]"):
        read_library_tidy(path)
    path.write_text("drug,gene,effect\nA,g1,1\nB,g2,2\n")
    loaded = read_library_tidy(path)
    assert loaded.drugs == ["A", "B"] and loaded.genes == ["g1", "g2"]
    assert np.isnan(loaded.effects[0, 1]) and loaded.effects[1, 1] == 2.0


def test_gctx_round_trip_layout_and_variances(tmp_path: Path) -> None:
    library = small_library(n_drugs=6, n_genes=11, seed=3)
    path = write_gctx(library, tmp_path / "lib.gctx")
    with h5py.File(path, "r") as handle:  # cmapPy's layout: (n_signatures, n_genes), ids under META
        assert handle[GCTX_MATRIX].shape == (6, 11)
        assert [s.decode() for s in handle[GCTX_COL_IDS][()]] == library.drugs
        assert [s.decode() for s in handle[GCTX_ROW_IDS][()]] == library.genes
    write_gctx(library, tmp_path / "var.gctx", variances=True)
    _same(library, read_gctx(path, variances_path=tmp_path / "var.gctx"))
    assert gctx_ids(path) == (library.genes, library.drugs)
    cfg = {"source": "gctx", "path": str(path), "genes": None, "signatures": None, "variances_path": None}
    loaded = load_library(cfg)
    np.testing.assert_array_equal(loaded.effects, library.effects) and loaded.variances is None


def test_gctx_slice_read_is_blocked_and_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = small_library(n_drugs=300, n_genes=50, seed=4)
    path = write_gctx(library, tmp_path / "big.gctx")
    signatures = [library.drugs[i] for i in (250, 3, 4, 5, 6, 120, 122, 299)]
    genes = [library.genes[j] for j in (40, 2, 7)]
    reads: list[tuple[int, int]] = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        out = original(self, key)
        if self.name == GCTX_MATRIX:
            reads.append(np.shape(out))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    sliced = read_gctx(path, genes=genes, signatures=signatures, block_mb=3 * 50 * 4 / 2**20)  # 3 rows per block
    rows = sorted(library.drugs.index(s) for s in signatures)
    cols = sorted(library.genes.index(g) for g in genes)
    assert sliced.drugs == [library.drugs[r] for r in rows] and sliced.genes == [library.genes[c] for c in cols]
    np.testing.assert_array_equal(sliced.effects, library.effects[np.ix_(rows, cols)])
    assert reads and max(r[0] for r in reads) <= 6  # never the whole matrix, a few rows at a time
    with pytest.raises(DataError, match="unknown signature id"):
        read_gctx(path, signatures=["nope"])
    with pytest.raises(DataError, match="unknown gene id"):
        read_gctx(path, genes=["G1", "nope"])
    bad = tmp_path / "bad.gctx"
    with h5py.File(bad, "w") as handle:
        handle.create_dataset(GCTX_MATRIX, data=np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(DataError, match="not a GCTX file"):
        read_gctx(bad)
