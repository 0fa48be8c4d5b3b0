"""Single-cell .h5ad -> pseudobulk d': planted signs recovered, layouts and encodings agree, what is skipped
is reported, and malformed files end in one clear error line."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from combomap.data.dataset import DataError
from combomap.config.data import data_source
from combomap.data.loading import H5adData, load_dataset
from combomap.data.simulate_cells import simulate_perturb_seq, write_perturb_seq_h5ad
from combomap.data.single_cell import SingleCellOptions, parse_labels, read_single_cell
from tests import REPO_ROOT
from tests.data.test_io import assert_same


@pytest.fixture(scope="module")
def simulated():
    """3 pairs (6 singles, 3 doubles) + control, 300 cells each, 300 genes: counts and the planted truth."""
    return simulate_perturb_seq(n_pairs=3, cells_per_group=300, preset="tiny", seed=0)


def write(adata: anndata.AnnData, path: Path) -> Path:
    adata.write_h5ad(path)
    return path


def pertpy_layout(adata: anndata.AnnData) -> anndata.AnnData:
    obs = pd.DataFrame({"perturbation_name": adata.obs["perturbation"].to_numpy()}, index=adata.obs_names)
    return anndata.AnnData(X=adata.X, obs=obs, var=adata.var.copy())


def gears_layout(adata: anndata.AnnData) -> anndata.AnnData:
    """GEARS: obs "condition" (A+ctrl, ctrl+B, A+B, ctrl), var_names Ensembl-like ids, symbols in gene_name."""
    obs = pd.DataFrame({"condition": adata.obs["condition"].to_numpy()}, index=adata.obs_names)
    var = pd.DataFrame({"gene_name": adata.var_names.to_numpy()}, index=[f"ENSG{j:011d}" for j in range(adata.n_vars)])
    return anndata.AnnData(X=adata.X, obs=obs, var=var)


def strong_sign_accuracy(dataset, cells) -> tuple[int, float]:
    """Sign agreement of d' with the planted log fold change on strongly affected, expressed genes."""
    hits, total = 0, 0
    for row, combo in dataset.combos.iterrows():
        for values, name in ((dataset.drug1_effect, combo.drug1), (dataset.drug2_effect, combo.drug2),
                             (dataset.combo_effect, combo.combo)):
            truth = cells.lfc[name]
            strong = (np.abs(truth) > 0.5) & (cells.baseline > 0.3)
            hits += int((np.sign(values[row][strong]) == np.sign(truth[strong])).sum())
            total += int(strong.sum())
    return total, hits / total


def test_recovers_planted_signs_and_reports(simulated, tmp_path: Path, caplog) -> None:
    adata, cells = simulated
    path = write(adata, tmp_path / "cells.h5ad")
    with caplog.at_level(logging.INFO, logger="combomap.data.single_cell"):
        dataset, report = read_single_cell(path)
    assert dataset.combo_effect.shape == (3, 300) and dataset.has_variances
    assert sorted(dataset.combos["combo"]) == ["drug0000+drug0001", "drug0002+drug0003", "drug0004+drug0005"]
    assert set(dataset.combos["study"]) == {"cells"}  # the file's stem
    total, accuracy = strong_sign_accuracy(dataset, cells)
    assert total >= 60 and accuracy >= 0.97, (total, accuracy)
    # d' tracks the planted effect over all genes, and the variances are metaMA's (> 1/n~ = 2/3 with 3 replicates)
    truth = np.stack([cells.lfc[c] for c in dataset.combos["combo"]])
    assert np.corrcoef(dataset.combo_effect.ravel(), truth.ravel())[0, 1] > 0.5
    assert (dataset.drug1_var > 2 / 3).all()
    assert (report.n_cells, report.n_cells_used, report.n_groups) == (3000, 3000, 30)
    assert (report.n_combos, report.n_singles, report.skipped) == (3, 6, [])
    assert "3000 of 3000 cells in 30 pseudobulk samples" in caplog.text


def test_gears_and_pertpy_layouts_give_the_same_data_set(simulated, tmp_path: Path) -> None:
    adata, _ = simulated
    pertpy_file = write(pertpy_layout(adata), tmp_path / "pertpy.h5ad")
    gears_file = write(gears_layout(adata), tmp_path / "gears.h5ad")
    from_pertpy, pertpy_report = read_single_cell(pertpy_file, SingleCellOptions(study="norman"))
    from_gears, gears_report = read_single_cell(gears_file, SingleCellOptions(study="norman", gene_key="gene_name"))
    assert gears_report.gears_labels and not pertpy_report.gears_labels
    assert_same(from_gears, from_pertpy)


@pytest.mark.parametrize("encoding", ["csc", "dense", "layer"])
def test_csc_dense_and_a_counts_layer_agree_with_csr(simulated, tmp_path: Path, encoding: str) -> None:
    adata, _ = simulated
    reference, _ = read_single_cell(write(adata, tmp_path / "csr.h5ad"), SingleCellOptions(study="s", block_cells=450))
    layer = None
    if encoding == "csc":
        other = anndata.AnnData(X=sp.csc_matrix(adata.X), obs=adata.obs, var=adata.var)
    elif encoding == "dense":
        other = anndata.AnnData(X=adata.X.toarray(), obs=adata.obs, var=adata.var)
    else:  # scanpy habit: X log-normalised, raw counts kept in a layer
        normalised = sp.csr_matrix(np.log1p(adata.X.toarray() / 7.0))
        other = anndata.AnnData(X=normalised, obs=adata.obs, var=adata.var, layers={"counts": adata.X})
        layer = "counts"
    options = SingleCellOptions(study="s", layer=layer, block_cells=450)
    dataset, _ = read_single_cell(write(other, tmp_path / f"{encoding}.h5ad"), options)
    for name in ("drug1_effect", "drug2_effect", "combo_effect", "drug1_var", "drug2_var"):
        np.testing.assert_allclose(getattr(dataset, name), getattr(reference, name), rtol=1e-5, atol=1e-6)


def test_log_normalised_values_batches_and_data_config(simulated, tmp_path: Path, compose_cfg) -> None:
    adata, cells = simulated
    counts = adata.X.toarray()
    logged = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    path = write(anndata.AnnData(X=sp.csr_matrix(logged), obs=adata.obs, var=adata.var), tmp_path / "log.h5ad")
    with pytest.raises(DataError, match="raw counts .* expected; .* data.values=log"):
        read_single_cell(path)
    cfg = compose_cfg("data_tool", ["data=h5ad", f"data.path={path}", "data.values=log", "data.batch_key=gemgroup",
                                    "out=unused"])
    dataset = load_dataset(data_source(cfg.data))
    assert dataset.combo_effect.shape == (3, 300)
    total, accuracy = strong_sign_accuracy(dataset, cells)
    assert accuracy >= 0.95, (total, accuracy)


def test_min_cells_floor_skips_a_perturbation_and_its_pair(simulated, tmp_path: Path) -> None:
    adata, _ = simulated
    labels = adata.obs["perturbation"].to_numpy()
    keep = (labels != "drug0000") | (np.cumsum(labels == "drug0000") <= 30)  # drug0000 keeps 30 of its 300 cells
    path = write(adata[keep].copy(), tmp_path / "few.h5ad")
    dataset, report = read_single_cell(path, SingleCellOptions(min_cells=20))
    assert sorted(dataset.combos["combo"]) == ["drug0002+drug0003", "drug0004+drug0005"]
    skipped = {s.perturbation: s.reason for s in report.skipped}
    assert skipped["drug0000"].startswith("30 cells give 1 replicate(s) of >= 20 cells (need 2")
    assert skipped["drug0000+drug0001"].startswith("no single for its pair: single drug0000 skipped (30 cells")
    # a lower floor keeps it, split into two replicates of 15
    dataset, report = read_single_cell(path, SingleCellOptions(min_cells=15))
    assert dataset.n_combos == 3 and report.skipped == [] and report.n_groups == 29


def test_study_key_gives_one_study_per_screen_with_prefixed_combos(simulated, tmp_path: Path) -> None:
    adata, _ = simulated
    other = adata.copy()
    other.obs["screen"] = np.where(np.arange(adata.n_obs) % 2 == 0, "A", "B")
    dataset, report = read_single_cell(write(other, tmp_path / "two.h5ad"), SingleCellOptions(study_key="screen"))
    assert report.studies == ["A", "B"] and dataset.n_combos == 6
    assert set(dataset.combos["study"]) == {"A", "B"}
    assert "A:drug0000+drug0001" in set(dataset.combos["combo"])
    # a screen without control cells is skipped, perturbation by perturbation, and says why
    other.obs["screen"] = np.where(other.obs["perturbation"] == "control", "A", other.obs["screen"])
    dataset, report = read_single_cell(write(other, tmp_path / "nb.h5ad"), SingleCellOptions(study_key="screen"))
    assert report.studies == ["A", "B"] and set(dataset.combos["study"]) == {"A"}
    assert {s.reason for s in report.skipped if s.study == "B"} == {"its study has no control cells"}
    assert len([s for s in report.skipped if s.study == "B"]) == 9


def test_labels_parse_to_canonical_perturbations() -> None:
    labels = pd.Series(["ctrl", "A+ctrl", "ctrl+B", "A+B", "B+A", "control", None, "A+B+C", "x_y"])
    parsed, targets, gears = parse_labels(labels, SingleCellOptions())
    assert gears
    assert parsed.tolist() == ["", "A", "B", "A+B", "A+B", "", None, "A+B+C", "x_y"]
    assert targets == {"": (), "A": ("A",), "B": ("B",), "A+B": ("A", "B"), "A+B+C": ("A", "B", "C"), "x_y": ("x_y",)}
    parsed, targets, gears = parse_labels(pd.Series(["x_y", "x", "control", "a+b"]), SingleCellOptions(separator="_"))
    assert parsed.tolist() == ["x+y", "x", "", "a+b"] and not gears
    assert targets["x+y"] == ("x", "y") and targets["a+b"] == ("a+b",)  # a "+" inside a target stays one target


# ------------------------------------------------------------------------------------------- malformed


def _relabel(adata: anndata.AnnData, mapping: dict[str, str]) -> anndata.AnnData:
    other = adata.copy()
    other.obs["perturbation"] = [mapping.get(v, v) for v in other.obs["perturbation"]]
    return other


def malformed(adata: anndata.AnnData, kind: str, path: Path) -> Path:
    if kind == "no_control":
        return write(_relabel(adata, {"control": "NT"}), path)
    if kind == "combo_without_singles":
        singles = {"drug0000", "drug0002", "drug0004"}
        return write(adata[~adata.obs["perturbation"].isin(singles).to_numpy()].copy(), path)
    if kind == "non_integer":
        other = adata.copy()
        other.X = other.X.copy()
        other.X.data[7] = 2.5
        return write(other, path)
    if kind == "duplicated_var":
        other = adata.copy()
        other.var_names = [*adata.var_names[:10], adata.var_names[3], *adata.var_names[11:]]
        return write(other, path)
    if kind == "not_hdf5":
        path.write_text("this is not HDF5\n")
        return path
    raise AssertionError(kind)


MALFORMED = {
    "no_control": r"no control cells: none of obs\['perturbation'\] is one of \['control', 'ctrl', 'non-targeting'\]",
    "combo_without_singles": r"no combination A\+B with both singles A and B measured \(.*drug0000\+drug0001: no "
    r"single for its pair: single drug0000 not in the data",
    "non_integer": r"X holds 2.5 at cell \d+ \(obs row\), gene 'GENE\d{5}', but raw counts",
    "duplicated_var": r"duplicated gene name 'GENE00003' in var_names \(positions 3 and 10\)",
    "not_hdf5": r"not an HDF5 file",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_files_end_in_one_clear_error(simulated, tmp_path: Path, kind: str) -> None:
    adata, _ = simulated
    path = malformed(adata, kind, tmp_path / f"{kind}.h5ad")
    with pytest.raises(DataError, match=MALFORMED[kind]) as error:
        load_dataset(H5adData(path=str(path)))
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_console_script_prints_one_error_line(simulated, tmp_path: Path) -> None:
    adata, _ = simulated
    path = malformed(adata, "no_control", tmp_path / "bad.h5ad")
    command = [sys.executable, "-c", "from combomap.cli.data import main; main()"]
    result = subprocess.run(
        [*command, "data=h5ad", f"data.path={path}", f"out={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'h'}"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("combomap-data: error: ") and "no control cells" in lines[0]


def test_streamed_writer_matches_the_in_memory_simulation(tmp_path: Path) -> None:
    adata, _ = simulate_perturb_seq(n_pairs=1, cells_per_group=50, preset="tiny", seed=2)
    path = tmp_path / "streamed.h5ad"
    write_perturb_seq_h5ad(path, n_pairs=1, cells_per_group=50, preset="tiny", seed=2, block_cells=37)
    back = anndata.read_h5ad(path)
    assert (back.X != adata.X).nnz == 0
    pd.testing.assert_frame_equal(back.obs.astype(str), adata.obs.astype(str))
    nonzero = adata.X.nnz / np.prod(adata.shape)
    assert 0.05 < nonzero < 0.25  # sparse, as single-cell counts are


def test_evaluate_and_stack_configs_take_single_cell_h5ad(simulated, tmp_path: Path, compose_cfg) -> None:
    from combomap.jobs import evaluate

    adata, _ = simulated
    path = write(adata, tmp_path / "cells.h5ad")
    metrics = evaluate.run(compose_cfg("evaluate", ["data=h5ad", f"data.path={path}", "plots=false"]))
    assert metrics["average/n_scored"] == 900 and 0.6 < metrics["average/sign_acc"] < 1.0
    stack_cfg = compose_cfg("stack", ["data=h5ad", f"data.path={path}", "data.min_cells=30"])
    dataset = load_dataset(data_source(stack_cfg.data))
    assert dataset.n_combos == 3 and dataset.has_variances
