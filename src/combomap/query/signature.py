"""Read a query signature (gene -> value) from CSV/TSV; duplicates and non-numbers are clear errors."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from combomap.data.dataset import DataError, check_unique
from combomap.data.io import tidy_format

MISSING_TOKENS = ("", "NA", "NaN", "nan", "N/A", "null", "NULL")


def _separator(path: Path) -> str | None:
    """The delimiter its suffix names (combomap.data.io.TIDY_SUFFIXES), else None: sniffed from the text."""
    try:
        kind, delimiter, _ = tidy_format(path)
    except DataError:
        return None
    return delimiter if kind == "csv" else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_signature(
    path: str | os.PathLike, gene_column: str | None = None, value_column: str | None = None
) -> pd.Series:
    """A float64 Series indexed by gene. Without column names: the first two columns, header auto-detected.

    Missing values (empty, NA) are dropped (the count is kept in `series.attrs["n_missing_values"]`).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such signature file")
    sep = _separator(path)
    named = gene_column is not None or value_column is not None
    try:
        raw = pd.read_csv(
            path, sep=sep, engine="python" if sep is None else "c", header=0 if named else None,
            dtype=str, keep_default_na=False, skip_blank_lines=True, encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, csv.Error) as error:
        raise DataError(f"{path}: cannot read the signature as CSV/TSV ({error})") from error
    if raw.empty:
        raise DataError(f"{path}: the signature file is empty")
    first_line = 1
    if named:
        columns = list(raw.columns)
        gene_column = gene_column or columns[0]
        value_column = value_column or columns[1 if len(columns) > 1 else 0]
        for column in (gene_column, value_column):
            if column not in columns:
                raise DataError(f"{path}: no column {column!r}; columns are {columns}")
        genes, values = raw[gene_column], raw[value_column]
        first_line = 2
    else:
        if raw.shape[1] < 2:
            raise DataError(
                f"{path}: needs two columns (gene, value), found {raw.shape[1]}; "
                "separate them with a comma (.csv) or a tab (.tsv)"
            )
        genes, values = raw.iloc[:, 0], raw.iloc[:, 1]
        if not _is_number(str(values.iloc[0]).strip()) and str(values.iloc[0]).strip() not in MISSING_TOKENS:
            genes, values = genes.iloc[1:], values.iloc[1:]  # a header row
            first_line = 2
    genes = genes.astype(str).str.strip().reset_index(drop=True)
    text = values.astype(str).str.strip().reset_index(drop=True)
    if genes.empty:
        raise DataError(f"{path}: the signature has a header but no genes")
    blank = (genes == "").to_numpy()
    if blank.any():
        raise DataError(f"{path}: empty gene name on line {first_line + int(np.argmax(blank))}")
    missing = text.isin(MISSING_TOKENS).to_numpy()
    numbers = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = (numbers.isna().to_numpy() & ~missing) | np.isinf(numbers.to_numpy(dtype=np.float64))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{path}: value {text.iloc[row]!r} for gene {genes.iloc[row]!r} (line {first_line + row}) is not a finite number")
    signature = pd.Series(numbers.to_numpy(dtype=np.float64), index=pd.Index(genes, name="gene"), name="value")
    check_unique(signature.index, "gene", str(path))
    n_missing = int(missing.sum())
    signature = signature[~missing]
    signature.attrs["n_missing_values"] = n_missing
    signature.attrs["source"] = str(path)
    return signature


def as_signature(signature: pd.Series | Mapping[str, float], source: str = "<query>") -> pd.Series:
    """A dict or Series -> float64 Series indexed by gene name; checks duplicates and finiteness."""
    if isinstance(signature, pd.Series):
        series = signature.astype(np.float64)
        series.index = series.index.astype(str)
    else:
        series = pd.Series({str(k): float(v) for k, v in dict(signature).items()}, dtype=np.float64)
    check_unique(series.index, "gene", source)
    if np.isinf(series.to_numpy()).any():
        gene = series.index[np.isinf(series.to_numpy())][0]
        raise DataError(f"{source}: value for gene {gene!r} is infinite")
    attrs = dict(getattr(signature, "attrs", {}) or {})
    n_nan = int(series.isna().sum())
    series = series.dropna()
    series.attrs.update(attrs)
    series.attrs["n_missing_values"] = int(attrs.get("n_missing_values", 0)) + n_nan
    return series
