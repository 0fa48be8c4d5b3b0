"""combomap-query's job: read the signature and the library, rank drugs and pairs, write the tables, log one run.

Writes drugs.csv (rank, drug, score), pairs.csv (rank, drug1, drug2, score, drug1_score, drug2_score) or, with
output.format=h5ad, the same as AnnData obs in drugs.h5ad and pairs.h5ad (var = the query's genes), and
query_report.json (genes matched / missing, settings, timings) into paths.output_dir and logs them
as artifacts; metrics are "query/*" and "time/*".
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from omegaconf import DictConfig, OmegaConf

from combomap.config.data import library_source
from combomap.config.query import QueryOutput, engine_settings, query_options, query_output
from combomap.data.h5ad import by_pair, write_results_h5ad
from combomap.data.library import DrugLibrary, WithoutDrugs
from combomap.jobs.recording import log_library_input
from combomap.paths import file_label
from combomap.progress import configure as configure_progress
from combomap.query.distributed import open_engine
from combomap.query.search import Query, QueryResult, run_query, skip_uninformative
from combomap.query.signature import as_signature, read_signature
from combomap.query.stacked import load_stacked_model
from combomap.settings import SettingsError
from combomap.tracking import log_metrics, mlflow_run, open_store
from combomap.config.run import run_config, run_name

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """conf/query.yaml -> the query report; every setting is checked before the library loads, and bad input
    (no gene overlap, an unknown include drug) fails before an MLflow run exists."""
    if OmegaConf.is_missing(cfg, "signature") or cfg.get("signature") is None:
        raise SettingsError("give the query signature: combomap-query signature=PATH (CSV/TSV of gene, value)")
    options = query_options(cfg)
    engine = engine_settings(cfg)
    output = query_output(cfg)
    source = library_source(cfg.library)
    pairs = options.pairs
    stacked_model_dir = None
    if pairs.enabled and pairs.model == "stacked":
        if not pairs.stacked_model_dir:
            raise SettingsError("pairs.model=stacked needs pairs.stacked_model_dir (a combomap-stack model directory)")
        stacked_model_dir = str(Path(pairs.stacked_model_dir).expanduser().resolve())
    configure_progress(cfg)
    open_store(run_config(cfg))
    signature = read_signature(cfg.signature, cfg.get("gene_column"), cfg.get("value_column"))
    start = time.perf_counter()
    loaded = source.load()
    load_seconds = time.perf_counter() - start
    library, skipped = skip_uninformative(loaded, pairs.include)
    stacked_model = load_stacked_model(stacked_model_dir, pairs.inference) if stacked_model_dir else None
    query = Query.prepare(signature, library, options, stacked_model, stacked_model_dir)
    library.index_of(list(pairs.include))
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = run_name(cfg, file_label(cfg.signature), options.score)
    with open_engine(engine) as dask_engine, mlflow_run(run_config(cfg), run_name=name, tags={"query.score": options.score}):
        log_library_input(loaded, source, "library")
        workers_source = source.with_absolute_paths()
        result = run_query(query, library, options, dask_engine,
                           WithoutDrugs(workers_source, tuple(skipped)) if skipped else workers_source)
        report = dict(result.report, signature=str(cfg.signature), seconds_load_library=load_seconds)
        if skipped:
            report.update(n_skipped_drugs=len(skipped), skipped_drugs=skipped)
        if stacked_model_dir is not None:
            report["stacked_model_dir"] = stacked_model_dir
        files = _write_tables(result, report, out_dir, output, query, library)
        log_metrics(_metrics(report, library, load_seconds))
        for path in files:
            mlflow.log_artifact(str(path))
    _log_summary(result, report, library, files)
    return report


def _write_tables(result: QueryResult, report: dict[str, Any], out_dir: Path, output: QueryOutput, query: Query,
                  library: DrugLibrary) -> list[Path]:
    if output.format == "h5ad":
        files = _write_h5ad(result, out_dir, query, library)
    else:
        files = [out_dir / "drugs.csv"]
        result.drugs.to_csv(files[0], index=False, float_format="%.8g")
        if result.pairs is not None:
            files.append(out_dir / "pairs.csv")
            result.pairs.to_csv(files[-1], index=False, float_format="%.8g")
    files.append(out_dir / "query_report.json")
    files[-1].write_text(json.dumps(report, indent=1, default=str) + "\n")
    return files


def _write_h5ad(result: QueryResult, out_dir: Path, query: Query, library: DrugLibrary) -> list[Path]:
    """obs = the ranked drugs (X: their library values on the query's genes) / pairs, var = the query's genes used
    (query_value: the signature as given)."""
    prepared = query.prepared
    var = {"query_value": as_signature(query.signature, "query").loc[prepared.genes].to_numpy(np.float64)}
    drugs = result.drugs.set_index("drug")
    values = library.effects[np.ix_(library.index_of(list(drugs.index)), prepared.columns)]
    files = [write_results_h5ad(drugs, prepared.genes, out_dir / "drugs.h5ad", values, var, kind="query_drugs")]
    if result.pairs is not None:
        files.append(write_results_h5ad(by_pair(result.pairs), prepared.genes, out_dir / "pairs.h5ad", var=var,
                                        kind="query_pairs"))
    return files


def _metrics(report: dict[str, Any], library: DrugLibrary, load_seconds: float) -> dict[str, float]:
    metrics = {
        "query/n_query_genes": report["n_query_genes"],
        "query/n_matched": report["n_matched"],
        "query/n_used": report["n_used"],
        "query/n_missing": report["n_missing_from_library"] + report["n_unmeasured_in_library"],
        "query/n_drugs": library.n_drugs,
        "time/load_library_s": load_seconds,
        "time/drugs_s": report["seconds_drugs"],
    }
    if "n_skipped_drugs" in report:
        metrics["query/n_skipped_drugs"] = report["n_skipped_drugs"]
    if "n_pairs" in report:
        metrics.update({"query/n_pairs": report["n_pairs"], "time/pairs_s": report["seconds_pairs"]})
    return metrics


def _log_summary(result: QueryResult, report: dict[str, Any], library: DrugLibrary, files: list[Path]) -> None:
    """Through logging, so that the Hydra job's query.log holds the summary as well as the console."""
    missing = report["n_missing_from_library"] + report["n_unmeasured_in_library"]
    log.info(
        "query %s: %d genes, %d in the library %s, %d missing (e.g. %s), %d used; score %s, direction %s",
        report["signature"], report["n_query_genes"], report["n_matched"], library.source, missing,
        (report["missing_genes"] + report["unmeasured_genes"])[:5], report["n_used"], report["score"], report["direction"],
    )
    log.info("top drugs:\n%s", result.drugs.head(10).to_string(index=False))
    if result.pairs is not None:
        where = f", engine {report['engine']}" + (
            f" ({report['n_tasks']} tasks on {report['n_workers']} workers)" if report["engine"] == "dask" else "")
        log.info("pairs (pair model %s%s, %d scored by %s%s in %.2f s):\n%s", report["pair_model"],
                 f" from {report['stacked_model_dir']}" if report.get("stacked_model_dir") else "", report["n_pairs"],
                 report["pair_method"], where, report["seconds_pairs"], result.pairs.head(10).to_string(index=False))
    log.info("wrote %s", ", ".join(str(path) for path in files))
