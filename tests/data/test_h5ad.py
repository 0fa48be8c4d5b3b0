"""AnnData (.h5ad) for bulk combination data and drug libraries: exact round trips, atomic writes, the
config paths (data=h5ad, library=h5ad, combomap-data format=h5ad) and clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest

from combomap.jobs.data import run
from combomap.data.dataset import DataError
from combomap.data.h5ad import read_combo_h5ad, read_library_h5ad, write_combo_h5ad, write_library_h5ad
from combomap.data.library import DrugLibrary
from combomap.config.data import data_source, library_source
from combomap.data.library_io import H5adLibrary, load_library
from combomap.data.loading import load_dataset
from tests.conftest import random_dataset
from tests.data.test_io import assert_same, awkward_dataset, without_variances


def test_combo_round_trip_is_exact_nan_pattern_included(tmp_path: Path) -> None:
    dataset = awkward_dataset()  # NaN in places, a gene never measured, drug "NA", an empty study, quotes
    written = write_combo_h5ad(dataset, tmp_path / "set.h5ad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.h5ad"]  # no staging file left behind
    back = read_combo_h5ad(written)
    assert_same(back, dataset)
    for name in ("drug1_effect", "drug2_effect", "combo_effect", "drug1_var", "drug2_var"):
        np.testing.assert_array_equal(np.isnan(getattr(back, name)), np.isnan(getattr(dataset, name)))
    assert np.isnan(back.combo_effect[:, 1]).all() and np.isnan(back.combo_effect[0, 2])  # G1 never, G2 not in combo 0
    adata = anndata.read_h5ad(written)  # a plain AnnData for other tools: obs = combos, var = genes
    assert adata.shape == (6, 9) and list(adata.obs.columns) == ["study", "drug1", "drug2"]
    assert sorted(adata.layers.keys()) == ["d1", "d2", "v1", "v2", "y"]
    assert list(adata.obs_names) == list(dataset.combos["combo"])


def test_combo_round_trip_without_variances(tmp_path: Path) -> None:
    dataset = without_variances(random_dataset(n_combos=4, n_genes=5, seed=4))
    back = read_combo_h5ad(write_combo_h5ad(dataset, tmp_path / "set.h5ad"))
    assert back.drug1_var is None and back.drug2_var is None
    assert_same(back, dataset)


def test_combo_write_refuses_to_overwrite_and_failure_keeps_old_file(tmp_path: Path, monkeypatch) -> None:
    first, second = random_dataset(seed=1), random_dataset(seed=2)
    target = write_combo_h5ad(first, tmp_path / "set.h5ad")
    with pytest.raises(DataError, match="exists; pass overwrite=True"):
        write_combo_h5ad(second, target)

    def broken(self, filename, **kwargs):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(anndata.AnnData, "write_h5ad", broken)
    with pytest.raises(OSError, match="disk full"):
        write_combo_h5ad(second, target, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.h5ad"]
    assert_same(read_combo_h5ad(target), first)
    write_combo_h5ad(second, target, overwrite=True)
    assert_same(read_combo_h5ad(target), second)


def test_combo_file_with_x_as_y_and_missing_layers(tmp_path: Path) -> None:
    dataset = random_dataset(n_combos=3, n_genes=4, seed=5)
    obs = dataset.combos.set_index("combo")
    var = pd.DataFrame(index=dataset.genes)
    layers = {"d1": dataset.drug1_effect, "d2": dataset.drug2_effect}
    anndata.AnnData(X=dataset.combo_effect, obs=obs, var=var, layers=layers).write_h5ad(tmp_path / "x.h5ad")
    back = read_combo_h5ad(tmp_path / "x.h5ad")
    np.testing.assert_array_equal(back.combo_effect, dataset.combo_effect)
    assert back.drug1_var is None
    anndata.AnnData(obs=obs, var=var, layers={"d1": dataset.drug1_effect}).write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(DataError, match=r"bad\.h5ad: a combination \.h5ad needs layers d1, d2, y; missing \['d2'"):
        read_combo_h5ad(tmp_path / "bad.h5ad")
    layers["v1"] = dataset.drug1_var
    anndata.AnnData(X=dataset.combo_effect, obs=obs, var=var, layers=layers).write_h5ad(tmp_path / "v.h5ad")
    with pytest.raises(DataError, match="has layer v1 but not v2"):
        read_combo_h5ad(tmp_path / "v.h5ad")


@pytest.mark.parametrize("index_name", ["combo", "study", "drug1"])
def test_obs_index_named_like_a_column(tmp_path: Path, index_name: str) -> None:
    """`obs.index = obs["combo"]` (and an index named like another column) is read as the columns say."""
    dataset = random_dataset(n_combos=5, n_genes=4, seed=8)
    obs = dataset.combos.copy()
    obs.index = obs[index_name].to_numpy() if index_name == "combo" else [f"row{i}" for i in range(len(obs))]
    obs.index.name = index_name
    if index_name != "combo":  # anndata writes an index named like a column only when the values agree
        obs[index_name] = obs.index
    layers = {"d1": dataset.drug1_effect, "d2": dataset.drug2_effect, "y": dataset.combo_effect}
    adata = anndata.AnnData(obs=obs, var=pd.DataFrame(index=dataset.genes), layers=layers)
    adata.write_h5ad(tmp_path / "named.h5ad")
    back = read_combo_h5ad(tmp_path / "named.h5ad")
    expected = obs.reset_index(drop=True)[["combo", "study", "drug1", "drug2"]].astype(str)
    pd.testing.assert_frame_equal(back.combos, expected)
    np.testing.assert_array_equal(back.combo_effect, dataset.combo_effect)


def test_obs_index_named_combo_without_a_combo_column(tmp_path: Path) -> None:
    dataset = random_dataset(n_combos=3, n_genes=4, seed=9)
    layers = {"d1": dataset.drug1_effect, "d2": dataset.drug2_effect, "y": dataset.combo_effect}
    anndata.AnnData(obs=dataset.combos.set_index("combo"), var=pd.DataFrame(index=dataset.genes),
                    layers=layers).write_h5ad(tmp_path / "set.h5ad")
    assert_same(read_combo_h5ad(tmp_path / "set.h5ad"), without_variances(dataset))


def test_library_and_cells_with_an_index_named_like_a_column(tmp_path: Path) -> None:
    from combomap.data.simulate_cells import simulate_perturb_seq
    from combomap.data.single_cell import read_single_cell

    obs = pd.DataFrame({"drug": [f"D{i}" for i in range(5)]})
    obs.index = pd.Index(obs["drug"].to_numpy(), name="drug")
    library = _library()
    anndata.AnnData(X=library.effects, obs=obs, var=pd.DataFrame(index=library.genes)).write_h5ad(tmp_path / "lib.h5ad")
    assert read_library_h5ad(tmp_path / "lib.h5ad", drug_key="drug").drugs == library.drugs
    adata, _ = simulate_perturb_seq(n_pairs=1, cells_per_group=60, preset="tiny", seed=0)
    plain = read_single_cell(write_cells(adata, tmp_path / "cells.h5ad"))[0]
    adata.obs["cell"] = adata.obs_names
    adata.obs.index.name = "cell"
    named = read_single_cell(write_cells(adata, tmp_path / "named.h5ad"))[0]
    np.testing.assert_array_equal(named.combo_effect, plain.combo_effect)
    assert named.combos["combo"].tolist() == plain.combos["combo"].tolist()


def write_cells(adata: anndata.AnnData, path: Path) -> Path:
    adata.write_h5ad(path)
    return path


def test_not_hdf5_and_missing_file_are_one_line_errors(tmp_path: Path) -> None:
    text = tmp_path / "cells.h5ad"
    text.write_text("cell,gene,count\n")
    for path, message in ((text, "not an HDF5 file"), (tmp_path / "none.h5ad", "no such .h5ad file")):
        with pytest.raises(DataError, match=message) as error:
            read_combo_h5ad(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)
    with h5py.File(tmp_path / "plain.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(DataError, match=r"plain\.h5: no /obs group; not an AnnData \.h5ad file"):
        read_combo_h5ad(tmp_path / "plain.h5")


def test_data_h5ad_config_reads_a_combination_file(tmp_path: Path, compose_cfg) -> None:
    dataset = random_dataset(seed=6)
    write_combo_h5ad(dataset, tmp_path / "set.h5ad")
    cfg = compose_cfg("data_tool", ["data=h5ad", f"data.path={tmp_path / 'set.h5ad'}", "out=unused"])
    assert cfg.data.kind == "auto"
    assert_same(load_dataset(data_source(cfg.data)), dataset)


def test_combomap_data_writes_h5ad_and_reads_it_back(tmp_path: Path, compose_cfg, caplog) -> None:
    out = tmp_path / "conv"
    with caplog.at_level(logging.INFO, logger="combomap.jobs.data"):
        summary = run(compose_cfg("data_tool", ["data=simulated", "data.preset=tiny", f"out={out}", "format=h5ad"]))
    written = out / "dataset.h5ad"
    assert summary["output"] == str(written.resolve()) and summary["format"] == "h5ad"
    assert (summary["n_combos"], summary["n_genes"]) == (12, 300)
    from combomap.data.simulate import simulate_compendium

    assert_same(read_combo_h5ad(written), simulate_compendium(preset="tiny", seed=0))
    assert "12 combos x 300 genes" in caplog.text
    with pytest.raises(DataError, match="exists; pass overwrite=True"):
        run(compose_cfg("data_tool", ["data=simulated", "data.preset=tiny", f"out={out}", "format=h5ad"]))
    # and back to npy through data=h5ad
    run(compose_cfg("data_tool", ["data=h5ad", f"data.path={written}", f"out={tmp_path / 'npy'}", "format=npy"]))
    from combomap.data.io import read_npy_dir

    assert_same(read_npy_dir(tmp_path / "npy"), read_combo_h5ad(written))


# ------------------------------------------------------------------------------------------- library


def _library(with_variances: bool = True) -> DrugLibrary:
    rng = np.random.default_rng(7)
    effects = rng.normal(size=(5, 6)).astype(np.float32)
    effects[1, 2] = np.nan
    variances = rng.uniform(0.1, 1, size=(5, 6)).astype(np.float32) if with_variances else None
    return DrugLibrary(effects=effects, genes=[f"G{j}" for j in range(6)], drugs=[f"D{i}" for i in range(5)],
                       variances=variances)


@pytest.mark.parametrize("with_variances", [True, False])
def test_library_round_trip_and_config(tmp_path: Path, with_variances: bool) -> None:
    library = _library(with_variances)
    path = write_library_h5ad(library, tmp_path / "lib.h5ad")
    back = load_library(H5adLibrary(path=str(path), variances_layer="variances"))
    np.testing.assert_array_equal(back.effects, library.effects)
    assert (back.variances is None) == (not with_variances)
    if with_variances:
        np.testing.assert_array_equal(back.variances, library.variances)
    assert back.genes == library.genes and back.drugs == library.drugs


def test_library_from_a_sparse_x_with_symbol_column(tmp_path: Path) -> None:
    import scipy.sparse as sp

    effects = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]], dtype=np.float32)
    var = pd.DataFrame({"symbol": ["A", "B", "C"]}, index=["ENSG1", "ENSG2", "ENSG3"])
    obs = pd.DataFrame({"name": ["x", "y"]}, index=["0", "1"])
    anndata.AnnData(X=sp.csr_matrix(effects), obs=obs, var=var).write_h5ad(tmp_path / "lib.h5ad")
    library = read_library_h5ad(tmp_path / "lib.h5ad", gene_key="symbol", drug_key="name")
    assert library.genes == ["A", "B", "C"] and library.drugs == ["x", "y"] and library.variances is None
    np.testing.assert_array_equal(library.effects, effects)
    with pytest.raises(DataError, match=r"lib\.h5ad: no gene column 'gene_name'; columns are \['symbol'\]"):
        read_library_h5ad(tmp_path / "lib.h5ad", gene_key="gene_name")


def test_library_config_file_composes(compose_cfg, tmp_path: Path) -> None:
    path = write_library_h5ad(_library(), tmp_path / "lib.h5ad")
    cfg = compose_cfg("query", ["library=h5ad", f"library.path={path}", "signature=unused.csv"])
    source = library_source(cfg.library)
    assert source == H5adLibrary(path=str(path))
    library = load_library(source)
    assert (library.n_drugs, library.n_genes) == (5, 6) and library.variances is not None
