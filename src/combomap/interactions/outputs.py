"""The files of an interaction map: the tidy table per entry, the table per combination and an AnnData .h5ad.

interactions.<csv|csv.gz|parquet>   (format `entries_format`; auto: csv up to AUTO_CSV_MAX_ENTRIES entries, parquet
                                    above, as the default compendium's 2.2 million entries are 0.5 GB of CSV)
                                    one row per tested entry: combo, study, drug1, drug2, gene, d1, d2, observed,
                                    expected, departure (observed - expected, the effect size), scale, t, z, p, q
                                    (BH over all entries), q_combo (BH within the combination), [q_hierarchical
                                    (fdr_scope=hierarchical: the q the calls used),] call
combinations.csv                    one row per combination: class, call counts, the Norman et al. 2019 metrics,
                                    df (the median over its genes of the t's degrees of freedom; inf = normal)
interactions.h5ad                   combomap's combination layout (obs = combinations with their summaries, var =
                                    genes, layers d1, d2, y [, v1, v2], so combomap reads it back as a data set)
                                    plus layers expected, departure, scale, z, p, q, q_combo [, q_hierarchical]
                                    and call (1 synergy,
                                    -1 buffering, 0 none; NaN untested in the float layers); uns["interactions"] the
                                    settings that made it; gzip-compressed (half the size: most layers are
                                    NaN where a gene is unmeasured)
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import pandas as pd
import pyarrow as pa

from combomap.data.atomic import atomic_file
from combomap.data.h5ad import FORMAT_TAG
from combomap.data.io import entry_keys, write_arrow_table
from combomap.interactions.calls import CALL_NAMES
from combomap.interactions.pipeline import InteractionResult

log = logging.getLogger(__name__)

ENTRY_STEM = "interactions"
AUTO_CSV_MAX_ENTRIES = 1_000_000
COMBINATIONS_FILE = "combinations.csv"
H5AD_FILE = "interactions.h5ad"


def entry_table(result: InteractionResult) -> pa.Table:
    """One row per tested entry, combinations in data-set order and genes in column order."""
    tests, dataset = result.tests, result.dataset
    rows, columns = np.nonzero(tests.tested)
    data = entry_keys(dataset, rows, columns)
    measured = {"d1": dataset.drug1_effect, "d2": dataset.drug2_effect, "observed": tests.observed,
                "expected": tests.expected, "departure": tests.departure}
    statistics = {"scale": tests.scale, "t": tests.t, "z": tests.z}
    probabilities = {"p": tests.p, "q": tests.q, "q_combo": tests.q_combo}
    if tests.q_hierarchical is not None:
        probabilities["q_hierarchical"] = tests.q_hierarchical
    for name, array in {**measured, **statistics}.items():  # float32: the data's precision, and the CSV stays short
        data[name] = pa.array(np.asarray(array)[rows, columns].astype(np.float32))
    for name, array in probabilities.items():  # float64: p-values far in the tail
        data[name] = pa.array(np.asarray(array, dtype=np.float64)[rows, columns])
    names = np.array([CALL_NAMES[code] for code in sorted(CALL_NAMES)], dtype=object)
    data["call"] = pa.array(names[tests.call[rows, columns] - min(CALL_NAMES)].tolist(), type=pa.string())
    return pa.table(data)


def combination_table(result: InteractionResult) -> pd.DataFrame:
    """The per-combination summaries with the degrees of freedom of each combination's test."""
    table = result.combinations.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a combination without tested genes cannot occur; quiet anyway
        table["df"] = np.nanmedian(np.where(result.tests.tested, result.null.df, np.nan), axis=1)
    return table


def write_h5ad(result: InteractionResult, path: Path, settings: dict[str, Any]) -> Path:
    """The AnnData file (module docstring); `settings` are stored in uns["interactions"]."""
    dataset, tests = result.dataset, result.tests
    combinations = combination_table(result)
    obs = combinations.drop(columns=["combo"]).copy()
    for name in ("study", "drug1", "drug2", "class", "dominant_drug"):
        obs[name] = pd.Categorical(obs[name].astype(str))
    obs.index = pd.Index(combinations["combo"].astype(str).to_numpy(dtype=object), name="combo")
    var = pd.DataFrame(index=pd.Index(np.asarray(dataset.genes, dtype=object), name="gene"))
    layers: dict[str, np.ndarray] = {"d1": dataset.drug1_effect, "d2": dataset.drug2_effect, "y": dataset.combo_effect}
    if dataset.has_variances:
        layers.update(v1=dataset.drug1_var, v2=dataset.drug2_var)
    for name in ("expected", "departure", "scale", "z"):
        layers[name] = np.asarray(getattr(tests, name), dtype=np.float32)
    for name in ("p", "q", "q_combo", "q_hierarchical"):
        if getattr(tests, name) is not None:
            layers[name] = np.asarray(getattr(tests, name), dtype=np.float64)
    layers["call"] = tests.call
    uns = {"combomap": dict(FORMAT_TAG), "interactions": {key: str(value) for key, value in settings.items()}}
    adata = anndata.AnnData(X=None, obs=obs, var=var, layers=layers, uns=uns)
    with atomic_file(path) as staging:
        adata.write_h5ad(staging, compression="gzip")
    return path


def write_outputs(result: InteractionResult, out_dir: Path, entries_format: str,
                  settings: dict[str, Any]) -> list[Path]:
    """The three files into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = entry_table(result)
    if entries_format == "auto":
        entries_format = "csv" if table.num_rows <= AUTO_CSV_MAX_ENTRIES else "parquet"
        if entries_format == "parquet":
            log.info("%d entries: the entry table is parquet (interactions.entries_format=csv to force CSV)",
                     table.num_rows)
    entries = write_arrow_table(table, out_dir / f"{ENTRY_STEM}.{entries_format}")
    combinations = out_dir / COMBINATIONS_FILE
    with atomic_file(combinations) as staging:
        combination_table(result).to_csv(staging, index=False)
    return [entries, combinations, write_h5ad(result, out_dir / H5AD_FILE, settings)]
