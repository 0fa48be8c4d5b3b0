"""combomap-data: generate or convert a data set and write it in one of the supported formats.

    combomap-data data=simulated data.preset=small out=data/small format=npy
    combomap-data data=npy data.dir=IN out=OUT format=parquet     # writes OUT/dataset.parquet
    combomap-data data=tidy data.path=IN.csv out=OUT format=npy
    combomap-data data=h5ad data.path=cells.h5ad out=OUT format=npy   # single cells, pseudobulked
    combomap-data data=simulated data.preset=tiny out=OUT format=h5ad  # writes OUT/dataset.h5ad
    combomap-data export=library export.format=npy library.n_drugs=40 out=LIB    # a drug library (conf/export/)
    combomap-data export=signature export.of=disease out=Q                        # a query signature
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from combomap.cli import command
from combomap.data.dataset import ComboDataset, DataError
from combomap.data.h5ad import write_combo_h5ad
from combomap.data.io import write_npy_dir, write_tidy
from combomap.data.loading import load_dataset

# format -> file written inside `out` (npy writes the directory itself)
TIDY_FILES = {"csv": "dataset.csv", "csv.gz": "dataset.csv.gz", "tsv": "dataset.tsv", "parquet": "dataset.parquet"}
H5AD_FILE = "dataset.h5ad"
FORMATS = ("npy", *TIDY_FILES, "h5ad")


def write_dataset(dataset: ComboDataset, out: str | Path, fmt: str, overwrite: bool = False) -> Path:
    """npy -> `out` is the data directory; a tidy format or h5ad -> `out`/dataset.<ext> (out created if needed)."""
    if fmt == "npy":
        return write_npy_dir(dataset, out, overwrite=overwrite)
    if fmt == "h5ad":
        return write_combo_h5ad(dataset, Path(out).expanduser() / H5AD_FILE, overwrite=overwrite)
    if fmt in TIDY_FILES:
        return write_tidy(dataset, Path(out).expanduser() / TIDY_FILES[fmt], overwrite=overwrite)
    raise DataError(f"unknown output format {fmt!r}; expected one of {list(FORMATS)}")


def run(cfg: DictConfig) -> dict[str, object]:
    """Write what cfg.export names (the data set, a drug library or a query signature) to cfg.out; print and return
    a one-line summary."""
    what = str(OmegaConf.select(cfg, "export.what", default="dataset"))
    if what == "library":
        return _export_library(cfg)
    if what == "signature":
        return _export_signature(cfg)
    if what != "dataset":
        raise DataError(f"export must be dataset, library or signature, got {what!r}")
    fmt = str(cfg.format)
    if fmt not in FORMATS:  # fail before a possibly long simulation
        raise DataError(f"unknown output format {fmt!r}; expected one of {list(FORMATS)}")
    out = str(cfg.out)
    dataset = load_dataset(cfg.data)
    written = write_dataset(dataset, out, fmt, overwrite=bool(cfg.overwrite))
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
    from combomap.data.export import LIBRARY_FORMATS, write_library
    from combomap.data.library_io import load_library

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
    from combomap.data.export import make_signature, write_signature

    signature = make_signature(OmegaConf.to_container(cfg.export, resolve=True),
                               OmegaConf.to_container(cfg.library, resolve=True))
    written = write_signature(signature, str(cfg.out), str(cfg.export.format), overwrite=bool(cfg.overwrite))
    summary: dict[str, object] = {"n_genes": int(signature.shape[0]), "description": signature.attrs["description"],
                                  "format": str(cfg.export.format), "output": str(written.resolve())}
    print(f"combomap-data: signature of {summary['description']}, {summary['n_genes']} genes -> {summary['output']}")
    return summary


@command("combomap-data", "data_tool")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
