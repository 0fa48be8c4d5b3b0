"""combomap-query: rank library drugs and drug pairs against a query signature, as one MLflow run.

    combomap-query signature=query.csv
    combomap-query signature=query.tsv score=wtcs direction=reverse pairs.include='[drug0001]'
    combomap-query signature=query.csv pairs.model=stacked pairs.stacked_model_dir=DIR
    combomap-query signature=query.csv library=gctx library.path=level5.gctx
    combomap-query signature=query.csv score=wtcs engine=dask engine.address=tcp://host:8786

Writes drugs.csv (rank, drug, score), pairs.csv (rank, drug1, drug2, score, drug1_score, drug2_score)
and query_report.json (genes matched / missing, settings, timings) into paths.output_dir and logs them
as artifacts; metrics are "query/*" and "time/*".
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import mlflow
from omegaconf import DictConfig, OmegaConf

from combomap.cli import command
from combomap.data.dataset import DataError
from combomap.data.library_io import load_library, with_absolute_paths
from combomap.progress import configure as configure_progress
from combomap.query.distributed import EngineSettings, open_engine
from combomap.query.engine import query_for, run_query
from combomap.query.signature import read_signature
from combomap.settings import choice, integer
from combomap.tracking import log_metrics, mlflow_run

log = logging.getLogger(__name__)


def check_query_settings(cfg: DictConfig) -> dict[str, Any]:
    """Every scalar setting, checked before the library loads; returns the typed values."""
    from combomap.query.engine import PAIR_METHODS, PAIR_MODELS
    from combomap.query.pairs import DIRECTIONS
    from combomap.query.scores import SCORES
    from combomap.stacking.final_model import INFERENCE_MODES

    if cfg.get("signature") in (None, "???"):
        raise DataError("give the query signature: combomap-query signature=PATH (CSV/TSV of gene, value)")
    settings: dict[str, Any] = {
        "score": choice(cfg, "score", SCORES),
        "direction": choice(cfg, "direction", DIRECTIONS),
        "pair_model": choice(cfg, "pairs.model", PAIR_MODELS),
        "method": choice(cfg, "pairs.method", PAIR_METHODS, default="auto"),
    }
    for name, key in (("top_n", "top_n"), ("xsum_extreme", "xsum_extreme"), ("drugs_top_k", "drugs.top_k"),
                      ("pairs_top_k", "pairs.top_k"), ("block_pairs", "pairs.block_pairs")):
        settings[name] = integer(cfg, key, minimum=1, default=None, allow_none=True)
    if cfg.pairs.get("inference") is not None:
        choice(cfg, "pairs.inference", INFERENCE_MODES)
    return settings


def run(cfg: DictConfig) -> dict[str, Any]:
    """Load the library and query, rank, write the tables, log one run; returns the report."""
    settings = check_query_settings(cfg)
    configure_progress(cfg)
    signature = read_signature(cfg.signature, cfg.get("gene_column"), cfg.get("value_column"))
    engine = EngineSettings.from_config(OmegaConf.to_container(cfg.engine, resolve=True) if "engine" in cfg else None)
    start = time.perf_counter()
    library = load_library(cfg.library)
    load_seconds = time.perf_counter() - start
    pairs_cfg = cfg.pairs
    stacked = None
    if pairs_cfg.enabled and pairs_cfg.model == "stacked":
        if not pairs_cfg.get("stacked_model_dir"):
            raise DataError("pairs.model=stacked needs pairs.stacked_model_dir (a combomap-stack model directory)")
        from combomap.query.stacked import load_stacked_model

        stacked = load_stacked_model(str(pairs_cfg.stacked_model_dir), pairs_cfg.get("inference"))
    from combomap.query.stacked import check_stacker_engine

    stacker_engine = check_stacker_engine(str(pairs_cfg.get("stacker_engine", "auto")))
    include = [str(d) for d in (pairs_cfg.get("include") or [])]
    # Bad input (no gene overlap, unknown include drug) fails here, before an MLflow run exists.
    prepared = query_for(signature, library, settings["score"], settings["top_n"], settings["xsum_extreme"], stacked)
    if include:
        library.index_of(include)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_name = cfg.logger.get("run_name") or f"query-{Path(str(cfg.signature)).stem}"
    with open_engine(engine) as dask_engine, mlflow_run(cfg, run_name=run_name, tags={"task": "query", "score": str(cfg.score)}):
        result = run_query(
            signature,
            library,
            pairs=bool(pairs_cfg.enabled),
            include=include or None,
            stacked_model=stacked,
            inference=pairs_cfg.get("inference"),
            prepared=prepared,
            stacker_engine=stacker_engine,
            engine=dask_engine,
            library_cfg=with_absolute_paths(OmegaConf.to_container(cfg.library, resolve=True)),
            stacked_model_dir=str(Path(str(pairs_cfg.stacked_model_dir)).expanduser().resolve()) if stacked is not None else None,
            **settings,
        )
        report = dict(result.report, signature=str(cfg.signature), seconds_load_library=load_seconds)
        if stacked is not None:
            report["stacked_model_dir"] = str(Path(str(pairs_cfg.stacked_model_dir)).expanduser().resolve())
        files = [out_dir / "drugs.csv"]
        result.drugs.to_csv(files[0], index=False, float_format="%.8g")
        if result.pairs is not None:
            files.append(out_dir / "pairs.csv")
            result.pairs.to_csv(files[-1], index=False, float_format="%.8g")
        files.append(out_dir / "query_report.json")
        files[-1].write_text(json.dumps(report, indent=1, default=str) + "\n")
        metrics = {
            "query/n_query_genes": report["n_query_genes"],
            "query/n_matched": report["n_matched"],
            "query/n_used": report["n_used"],
            "query/n_missing": report["n_missing_from_library"] + report["n_unmeasured_in_library"],
            "query/n_drugs": library.n_drugs,
            "time/load_library_s": load_seconds,
            "time/drugs_s": report["seconds_drugs"],
        }
        if result.pairs is not None:
            metrics.update({"query/n_pairs": report["n_pairs"], "time/pairs_s": report["seconds_pairs"]})
        log_metrics(metrics)
        for path in files:
            mlflow.log_artifact(str(path))
    _log_summary(result, report, library, files)
    return report


def _log_summary(result: Any, report: dict[str, Any], library: Any, files: list[Path]) -> None:
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


@command("combomap-query", "query")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
