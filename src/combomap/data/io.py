"""Read and write combination data sets: the original npy directory and tidy long tables.

npy directory (the original format):
    X.npy       n x 2G numeric, [drug1 genes | drug2 genes]   (required)
    y.npy       n x G numeric, the combination effect          (required)
    Xv.npy      n x 2G variances, same layout as X             (optional -> variances None)
    genes.txt   one gene name per line                         (optional -> gene00001, gene00002, ...)
    combos.csv  columns combo, study, drug1, drug2             (optional -> combo{i}, study{i}, drug1_{i}, drug2_{i})

Tidy table (.csv, .csv.gz, .tsv, .tsv.gz, .parquet): one row per (combo, gene) with columns
combo, study, drug1, drug2, gene, d1, d2, v1, v2, y (v1 and v2 optional, together). Genes missing
for a combo are unmeasured (NaN). Combos and genes keep their order of first appearance in the table.

Every error is a DataError naming the file and the shape, row or gene at fault. Writers are atomic
(combomap.data.atomic): they write beside the target and rename into place, so a failure leaves the previous
data intact, and what a killed writer left behind is recovered by the next write or read.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from combomap.data.atomic import atomic_directory, atomic_file, recover
from combomap.data.dataset import COMBO_COLUMNS, ComboDataset, DataError

NPY_FILES = ("X.npy", "y.npy", "Xv.npy", "genes.txt", "combos.csv")
TIDY_ID_COLUMNS = ["combo", "study", "drug1", "drug2", "gene"]
TIDY_VALUE_COLUMNS = ["d1", "d2", "v1", "v2", "y"]
TIDY_COLUMNS = TIDY_ID_COLUMNS + TIDY_VALUE_COLUMNS
TIDY_REQUIRED = ["combo", "study", "drug1", "drug2", "gene", "d1", "d2", "y"]
# The one table of tabular file formats, for every long table read or written (data set, drug library, query
# signature): suffix -> (kind, delimiter, gzip).
TIDY_SUFFIXES = {
    ".csv": ("csv", ",", False),
    ".csv.gz": ("csv", ",", True),
    ".tsv": ("csv", "\t", False),
    ".tsv.gz": ("csv", "\t", True),
    ".tab": ("csv", "\t", False),
    ".tab.gz": ("csv", "\t", True),
    ".txt": ("csv", "\t", False),
    ".txt.gz": ("csv", "\t", True),
    ".parquet": ("parquet", None, False),
}


# ---------------------------------------------------------------------------------------------
# npy directory


def default_gene_names(n_genes: int) -> list[str]:
    width = max(5, len(str(n_genes)))
    return [f"gene{j + 1:0{width}d}" for j in range(n_genes)]


def default_combos(n_combos: int) -> pd.DataFrame:
    rows = range(n_combos)
    return pd.DataFrame(
        {
            "combo": [f"combo{i}" for i in rows],
            "study": [f"study{i}" for i in rows],
            "drug1": [f"drug1_{i}" for i in rows],
            "drug2": [f"drug2_{i}" for i in rows],
        }
    )


def load_npy_matrix(path: Path) -> np.ndarray:
    """A 2-D real numeric .npy array; never unpickles (object arrays are refused)."""
    try:
        with open(path, "rb") as handle:
            array = np.lib.format.read_array(handle, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error) or "pickle" in str(error).lower():
            raise DataError(
                f"{path}: holds Python objects (dtype object); refusing to unpickle it. "
                "Save a numeric array (e.g. float32) instead."
            ) from error
        raise DataError(f"{path}: not a readable .npy array ({error})") from error
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from error
    if array.ndim != 2:
        raise DataError(f"{path}: must be 2-D (rows x columns), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(f"{path}: must be a real numeric array, got dtype {array.dtype} (shape {array.shape})")
    return array


def _column_name(column: int, genes: list[str], blocked: bool) -> str:
    if not blocked:
        return f"gene {genes[column]!r}"
    n_genes = len(genes)
    block = "drug1" if column < n_genes else "drug2"
    return f"{block} gene {genes[column % n_genes]!r}"


def _check_values(array: np.ndarray, path: Path, genes: list[str], blocked: bool, variances: bool = False) -> None:
    if np.issubdtype(array.dtype, np.floating):
        infinite = np.isinf(array)
        if infinite.any():
            row, column = np.argwhere(infinite)[0]
            raise DataError(
                f"{path}: holds {array[row, column]} at row {row}, column {column} "
                f"({_column_name(column, genes, blocked)}); shape {array.shape}"
            )
    if variances:
        negative = array < 0
        if negative.any():
            row, column = np.argwhere(negative)[0]
            raise DataError(
                f"{path}: negative variance {array[row, column]} at row {row}, column {column} "
                f"({_column_name(column, genes, blocked)}); shape {array.shape}"
            )


def _read_genes(path: Path, n_genes: int, y_path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read gene names ({error})") from error
    genes = [line.strip() for line in text.splitlines()]
    while genes and not genes[-1]:
        genes.pop()
    if len(genes) != n_genes:
        raise DataError(f"{path}: {len(genes)} gene names but {y_path.name} has {n_genes} gene columns")
    first_line: dict[str, int] = {}
    for line, gene in enumerate(genes, start=1):
        if not gene:
            raise DataError(f"{path}: empty gene name on line {line}")
        if gene in first_line:
            raise DataError(f"{path}: duplicate gene {gene!r} on lines {first_line[gene]} and {line}")
        first_line[gene] = line
    return genes


def _read_combos(path: Path, n_combos: int, y_path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise DataError(f"{path}: cannot read as CSV ({error})") from error
    missing = [c for c in COMBO_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {COMBO_COLUMNS}, found {list(table.columns)}")
    if len(table) != n_combos:
        raise DataError(f"{path}: {len(table)} rows but {y_path.name} has {n_combos} rows (combos)")
    repeated = table["combo"].duplicated()
    if repeated.any():
        second = int(np.argmax(repeated.to_numpy()))
        combo = table["combo"].iloc[second]
        first = int(np.argmax((table["combo"] == combo).to_numpy()))
        raise DataError(f"{path}: duplicate combo id {combo!r} on lines {first + 2} and {second + 2}")
    return table[COMBO_COLUMNS].reset_index(drop=True)


def read_npy_dir(directory: str | os.PathLike) -> ComboDataset:
    """Load the original X.npy / y.npy (/ Xv.npy, genes.txt, combos.csv) directory."""
    directory = Path(directory).expanduser()
    recover(directory)  # an overwrite killed between its two renames left the data in a hidden backup
    if not directory.exists():
        raise DataError(f"{directory}: no such data directory")
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory (expected a folder with X.npy and y.npy)")
    x_path, y_path, xv_path = directory / "X.npy", directory / "y.npy", directory / "Xv.npy"
    for required in (x_path, y_path):
        if not required.is_file():
            raise DataError(f"{required}: missing; a data directory needs X.npy (n x 2G) and y.npy (n x G)")
    inputs = load_npy_matrix(x_path)
    combo_effect = load_npy_matrix(y_path)
    variances = load_npy_matrix(xv_path) if xv_path.is_file() else None

    if inputs.shape[1] % 2:
        raise DataError(
            f"{x_path}: odd column count {inputs.shape[1]} (shape {inputs.shape}); "
            "X must be [drug1 genes | drug2 genes], n x 2G"
        )
    if inputs.shape[0] != combo_effect.shape[0]:
        raise DataError(
            f"{x_path} has {inputs.shape[0]} rows (shape {inputs.shape}) but {y_path.name} has "
            f"{combo_effect.shape[0]} (shape {combo_effect.shape})"
        )
    n_combos, n_genes = combo_effect.shape
    if inputs.shape[1] != 2 * n_genes:
        raise DataError(
            f"{x_path} has {inputs.shape[1]} columns (shape {inputs.shape}) but {y_path.name} has {n_genes} genes "
            f"(shape {combo_effect.shape}); X needs 2 x {n_genes} = {2 * n_genes} columns"
        )
    if variances is not None and variances.shape != inputs.shape:
        raise DataError(f"{xv_path}: shape {variances.shape} differs from {x_path.name} shape {inputs.shape}")

    genes_path, combos_path = directory / "genes.txt", directory / "combos.csv"
    genes = _read_genes(genes_path, n_genes, y_path) if genes_path.is_file() else default_gene_names(n_genes)
    combos = _read_combos(combos_path, n_combos, y_path) if combos_path.is_file() else default_combos(n_combos)

    _check_values(inputs, x_path, genes, blocked=True)
    _check_values(combo_effect, y_path, genes, blocked=False)
    if variances is not None:
        _check_values(variances, xv_path, genes, blocked=True, variances=True)
    unmeasured = np.isnan(combo_effect).all(axis=1) if np.issubdtype(combo_effect.dtype, np.floating) else None
    if unmeasured is not None and unmeasured.any():
        row = int(np.argmax(unmeasured))
        raise DataError(f"{y_path}: combo {combos['combo'].iloc[row]!r} (row {row}) has no measured gene (all NaN)")

    return ComboDataset(
        drug1_effect=inputs[:, :n_genes],
        drug2_effect=inputs[:, n_genes:],
        combo_effect=combo_effect,
        genes=genes,
        combos=combos,
        drug1_var=None if variances is None else variances[:, :n_genes],
        drug2_var=None if variances is None else variances[:, n_genes:],
        source=str(directory),
    )


def _check_target_dir(target: Path, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise DataError(f"{target}: exists and is not a directory")
    if not target.is_dir():
        return
    existing = sorted(entry.name for entry in target.iterdir())
    if existing and not overwrite:
        raise DataError(
            f"{target}: directory is not empty ({existing[:5]}); pass overwrite=True "
            "(combomap-data: overwrite=true) to replace it"
        )
    foreign = [name for name in existing if name not in NPY_FILES]
    if foreign:
        raise DataError(
            f"{target}: refusing to replace a directory that holds files other than a data set ({foreign[:5]})"
        )


def writable_as_line(name: str) -> bool:
    """A name that a one-name-per-line file gives back unchanged: not empty, no line break of any kind
    (str.splitlines also splits on \\v, \\f, \\x1c-\\x1e, \\x85, \\u2028, \\u2029), no whitespace at an end and no
    leading byte-order mark (which the utf-8-sig reader drops)."""
    return bool(name) and name == name.strip() and len(name.splitlines()) == 1 and not name.startswith("\ufeff")


def _writable_genes(genes: list[str]) -> str:
    for gene in genes:
        if not writable_as_line(gene):
            raise DataError(f"gene name {gene!r} cannot be written to genes.txt (empty, a line break, whitespace at "
                            "an end or a leading byte-order mark)")
    return "\n".join(genes) + "\n"


def write_npy_dir(dataset: ComboDataset, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the original directory format atomically; round trips exactly (NaN kept).

    A non-empty target is replaced (as a whole: a stale Xv.npy goes too) only with overwrite=True, and
    only if it holds nothing but data-set files, so a mistyped path cannot wipe an unrelated folder.
    """
    target = Path(out_dir).expanduser()
    recover(target)
    _check_target_dir(target, overwrite)
    with atomic_directory(target) as staging:
        inputs = np.concatenate([dataset.drug1_effect, dataset.drug2_effect], axis=1)
        np.save(staging / "X.npy", inputs, allow_pickle=False)
        np.save(staging / "y.npy", dataset.combo_effect, allow_pickle=False)
        if dataset.has_variances:
            variances = np.concatenate([dataset.drug1_var, dataset.drug2_var], axis=1)
            np.save(staging / "Xv.npy", variances, allow_pickle=False)
        (staging / "genes.txt").write_text(_writable_genes(dataset.genes), encoding="utf-8")
        dataset.combos[COMBO_COLUMNS].to_csv(staging / "combos.csv", index=False)
    return target


# ---------------------------------------------------------------------------------------------
# tidy long table


def tidy_format(path: Path) -> tuple[str, str | None, bool]:
    """(kind "csv" or "parquet", delimiter, gzip) from the file name's suffix (TIDY_SUFFIXES); DataError otherwise."""
    name = path.name.lower()
    for suffix in sorted(TIDY_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return TIDY_SUFFIXES[suffix]
    raise DataError(f"{path}: unknown table format; use one of {sorted(TIDY_SUFFIXES)}")


def _where(kind: str, row: int) -> str:
    """A row of the table as a reader finds it: CSV line number (header = line 1), else 0-based row."""
    return f"line {row + 2}" if kind == "csv" else f"row {row}"


def _read_table(path: Path, kind: str, delimiter: str | None) -> pa.Table:
    if kind == "parquet":
        try:
            return pq.read_table(path)
        except (pa.ArrowException, OSError) as error:
            raise DataError(f"{path}: cannot read as Parquet ({error})") from error
    # Values parse straight to float32 (exact round trip of what write_tidy wrote); ids stay text, so a
    # drug named "NA" stays "NA".
    column_types = {name: pa.string() for name in TIDY_ID_COLUMNS}
    column_types.update({name: pa.float32() for name in TIDY_VALUE_COLUMNS})
    try:
        return pa_csv.read_csv(
            path,
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(column_types=column_types),
        )
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: cannot read as CSV ({error})") from error


def _explain_csv_error(path: Path, delimiter: str | None) -> None:
    """Re-read the value columns as text to name the column, line and value that is not a number."""
    try:
        values = pa_csv.read_csv(
            path,
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in TIDY_VALUE_COLUMNS},
                include_columns=TIDY_VALUE_COLUMNS,
                include_missing_columns=True,
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowException, OSError):
        return
    for name in TIDY_VALUE_COLUMNS:
        if pa.types.is_string(values[name].type):
            _value_column(values, name, path, "csv")


def _id_column(table: pa.Table, name: str, path: Path, kind: str) -> pa.Array:
    column = table[name]
    try:
        column = column.cast(pa.string())
    except pa.ArrowException as error:
        raise DataError(f"{path}: column {name!r} has type {table[name].type}, expected text") from error
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if column.null_count:
        row = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
        raise DataError(f"{path}: column {name!r} is empty at {_where(kind, row)}")
    if name in ("combo", "gene"):
        blank = pc.equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False)
        if blank.any():
            raise DataError(f"{path}: column {name!r} is blank at {_where(kind, int(np.argmax(blank)))}")
    return column


def _value_column(table: pa.Table, name: str, path: Path, kind: str) -> np.ndarray:
    column = table[name]
    kind_of = column.type
    if pa.types.is_null(kind_of):
        return np.full(table.num_rows, np.nan, dtype=np.float32)
    if pa.types.is_floating(kind_of) or pa.types.is_integer(kind_of) or pa.types.is_decimal(kind_of):
        return np.asarray(column.cast(pa.float32(), safe=False).to_numpy(), dtype=np.float32)
    stored = kind_of.value_type if pa.types.is_dictionary(kind_of) else kind_of
    if not (pa.types.is_string(stored) or pa.types.is_large_string(stored)):
        # bool and timestamp columns would otherwise become 0/1 and nanoseconds: numbers nobody measured
        raise DataError(f"{path}: column {name!r} has type {kind_of}; expected numbers (or text holding numbers)")
    text = column.to_pandas().astype(object)
    numbers = pd.to_numeric(text, errors="coerce")
    bad = (numbers.isna() & text.notna()).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{path}: column {name!r} is not numeric: {text.iloc[row]!r} at {_where(kind, row)}")
    return numbers.to_numpy(dtype=np.float32)


def read_tidy(path: str | os.PathLike) -> ComboDataset:
    """Load a tidy (combo, gene) table and pivot it to n_combos x n_genes (vectorised, no row loop).

    Combos and genes are ordered by first appearance; absent (combo, gene) pairs are NaN.
    """
    path = Path(path).expanduser()
    kind, delimiter, _ = tidy_format(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        table = _read_table(path, kind, delimiter)
    except DataError:
        if kind == "csv":
            _explain_csv_error(path, delimiter)
        raise

    missing = [c for c in TIDY_REQUIRED if c not in table.column_names]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected {TIDY_COLUMNS} (v1, v2 optional), found {table.column_names}"
        )
    has_v1, has_v2 = "v1" in table.column_names, "v2" in table.column_names
    if has_v1 != has_v2:
        present, absent = ("v1", "v2") if has_v1 else ("v2", "v1")
        raise DataError(f"{path}: has {present} but not {absent}; give both variances or neither")
    if table.num_rows == 0:
        raise DataError(f"{path}: the table has no rows")

    ids = {name: _id_column(table, name, path, kind) for name in TIDY_ID_COLUMNS}
    encoded = {name: ids[name].dictionary_encode() for name in TIDY_ID_COLUMNS}
    codes = {name: encoded[name].indices.to_numpy(zero_copy_only=False).astype(np.int64) for name in encoded}
    combo_names = encoded["combo"].dictionary
    gene_names = encoded["gene"].dictionary.to_pylist()
    combo_code, gene_code = codes["combo"], codes["gene"]
    n_combos, n_genes = len(combo_names), len(gene_names)
    flat = combo_code * n_genes + gene_code

    repeated = pd.Series(flat).duplicated().to_numpy()
    if repeated.any():
        second = int(np.argmax(repeated))
        first = int(np.argmax(flat == flat[second]))
        raise DataError(
            f"{path}: duplicate row for combo {combo_names[combo_code[second]].as_py()!r}, gene "
            f"{gene_names[gene_code[second]]!r} ({_where(kind, first)} and {_where(kind, second)})"
        )

    first_rows = np.flatnonzero(~pd.Series(combo_code).duplicated().to_numpy())
    for name in ("study", "drug1", "drug2"):
        expected = codes[name][first_rows][combo_code]
        differs = codes[name] != expected
        if differs.any():
            row = int(np.argmax(differs))
            first = int(first_rows[combo_code[row]])
            values = encoded[name].dictionary
            raise DataError(
                f"{path}: combo {combo_names[combo_code[row]].as_py()!r} has {name} "
                f"{values[codes[name][first]].as_py()!r} at {_where(kind, first)} but "
                f"{values[codes[name][row]].as_py()!r} at {_where(kind, row)}; a combo's study, drug1 and drug2 "
                "must agree on all its rows"
            )

    def scatter(name: str) -> np.ndarray:
        values = _value_column(table, name, path, kind)
        infinite = np.isinf(values)
        if infinite.any():
            row = int(np.argmax(infinite))
            raise DataError(
                f"{path}: column {name!r} holds {values[row]} at {_where(kind, row)} (combo "
                f"{combo_names[combo_code[row]].as_py()!r}, gene {gene_names[gene_code[row]]!r})"
            )
        if name in ("v1", "v2") and (values < 0).any():
            row = int(np.argmax(values < 0))
            raise DataError(
                f"{path}: column {name!r} has a negative variance {values[row]} at {_where(kind, row)} (combo "
                f"{combo_names[combo_code[row]].as_py()!r}, gene {gene_names[gene_code[row]]!r})"
            )
        grid = np.full(n_combos * n_genes, np.nan, dtype=np.float32)
        grid[flat] = values
        return grid.reshape(n_combos, n_genes)

    combos = pd.DataFrame({"combo": combo_names.to_pylist()})
    for name in ("study", "drug1", "drug2"):
        combos[name] = encoded[name].dictionary.take(pa.array(codes[name][first_rows])).to_pylist()
    return ComboDataset(
        drug1_effect=scatter("d1"),
        drug2_effect=scatter("d2"),
        combo_effect=scatter("y"),
        genes=gene_names,
        combos=combos,
        drug1_var=scatter("v1") if has_v1 else None,
        drug2_var=scatter("v2") if has_v2 else None,
        source=str(path),
    )


def entry_keys(dataset: ComboDataset, rows: np.ndarray, columns: np.ndarray) -> dict[str, pa.Array]:
    """The key columns (combo, study, drug1, drug2, gene) of the (combination row, gene column) entries of a long
    table."""
    combos = dataset.combos
    row_index = pa.array(rows)
    keys: dict[str, pa.Array] = {name: pa.array(combos[name].astype(str).tolist(), type=pa.string()).take(row_index)
                                 for name in ("combo", "study", "drug1", "drug2")}
    keys["gene"] = pa.array(dataset.genes, type=pa.string()).take(pa.array(columns))
    return keys


def to_tidy_table(dataset: ComboDataset) -> pa.Table:
    """The long table, lossless: (combo, gene) entries with no value at all (d1, d2, y and any variances
    NaN) are dropped, except in the first combo, which lists every gene once so that gene order (and
    never-measured genes) survive a round trip."""
    blocks = [dataset.drug1_effect, dataset.drug2_effect, dataset.combo_effect]
    if dataset.has_variances:
        blocks += [dataset.drug1_var, dataset.drug2_var]
    keep = ~np.logical_and.reduce([np.isnan(block) for block in blocks])
    keep[0, :] = True
    rows, columns = np.nonzero(keep)
    data = entry_keys(dataset, rows, columns)
    data["d1"] = pa.array(dataset.drug1_effect[rows, columns])
    data["d2"] = pa.array(dataset.drug2_effect[rows, columns])
    if dataset.has_variances:
        data["v1"] = pa.array(dataset.drug1_var[rows, columns])
        data["v2"] = pa.array(dataset.drug2_var[rows, columns])
    data["y"] = pa.array(dataset.combo_effect[rows, columns])
    return pa.table(data)


def write_tidy(dataset: ComboDataset, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the tidy table (format from the extension) atomically: temp file beside it + os.replace."""
    target = Path(path).expanduser()
    kind, delimiter, compressed = tidy_format(target)
    if target.is_dir():
        raise DataError(f"{target}: is a directory; give a file path ending in one of {sorted(TIDY_SUFFIXES)}")
    if target.exists() and not overwrite:
        raise DataError(f"{target}: exists; pass overwrite=True (combomap-data: overwrite=true) to replace it")
    return write_arrow_table(to_tidy_table(dataset), target)


def write_arrow_table(table: pa.Table, target: Path) -> Path:
    """An Arrow table written atomically in the tidy format its suffix names (.csv, .tsv, .csv.gz, .parquet, ...)."""
    kind, delimiter, compressed = tidy_format(target)
    with atomic_file(target) as staging:
        if kind == "parquet":
            pq.write_table(table, staging)
        else:
            options = pa_csv.WriteOptions(delimiter=delimiter)
            with open(staging, "wb") as raw:
                if compressed:
                    # level 6 (gzip's default; Arrow's level 9 is 3x slower for ~1% less), no name or time
                    # in the header, so the same data set gives the same bytes.
                    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as sink:
                        pa_csv.write_csv(table, sink, write_options=options)
                else:
                    pa_csv.write_csv(table, raw, write_options=options)
    return target
