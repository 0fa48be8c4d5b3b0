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
import time
from pathlib import Path
from typing import Any

import hydra
import mlflow
from omegaconf import DictConfig, OmegaConf

from combomap.cli import user_errors
from combomap.data.dataset import DataError
from combomap.data.library_io import load_library
from combomap.paths import CONF_DIR
from combomap.query.distributed import EngineSettings, open_engine, worker_library_config
from combomap.query.engine import query_for, run_query
from combomap.query.signature import read_signature
from combomap.tracking import log_metrics, mlflow_run


def _optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must be an integer or null, got {value!r}") from error


def run(cfg: DictConfig) -> dict[str, Any]:
    """Load the library and query, rank, write the tables, log one run; returns the report."""
    if cfg.get("signature") in (None, "???"):
        raise DataError("give the query signature: combomap-query signature=PATH (CSV/TSV of gene, value)")
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
    prepared = query_for(
        signature, library, str(cfg.score), _optional_int(cfg.get("top_n"), "top_n"),
        _optional_int(cfg.get("xsum_extreme"), "xsum_extreme"), stacked,
    )
    if include:
        library.index_of(include)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_name = cfg.logger.get("run_name") or f"query-{Path(str(cfg.signature)).stem}"
    with open_engine(engine) as dask_engine, mlflow_run(cfg, run_name=run_name, tags={"task": "query", "score": str(cfg.score)}):
        result = run_query(
            signature,
            library,
            score=str(cfg.score),
            top_n=_optional_int(cfg.get("top_n"), "top_n"),
            direction=str(cfg.direction),
            xsum_extreme=_optional_int(cfg.get("xsum_extreme"), "xsum_extreme"),
            drugs_top_k=_optional_int(cfg.drugs.get("top_k"), "drugs.top_k"),
            pairs=bool(pairs_cfg.enabled),
            pair_model=str(pairs_cfg.model),
            include=include or None,
            pairs_top_k=_optional_int(pairs_cfg.get("top_k"), "pairs.top_k"),
            method=str(pairs_cfg.get("method", "auto")),
            stacked_model=stacked,
            inference=pairs_cfg.get("inference"),
            block_pairs=_optional_int(pairs_cfg.get("block_pairs"), "pairs.block_pairs"),
            prepared=prepared,
            stacker_engine=stacker_engine,
            engine=dask_engine,
            library_cfg=worker_library_config(OmegaConf.to_container(cfg.library, resolve=True)),
            stacked_model_dir=str(Path(str(pairs_cfg.stacked_model_dir)).expanduser().resolve()) if stacked is not None else None,
        )
        report = dict(result.report, signature=str(cfg.signature), seconds_load_library=load_seconds)
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
    _print_summary(result, report)
    return report


def _print_summary(result: Any, report: dict[str, Any]) -> None:
    missing = report["n_missing_from_library"] + report["n_unmeasured_in_library"]
    print(
        f"query: {report['n_query_genes']} genes, {report['n_matched']} in the library, {missing} missing "
        f"(e.g. {(report['missing_genes'] + report['unmeasured_genes'])[:5]}), {report['n_used']} used; "
        f"score {report['score']}, direction {report['direction']}"
    )
    print(result.drugs.head(10).to_string(index=False))
    if result.pairs is not None:
        where = f", engine {report['engine']}" + (f" ({report['n_tasks']} tasks on {report['n_workers']} workers)" if report["engine"] == "dask" else "")
        print(f"pairs ({report['pair_model']}, {report['n_pairs']} scored by {report['pair_method']}{where} in {report['seconds_pairs']:.2f} s):")
        print(result.pairs.head(10).to_string(index=False))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="query")
@user_errors("combomap-query")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
