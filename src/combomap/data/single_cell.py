"""Single-cell perturbation data (.h5ad, e.g. Perturb-seq double perturbations) -> a ComboDataset.

Cells are labelled in an obs column (`perturbation_key`): the control label(s), a single target "A" and a
double "A+B" (the separator is configurable). The GEARS convention ("A+ctrl", "ctrl+B", "ctrl") needs no
setting: control tokens inside a label are dropped, and a label made of control tokens only is the control.
The conversion mirrors the bulk design the metaMA effect sizes were made for:

1. Pseudobulk: the cells of each (study, perturbation, replicate) are summed. Replicates are the batches
   (`batch_key`, e.g. 10x gem group) when given, else a seeded split of each perturbation's cells into
   up to `n_replicates` groups of at least `min_cells` cells. Smaller groups are dropped, and a
   perturbation left with fewer than 2 replicates is skipped (and reported).
2. Normalisation (`values=counts`, raw counts required, integers checked): library size, then
   log2(CPM + 1) per pseudobulk sample. `values=log` (an already log-normalised X, as GEARS ships it):
   the mean of the cells' values instead, no integer check.
3. Per study, one linear model with a group per perturbation: group means, the pooled residual variance,
   limma's variance squeeze, the moderated t of each perturbation against the shared control, and
   metaMA's d' and var(d') (combomap.data.effect_size). Genes without a count in the study are NaN.
4. Every "A+B" whose singles A and B are both in the study becomes one combination (drug1 = A,
   drug2 = B, combo "A+B", or "study:A+B" when there are several studies). Everything skipped is listed
   in the report, with the reason, and logged.

The matrix (X or a layer; dense, CSR or CSC) is read in blocks straight from the HDF5 file and never
densified as a whole: peak memory is one block plus the (groups x genes) sums.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.effect_size import effect_size, moderated_t, squeeze_variances
from combomap.data.h5ad import element_shape, matrix_element, open_h5ad, read_frame, unique_names
from combomap.settings import SEED, Checked, SettingsError, key_of, limits

log = logging.getLogger(__name__)

PERTURBATION_KEYS = ("perturbation", "perturbation_name", "condition", "perturbation_label")
VALUES = ("counts", "log")
COMBO_JOIN = "+"
# dense cells x genes entries read per step (dense X, CSC column blocks): 128 MB as float64
BLOCK_ENTRIES = 2**24


@dataclass
class SingleCellOptions(Checked):
    """How to read the cells; every field is a `data.*` setting of conf/data/h5ad.yaml (its schema,
    combomap.data.loading.H5adData, adds the file), and these defaults are its defaults."""

    layer: Optional[str] = None  # None: X
    perturbation_key: Optional[str] = None  # None: the first of PERTURBATION_KEYS that obs has
    control: Any = ("control", "ctrl", "non-targeting")  # one label or a list of them
    separator: str = "+"
    study_key: Optional[str] = None
    study: Optional[str] = None  # the study's name when study_key is None (default: the file's stem)
    batch_key: Optional[str] = None
    gene_key: Optional[str] = None
    values: str = field(default="counts", metadata=limits(choices=VALUES))
    n_replicates: int = field(default=3, metadata=limits(2))  # a variance needs replicates
    min_cells: int = field(default=20, metadata=limits(1))
    seed: int = field(default=0, metadata=SEED)
    block_cells: int = field(default=10000, metadata=limits(1))  # cells per step for CSR (dense: fewer when BLOCK_ENTRIES says so)

    def __post_init__(self) -> None:
        control = self.control
        if isinstance(control, str):
            self.control = (control,)
        elif isinstance(control, (list, tuple)):
            self.control = tuple(str(label) for label in control)
        for name in ("layer", "perturbation_key", "study_key", "study", "batch_key", "gene_key"):
            if getattr(self, name) == "":
                setattr(self, name, None)

    def validate(self, prefix: str) -> None:
        if not isinstance(self.control, tuple):
            raise SettingsError(f"{key_of(prefix, 'control')} must be a label or a list of labels, got {self.control!r}")
        if not self.separator:
            raise SettingsError(f"{key_of(prefix, 'separator')} must not be empty")


@dataclass(frozen=True)
class Skipped:
    study: str
    perturbation: str
    reason: str


@dataclass
class PseudobulkReport:
    """What the conversion used and what it skipped, and why."""

    path: str
    n_cells: int = 0
    n_cells_used: int = 0
    n_unlabelled: int = 0
    n_groups: int = 0
    studies: list[str] = field(default_factory=list)
    n_singles: int = 0
    n_combos: int = 0
    gears_labels: bool = False
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path}: {self.n_cells_used} of {self.n_cells} cells in {self.n_groups} pseudobulk samples, "
            f"{len(self.studies)} stud{'y' if len(self.studies) == 1 else 'ies'}, {self.n_combos} combinations "
            f"from {self.n_singles} singles; {len(self.skipped)} perturbation(s) skipped"
            + (f", {self.n_unlabelled} unlabelled cells dropped" if self.n_unlabelled else "")
        )

    def lines(self) -> list[str]:
        return [self.summary()] + [f"skipped {s.study}/{s.perturbation}: {s.reason}" for s in self.skipped]


# ---------------------------------------------------------------------------------------------
# labels


def parse_labels(
    labels: pd.Series, options: SingleCellOptions
) -> tuple[pd.Series, dict[str, tuple[str, ...]], bool]:
    """Per cell the canonical perturbation: "" = control, "A", "A+B" (tokens in first-seen order);
    None = unlabelled. Returns it, each name's targets, and whether GEARS-style control tokens were dropped."""
    control = {str(c) for c in options.control}
    mapping: dict[str, str | None] = {}
    order: dict[frozenset[str], str] = {}
    targets: dict[str, tuple[str, ...]] = {"": ()}
    gears = False
    for label in pd.unique(labels.dropna().astype(str)):
        tokens = [t.strip() for t in label.split(options.separator)]
        kept = [t for t in tokens if t and t not in control]
        gears |= len(kept) < len(tokens) and bool(kept)
        if not kept:
            mapping[label] = "" if any(t in control for t in tokens) or label in control else None
            continue
        key = frozenset(kept)
        kept = list(dict.fromkeys(kept))  # "A+A": one target, named once
        name = order.setdefault(key, COMBO_JOIN.join(kept))
        mapping[label] = name
        targets.setdefault(name, tuple(kept))
    parsed = labels.astype(object).map(lambda v: None if pd.isna(v) else mapping.get(str(v)))
    return parsed, targets, gears


# ---------------------------------------------------------------------------------------------
# grouping cells into pseudobulk samples


def _column(obs: pd.DataFrame, key: str, what: str, path: Path) -> pd.Series:
    if key not in obs.columns:
        raise DataError(f"{path}: no obs column {key!r} for the {what}; obs columns are {list(obs.columns)}")
    return obs[key]


def _perturbation_key(obs: pd.DataFrame, options: SingleCellOptions, path: Path) -> str:
    if options.perturbation_key is not None:
        _column(obs, options.perturbation_key, "perturbation labels", path)
        return options.perturbation_key
    for key in PERTURBATION_KEYS:
        if key in obs.columns:
            return key
    raise DataError(
        f"{path}: no perturbation column (looked for {list(PERTURBATION_KEYS)}); obs columns are "
        f"{list(obs.columns)}; set data.perturbation_key=COLUMN"
    )


def assign_groups(
    obs: pd.DataFrame, options: SingleCellOptions, path: Path, report: PseudobulkReport
) -> tuple[np.ndarray, pd.DataFrame, dict[str, tuple[str, ...]]]:
    """Per cell its pseudobulk sample (-1 = not used), the samples table (study, perturbation, replicate,
    n_cells) and each perturbation's targets."""
    key = _perturbation_key(obs, options, path)
    perturbation, targets, report.gears_labels = parse_labels(obs[key], options)
    if report.gears_labels:
        log.info("%s: GEARS-style labels (A+ctrl, ctrl): control tokens dropped from %r", path, key)
    default_study = options.study or path.name.split(".")[0]
    study = (
        _column(obs, options.study_key, "study", path).astype(str)
        if options.study_key
        else pd.Series(default_study, index=obs.index)
    )
    cells = pd.DataFrame({"study": study.to_numpy(), "perturbation": perturbation.to_numpy()})
    labelled = cells["perturbation"].notna().to_numpy()
    report.n_cells, report.n_unlabelled = len(cells), int((~labelled).sum())
    if not (cells["perturbation"] == "").any():
        raise DataError(
            f"{path}: no control cells: none of obs[{key!r}] is one of {list(options.control)} "
            f"(labels are e.g. {list(pd.unique(obs[key].dropna().astype(str)))[:5]}); set data.control=LABEL"
        )
    replicate = np.full(len(cells), -1, dtype=np.int64)
    if options.batch_key:
        batches = _column(obs, options.batch_key, "batches (replicates)", path)
        replicate[:] = pd.factorize(batches.astype(str), sort=True)[0]
    else:
        # rank the cells of each perturbation by one seeded draw per cell (file order only), then deal them out
        draw = np.random.default_rng(options.seed).random(len(cells))
        frame = cells.assign(draw=draw)[labelled]
        rank = frame.groupby(["study", "perturbation"], sort=False)["draw"].rank(method="first").to_numpy() - 1
        size = frame.groupby(["study", "perturbation"], sort=False)["draw"].transform("size").to_numpy()
        n_split = np.clip(size // options.min_cells, 1, options.n_replicates)
        replicate[labelled] = rank.astype(np.int64) % n_split
    cells["replicate"] = replicate
    used = cells[labelled]
    samples = used.groupby(["study", "perturbation", "replicate"], sort=False).size().rename("n_cells").reset_index()
    small = samples["n_cells"] < options.min_cells
    replicates = samples[~small].groupby(["study", "perturbation"], sort=False).size()
    for (study_name, name), group in samples.groupby(["study", "perturbation"], sort=False):
        kept = int(replicates.get((study_name, name), 0))
        if kept >= 2:
            continue
        label = name or "control"
        reason = (
            f"{int(group['n_cells'].sum())} cells give {kept} replicate(s) of >= {options.min_cells} cells "
            f"(need 2; lower data.min_cells{'' if options.batch_key else ' or data.n_replicates'})"
        )
        if name == "":
            raise DataError(f"{path}: control of study {study_name!r}: {reason}")
        report.skipped.append(Skipped(str(study_name), label, reason))
    keep = ~small & samples.set_index(["study", "perturbation"]).index.map(
        lambda k: replicates.get(k, 0) >= 2
    ).to_numpy(dtype=bool)
    samples = samples[keep].reset_index(drop=True)
    index = pd.MultiIndex.from_frame(samples[["study", "perturbation", "replicate"]])
    group = np.full(len(cells), -1, dtype=np.int64)
    group[labelled] = index.get_indexer(pd.MultiIndex.from_frame(used[["study", "perturbation", "replicate"]]))
    report.n_groups, report.n_cells_used = len(samples), int((group >= 0).sum())
    return group, samples, targets


# ---------------------------------------------------------------------------------------------
# streaming the matrix into per-sample sums


def _check_block(values: np.ndarray, counts: bool, where: Any, path: Path, name: str) -> None:
    """Finite values, and non-negative integers where counts are expected; `where(position)` names the entry."""
    bad = ~np.isfinite(values)
    if bad.any():
        position = int(np.argmax(bad))
        raise DataError(f"{path}: {name} holds {float(values[position])} at {where(position)}")
    if counts:
        bad = (values < 0) | (values != np.floor(values))
        if bad.any():
            position = int(np.argmax(bad))
            raise DataError(
                f"{path}: {name} holds {float(values[position])} at {where(position)}, but raw counts (non-negative "
                "integers) are expected; give the counts layer (data.layer=NAME) or set data.values=log for "
                "log-normalised values"
            )


def pseudobulk_sums(
    element: Any, group: np.ndarray, n_groups: int, genes: list[str], options: SingleCellOptions, path: Path, name: str
) -> np.ndarray:
    """(n_groups x n_genes) float64 sums of the cells of each group, read block by block."""
    import h5py

    n_cells, n_genes = len(group), len(genes)
    counts = options.values == "counts"
    used = group >= 0
    indicator = sp.csc_matrix(
        (np.ones(int(used.sum())), (group[used], np.flatnonzero(used))), shape=(n_groups, n_cells)
    )
    sums = np.zeros((n_groups, n_genes), dtype=np.float64)
    entry = lambda cell, gene: f"cell {int(cell)} (obs row), gene {genes[int(gene)]!r}"  # noqa: E731

    if isinstance(element, h5py.Dataset):
        step = max(1, min(int(options.block_cells), BLOCK_ENTRIES // max(n_genes, 1)))
        for start in range(0, n_cells, step):
            block = np.asarray(element[start : start + step], dtype=np.float64)
            where = lambda k, s=start: entry(s + k // n_genes, k % n_genes)  # noqa: E731
            _check_block(block.ravel(), counts, where, path, name)
            sums += indicator[:, start : start + len(block)] @ block
        return sums
    encoding = element.attrs.get("encoding-type", "")
    encoding = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
    if encoding not in ("csr_matrix", "csc_matrix"):
        raise DataError(f"{path}: {name} has encoding {encoding!r}; expected a dense array, csr_matrix or csc_matrix")
    indptr = element["indptr"][()].astype(np.int64)
    data, indices = element["data"], element["indices"]
    by_row = encoding == "csr_matrix"
    n_major = n_cells if by_row else n_genes
    if len(indptr) != n_major + 1:
        what = "cells" if by_row else "genes"
        raise DataError(f"{path}: {name} indptr has {len(indptr)} entries for {n_major} {what}")
    # a CSC block spans every cell, so it holds as many genes as fit BLOCK_ENTRIES dense cells x genes
    major_step = max(1, int(options.block_cells)) if by_row else max(1, BLOCK_ENTRIES // max(n_cells, 1))
    for start in range(0, n_major, major_step):
        stop = min(n_major, start + major_step)
        lo, hi = int(indptr[start]), int(indptr[stop])
        values = np.asarray(data[lo:hi], dtype=np.float64)
        minor = np.asarray(indices[lo:hi])
        local = indptr[start : stop + 1] - lo

        def where(k: int, start: int = start, local: np.ndarray = local, minor: np.ndarray = minor) -> str:
            major = start + int(np.searchsorted(local, k, side="right")) - 1
            return entry(major, minor[k]) if by_row else entry(minor[k], major)

        _check_block(values, counts, where, path, name)
        if by_row:
            block = sp.csr_matrix((values, minor, local), shape=(stop - start, n_genes))
            product = (indicator[:, start:stop] @ block).tocoo()
            sums[product.row, product.col] += product.data
        else:
            block = sp.csc_matrix((values, minor, local), shape=(n_cells, stop - start))
            sums[:, start:stop] += (indicator @ block).toarray()
    return sums


# ---------------------------------------------------------------------------------------------
# effect sizes per study and the combinations


def _study_effects(
    expression: np.ndarray, samples: pd.DataFrame, measured: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Perturbation names (control excluded) and their d', var(d') against the study's control (NaN = unmeasured)."""
    names = list(pd.unique(samples["perturbation"]))
    codes = pd.Categorical(samples["perturbation"], categories=names).codes
    n_rep = np.bincount(codes, minlength=len(names)).astype(np.float64)
    values = expression[:, measured]
    means = np.zeros((len(names), values.shape[1]))
    np.add.at(means, codes, values)
    means /= n_rep[:, None]
    df_residual = float(len(samples) - len(names))
    s2 = ((values - means[codes]) ** 2).sum(axis=0) / df_residual
    squeezed = squeeze_variances(s2, df_residual)
    control = names.index("")
    tests = [k for k in range(len(names)) if k != control]
    t = moderated_t(means[tests] - means[control], squeezed.s2_post, n_rep[control], n_rep[tests, None])
    dprime, vardprime = effect_size(t, df_residual + squeezed.df_prior, n_rep[control], n_rep[tests, None])
    d_out = np.full((len(tests), len(measured)), np.nan)
    v_out = np.full_like(d_out, np.nan)
    d_out[:, measured], v_out[:, measured] = dprime, vardprime
    return [names[k] for k in tests], d_out, v_out


def _log_expression(sums: np.ndarray, samples: pd.DataFrame, options: SingleCellOptions, path: Path) -> np.ndarray:
    if options.values == "log":
        return sums / samples["n_cells"].to_numpy(dtype=np.float64)[:, None]
    library = sums.sum(axis=1)
    if (library <= 0).any():
        row = samples.iloc[int(np.argmax(library <= 0))]
        raise DataError(
            f"{path}: pseudobulk sample {row['study']}/{row['perturbation'] or 'control'}/replicate "
            f"{row['replicate']} has no counts"
        )
    return np.log2(sums / library[:, None] * 1e6 + 1.0)


def read_single_cell(
    path: str | os.PathLike, options: SingleCellOptions | None = None
) -> tuple[ComboDataset, PseudobulkReport]:
    """Pseudobulk a single-cell perturbation .h5ad into a ComboDataset of its double perturbations."""
    options = (options or SingleCellOptions()).check("data")
    path = Path(path).expanduser()
    report = PseudobulkReport(path=str(path))
    with open_h5ad(path) as handle:
        obs = read_frame(handle, "obs", path)
        var = read_frame(handle, "var", path)
        genes = unique_names(var, options.gene_key, "gene", path)
        name = "X" if options.layer is None else f"layer {options.layer!r}"
        element = matrix_element(handle, options.layer, path)
        shape = element_shape(element, name, path)
        if shape != (len(obs), len(var)):
            raise DataError(f"{path}: {name} has shape {shape}, but obs x var is {(len(obs), len(var))}")
        group, samples, targets_of = assign_groups(obs, options, path, report)
        sums = pseudobulk_sums(element, group, len(samples), genes, options, path, name)
    expression = _log_expression(sums, samples, options, path)

    blocks: dict[str, list[np.ndarray]] = {k: [] for k in ("d1", "d2", "y", "v1", "v2")}
    rows: list[dict[str, str]] = []
    studies = list(pd.unique(samples["study"]))
    report.studies = [str(s) for s in studies]
    for study in studies:
        in_study = (samples["study"] == study).to_numpy()
        part = samples[in_study].reset_index(drop=True)
        if not (part["perturbation"] == "").any():
            for perturbation in pd.unique(part["perturbation"]):
                report.skipped.append(Skipped(str(study), perturbation, "its study has no control cells"))
            continue
        measured = np.abs(sums[in_study]).sum(axis=0) > 0
        names, dprime, vardprime = _study_effects(expression[in_study], part, measured)
        position = {n: k for k, n in enumerate(names)}
        skipped_here = {s.perturbation: s.reason for s in report.skipped if s.study == str(study)}
        singles_used: set[str] = set()
        for perturbation in names:
            targets = targets_of[perturbation]
            if len(targets) == 1:
                continue
            if len(targets) > 2:
                report.skipped.append(Skipped(str(study), perturbation, f"{len(targets)} targets; only pairs are used"))
                continue
            absent = [t for t in targets if t not in position]
            if absent:
                why = "; ".join(
                    f"single {t} " + (f"skipped ({skipped_here[t]})" if t in skipped_here else "not in the data")
                    for t in absent
                )
                report.skipped.append(Skipped(str(study), perturbation, f"no single for its pair: {why}"))
                continue
            a, b = position[targets[0]], position[targets[1]]
            c = position[perturbation]
            for key, values in (("d1", dprime[a]), ("d2", dprime[b]), ("y", dprime[c]),
                                ("v1", vardprime[a]), ("v2", vardprime[b])):
                blocks[key].append(values)
            rows.append({"combo": perturbation, "study": str(study), "drug1": targets[0], "drug2": targets[1]})
            singles_used.update(targets)
        report.n_singles += len(singles_used)
    report.n_combos = len(rows)
    for line in report.lines():
        log.info(line)
    if not rows:
        reasons = "; ".join(f"{s.perturbation}: {s.reason}" for s in report.skipped[:3]) or "no A+B labels"
        raise DataError(
            f"{path}: no combination A{options.separator}B with both singles A and B measured ({reasons})"
        )
    combos = pd.DataFrame(rows)
    if len(studies) > 1:
        combos["combo"] = combos["study"] + ":" + combos["combo"]
    stack = {key: np.stack(values).astype(np.float32) for key, values in blocks.items()}
    dataset = ComboDataset(
        drug1_effect=stack["d1"], drug2_effect=stack["d2"], combo_effect=stack["y"], genes=genes, combos=combos,
        drug1_var=stack["v1"], drug2_var=stack["v2"], source=str(path),
    )
    return dataset, report
