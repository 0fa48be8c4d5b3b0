"""Read and write drug libraries (single-drug signatures): npy directory, tidy table, CMap/LINCS GCTX
(and AnnData .h5ad, in combomap.data.h5ad).

npy directory:
    effects.npy     n_drugs x n_genes numeric, NaN = unmeasured     (required)
    variances.npy   same shape                                        (optional)
    genes.txt       one gene name per line                            (optional -> gene00001, ...)
    drugs.txt       one drug name per line                            (optional -> drug0001, ...)

Tidy table (.csv, .tsv, optionally .gz, or .parquet): one row per (drug, gene) with columns drug, gene,
effect and optionally variance. Absent (drug, gene) rows are unmeasured (NaN). Drugs and genes keep their
order of first appearance.

GCTX (CMap/LINCS, HDF5, as written by cmapPy): /0/DATA/0/matrix holds (n_signatures x n_genes) (the
transpose of the genes x signatures GCT table), /0/META/ROW/id the gene ids, /0/META/COL/id the signature
ids. `read_gctx` reads it in blocks of signatures, keeping only the requested genes and signatures, so
peak memory is one block plus the result, never the whole file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
from omegaconf import MISSING

from combomap.data.dataset import DataError
from combomap.data.h5ad import read_library_h5ad
from combomap.data.io import load_npy_matrix, tidy_format, writable_as_line
from combomap.data.library import DrugLibrary
from combomap.data.simulate import PRESETS, simulate_library, simulate_library_with_truth, simulation_params
from combomap.settings import SEED, Checked, SettingsError, key_of, limits

GCTX_MATRIX = "/0/DATA/0/matrix"
GCTX_ROW_IDS = "/0/META/ROW/id"
GCTX_COL_IDS = "/0/META/COL/id"
TIDY_LIBRARY_COLUMNS = ["drug", "gene", "effect", "variance"]


def _default_names(prefix: str, count: int) -> list[str]:
    width = max(4, len(str(count)))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(count)]


# ---------------------------------------------------------------------------------------------
# npy directory


def _read_names(path: Path, expected: int, what: str) -> list[str]:
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read {what} names ({error})") from error
    while names and not names[-1]:
        names.pop()
    if len(names) != expected:
        raise DataError(f"{path}: {len(names)} {what} names for {expected} {what}s in effects.npy")
    if any(not name for name in names):
        raise DataError(f"{path}: empty {what} name on line {names.index('') + 1}")
    return names


def read_library_npy(directory: str | os.PathLike) -> DrugLibrary:
    """Load effects.npy (+ variances.npy, genes.txt, drugs.txt) from a directory."""
    directory = Path(directory).expanduser()
    effects_path = directory / "effects.npy"
    if not effects_path.is_file():
        raise DataError(f"{effects_path}: missing; a library directory needs effects.npy (n_drugs x n_genes)")
    effects = load_npy_matrix(effects_path)
    variances_path = directory / "variances.npy"
    variances = load_npy_matrix(variances_path) if variances_path.is_file() else None
    if variances is not None and variances.shape != effects.shape:
        raise DataError(f"{variances_path}: shape {variances.shape} differs from effects.npy shape {effects.shape}")
    n_drugs, n_genes = effects.shape
    genes_path, drugs_path = directory / "genes.txt", directory / "drugs.txt"
    genes = _read_names(genes_path, n_genes, "gene") if genes_path.is_file() else _default_names("gene", n_genes)
    drugs = _read_names(drugs_path, n_drugs, "drug") if drugs_path.is_file() else _default_names("drug", n_drugs)
    return DrugLibrary(effects=effects, genes=genes, drugs=drugs, variances=variances, source=str(directory))


def write_library_npy(library: DrugLibrary, directory: str | os.PathLike) -> Path:
    """Write the npy directory layout (float32); existing files of that layout are replaced."""
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "effects.npy", library.effects.astype(np.float32, copy=False))
    if library.variances is not None:
        np.save(directory / "variances.npy", library.variances.astype(np.float32, copy=False))
    elif (directory / "variances.npy").exists():
        (directory / "variances.npy").unlink()
    for name, values in (("genes.txt", library.genes), ("drugs.txt", library.drugs)):
        bad = [v for v in values if not writable_as_line(v)]
        if bad:
            raise DataError(f"{directory / name}: name {bad[0]!r} cannot be written one per line (empty, a line "
                            "break, whitespace at an end or a leading byte-order mark)")
        (directory / name).write_text("\n".join(values) + "\n", encoding="utf-8")
    return directory


# ---------------------------------------------------------------------------------------------
# tidy table


def check_number_column(values: pd.Series, path: Path, column: str) -> None:
    """Refuse a column pandas would turn into numbers nobody measured: bools (0/1), timestamps (nanoseconds)."""
    kind = values.dtype
    if isinstance(kind, pd.CategoricalDtype):
        kind = kind.categories.dtype
    numeric = pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_bool_dtype(kind) \
        and not pd.api.types.is_complex_dtype(kind)
    if numeric:
        return
    if pd.api.types.is_object_dtype(kind) or pd.api.types.is_string_dtype(kind):
        odd = values.map(lambda v: isinstance(v, (bool, np.bool_)) or not isinstance(v, (str, int, float, np.number, type(None))))
        if not odd.any():
            return
        row = int(np.argmax(odd.to_numpy()))
        raise DataError(f"{path}: column {column!r} holds {values.iloc[row]!r} ({type(values.iloc[row]).__name__}) "
                        f"at row {row}; expected numbers")
    raise DataError(f"{path}: column {column!r} has type {values.dtype}; expected numbers (or text holding numbers)")


def _read_library_text(path: Path, sep: str) -> pd.DataFrame:
    """The table with effect/variance parsed as floats (so "-0" keeps its sign); a column that is not all numbers
    is read as it is, for the check below to name its first bad value and row."""
    options = {"sep": sep, "keep_default_na": False,
               "na_values": {"effect": ["", "NA", "NaN", "nan"], "variance": ["", "NA", "NaN", "nan"]}}
    try:
        return pd.read_csv(path, dtype={"drug": str, "gene": str, "effect": "float64", "variance": "float64"}, **options)
    except ValueError:
        return pd.read_csv(path, dtype={"drug": str, "gene": str}, **options)


def read_library_tidy(path: str | os.PathLike) -> DrugLibrary:
    """A long table drug, gene, effect[, variance] -> DrugLibrary (absent pairs are NaN)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such library table")
    kind, sep, _ = tidy_format(path)
    try:
        if kind == "parquet":
            table = pd.read_parquet(path)
        else:
            table = _read_library_text(path, sep)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(f"{path}: cannot read the library table ({error})") from error
    missing = [c for c in ("drug", "gene", "effect") if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {TIDY_LIBRARY_COLUMNS}, found {list(table.columns)}")
    if table.empty:
        raise DataError(f"{path}: the library table has no rows")
    for column in ("drug", "gene"):
        values = table[column]
        blank = values.isna() | (values.astype(str).str.strip() == "")
        if blank.any():
            raise DataError(f"{path}: column {column!r} is empty at row {int(np.argmax(blank.to_numpy()))}")
    numbers = {}
    for column in ("effect", "variance"):
        if column not in table.columns:
            continue
        check_number_column(table[column], path, column)
        coerced = pd.to_numeric(table[column], errors="coerce")
        bad = (coerced.isna() & table[column].notna()).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{path}: column {column!r} is not numeric: {table[column].iloc[row]!r} at row {row}")
        numbers[column] = coerced.to_numpy(dtype=np.float64)
    drug_codes, drugs = pd.factorize(table["drug"].astype(str), sort=False)
    gene_codes, genes = pd.factorize(table["gene"].astype(str), sort=False)
    flat = drug_codes.astype(np.int64) * len(genes) + gene_codes
    duplicated = pd.Series(flat).duplicated().to_numpy()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        raise DataError(f"{path}: duplicate (drug, gene) = ({table['drug'].iloc[row]!r}, {table['gene'].iloc[row]!r}) at row {row}")
    shape = (len(drugs), len(genes))
    effects = np.full(shape, np.nan, dtype=np.float32)
    effects.ravel()[flat] = numbers["effect"]
    variances = None
    if "variance" in numbers:
        variances = np.full(shape, np.nan, dtype=np.float32)
        variances.ravel()[flat] = numbers["variance"]
    return DrugLibrary(effects=effects, genes=list(genes), drugs=list(drugs), variances=variances, source=str(path))


def write_library_tidy(library: DrugLibrary, path: str | os.PathLike) -> Path:
    """Write the long table, one row per (drug, gene) so both orders survive (unmeasured = empty);
    the suffix picks CSV, TSV or Parquet."""
    path = Path(path).expanduser()
    kind, sep, _ = tidy_format(path)
    rows, cols = np.divmod(np.arange(library.effects.size), library.n_genes)
    table = pd.DataFrame(
        {
            "drug": np.asarray(library.drugs, dtype=object)[rows],
            "gene": np.asarray(library.genes, dtype=object)[cols],
            "effect": library.effects[rows, cols],
        }
    )
    if library.variances is not None:
        table["variance"] = library.variances[rows, cols]
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, sep=sep, index=False, float_format="%.9g")
    return path


# ---------------------------------------------------------------------------------------------
# GCTX


def _h5py():
    try:
        import h5py
    except ImportError as error:  # pragma: no cover - h5py is a declared dependency
        raise DataError("reading GCTX needs h5py (pip install h5py)") from error
    return h5py


def _read_ids(handle: Any, node: str, path: Path) -> list[str]:
    if node not in handle:
        raise DataError(f"{path}: not a GCTX file (no {node})")
    dataset = handle[node]
    if dataset.dtype.kind in "iu":
        return [str(int(v)) for v in dataset[()]]
    if dataset.dtype.kind == "f":
        return [str(v) for v in dataset[()]]
    try:
        return [str(v).strip() for v in dataset.asstr(encoding="utf-8")[()]]  # cmapPy writes ASCII; UTF-8 is a superset
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: {node} holds ids that are not UTF-8 text ({error})") from None


def gctx_ids(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(gene ids, signature ids) of a GCTX file, without reading its matrix."""
    path = Path(path).expanduser()
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as handle:
            return _read_ids(handle, GCTX_ROW_IDS, path), _read_ids(handle, GCTX_COL_IDS, path)
    except OSError as error:
        raise DataError(f"{path}: cannot open as HDF5/GCTX ({error})") from error


def _positions(wanted: Sequence[str] | None, ids: list[str], what: str, path: Path) -> np.ndarray:
    """Sorted file positions of the wanted ids (all when None); unknown ids are an error."""
    if wanted is None:
        return np.arange(len(ids), dtype=np.int64)
    position = {name: i for i, name in enumerate(ids)}
    wanted = [str(w) for w in wanted]
    unknown = [w for w in wanted if w not in position]
    if unknown:
        raise DataError(f"{path}: {len(unknown)} unknown {what} id(s), e.g. {unknown[:5]} (file has {len(ids)})")
    if len(set(wanted)) != len(wanted):
        dup = next(w for i, w in enumerate(wanted) if w in wanted[:i])
        raise DataError(f"{path}: {what} id {dup!r} requested twice")
    return np.sort(np.array([position[w] for w in wanted], dtype=np.int64))


def _read_rows(matrix: Any, rows: np.ndarray, cols: np.ndarray, block_bytes: int, out: np.ndarray) -> None:
    """out[k] = matrix[rows[k], cols], reading at most ~block_bytes of the file per step."""
    n_file_cols = matrix.shape[1]
    all_cols = len(cols) == n_file_cols
    block_rows = max(1, int(block_bytes // max(1, n_file_cols * matrix.dtype.itemsize)))
    start = 0
    while start < len(rows):
        chunk = rows[start : start + block_rows]
        first, last = int(chunk[0]), int(chunk[-1])
        if last - first + 1 == len(chunk):
            values = matrix[first : last + 1, :]
        elif last - first + 1 <= 2 * len(chunk):
            values = matrix[first : last + 1, :][chunk - first]
        else:
            values = matrix[chunk.tolist(), :]
        out[start : start + len(chunk)] = values if all_cols else values[:, cols]
        start += len(chunk)


def read_gctx(
    path: str | os.PathLike,
    genes: Sequence[str] | None = None,
    signatures: Sequence[str] | None = None,
    variances_path: str | os.PathLike | None = None,
    block_mb: float = 64.0,
) -> DrugLibrary:
    """Read (a slice of) a GCTX file as a DrugLibrary; signatures (column ids) become the drugs.

    genes / signatures: ids to keep (file order is kept); None keeps all. variances_path: an optional second
    GCTX with the same ids holding the variances. Memory: the result plus one block of `block_mb` MB.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such GCTX file")
    h5py = _h5py()
    block_bytes = int(block_mb * 2**20)

    def load(file_path: Path, expect: tuple[list[str], list[str]] | None) -> tuple[np.ndarray, list[str], list[str], tuple]:
        try:
            handle = h5py.File(file_path, "r")
        except OSError as error:
            raise DataError(f"{file_path}: cannot open as HDF5/GCTX ({error})") from error
        with handle:
            gene_ids = _read_ids(handle, GCTX_ROW_IDS, file_path)
            sig_ids = _read_ids(handle, GCTX_COL_IDS, file_path)
            if GCTX_MATRIX not in handle:
                raise DataError(f"{file_path}: not a GCTX file (no {GCTX_MATRIX})")
            matrix = handle[GCTX_MATRIX]
            if matrix.ndim != 2 or matrix.shape != (len(sig_ids), len(gene_ids)):
                raise DataError(
                    f"{file_path}: {GCTX_MATRIX} has shape {matrix.shape}, expected (n_signatures, n_genes) = "
                    f"({len(sig_ids)}, {len(gene_ids)})"
                )
            if expect is not None and (gene_ids, sig_ids) != expect:
                raise DataError(f"{file_path}: gene or signature ids differ from {path}")
            rows = _positions(signatures, sig_ids, "signature", file_path)
            cols = _positions(genes, gene_ids, "gene", file_path)
            out = np.empty((len(rows), len(cols)), dtype=np.float32)
            if len(rows) and len(cols):
                _read_rows(matrix, rows, cols, block_bytes, out)
            return out, [gene_ids[c] for c in cols], [sig_ids[r] for r in rows], (gene_ids, sig_ids)

    effects, kept_genes, kept_sigs, ids = load(path, None)
    variances = None
    if variances_path is not None:
        variances, _, _, _ = load(Path(variances_path).expanduser(), ids)
    return DrugLibrary(effects=effects, genes=kept_genes, drugs=kept_sigs, variances=variances, source=str(path))


def write_gctx(library: DrugLibrary, path: str | os.PathLike, variances: bool = False) -> Path:
    """A minimal GCTX writer (cmapPy layout: matrix is n_signatures x n_genes); variances=True writes them instead."""
    path = Path(path).expanduser()
    h5py = _h5py()
    values = library.variances if variances else library.effects
    if values is None:
        raise DataError(f"{library.source}: the library has no variances to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.attrs["version"] = np.bytes_("GCTX1.0")
        handle.attrs["src"] = str(path.name)
        chunks = (min(values.shape[0], 1000), min(values.shape[1], 1024))
        handle.create_dataset(GCTX_MATRIX, data=values.astype(np.float32, copy=False), chunks=chunks)
        for node, ids in ((GCTX_ROW_IDS, library.genes), (GCTX_COL_IDS, library.drugs)):
            handle.create_dataset(node, data=np.array([s.encode("utf-8") for s in ids]), compression="gzip")
    return path


# ---------------------------------------------------------------------------------------------
# typed sources: the `library` config group's schemas (combomap.config.data)


def _source(name: str) -> Any:
    """The `source` field of a format's schema: its own name, the key a plain mapping is dispatched on."""
    return field(default=name, metadata=limits(choices=(name,)))


PATH_FIELDS = ("dir", "path", "variances_path")


class PortableSource:
    """A library source travels as a plain dict (a served MLflow model's model_config, a Dask task), with its
    file paths made absolute so that another process or machine started elsewhere loads the same files."""

    def load(self) -> DrugLibrary:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def with_absolute_paths(self) -> Any:
        changes = {name: str(Path(str(getattr(self, name))).expanduser().resolve()) for name in PATH_FIELDS
                   if getattr(self, name, None) not in (None, "", MISSING)}
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass
class SimulatedLibrary(PortableSource, Checked):
    """A simulated CMap-like library (combomap.data.simulate.simulate_library): drug i is pool drug i of the
    simulated compendium with the same preset, seed and overrides."""

    source: str = _source("simulated")
    n_drugs: int = field(default=1309, metadata=limits(1))
    preset: str = field(default="default", metadata=limits(choices=sorted(PRESETS)))
    seed: int = field(default=0, metadata=SEED)
    overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        simulation_params(self.preset, **self.overrides)

    def load(self) -> DrugLibrary:
        return simulate_library(n_drugs=self.n_drugs, preset=self.preset, seed=self.seed, **self.overrides)

    def load_with_truth(self) -> tuple[DrugLibrary, np.ndarray]:
        """The library and its noise-free standardized effects (the simulator's truth)."""
        return simulate_library_with_truth(n_drugs=self.n_drugs, preset=self.preset, seed=self.seed, **self.overrides)


@dataclass
class NpyLibrary(PortableSource, Checked):
    """A directory with effects.npy, optional variances.npy, genes.txt, drugs.txt."""

    source: str = _source("npy")
    dir: str = MISSING

    def load(self) -> DrugLibrary:
        return read_library_npy(self.dir)


@dataclass
class TidyLibrary(PortableSource, Checked):
    """A long table drug, gene, effect[, variance] (.csv, .tsv, optionally .gz, or .parquet)."""

    source: str = _source("tidy")
    path: str = MISSING

    def load(self) -> DrugLibrary:
        return read_library_tidy(self.path)


@dataclass
class GctxLibrary(PortableSource, Checked):
    """A CMap/LINCS GCTX file read in blocks of block_mb MB, keeping the listed genes / signatures (None = all)."""

    source: str = _source("gctx")
    path: str = MISSING
    genes: Optional[list[str]] = None
    signatures: Optional[list[str]] = None
    variances_path: Optional[str] = None  # a second GCTX with the same ids holding variances
    block_mb: float = field(default=64.0, metadata=limits(0.0))

    def validate(self, prefix: str) -> None:
        if self.block_mb <= 0:
            raise SettingsError(f"{key_of(prefix, 'block_mb')} must be > 0, got {self.block_mb!r}")

    def load(self) -> DrugLibrary:
        as_list = lambda values: None if values is None else [str(v) for v in values]  # noqa: E731
        return read_gctx(self.path, genes=as_list(self.genes), signatures=as_list(self.signatures),
                         variances_path=self.variances_path or None, block_mb=float(self.block_mb))


@dataclass
class H5adLibrary(PortableSource, Checked):
    """An AnnData .h5ad of single-drug signatures: obs = drugs, var = genes, X = effects."""

    source: str = _source("h5ad")
    path: str = MISSING
    variances_layer: Optional[str] = "variances"  # used when the file has it
    gene_key: Optional[str] = None  # var column of gene names; None = var_names
    drug_key: Optional[str] = None  # obs column of drug names; None = obs_names

    def load(self) -> DrugLibrary:
        return read_library_h5ad(self.path, variances_layer=self.variances_layer or None,
                                 gene_key=self.gene_key or None, drug_key=self.drug_key or None)


LibrarySource = Union[SimulatedLibrary, NpyLibrary, TidyLibrary, GctxLibrary, H5adLibrary]
LIBRARY_SOURCES: dict[str, type] = {"simulated": SimulatedLibrary, "npy": NpyLibrary, "tidy": TidyLibrary,
                                    "gctx": GctxLibrary, "h5ad": H5adLibrary}


def load_library(source: LibrarySource) -> DrugLibrary:
    """The library of a typed source (combomap.config.data.library_source turns a `library` config into one)."""
    if not isinstance(source, PortableSource):
        raise TypeError(f"expected a typed library source ({', '.join(c.__name__ for c in LIBRARY_SOURCES.values())}; "
                        f"combomap.config.data.library_source builds one from a config), got {type(source).__name__}")
    return source.load()


def library_from_dict(values: Mapping[str, Any], key: str = "library") -> LibrarySource:
    """The source back from its `to_dict()` form (a served model's model_config["library"], a Dask task);
    an unknown source or setting is one line naming it."""
    name = values.get("source", "simulated")
    if name not in LIBRARY_SOURCES:
        raise SettingsError(f"{key}.source must be one of {sorted(LIBRARY_SOURCES)}, got {name!r}")
    schema = LIBRARY_SOURCES[name]
    known = {item.name for item in fields(schema)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(f"{key}.{unknown[0]} is not a setting of a {name} library (settings: {', '.join(sorted(known))})")
    missing = sorted(name for name in known if values.get(name, getattr(schema, name, None)) == MISSING)
    if missing:
        raise SettingsError(f"{key}.{missing[0]} is missing: give {key}.{missing[0]}=...")
    return schema(**values).check(key)
