"""Predict combination signatures of new drug pairs with a saved stacked model (`combomap-predict`, whose job
is `combomap.jobs.predict`).

The library of single-drug signatures (+ variances) comes from `combomap.data.library_io.load_library`
(the `library` group: npy directory, tidy table, h5ad, gctx, or the simulator's library).
Pairs: a list of "A+B" strings or [A, B] lists, or a CSV/TSV file with columns drug1, drug2.
Output: npy (a folder <output.path>/ with predictions.npy + pairs.csv + genes.txt) or a tidy table (drug1, drug2,
gene, prediction) as csv or parquet, or an AnnData .h5ad (obs = pairs "A+B" with columns drug1, drug2; var = genes;
X = predictions; combomap.data.h5ad.write_results_h5ad). All are written atomically (combomap.data.atomic): an
overwrite that fails (a full disk, a kill) leaves the previous output whole, never a mix of old and new files.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from combomap.data.atomic import atomic_directory, atomic_file, recover
from combomap.data.dataset import DataError
from combomap.data.export import signature_series
from combomap.data.h5ad import by_pair, write_results_h5ad
from combomap.data.library import SELF_PAIR, DrugLibrary, parse_pair, uninformative_text
from combomap.data.pairs import PairBatch
from combomap.progress import Progress
from combomap.settings import SettingsError
from combomap.stacking.final_model import MAX_ROWS_PER_CHUNK, StackedModel, align_genes

log = logging.getLogger(__name__)

OUTPUT_FORMATS = ("npy", "csv", "parquet", "h5ad")
NPY_OUTPUT_FILES = ("predictions.npy", "pairs.csv", "genes.txt")
PAIR_SEPARATORS = ("\t", ",", ";")  # a pairs file's delimiter: the first of these in its header line
BYTES_PER_VALUE = 4  # predictions are float32 (predictions.npy; the tidy tables hold many times more per value)


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks are sold)."""
    if n < 1000:
        return f"{n:.0f} bytes"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"


def check_output_size(n_pairs: int, n_genes: int, max_entries: int, fmt: str) -> int:
    """The number of predicted values, logged with the output's size before any work; past `max_entries`
    (output.max_entries) it is one line saying how to raise the limit."""
    entries = n_pairs * n_genes
    size = human_bytes(entries * BYTES_PER_VALUE)
    if entries > max_entries:
        raise SettingsError(
            f"pairs: {n_pairs:,} pairs x {n_genes:,} genes = {entries:,} predicted values ({size} as float32) exceed "
            f"output.max_entries={max_entries}; raise it (output.max_entries={entries}) or predict fewer pairs")
    table = "" if fmt in ("npy", "h5ad") else f", a tidy {fmt} table of {entries:,} rows (several times larger)"
    log.info("predicting %s pair(s) x %s genes = %s values: about %s as float32%s", f"{n_pairs:,}", f"{n_genes:,}",
             f"{entries:,}", size, table)
    return entries


def parse_pairs(spec: Any) -> list[tuple[str, str]]:
    """["A+B", ["C", "D"]] or a CSV/TSV path with columns drug1, drug2 -> [(A, B), (C, D)].

    Each pair is of two different drugs (`SELF_PAIR`); an empty list or file is refused."""
    if isinstance(spec, (str, Path)) and (Path(spec).expanduser().is_file() or "+" not in str(spec)):
        return read_pairs_file(Path(spec).expanduser())
    items: Iterable[Any] = [spec] if isinstance(spec, str) else spec
    pairs = [parse_pair(item) for item in items]
    if not pairs:
        raise DataError("no drug pairs given")
    return pairs


def read_pairs_file(path: Path) -> list[tuple[str, str]]:
    """The pairs of a CSV/TSV file with columns drug1, drug2 (the delimiter: the first of PAIR_SEPARATORS in its
    header); every refusal names the file."""
    if not path.is_file():
        raise DataError(f"pairs file {path} not found (or write pairs as 'A+B')")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the pairs file is empty; it needs a header drug1,drug2 and one pair per line")
    try:
        with path.open(encoding="utf-8-sig") as handle:
            header = handle.readline()
        sep = next((s for s in PAIR_SEPARATORS if s in header), None)
        if sep is None:
            raise DataError(f"{path}: pairs file needs columns drug1, drug2 separated by a comma or a tab; "
                            f"its first line is {header.strip()[:80]!r}")
        with warnings.catch_warnings():  # a row longer than the header would silently become the index
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError,
            csv.Error) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: cannot read the pairs file as CSV/TSV with columns drug1, drug2 ({reason})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if not {"drug1", "drug2"} <= set(table.columns):
        raise DataError(f"{path}: pairs file needs columns drug1, drug2; got {list(table.columns)}")
    if table.empty:
        raise DataError(f"{path}: the pairs file has a header but no pairs")
    first, second = table["drug1"].str.strip(), table["drug2"].str.strip()
    blank = ((first == "") | (second == "")).to_numpy()
    if blank.any():
        raise DataError(f"{path}: line {int(np.argmax(blank)) + 2} has an empty drug name")
    same = (first == second).to_numpy()
    if same.any():
        lines = [int(i) + 2 for i in np.flatnonzero(same)]
        raise DataError(f"{path}: line {lines[0]} pairs {first.iloc[lines[0] - 2]!r} with itself "
                        f"({len(lines)} such line(s), e.g. {lines[:5]}): {SELF_PAIR}; remove those lines")
    return list(zip(first, second))


def check_pair_drugs(model: StackedModel, library: DrugLibrary, pairs: Sequence[tuple[str, str]]) -> None:
    """Refuse pairs of a drug whose signature on the model's genes is constant (e.g. all 0) or unmeasured: the
    model would answer for it from no signal, and such a prediction looks like any other."""
    used = np.unique(library.index_of([d for pair in pairs for d in pair]))
    columns = align_genes(model.genes, library.genes, library.source)
    bad = used[library.uninformative(columns)[used]]
    if not len(bad):
        return
    names = {library.drugs[i] for i in bad}
    n_pairs = sum(1 for a, b in pairs if a in names or b in names)
    every = " (every drug of the library is)" if library.uninformative(columns).all() else ""
    raise DataError(
        f"{library.source}: drug(s) {uninformative_text(sorted(names))} have constant (e.g. all 0) or missing values "
        f"on the model's {len(model.genes)} genes{every}; the {n_pairs} pair(s) with them cannot be predicted: "
        "remove them from pairs")


def predict_pairs(
    model: StackedModel, library: DrugLibrary, pairs: Sequence[tuple[str, str]], inference: str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """(n_pairs x model genes) predicted combination effects; unknown drugs and missing genes are clear errors.

    Pairs go through the model in its own chunks (the same numbers as all at once), so only a chunk's inputs are
    in memory; `progress` shows them (combomap.progress) when there is more than one."""
    columns = align_genes(model.genes, library.genes, library.source)
    first = library.index_of([a for a, _ in pairs])
    second = library.index_of([b for _, b in pairs])
    chunk = max(1, MAX_ROWS_PER_CHUNK // max(1, len(columns)))
    if len(pairs) <= chunk:
        return model.predict(PairBatch.from_library(library, first, second, columns), inference=inference)
    bar = Progress(len(pairs), "predicting pairs", unit="pair") if progress else None
    out: np.ndarray | None = None
    try:
        for start in range(0, len(pairs), chunk):
            rows = slice(start, min(start + chunk, len(pairs)))
            batch = PairBatch.from_library(library, first[rows], second[rows], columns)
            part = model.predict(batch, inference=inference)
            if out is None:  # the model's own dtype, as when predicted at once
                out = np.empty((len(pairs), part.shape[1]), dtype=part.dtype)
            out[rows] = part
            if bar is not None:
                bar.update(rows.stop - rows.start)
    finally:
        if bar is not None:
            bar.close()
    assert out is not None
    return out


def write_predictions(
    prediction: np.ndarray, pairs: Sequence[tuple[str, str]], genes: Sequence[str], path: str | Path, fmt: str
) -> list[Path]:
    """npy: folder <path>/ with predictions.npy + pairs.csv + genes.txt; csv/parquet: one tidy table <path>.<fmt>;
    h5ad: one AnnData file <path>.h5ad (obs = pairs, var = genes, X = predictions).

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
    if fmt == "h5ad":
        target = path.with_suffix(".h5ad")
        return [write_results_h5ad(by_pair(pair_table), genes, target, prediction, kind="predictions")]
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
