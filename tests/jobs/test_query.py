"""combomap-query in-process: one MLflow run per query with the ranked tables as artifacts."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import combomap.jobs.query as query_job
from combomap.data.dataset import DataError
from combomap.data.library_io import write_gctx, write_library_npy
from combomap.settings import SettingsError
from tests.query.helpers import small_library


def _runs() -> pd.DataFrame:
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.search_runs(search_all_experiments=True)


@pytest.fixture()
def library_dir(tmp_path: Path) -> Path:
    return write_library_npy(small_library(n_drugs=12, n_genes=30, seed=21), tmp_path / "library")


def _write_query(tmp_path: Path, row: int, extra: dict[str, float] | None = None) -> Path:
    library = small_library(n_drugs=12, n_genes=30, seed=21)
    values = dict(zip(library.genes, np.nan_to_num(library.effects[row]).tolist()))
    values.update(extra or {})
    path = tmp_path / "query.tsv"
    path.write_text("gene\tvalue\n" + "".join(f"{g}\t{v!r}\n" for g, v in values.items()))
    return path


def test_query_cli_ranks_drugs_and_pairs_in_one_mlflow_run(compose_cfg, library_dir: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="combomap.jobs.query")
    signature = _write_query(tmp_path, row=4, extra={"NOT_A_GENE": 2.5})
    cfg = compose_cfg(
        "query",
        ["library=npy", f"library.dir={library_dir}", f"signature={signature}", "top_n=20", "pairs.top_k=null"],
    )
    report = query_job.run(cfg)
    out = Path(cfg.paths.output_dir)
    drugs = pd.read_csv(out / "drugs.csv")
    pairs = pd.read_csv(out / "pairs.csv")
    assert list(drugs.columns) == ["rank", "drug", "score"] and len(drugs) == 12
    assert drugs.drug.iloc[0] == "D04" and drugs.score.iloc[0] == pytest.approx(1.0)
    assert len(pairs) == 66 and not pairs.duplicated(["drug1", "drug2"]).any()
    assert list(pairs.columns) == ["rank", "drug1", "drug2", "score", "drug1_score", "drug2_score"]
    saved = json.loads((out / "query_report.json").read_text())
    assert saved["missing_genes"] == ["NOT_A_GENE"] and saved["n_used"] == 20 == report["n_used"]
    assert saved["pair_method"] == "gram" and saved["n_pairs"] == 66
    assert "NOT_A_GENE" in caplog.text

    runs = _runs()
    assert len(runs) == 1
    client = mlflow.MlflowClient()
    run = client.get_run(runs.run_id.iloc[0])
    assert run.info.status == "FINISHED" and run.info.run_name == "query-query-pearson"
    assert run.data.metrics["query/n_missing"] == 1 and run.data.metrics["query/n_pairs"] == 66
    assert run.data.params["score"] == "pearson" and run.data.params["pairs.model"] == "average"
    (entry,) = run.inputs.dataset_inputs  # the library searched, as the run's input
    library = small_library(n_drugs=12, n_genes=30, seed=21)
    assert (entry.dataset.name, entry.dataset.digest) == ("library-library", library.digest())
    assert {tag.key: tag.value for tag in entry.tags}["mlflow.data.context"] == "library"
    assert json.loads(entry.dataset.profile) == {"n_drugs": 12, "n_genes": 30, "has_variances": True}
    library.effects[:, 1] += 1.0
    assert library.digest() != entry.dataset.digest
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"drugs.csv", "pairs.csv", "query_report.json", "config.yaml"} <= artifacts


def test_query_cli_reversal_gctx_library_and_errors(compose_cfg, tmp_path: Path) -> None:
    library = small_library(n_drugs=12, n_genes=30, seed=21)
    gctx = write_gctx(library, tmp_path / "library.gctx")
    signature = tmp_path / "negated.csv"
    signature.write_text("".join(f"{g},{-v!r}\n" for g, v in zip(library.genes, np.nan_to_num(library.effects[7]).tolist())))
    cfg = compose_cfg(
        "query",
        ["library=gctx", f"library.path={gctx}", f"signature={signature}", "score=wtcs", "direction=reverse",
         "pairs.include=[D07]", "pairs.top_k=5", "top_n=null"],
    )
    query_job.run(cfg)
    out = Path(cfg.paths.output_dir)
    drugs = pd.read_csv(out / "drugs.csv")
    assert drugs.drug.iloc[0] == "D07" and drugs.score.iloc[0] == pytest.approx(-1.0)
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == 5 and ((pairs.drug1 == "D07") | (pairs.drug2 == "D07")).all()
    assert (pairs.score.diff().dropna() >= 0).all()  # reversal: most negative first

    duplicated = tmp_path / "dup.csv"
    duplicated.write_text("G1,1\nG1,2\n")
    with pytest.raises(DataError, match="duplicate gene"):
        query_job.run(compose_cfg("query", ["library=gctx", f"library.path={gctx}", f"signature={duplicated}"]))
    disjoint = tmp_path / "disjoint.csv"
    disjoint.write_text("X1,1\nX2,2\n")
    with pytest.raises(DataError, match="none of the query's 2 genes"):
        query_job.run(compose_cfg("query", ["library=gctx", f"library.path={gctx}", f"signature={disjoint}"]))
    with pytest.raises(SettingsError, match="stacked_model_dir"):
        query_job.run(compose_cfg("query", ["library=gctx", f"library.path={gctx}", f"signature={signature}", "pairs.model=stacked"]))
    with pytest.raises(SettingsError, match="pairs.stacker_predictor must be one of .*, got 'fast'"):
        query_job.run(compose_cfg("query", ["library=gctx", f"library.path={gctx}", f"signature={signature}",
                                            "pairs.stacker_predictor=fast"]))
    with pytest.raises(DataError, match="unknown drug"):
        query_job.run(compose_cfg("query", ["library=gctx", f"library.path={gctx}", f"signature={signature}", "pairs.include=[nope]"]))
    assert len(_runs()) == 1  # bad input fails before a run is created


def test_query_cli_stacked_model_compiled_and_backend_stacker_predictors_agree(compose_cfg, library_dir: Path, tmp_path: Path) -> None:
    from tests.query.test_stacked import _model

    library = small_library(n_drugs=12, n_genes=30, seed=21)
    model_dir = _model(library).save(tmp_path / "model")
    signature = _write_query(tmp_path, row=2)
    tables, reports = {}, {}
    for predictor in ("compiled", "backend"):
        cfg = compose_cfg(
            "query",
            ["library=npy", f"library.dir={library_dir}", f"signature={signature}", "top_n=15", "pairs.model=stacked",
             f"pairs.stacked_model_dir={model_dir}", f"pairs.stacker_predictor={predictor}", "pairs.top_k=null"],
        )
        reports[predictor] = query_job.run(cfg)
        tables[predictor] = pd.read_csv(Path(cfg.paths.output_dir) / "pairs.csv")
    assert reports["compiled"]["stacker_predictor"] == "compiled" and reports["backend"]["stacker_predictor"] == "backend"
    assert len(tables["compiled"]) == 66 == reports["compiled"]["n_pairs"]
    merged = tables["compiled"].merge(tables["backend"], on=["drug1", "drug2"], validate="one_to_one")
    np.testing.assert_allclose(merged.score_x, merged.score_y, atol=1e-6)
    assert len(_runs()) == 2
