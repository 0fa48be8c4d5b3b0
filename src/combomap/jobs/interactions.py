"""combomap-interactions' job: the interaction map of one data set (combomap.interactions) as one MLflow run.

The settings are checked and a saved model (expected=model) is loaded before the data; everything MLflow is here.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from combomap.config.base import typed
from combomap.config.data import data_source
from combomap.config.interactions import InteractionsJobSettings
from combomap.data.loading import load_dataset_with_truth
from combomap.interactions.outputs import write_outputs
from combomap.interactions.pipeline import InteractionResult, call_interactions, prepare
from combomap.interactions.planted import PlantedCompendium, plant_interactions, recall_by_size, score_calls
from combomap.interactions.plots import make_figures
from combomap.interactions.settings import MODEL_EXPECTED, InteractionSettings
from combomap.jobs.recording import log_dataset_input
from combomap.progress import configure as configure_progress
from combomap.settings import SettingsError
from combomap.stacking.final_model import StackedModel
from combomap.tracking import log_metrics, mlflow_run, open_store
from combomap.config.run import run_config, run_name

log = logging.getLogger(__name__)

PLANTED_RECALL_FILE = "planted_recall.csv"


def truth_metrics(result: InteractionResult, planted: PlantedCompendium,
                  out_dir: Path) -> tuple[dict[str, float], Path]:
    """truth/* metrics of the calls against the planted interactions, and the recall-per-size table's file."""
    tested = result.tests.tested
    scores = score_calls(result.tests.call, planted, tested)
    by_size = recall_by_size(result.tests.call, planted, tested)
    path = out_dir / PLANTED_RECALL_FILE
    by_size.to_csv(path, index=False)
    metrics = {f"truth/{name}": value for name, value in scores.items()}
    metrics.update({f"truth/recall_size{row.size_sd:g}": row.recall for row in by_size.itertuples()})
    return metrics, path


def run(cfg: DictConfig) -> dict[str, float]:
    """Load, plant (interactions.plant), call, write, plot and log; returns the logged metrics."""
    configure_progress(cfg)
    typed({key: cfg.get(key) for key in ("task_name", "progress", "seed")}, InteractionsJobSettings, "")
    settings = typed(cfg.interactions, InteractionSettings, "interactions")
    source = data_source(cfg.data)
    open_store(run_config(cfg))
    model = StackedModel.load(settings.model_dir) if settings.expected == MODEL_EXPECTED else None
    dataset, truth = load_dataset_with_truth(source)
    planted = None
    if settings.plant.enabled:
        if truth is None:
            raise SettingsError("interactions.plant plants interactions into the simulator's truth: it needs "
                                f"data=simulated, got data.source={source.source}")
        planted = plant_interactions(dataset, truth, settings.plant, settings.expected)
        dataset = planted.dataset
    expected = prepare(dataset, settings, model)
    out_dir = Path(cfg.paths.output_dir)
    with mlflow_run(run_config(cfg), run_name=run_name(cfg, settings.expected)):
        log_dataset_input(dataset, source, "evaluation")
        result = call_interactions(dataset, settings, expected)
        described = {"data": dataset.source, "expected": result.expectation.note, "variance": result.null.method,
                     "calibration": result.null.calibration, "fdr": settings.fdr, "fdr_scope": settings.fdr_scope,
                     "settings": asdict(settings)}
        files = write_outputs(result, out_dir, settings.entries_format, described)
        figures = make_figures(result, out_dir, settings.plots) if settings.plots.enabled else []
        metrics = {f"interactions/{name}": value for name, value in result.headline().items()}
        if planted is not None:
            scores, recall_file = truth_metrics(result, planted, out_dir)
            metrics.update(scores)
            files.append(recall_file)
        mlflow.set_tags({"interactions.expected": settings.expected, "interactions.variance": result.null.method,
                         "data.source": dataset.source})
        log_metrics(metrics)
        for path in files:
            mlflow.log_artifact(str(path))
        for path in figures:
            mlflow.log_artifact(str(path), artifact_path="plots")
    print(summary(result))
    print(f"wrote {', '.join(path.name for path in files + figures)} to {out_dir}")
    return metrics


def summary(result: InteractionResult) -> str:
    """The run in a few lines for the terminal."""
    numbers = result.headline()
    classes = result.combinations["class"].value_counts()
    return "\n".join([
        f"{result.dataset.n_combos} combinations x {result.dataset.n_genes} genes ({result.dataset.source})",
        f"{result.expectation.note}; {result.null.note}",
        f"{int(numbers['n_tested'])} entries tested, {int(numbers['n_called'])} called at FDR {result.tests.fdr:g} "
        f"(q over {result.tests.fdr_scope}): {int(numbers['n_synergy'])} synergy, {int(numbers['n_buffering'])} "
        "buffering",
        "classes: " + ", ".join(f"{name} {count}" for name, count in classes.items()),
    ])
