"""Drug library loaders: npy directory, tidy table, GCTX (round trip, memory-bounded slice read)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from combomap.config.data import library_source
from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.data.library_io import (
    GCTX_COL_IDS,
    GCTX_MATRIX,
    GCTX_ROW_IDS,
    gctx_ids,
    GctxLibrary,
    H5adLibrary,
    NpyLibrary,
    SimulatedLibrary,
    TidyLibrary,
    library_from_dict,
    load_library,
    read_gctx,
    read_library_npy,
    read_library_tidy,
    write_gctx,
    write_library_npy,
    write_library_tidy,
)
from combomap.data.simulate import simulate_library
from combomap.settings import SettingsError
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
    _same(library, load_library(NpyLibrary(dir=str(tmp_path / "lib"))))
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
    loaded = load_library(GctxLibrary(path=str(path)))
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


@pytest.mark.parametrize(("option", "required", "schema"), [
    ("simulated", {}, SimulatedLibrary), ("npy", {"dir": "d"}, NpyLibrary), ("tidy", {"path": "p"}, TidyLibrary),
    ("gctx", {"path": "p"}, GctxLibrary), ("h5ad", {"path": "p"}, H5adLibrary),
])
def test_each_option_composes_into_its_schema(compose_cfg, option: str, required: dict, schema: type) -> None:
    cfg = compose_cfg("query", [f"library={option}", *[f"library.{k}={v}" for k, v in required.items()], "signature=q.csv"])
    source = library_source(cfg.library)
    assert type(source) is schema and source.source == option and source == schema(**required)


def test_simulated_library_follows_the_data_set(compose_cfg) -> None:
    cfg = compose_cfg("data_tool", ["data.preset=tiny", "data.seed=4", "+data.overrides.n_programs=8",
                                    "library.n_drugs=5", "out=unused"])
    source = library_source(cfg.library)
    assert source == SimulatedLibrary(n_drugs=5, preset="tiny", seed=4, overrides={"n_programs": 8})
    _same(load_library(source), simulate_library(n_drugs=5, preset="tiny", seed=4, n_programs=8))


@pytest.mark.parametrize("job", ["predict", "query", "stack", "data_tool"])
def test_every_job_takes_the_library_group_with_one_syntax(compose_cfg, tmp_path: Path, job: str) -> None:
    required = {"predict": ["model_dir=m", "pairs=[a+b]"], "query": ["signature=q.csv"], "data_tool": ["out=o"]}
    required = required.get(job, [])
    for option, setting, schema in [("npy", f"dir={tmp_path}", NpyLibrary(dir=str(tmp_path))),
                                    ("tidy", "path=lib.csv", TidyLibrary(path="lib.csv")),
                                    ("h5ad", "path=lib.h5ad", H5adLibrary(path="lib.h5ad")),
                                    ("gctx", "path=lib.gctx", GctxLibrary(path="lib.gctx"))]:
        cfg = compose_cfg(job, [*required, f"library={option}", f"library.{setting}"])
        assert library_source(cfg.library) == schema
    simulated = library_source(compose_cfg(job, [*required, "library=simulated", "library.n_drugs=7"]).library)
    assert type(simulated) is SimulatedLibrary and simulated.n_drugs == 7


def test_predict_defaults_to_an_npy_library_and_refuses_switching_through_source(compose_cfg, tmp_path: Path) -> None:
    def source(job: str, overrides: list[str]):
        required = ["signature=q.csv"] if job == "query" else ["model_dir=m", "pairs=[a+b]"]
        return library_source(compose_cfg(job, [*required, *overrides]).library)

    assert source("predict", [f"library.dir={tmp_path}"]) == NpyLibrary(dir=str(tmp_path))
    assert source("predict", ["library.source=npy", "library.dir=d"]) == NpyLibrary(dir="d")
    with pytest.raises(SettingsError, match="library.dir is missing"):
        source("predict", [])
    with pytest.raises(SettingsError, match=r"^library.source=simulated does not change .*with library=simulated"):
        source("predict", ["library.source=simulated"])
    choices = r"\['gctx', 'h5ad', 'npy', 'simulated', 'tidy'\]"
    with pytest.raises(SettingsError, match=rf"library.source must be one of {choices}, got 'hdf5'"):
        source("query", ["library.source=hdf5"])


def test_a_library_mapping_listing_several_sources_settings_keeps_its_own() -> None:
    assert library_source({"source": "tidy", "path": "lib.csv", "dir": None, "n_drugs": 3}) == TidyLibrary(path="lib.csv")
    with pytest.raises(SettingsError, match="library.colour is not a setting of library"):
        library_source({"source": "npy", "dir": "d", "colour": "red"})


def test_a_source_travels_as_a_plain_dict_with_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = GctxLibrary(path="lib.gctx", variances_path="~/var.gctx", genes=["g1"])
    moved = source.with_absolute_paths()
    assert moved.path == str(tmp_path / "lib.gctx") and moved.variances_path == str(Path("~/var.gctx").expanduser())
    assert moved.genes == ["g1"] and source.path == "lib.gctx"
    assert library_from_dict(moved.to_dict()) == moved
    simulated = SimulatedLibrary(n_drugs=3, preset="tiny", overrides={"n_programs": 8})
    assert simulated.with_absolute_paths() == simulated and library_from_dict(simulated.to_dict()) == simulated
    with pytest.raises(SettingsError, match="library.source must be one of"):
        library_from_dict({"source": "hdf5"})
    with pytest.raises(SettingsError, match="library.n_drugs must be >= 1"):
        library_from_dict({"source": "simulated", "n_drugs": 0})
    with pytest.raises(TypeError, match="typed library source"):
        load_library({"source": "npy", "dir": "d"})  # type: ignore[arg-type]
