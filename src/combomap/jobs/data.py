"""combomap-data's job: write what `export` names (the data set, a drug library or a query signature) to `out`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from combomap.data.dataset import DataError
from combomap.data.export import (
    DATASET_FORMATS,
    LIBRARY_FORMATS,
    SIGNATURE_KINDS,
    average_pair_signature,
    disease_signature,
    drug_signature,
    write_dataset,
    write_library,
    write_signature,
)
from combomap.data.library import parse_pair
from combomap.data.library_io import load_library
from combomap.data.loading import load_dataset
from combomap.stacking.predict import predicted_pair_signature


def run(cfg: DictConfig) -> dict[str, object]:
    """conf/data_tool.yaml -> the written output; prints and returns a one-line summary."""
    what = str(OmegaConf.select(cfg, "export.what", default="dataset"))
    if what == "library":
        return _export_library(cfg)
    if what == "signature":
        return _export_signature(cfg)
    if what != "dataset":
        raise DataError(f"export must be dataset, library or signature, got {what!r}")
    fmt = str(cfg.format)
    if fmt not in DATASET_FORMATS:  # fail before a possibly long simulation
        raise DataError(f"unknown output format {fmt!r}; expected one of {list(DATASET_FORMATS)}")
    dataset = load_dataset(cfg.data)
    written = write_dataset(dataset, str(cfg.out), fmt, overwrite=bool(cfg.overwrite))
    summary: dict[str, object] = {
        "n_combos": dataset.n_combos,
        "n_genes": dataset.n_genes,
        "measured_fraction": float(np.mean(~np.isnan(dataset.combo_effect))),
        "has_variances": dataset.has_variances,
        "format": fmt,
        "output": str(written.resolve()),
    }
    print(
        f"combomap-data: {summary['n_combos']} combos x {summary['n_genes']} genes, "
        f"{summary['measured_fraction']:.1%} of combination effects measured, "
        f"variances {'yes' if dataset.has_variances else 'no'} -> {summary['output']} ({fmt})"
    )
    return summary


def _export_library(cfg: DictConfig) -> dict[str, object]:
    fmt = str(cfg.export.format)
    if fmt not in LIBRARY_FORMATS:  # fail before a possibly long simulation
        raise DataError(f"unknown library format {fmt!r}; expected one of {list(LIBRARY_FORMATS)}")
    library = load_library(OmegaConf.to_container(cfg.library, resolve=True))
    written = write_library(library, str(cfg.out), fmt, overwrite=bool(cfg.overwrite))
    summary: dict[str, object] = {"n_drugs": library.n_drugs, "n_genes": library.n_genes,
                                  "has_variances": library.variances is not None, "format": fmt,
                                  "output": str(written.resolve())}
    print(f"combomap-data: library of {library.n_drugs} drugs x {library.n_genes} genes ({library.source}), "
          f"variances {'yes' if summary['has_variances'] else 'no'} -> {summary['output']} ({fmt})")
    return summary


def _export_signature(cfg: DictConfig) -> dict[str, object]:
    signature = make_signature(OmegaConf.to_container(cfg.export, resolve=True),
                               OmegaConf.to_container(cfg.library, resolve=True))
    written = write_signature(signature, str(cfg.out), str(cfg.export.format), overwrite=bool(cfg.overwrite))
    summary: dict[str, object] = {"n_genes": int(signature.shape[0]), "description": signature.attrs["description"],
                                  "format": str(cfg.export.format), "output": str(written.resolve())}
    print(f"combomap-data: signature of {summary['description']}, {summary['n_genes']} genes -> {summary['output']}")
    return summary


def make_signature(export_cfg: Mapping[str, Any], library_cfg: Mapping[str, Any]) -> pd.Series:
    """The signature named by conf/export/signature.yaml (of: drug | pair | disease)."""
    kind = str(export_cfg.get("of", "drug"))
    if kind not in SIGNATURE_KINDS:
        raise DataError(f"export.of must be one of {list(SIGNATURE_KINDS)}, got {kind!r}")
    pair = parse_pair(export_cfg["pair"]) if export_cfg.get("pair") else None
    if kind == "disease":
        signature, _ = disease_signature(library_cfg, pair, float(export_cfg.get("noise", 0.5)),
                                         float(export_cfg.get("genes_fraction", 0.5)), int(export_cfg.get("seed", 0)))
        return signature
    library = load_library(library_cfg)
    if kind == "drug":
        return drug_signature(library, str(export_cfg.get("drug") or library.drugs[0]))
    pair = pair or (library.drugs[0], library.drugs[1])
    model_dir = export_cfg.get("model_dir")
    return predicted_pair_signature(model_dir, library, pair) if model_dir else average_pair_signature(library, pair)
