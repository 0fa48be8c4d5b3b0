"""AnnData (.h5ad) files: bulk combination data sets and drug libraries in and out.

Combination data set (`write_combo_h5ad`, `combomap-data ... format=h5ad`):
    obs      one row per combination: index combo, columns study, drug1, drug2
    var      one row per gene: index = gene names
    layers   d1, d2, y (float32, n_combos x n_genes, NaN = unmeasured); v1, v2 optional, together
    X        not written; a file with X but no layer y takes X as y
    uns      combomap = {format: combination, version: 1} (how `is_combination_file` tells it from cells)
Drug library (`read_library_h5ad`): obs = drugs, var = genes, X = effects (dense or sparse), an optional
layer of variances.
Results (`write_results_h5ad`): combomap-predict's predictions (obs = pairs "A+B" with columns drug1, drug2;
X = predicted signatures) and combomap-query's rankings (obs = drugs or pairs with their ranks and scores; var =
the query's genes); uns combomap = {format: predictions | query_drugs | query_pairs, version: 1}.

Single-cell perturbation files are pseudobulked by combomap.data.single_cell; both share the opening and
name checks here. Frames are read through anndata (every encoding version); matrices through h5py, so
a large matrix is read only where a caller asks. Writers are atomic (temporary file, then rename).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from combomap.data.dataset import COMBO_COLUMNS, ComboDataset, DataError
from combomap.data.atomic import atomic_file
from combomap.data.library import DrugLibrary

COMBO_LAYERS = ("d1", "d2", "v1", "v2", "y")
FORMAT_TAG = {"format": "combination", "version": 1}


def _anndata() -> Any:
    try:
        import anndata
    except ImportError as error:  # pragma: no cover - anndata is a declared dependency
        raise DataError("reading or writing .h5ad needs anndata (pip install anndata)") from error
    return anndata


def _read_elem(element: Any) -> Any:
    anndata = _anndata()
    reader = getattr(getattr(anndata, "io", None), "read_elem", None) or anndata.experimental.read_elem
    return reader(element)


@contextmanager
def open_h5ad(path: str | os.PathLike) -> Iterator[Any]:
    """An open h5py handle on an .h5ad file; a missing file or one that is not HDF5 is a DataError."""
    import h5py

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such .h5ad file")
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file, so not an .h5ad (zarr, loom or CSV are not read here)")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: cannot open as HDF5 ({error})") from error
    with handle:
        yield handle


def read_frame(handle: Any, key: str, path: Path) -> pd.DataFrame:
    """obs or var as a DataFrame (categoricals decoded); a file without it is not an AnnData file."""
    if key not in handle:
        raise DataError(f"{path}: no /{key} group; not an AnnData .h5ad file")
    try:
        frame = _read_elem(handle[key])
    except Exception as error:  # anndata raises its own error types for bad encodings
        raise DataError(f"{path}: cannot read /{key} ({type(error).__name__}: {error})") from error
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path}: /{key} is not a data frame")
    return frame


def unique_names(frame: pd.DataFrame, column: str | None, what: str, path: Path) -> list[str]:
    """Names from a column (or the index when None); blanks and duplicates are errors naming the entry."""
    if column is None:
        values = frame.index
        where = f"{'var' if what == 'gene' else 'obs'}_names"
    else:
        if column not in frame.columns:
            raise DataError(f"{path}: no {what} column {column!r}; columns are {list(frame.columns)}")
        values = frame[column]
        where = f"column {column!r}"
    if pd.isna(values).any():
        raise DataError(f"{path}: {where} has an empty {what} name at position {int(np.argmax(pd.isna(values)))}")
    names = [str(v) for v in values]
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if not name.strip():
            raise DataError(f"{path}: {where} has a blank {what} name at position {position}")
        if name in seen:
            raise DataError(
                f"{path}: duplicated {what} name {name!r} in {where} (positions {seen[name]} and {position}); "
                f"make the names unique (e.g. AnnData.{'var' if what == 'gene' else 'obs'}_names_make_unique()) "
                f"or name a column of unique names ({what}_key)"
            )
        seen[name] = position
    return names


def matrix_element(handle: Any, layer: str | None, path: Path) -> Any:
    """The X or layers/<layer> element (an h5py Dataset or a sparse group)."""
    if layer is None:
        if "X" not in handle:
            raise DataError(f"{path}: has no X; name the layer that holds the values (data.layer=NAME)")
        return handle["X"]
    layers = handle.get("layers")
    if layers is None or layer not in layers:
        present = sorted(layers.keys()) if layers is not None else []
        raise DataError(f"{path}: no layer {layer!r}; layers are {present}")
    return handle["layers"][layer]


def element_shape(element: Any, name: str, path: Path) -> tuple[int, int]:
    import h5py

    if isinstance(element, h5py.Dataset):
        shape = tuple(int(n) for n in element.shape)
    elif "shape" in element.attrs:
        shape = tuple(int(n) for n in element.attrs["shape"])
    else:
        raise DataError(f"{path}: {name} is neither an array nor a sparse matrix")
    if len(shape) != 2:
        raise DataError(f"{path}: {name} must be 2-D, got shape {shape}")
    return shape  # type: ignore[return-value]


def read_matrix(element: Any, name: str, shape: tuple[int, int], path: Path) -> np.ndarray:
    """A whole (small) matrix as dense float32: for bulk layers and libraries, never for cells."""
    if element_shape(element, name, path) != shape:
        raise DataError(f"{path}: {name} has shape {element_shape(element, name, path)}, expected {shape} (obs x var)")
    try:
        values = _read_elem(element)
    except Exception as error:
        raise DataError(f"{path}: cannot read {name} ({type(error).__name__}: {error})") from error
    if hasattr(values, "toarray"):
        values = values.toarray()
    values = np.asarray(values)
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise DataError(f"{path}: {name} must be numeric, got dtype {values.dtype}")
    return values.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# bulk combination data


def is_combination_file(handle: Any) -> bool:
    """True for combomap's combination layout (tagged in uns, or layers d1, d2 present)."""
    tag = handle.get("uns/combomap/format")
    if tag is not None:
        value = tag[()]
        return (value.decode() if isinstance(value, bytes) else str(value)) == FORMAT_TAG["format"]
    layers = handle.get("layers")
    return layers is not None and "d1" in layers and "d2" in layers


def read_combo_h5ad(path: str | os.PathLike) -> ComboDataset:
    """A combination data set from the layout above; exact inverse of `write_combo_h5ad`."""
    path = Path(path).expanduser()
    with open_h5ad(path) as handle:
        obs = read_frame(handle, "obs", path)
        var = read_frame(handle, "var", path)
        genes = unique_names(var, None, "gene", path)
        shape = (len(obs), len(var))
        layers = handle.get("layers")
        present = set(layers.keys()) if layers is not None else set()
        missing = [name for name in ("d1", "d2") if name not in present]
        if "y" not in present and "X" not in handle:
            missing.append("y (or X)")
        if missing:
            raise DataError(f"{path}: a combination .h5ad needs layers d1, d2, y; missing {missing}")
        if ("v1" in present) != ("v2" in present):
            have, lack = ("v1", "v2") if "v1" in present else ("v2", "v1")
            raise DataError(f"{path}: has layer {have} but not {lack}; give both variances or neither")
        arrays = {
            name: read_matrix(handle["layers"][name], f"layer {name!r}", shape, path)
            for name in COMBO_LAYERS
            if name in present
        }
        if "y" not in arrays:
            arrays["y"] = read_matrix(handle["X"], "X", shape, path)
    combos = obs.reset_index(drop=True)  # the index may be named like a column (obs.index = obs["combo"])
    if "combo" not in obs.columns:
        combos.insert(0, "combo", obs.index.astype(str).to_numpy(dtype=object))
    lacking = [c for c in COMBO_COLUMNS if c not in combos.columns]
    if lacking:
        raise DataError(f"{path}: obs lacks column(s) {lacking}; expected index combo and columns study, drug1, drug2")
    combos = combos[COMBO_COLUMNS].astype(str)
    return ComboDataset(
        drug1_effect=arrays["d1"],
        drug2_effect=arrays["d2"],
        combo_effect=arrays["y"],
        genes=genes,
        combos=combos,
        drug1_var=arrays.get("v1"),
        drug2_var=arrays.get("v2"),
        source=str(path),
    )


def _write_atomic(adata: Any, target: Path, overwrite: bool) -> Path:
    if target.is_dir():
        raise DataError(f"{target}: is a directory; give a file path ending in .h5ad")
    if target.exists() and not overwrite:
        raise DataError(f"{target}: exists; pass overwrite=True (combomap-data: overwrite=true) to replace it")
    with atomic_file(target) as staging:
        adata.write_h5ad(staging)
    return target


def write_combo_h5ad(dataset: ComboDataset, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the combination layout atomically; float32 layers keep every value and NaN bit for bit."""
    anndata = _anndata()
    target = Path(path).expanduser()
    combos = dataset.combos
    obs = pd.DataFrame(
        # categorical up front, as anndata would store them anyway (without its "storing as categorical" notes)
        {name: pd.Categorical(combos[name].astype(str).to_numpy(dtype=object)) for name in ("study", "drug1", "drug2")},
        index=pd.Index(combos["combo"].astype(str).to_numpy(dtype=object), name="combo"),
    )
    var = pd.DataFrame(index=pd.Index(np.asarray(dataset.genes, dtype=object), name="gene"))
    layers = {"d1": dataset.drug1_effect, "d2": dataset.drug2_effect, "y": dataset.combo_effect}
    if dataset.has_variances:
        layers.update(v1=dataset.drug1_var, v2=dataset.drug2_var)
    adata = anndata.AnnData(X=None, obs=obs, var=var, layers=layers, uns={"combomap": dict(FORMAT_TAG)})
    return _write_atomic(adata, target, overwrite)


# ---------------------------------------------------------------------------------------------
# drug library


def read_library_h5ad(
    path: str | os.PathLike,
    variances_layer: str | None = "variances",
    gene_key: str | None = None,
    drug_key: str | None = None,
) -> DrugLibrary:
    """obs = drugs (names from drug_key or obs_names), var = genes, X = effects, optional variances layer.

    A variances layer that is named but absent is used only when present (the default name is optional).
    """
    path = Path(path).expanduser()
    with open_h5ad(path) as handle:
        obs = read_frame(handle, "obs", path)
        var = read_frame(handle, "var", path)
        genes = unique_names(var, gene_key, "gene", path)
        drugs = unique_names(obs, drug_key, "drug", path)
        shape = (len(obs), len(var))
        effects = read_matrix(matrix_element(handle, None, path), "X", shape, path)
        variances = None
        layers = handle.get("layers")
        if variances_layer and layers is not None and variances_layer in layers:
            variances = read_matrix(layers[variances_layer], f"layer {variances_layer!r}", shape, path)
    return DrugLibrary(effects=effects, genes=genes, drugs=drugs, variances=variances, source=str(path))


def write_library_h5ad(library: DrugLibrary, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """obs = drugs, var = genes, X = effects, layer `variances` when the library has them (atomic)."""
    anndata = _anndata()
    layers = {} if library.variances is None else {"variances": library.variances}
    adata = anndata.AnnData(
        X=library.effects,
        obs=pd.DataFrame(index=pd.Index(np.asarray(library.drugs, dtype=object), name="drug")),
        var=pd.DataFrame(index=pd.Index(np.asarray(library.genes, dtype=object), name="gene")),
        layers=layers,
    )
    return _write_atomic(adata, Path(path).expanduser(), overwrite)


# ---------------------------------------------------------------------------------------------
# results: predictions and query rankings


def pair_names(drug1: Sequence[str], drug2: Sequence[str]) -> list[str]:
    """obs_names of pairs, "A+B" (the pairs= syntax); a pair listed again gets anndata's "-1", "-2" suffixes."""
    seen: dict[str, int] = {}
    names = []
    for first, second in zip(drug1, drug2):
        name = f"{first}+{second}"
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(name if count == 0 else f"{name}-{count}")
    return names


def by_pair(table: pd.DataFrame) -> pd.DataFrame:
    """A table with columns drug1, drug2 indexed by its pairs' names (obs_names "A+B", index name "pair")."""
    return table.set_axis(pd.Index(pair_names(table["drug1"], table["drug2"]), name="pair"))


def write_results_h5ad(
    obs: pd.DataFrame,
    genes: Sequence[str],
    path: str | os.PathLike,
    values: np.ndarray | None = None,
    var: Mapping[str, np.ndarray] | None = None,
    kind: str = "predictions",
) -> Path:
    """One row of `obs` per pair or drug (its index: the obs_names; its columns: drugs and scores), var = genes,
    X = `values` (float32; none when None), replacing an earlier file atomically. A file with X reads back as a
    library (read_library_h5ad: obs = entries, var = genes)."""
    anndata = _anndata()
    obs = obs.copy()
    obs.index = pd.Index(obs.index.astype(str).to_numpy(dtype=object), name=obs.index.name)
    for column in obs.columns:  # strings as categoricals up front, as anndata would store them anyway
        if obs[column].dtype == object:
            obs[column] = pd.Categorical(obs[column].astype(str).to_numpy(dtype=object))
    var_frame = pd.DataFrame(dict(var or {}), index=pd.Index(np.asarray(genes, dtype=object), name="gene"))
    matrix = None if values is None else np.asarray(values, dtype=np.float32)
    if matrix is not None and matrix.shape != (len(obs), len(var_frame)):
        raise ValueError(f"values have shape {matrix.shape}, expected {(len(obs), len(var_frame))} (obs x var)")
    adata = anndata.AnnData(X=matrix, obs=obs, var=var_frame, uns={"combomap": {"format": kind, "version": 1}})
    return _write_atomic(adata, Path(path).expanduser(), overwrite=True)
