"""combomap-predict's job: load a saved stacked model and a drug library, predict the pairs, write them."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from combomap.config.data import library_source
from combomap.config.query import engine_settings
from combomap.data.library_io import load_library
from combomap.progress import configure as configure_progress
from combomap.query.distributed import open_engine, predict_pairs_dask
from combomap.config.base import choice
from combomap.stacking.final_model import INFERENCE_MODES, MAX_ROWS_PER_CHUNK, StackedModel, align_genes
from combomap.stacking.predict import OUTPUT_FORMATS, parse_pairs, predict_pairs, write_predictions

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> list[Path]:
    """conf/predict.yaml -> the written prediction files; every setting and input is checked before any work."""
    if cfg.get("inference") is not None:
        choice(cfg, "inference", INFERENCE_MODES)
    choice(cfg, "output.format", OUTPUT_FORMATS)
    configure_progress(cfg)
    engine = engine_settings(cfg)
    model_dir = Path(str(cfg.model_dir)).expanduser().resolve()
    inference = cfg.get("inference") or None
    model = StackedModel.load(model_dir, inference=inference)
    source = library_source(cfg.library).with_absolute_paths()
    library = load_library(source)
    pairs_spec = cfg.pairs
    pairs = parse_pairs(OmegaConf.to_container(pairs_spec, resolve=True) if OmegaConf.is_config(pairs_spec) else pairs_spec)
    library.index_of([d for pair in pairs for d in pair])  # unknown drugs, missing genes: clear errors before any work
    align_genes(model.genes, library.genes, library.source)
    with open_engine(engine) as dask_engine:
        if dask_engine is None:
            prediction = predict_pairs(model, library, pairs)
        else:  # blocks of whole model chunks, predicted on the workers, gathered in pair order
            rows = max(1, MAX_ROWS_PER_CHUNK // len(model.genes))
            prediction = predict_pairs_dask(dask_engine, str(model_dir), inference, source, pairs, rows)
    files = write_predictions(prediction, pairs, model.genes, str(cfg.output.path), str(cfg.output.format))
    # through logging, so that the Hydra job's predict.log holds it as well as the console
    log.info("model %s (%s stacker, %d fold net(s), inference %s); library %s", model_dir,
             model.backend_name, len(model.nets), model.inference, library.source)
    log.info("predicted %d pair(s) x %d genes; wrote %s", len(pairs), len(model.genes), ", ".join(str(f) for f in files))
    return files
