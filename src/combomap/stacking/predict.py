"""Predict combination signatures of new drug pairs with a saved stacked model (`combomap-predict`, whose job
is `combomap.jobs.predict`).

The library of single-drug signatures (+ variances) comes from `combomap.data.library_io.load_library`
(`library.source`: npy directory, tidy table, gctx, or the simulator's library).
Pairs: a list of "A+B" strings or [A, B] lists, or a CSV/TSV file with columns drug1, drug2.
Output: npy (a folder <output.path>/ with predictions.npy + pairs.csv + genes.txt) or a tidy table (drug1, drug2,
gene, prediction) as csv or parquet. Both are written atomically (combomap.data.atomic): an overwrite that fails
(a full disk, a kill) leaves the previous output whole, never a mix of old and new files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from combomap.data.atomic import atomic_directory, atomic_file, recover
from combomap.data.dataset import DataError
from combomap.data.export import signature_series
from combomap.data.library import DrugLibrary, parse_pair
from combomap.data.pairs import PairBatch
from combomap.stacking.final_model import StackedModel, align_genes

OUTPUT_FORMATS = ("npy", "csv", "parquet")
NPY_OUTPUT_FILES = ("predictions.npy", "pairs.csv", "genes.txt")


def parse_pairs(spec: Any) -> list[tuple[str, str]]:
    """["A+B", ["C", "D"]] or a CSV/TSV path with columns drug1, drug2 -> [(A, B), (C, D)]."""
    if isinstance(spec, (str, Path)) and (Path(spec).expanduser().is_file() or "+" not in str(spec)):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise DataError(f"pairs file {path} not found (or write pairs as 'A+B')")
        table = pd.read_csv(path, sep=None, engine="python", dtype=str)
        if not {"drug1", "drug2"} <= set(table.columns):
            raise DataError(f"{path}: pairs file needs columns drug1, drug2; got {list(table.columns)}")
        return list(zip(table["drug1"].str.strip(), table["drug2"].str.strip()))
    items: Iterable[Any] = [spec] if isinstance(spec, str) else spec
    pairs = [parse_pair(item) for item in items]
    if not pairs:
        raise DataError("no drug pairs given")
    return pairs


def predict_pairs(
    model: StackedModel, library: DrugLibrary, pairs: Sequence[tuple[str, str]], inference: str | None = None
) -> np.ndarray:
    """(n_pairs x model genes) predicted combination effects; unknown drugs and missing genes are clear errors."""
    columns = align_genes(model.genes, library.genes, library.source)
    first = library.index_of([a for a, _ in pairs])
    second = library.index_of([b for _, b in pairs])
    return model.predict(PairBatch.from_library(library, first, second, columns), inference=inference)


def write_predictions(
    prediction: np.ndarray, pairs: Sequence[tuple[str, str]], genes: Sequence[str], path: str | Path, fmt: str
) -> list[Path]:
    """npy: folder <path>/ with predictions.npy + pairs.csv + genes.txt; csv/parquet: one tidy table <path>.<fmt>.

    Either replaces an earlier output as a whole or not at all; a folder holding other files is not replaced."""
    if fmt not in OUTPUT_FORMATS:
        raise DataError(f"unknown output format {fmt!r}; choose one of {OUTPUT_FORMATS}")
    path = Path(path).expanduser()
    pair_table = pd.DataFrame(pairs, columns=["drug1", "drug2"])
    if fmt == "npy":
        folder = path.with_suffix("") if path.suffix == ".npy" else path
        recover(folder)
        if folder.exists() and not folder.is_dir():
            raise DataError(f"{folder}: exists and is not a folder (npy predictions are a folder of {list(NPY_OUTPUT_FILES)})")
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in NPY_OUTPUT_FILES) if folder.is_dir() else []
        if foreign:
            raise DataError(f"{folder}: refusing to replace a folder that holds files other than predictions ({foreign[:5]})")
        with atomic_directory(folder) as staging:
            np.save(staging / NPY_OUTPUT_FILES[0], prediction.astype(np.float32), allow_pickle=False)
            pair_table.to_csv(staging / NPY_OUTPUT_FILES[1], index=False)
            (staging / NPY_OUTPUT_FILES[2]).write_text("\n".join(genes) + "\n")
        return [folder / name for name in NPY_OUTPUT_FILES]
    tidy = pd.DataFrame(
        {
            "drug1": np.repeat(pair_table["drug1"].to_numpy(), len(genes)),
            "drug2": np.repeat(pair_table["drug2"].to_numpy(), len(genes)),
            "gene": np.tile(np.asarray(genes, dtype=object), len(pairs)),
            "prediction": prediction.reshape(-1),
        }
    )
    path = path.with_suffix(f".{fmt}")
    with atomic_file(path) as staging:
        if fmt == "csv":
            tidy.to_csv(staging, index=False)
        else:
            tidy.to_parquet(staging, index=False)
    return [path]


def predicted_pair_signature(model_dir: str | Path, library: DrugLibrary, pair: tuple[str, str]) -> pd.Series:
    """A pair's combination signature predicted by a saved combomap-stack model (`combomap-data export=signature
    export.of=pair export.model_dir=DIR`): a query that the pair should top."""
    model = StackedModel.load(Path(model_dir).expanduser())
    return signature_series(predict_pairs(model, library, [pair])[0], model.genes, f"pair {pair[0]}+{pair[1]} ({model_dir})")
