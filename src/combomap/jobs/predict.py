"""combomap-predict's job: load a saved stacked model and a drug library, predict the pairs, write them."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from combomap.config.base import choice, typed
from combomap.config.data import library_source
from combomap.config.predict import PredictOutput
from combomap.config.query import engine_settings
from combomap.data.library_io import load_library
from combomap.progress import configure as configure_progress
from combomap.query.distributed import open_engine, predict_pairs_dask
from combomap.stacking.final_model import INFERENCE_MODES, MAX_ROWS_PER_CHUNK, StackedModel
from combomap.stacking.predict import check_output_size, check_pair_drugs, parse_pairs, predict_pairs, write_predictions

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> list[Path]:
    """conf/predict.yaml -> the written prediction files; every setting and input is checked before any work
    (the pairs' count against output.max_entries before the library loads)."""
    if cfg.get("inference") is not None:
        choice(cfg, "inference", INFERENCE_MODES)
    output = typed(cfg.get("output"), PredictOutput, "output")
    configure_progress(cfg)
    engine = engine_settings(cfg)
    model_dir = Path(str(cfg.model_dir)).expanduser().resolve()
    inference = cfg.get("inference") or None
    model = StackedModel.load(model_dir, inference=inference)
    pairs_spec = cfg.pairs
    pairs = parse_pairs(OmegaConf.to_container(pairs_spec, resolve=True) if OmegaConf.is_config(pairs_spec) else pairs_spec)
    check_output_size(len(pairs), len(model.genes), output.max_entries, output.format)
    source = library_source(cfg.library).with_absolute_paths()
    library = load_library(source)
    check_pair_drugs(model, library, pairs)  # unknown drugs, missing genes, blank signatures: before any work
    with open_engine(engine) as dask_engine:
        if dask_engine is None:
            prediction = predict_pairs(model, library, pairs, progress=True)
        else:  # blocks of whole model chunks, predicted on the workers, gathered in pair order
            rows = max(1, MAX_ROWS_PER_CHUNK // len(model.genes))
            prediction = predict_pairs_dask(dask_engine, str(model_dir), inference, source, pairs, rows)
    files = write_predictions(prediction, pairs, model.genes, output.path, output.format)
    # through logging, so that the Hydra job's predict.log holds it as well as the console
    log.info("model %s (%s stacker, %d fold net(s), inference %s); library %s", model_dir,
             model.backend_name, len(model.nets), model.inference, library.source)
    log.info("predicted %d pair(s) x %d genes; wrote %s", len(pairs), len(model.genes), ", ".join(str(f) for f in files))
    return files
