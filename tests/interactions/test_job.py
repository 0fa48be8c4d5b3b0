"""combomap-interactions end to end: files, the .h5ad read back, one MLflow run with its metrics, planted truth."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import anndata
import mlflow
import numpy as np
import pandas as pd
import pytest

from combomap.data.h5ad import read_combo_h5ad
from combomap.data.io import read_tidy
from combomap.data.simulate_cells import write_perturb_seq_h5ad
from combomap.interactions.fdr import benjamini_hochberg
from combomap.jobs import interactions
from combomap.models.learned import LinearComboModel
from combomap.stacking.final_model import StackedModel
from tests import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "data" / "fixtures"
KORKUT = FIXTURES / "korkut2015_skmel133_rppa.csv"
NORMAN = FIXTURES / "norman_cebpe_cebpb_tidy.csv"
PLOTS = ["heatmap.png", "scatter.png", "map.png", "p_values.png"]
ENTRY_COLUMNS = ["combo", "study", "drug1", "drug2", "gene", "d1", "d2", "observed", "expected", "departure", "scale",
                 "t", "z", "p", "q", "q_combo", "call"]


def _runs() -> pd.DataFrame:
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.search_runs(search_all_experiments=True)


def test_moderated_null_and_hierarchical_fdr_through_the_job(compose_cfg) -> None:
    cfg = compose_cfg("interactions", ["data=tidy", f"data.path={KORKUT}", "interactions.variance=moderated",
                                       "interactions.fdr_scope=hierarchical", "interactions.fdr=0.2",
                                       "interactions.plots.enabled=false", "interactions.dcor_genes=50"])
    metrics = interactions.run(cfg)
    out = Path(cfg.paths.output_dir)
    entries = pd.read_csv(out / "interactions.csv")
    assert list(entries.columns) == [*ENTRY_COLUMNS[:-1], "q_hierarchical", "call"]
    called = entries["call"] != "none"
    assert called.sum() == metrics["interactions/n_called"] > 0
    assert (entries.loc[called, "q_hierarchical"] <= 0.2).all()
    assert not (entries.loc[~called, "q_hierarchical"] <= 0.2).any()
    adata = anndata.read_h5ad(out / "interactions.h5ad")
    assert "q_hierarchical" in adata.layers
    assert adata.uns["interactions"]["variance"] == "moderated"
    assert _runs().iloc[0]["tags.interactions.variance"] == "moderated"


def test_korkut_panel(compose_cfg) -> None:
    cfg = compose_cfg("interactions", ["data=tidy", f"data.path={KORKUT}", "interactions.plots.heatmap_combos=10",
                                       "interactions.dcor_genes=50"])
    metrics = interactions.run(cfg)
    out = Path(cfg.paths.output_dir)
    for name in ["interactions.csv", "combinations.csv", "interactions.h5ad", *(f"plots/{p}" for p in PLOTS)]:
        assert (out / name).is_file(), name

    entries = pd.read_csv(out / "interactions.csv")
    assert list(entries.columns) == ENTRY_COLUMNS
    assert len(entries) == 66 * 82 == metrics["interactions/n_tested"]
    np.testing.assert_allclose(entries["q"], benjamini_hochberg(entries["p"].to_numpy()), rtol=1e-9)
    called = entries["call"] != "none"
    assert called.sum() == metrics["interactions/n_called"] > 0
    assert (entries.loc[called, "q"] <= 0.1).all() and (entries.loc[~called, "q"] > 0.1).all()
    synergy = entries["call"] == "synergy"
    assert (entries.loc[synergy, "observed"].abs() > entries.loc[synergy, "expected"].abs()).all()
    np.testing.assert_allclose(entries["expected"], entries["d1"] + entries["d2"], atol=1e-6)
    np.testing.assert_allclose(entries["departure"], entries["observed"] - entries["expected"], atol=1e-6)

    combinations = pd.read_csv(out / "combinations.csv")
    assert len(combinations) == 66 and set(combinations["class"]) <= {"additive", "dominant", "suppressive",
                                                                      "synergistic", "buffering"}
    per_combo = entries.groupby("combo", sort=False)["call"].apply(lambda calls: int((calls != "none").sum()))
    np.testing.assert_array_equal(combinations.set_index("combo").loc[per_combo.index, "n_called"], per_combo)
    assert metrics["interactions/class_additive"] == (combinations["class"] == "additive").sum()

    dataset = read_tidy(KORKUT)
    back = read_combo_h5ad(out / "interactions.h5ad")  # the map is also a data set combomap reads
    np.testing.assert_array_equal(back.combo_effect, dataset.combo_effect)
    adata = anndata.read_h5ad(out / "interactions.h5ad")
    assert {"expected", "z", "p", "q", "q_combo", "call"} <= set(adata.layers)
    assert int((adata.layers["call"] != 0).sum()) == called.sum()
    assert adata.uns["interactions"]["variance"] == "gene_mad"

    runs = _runs()
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED"
    run = runs.iloc[0]
    assert run["tags.interactions.variance"] == "gene_mad" and run["tags.interactions.expected"] == "additive"
    assert run["metrics.interactions/n_called"] == metrics["interactions/n_called"]
    artifacts = {item.path for item in mlflow.MlflowClient().list_artifacts(run["run_id"])}
    assert {"interactions.csv", "combinations.csv", "interactions.h5ad", "plots"} <= artifacts


def test_norman_double(compose_cfg) -> None:
    cfg = compose_cfg("interactions", ["data=tidy", f"data.path={NORMAN}", "interactions.plots.enabled=false"])
    metrics = interactions.run(cfg)
    combination = pd.read_csv(Path(cfg.paths.output_dir) / "combinations.csv").iloc[0]
    assert metrics["interactions/n_tested"] == 1000
    assert not combination["identifiable"]  # the fixture gives the singles' sum only: c1 = c2
    assert combination["c1"] == pytest.approx(combination["c2"])
    assert np.isnan(combination["dominance"])
    assert not (Path(cfg.paths.output_dir) / "plots").exists()


def test_planted_simulation_scores_the_calls(compose_cfg) -> None:
    cfg = compose_cfg("interactions", ["interactions=planted", "data.preset=tiny",
                                       "interactions.plant.gene_fraction=0.05", "interactions.entries_format=parquet",
                                       "interactions.plots.enabled=false"])
    metrics = interactions.run(cfg)
    out = Path(cfg.paths.output_dir)
    assert (out / "interactions.parquet").is_file()
    recall = pd.read_csv(out / "planted_recall.csv")
    assert list(recall["size_sd"]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]
    assert metrics["truth/n_true"] == recall["n_true"].sum() > 0
    assert metrics["truth/recall_size8"] == pytest.approx(recall.set_index("size_sd").loc[8.0, "recall"])
    assert metrics["truth/fdp"] <= 0.25 and metrics["truth/recall_size8"] > 0.8
    assert _runs().iloc[0]["metrics.truth/precision"] == pytest.approx(metrics["truth/precision"])


def test_single_cells_through_the_pseudobulk(compose_cfg, tmp_path: Path) -> None:
    path = tmp_path / "cells.h5ad"
    write_perturb_seq_h5ad(path, n_pairs=3, cells_per_group=60, preset="tiny", seed=1)
    cfg = compose_cfg("interactions", ["data=h5ad", f"data.path={path}", "interactions.plots.enabled=false"])
    metrics = interactions.run(cfg)
    assert metrics["interactions/n_combos"] == 3 and metrics["interactions/n_tested"] > 0
    assert _runs().iloc[0]["tags.interactions.variance"] == "measured"  # pseudobulk d' and var(d')
    combinations = pd.read_csv(Path(cfg.paths.output_dir) / "combinations.csv")
    assert np.isfinite(combinations["df"]).all()  # var(d') = a + b d'^2 gave each combination its t's df


def test_a_saved_model_that_never_saw_the_combinations(compose_cfg, tmp_path: Path) -> None:
    dataset = read_tidy(KORKUT)
    drugs = sorted(set(dataset.combos["drug1"]) | set(dataset.combos["drug2"]))
    among = lambda chosen: np.flatnonzero((dataset.combos["drug1"].isin(chosen)  # noqa: E731
                                           & dataset.combos["drug2"].isin(chosen)).to_numpy())
    model = replace(StackedModel.linear(LinearComboModel.fit(dataset.subset(among(drugs[:6])), "interaction")),
                    training_drugs=drugs[:6]).save(tmp_path / "model")
    table = pd.read_csv(KORKUT)
    unseen = table[table["drug1"].isin(drugs[6:]) & table["drug2"].isin(drugs[6:])]
    unseen.to_csv(tmp_path / "unseen.csv", index=False)
    cfg = compose_cfg("interactions", ["data=tidy", f"data.path={tmp_path / 'unseen.csv'}",
                                       "interactions.expected=model", f"interactions.model_dir={model}",
                                       "interactions.plots.enabled=false"])
    metrics = interactions.run(cfg)
    assert metrics["interactions/n_combos"] == 15
    entries = pd.read_csv(Path(cfg.paths.output_dir) / "interactions.csv")
    assert not np.allclose(entries["expected"], entries["d1"] + entries["d2"], atol=1e-3)  # the model's, not d1 + d2
    assert _runs().iloc[0]["tags.interactions.expected"] == "model"
