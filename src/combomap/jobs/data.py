"""combomap-data's job: write what `export` names (the data set, a drug library or a query signature) to `out`."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from combomap.config.data import DataToolSettings, data_source, data_tool_settings, export_settings, library_source
from combomap.data.export import (
    LibraryExport,
    SignatureExport,
    average_pair_signature,
    disease_signature,
    drug_signature,
    write_dataset,
    write_library,
    write_signature,
)
from combomap.data.library import parse_pair
from combomap.data.library_io import LibrarySource, load_library
from combomap.data.loading import load_dataset
from combomap.stacking.predict import predicted_pair_signature

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, object]:
    """conf/data_tool.yaml -> the written output; logs and returns a one-line summary."""
    tool = data_tool_settings(cfg)  # every setting is checked before a possibly long simulation
    export = export_settings(cfg.export) if cfg.get("export") is not None else None
    if isinstance(export, LibraryExport):
        return _export_library(tool, export, library_source(cfg.library))
    if isinstance(export, SignatureExport):
        return _export_signature(tool, export, library_source(cfg.library))
    fmt = tool.format
    dataset = load_dataset(data_source(cfg.data))
    written = write_dataset(dataset, tool.out, fmt, overwrite=tool.overwrite)
    summary: dict[str, object] = {
        "n_combos": dataset.n_combos,
        "n_genes": dataset.n_genes,
        "measured_fraction": float(np.mean(~np.isnan(dataset.combo_effect))),
        "has_variances": dataset.has_variances,
        "format": fmt,
        "output": str(written.resolve()),
    }
    log.info("combomap-data: %d combos x %d genes, %.1f%% of combination effects measured, variances %s -> %s (%s)",
             dataset.n_combos, dataset.n_genes, 100 * summary["measured_fraction"],
             "yes" if dataset.has_variances else "no", summary["output"], fmt)
    return summary


def _export_library(tool: DataToolSettings, export: LibraryExport, source: LibrarySource) -> dict[str, object]:
    fmt = export.format
    library = load_library(source)
    written = write_library(library, tool.out, fmt, overwrite=tool.overwrite)
    summary: dict[str, object] = {"n_drugs": library.n_drugs, "n_genes": library.n_genes,
                                  "has_variances": library.variances is not None, "format": fmt,
                                  "output": str(written.resolve())}
    log.info("combomap-data: library of %d drugs x %d genes (%s), variances %s -> %s (%s)", library.n_drugs,
             library.n_genes, library.source, "yes" if summary["has_variances"] else "no", summary["output"], fmt)
    return summary


def _export_signature(tool: DataToolSettings, export: SignatureExport, source: LibrarySource) -> dict[str, object]:
    signature = make_signature(export, source)
    written = write_signature(signature, tool.out, export.format, overwrite=tool.overwrite)
    summary: dict[str, object] = {"n_genes": int(signature.shape[0]), "description": signature.attrs["description"],
                                  "format": export.format, "output": str(written.resolve())}
    log.info("combomap-data: signature of %s, %d genes -> %s", summary["description"], summary["n_genes"], summary["output"])
    return summary


def make_signature(export: SignatureExport, source: LibrarySource) -> pd.Series:
    """The signature named by conf/export/signature.yaml (of: drug | pair | disease)."""
    pair = parse_pair(export.pair) if export.pair else None
    if export.of == "disease":
        signature, _ = disease_signature(source, pair, export.noise, export.genes_fraction, export.seed)
        return signature
    library = load_library(source)
    if export.of == "drug":
        return drug_signature(library, export.drug or library.drugs[0])
    pair = pair or (library.drugs[0], library.drugs[1])
    if export.model_dir:
        return predicted_pair_signature(export.model_dir, library, pair)
    return average_pair_signature(library, pair)
