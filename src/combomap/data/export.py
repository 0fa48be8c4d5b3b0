"""What `combomap-data` writes: a data set, a drug library or a query signature (conf/export/), in the
formats the loaders read back.

A newcomer needs a drug library (what combomap-predict and combomap-query search) and a query signature
before any real data is at hand; these come from the same simulator as the compendium, or from any library
the loaders read, in the formats those loaders read back:

- a library folder or file: npy (effects.npy, variances.npy, genes.txt, drugs.txt), a tidy table
  (library.csv | .csv.gz | .tsv | .parquet: drug, gene, effect, variance) or GCTX (library.gctx, and
  library_variances.gctx for `library.variances_path`);
- a query signature (signature.tsv | .csv: gene, value) of one library drug, of a drug pair (the average of
  the two drugs here; predicted by a saved combomap-stack model in `combomap.stacking.predict`), or a
  disease-like signature (see `disease_signature`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.h5ad import write_combo_h5ad
from combomap.data.io import write_npy_dir, write_tidy
from combomap.data.library import DrugLibrary
from combomap.data.library_io import LibrarySource, SimulatedLibrary, write_gctx, write_library_npy, write_library_tidy
from combomap.settings import SEED, Checked, SettingsError, key_of, limits

# data set format -> file written inside `out` (npy writes the directory itself)
DATASET_FILES = {"csv": "dataset.csv", "csv.gz": "dataset.csv.gz", "tsv": "dataset.tsv", "parquet": "dataset.parquet"}
H5AD_FILE = "dataset.h5ad"
DATASET_FORMATS = ("npy", *DATASET_FILES, "h5ad")
LIBRARY_FILES = {"csv": "library.csv", "csv.gz": "library.csv.gz", "tsv": "library.tsv", "parquet": "library.parquet",
                 "gctx": "library.gctx"}
LIBRARY_FORMATS = ("npy", *LIBRARY_FILES)
GCTX_VARIANCES_FILE = "library_variances.gctx"
SIGNATURE_FORMATS = ("tsv", "csv")
SIGNATURE_KINDS = ("drug", "pair", "disease")


def _what(name: str) -> Any:
    return field(default=name, metadata=limits(choices=(name,)))


@dataclass
class DatasetExport(Checked):
    """export=dataset (the default): the data set named by `data`, in combomap-data's top-level `format`."""

    what: str = _what("dataset")


@dataclass
class LibraryExport(Checked):
    """export=library: the drug library named by `library`, in `format` (LIBRARY_FORMATS; see write_library)."""

    what: str = _what("library")
    format: str = field(default="npy", metadata=limits(choices=LIBRARY_FORMATS))


@dataclass
class SignatureExport(Checked):
    """export=signature: a query signature (of: drug | pair | disease; conf/export/signature.yaml says how)."""

    what: str = _what("signature")
    of: str = field(default="drug", metadata=limits(choices=SIGNATURE_KINDS))
    drug: Optional[str] = None  # of=drug; None = the library's first drug
    pair: Optional[str] = None  # drug1+drug2; None = the library's first two drugs (of=disease: drawn by seed)
    model_dir: Optional[str] = None  # of=pair: a combomap-stack model/ folder predicts it; None = the average
    noise: float = field(default=0.5, metadata=limits(0.0))  # of=disease
    genes_fraction: float = field(default=0.5, metadata=limits(0.0, 1.0))  # of=disease; > 0
    seed: int = field(default=0, metadata=SEED)  # of=disease
    format: str = field(default="tsv", metadata=limits(choices=SIGNATURE_FORMATS))

    def validate(self, prefix: str) -> None:
        if self.genes_fraction <= 0:
            raise SettingsError(f"{key_of(prefix, 'genes_fraction')} must be in (0, 1], got {self.genes_fraction!r}")


Export = Union[DatasetExport, LibraryExport, SignatureExport]
EXPORTS: dict[str, type] = {"dataset": DatasetExport, "library": LibraryExport, "signature": SignatureExport}


def write_dataset(dataset: ComboDataset, out: str | Path, fmt: str, overwrite: bool = False) -> Path:
    """npy -> `out` is the data directory; a tidy format or h5ad -> `out`/dataset.<ext> (out created if needed)."""
    if fmt == "npy":
        return write_npy_dir(dataset, out, overwrite=overwrite)
    if fmt == "h5ad":
        return write_combo_h5ad(dataset, Path(out).expanduser() / H5AD_FILE, overwrite=overwrite)
    if fmt in DATASET_FILES:
        return write_tidy(dataset, Path(out).expanduser() / DATASET_FILES[fmt], overwrite=overwrite)
    raise DataError(f"unknown output format {fmt!r}; expected one of {list(DATASET_FORMATS)}")


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite and (path.is_file() or any(path.iterdir())):
        raise DataError(f"{path} exists; give overwrite=true to replace it")


def write_library(library: DrugLibrary, out: str | Path, fmt: str, overwrite: bool = False) -> Path:
    """npy -> `out` is the library folder (library=npy library.dir=out); otherwise `out`/library.<ext>."""
    if fmt not in LIBRARY_FORMATS:
        raise DataError(f"unknown library format {fmt!r}; expected one of {list(LIBRARY_FORMATS)}")
    out = Path(out).expanduser()
    target = out if fmt == "npy" else out / LIBRARY_FILES[fmt]
    _refuse_existing(target, overwrite)
    if fmt == "npy":
        return write_library_npy(library, out)
    if fmt == "gctx":
        path = write_gctx(library, target)
        if library.variances is not None:
            write_gctx(library, out / GCTX_VARIANCES_FILE, variances=True)
        return path
    return write_library_tidy(library, target)


def drug_signature(library: DrugLibrary, drug: str) -> pd.Series:
    """One library drug's signature (unmeasured genes dropped): a query that this drug should top."""
    row = library.effects[library.index_of([drug])[0]]
    return signature_series(row, library.genes, f"drug {drug}")


def average_pair_signature(library: DrugLibrary, pair: tuple[str, str]) -> pd.Series:
    """A pair's combination signature as the query's average pair model sees it: unmeasured counts as 0."""
    effects = library.effects[library.index_of(list(pair))]
    average = 0.5 * np.nan_to_num(effects).sum(axis=0)
    average[np.isnan(effects).all(axis=0)] = np.nan  # measured by neither drug: left out
    return signature_series(average, library.genes, f"pair {pair[0]}+{pair[1]} (average)")


def disease_signature(library_source: LibrarySource, pair: tuple[str, str] | None, noise: float, genes_fraction: float,
                      seed: int) -> tuple[pd.Series, tuple[str, str]]:
    """A disease-like query from the simulator, with a known answer: the opposite of a pair's noise-free average
    effect (the simulator's truth, not the measured library) on a random `genes_fraction` of the genes (a
    platform that reports only some), plus Gaussian noise of sd `noise`. The pair (given, or drawn by `seed`)
    is what a `direction=reverse` query should rank near the top; it is returned and reported."""
    if not isinstance(library_source, SimulatedLibrary):
        raise DataError("export.of=disease needs the simulated library (library=simulated): its truth is the answer")
    if not 0.0 < genes_fraction <= 1.0 or noise < 0:
        raise DataError(f"export.genes_fraction must lie in (0, 1] and export.noise >= 0, got {genes_fraction}, {noise}")
    library, truth = library_source.load_with_truth()
    rng = np.random.default_rng(seed)
    if pair is None:
        first, second = sorted(rng.choice(library.n_drugs, size=2, replace=False).tolist())
        pair = (library.drugs[first], library.drugs[second])
    rows = library.index_of(list(pair))
    values = -truth[rows].mean(axis=0) + noise * rng.standard_normal(library.n_genes)
    kept = np.sort(rng.choice(library.n_genes, size=max(1, round(genes_fraction * library.n_genes)), replace=False))
    return signature_series(values[kept], [library.genes[j] for j in kept], f"disease reversed by {pair[0]}+{pair[1]}"), pair


def signature_series(values: np.ndarray, genes: list[str], name: str) -> pd.Series:
    """A query signature (gene -> value, unmeasured genes dropped) described by `name`; empty is an error."""
    series = pd.Series(np.asarray(values, dtype=np.float64), index=pd.Index(genes, name="gene"), name="value")
    series = series[np.isfinite(series.to_numpy())]
    if series.empty:
        raise DataError(f"{name}: no measured gene")
    series.attrs["description"] = name
    return series


def write_signature(signature: pd.Series, out: str | Path, fmt: str, overwrite: bool = False) -> Path:
    """`out`/signature.<tsv|csv> with columns gene, value: what `combomap-query signature=...` reads."""
    if fmt not in SIGNATURE_FORMATS:
        raise DataError(f"unknown signature format {fmt!r}; expected one of {list(SIGNATURE_FORMATS)}")
    path = Path(out).expanduser() / f"signature.{fmt}"
    _refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    signature.rename("value").to_frame().to_csv(path, sep="\t" if fmt == "tsv" else ",", float_format="%.6g")
    return path
