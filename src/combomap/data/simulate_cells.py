"""Simulated Perturb-seq-like counts from the compendium simulator's single and combination effects.

For tests, examples and the conversion benchmark: a known truth to check pseudobulk effect sizes against.
Pairs of pool drugs (combomap.data.simulate, same preset and seed) act as the perturbations: each pair
gives two single groups and one combination group, whose true log2 fold changes are the simulator's
arm effects (unit dose and context). Each cell of a group draws negative-binomial (gamma-Poisson) counts
with mean depth_c x p_g x 2^lfc_g, where p_g are lognormal baseline gene proportions (a few genes carry
most reads, most genes are rarely seen) and depth_c a lognormal library size: at the default depth of
0.25 x n_genes counts per cell 10-15 % of the entries are non-zero, as in 10x data (0.15 x n_genes: ~10 %).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from combomap.data.simulate import _arm_effects, _make_drug, _make_world, _rng, drug_name, simulation_params

_CELLS = 7  # random stream of the cells (spawn key beyond the compendium's)


@dataclass
class SimulatedCells:
    """The cells' layout and truth: per group (study label) its true log2 fold change."""

    obs: pd.DataFrame  # perturbation (pertpy-style label), condition (GEARS-style), gemgroup
    genes: list[str]
    lfc: dict[str, np.ndarray]  # "A", "A+B" -> (n_genes,) true log2 fold change; control absent
    baseline: np.ndarray  # (n_genes,) expected counts per gene of a control cell of mean depth


def simulate_design(
    n_pairs: int = 3,
    cells_per_group: int = 300,
    preset: str = "tiny",
    seed: int = 0,
    n_batches: int = 3,
    depth: float | None = None,
    **overrides,
) -> tuple[SimulatedCells, np.ndarray, np.ndarray]:
    """The design and truth, and per cell its group (row of `lfc`, -1 = control) and library size."""
    params = simulation_params(preset, **overrides)
    world = _make_world(params, seed)
    drugs = [_make_drug(params, seed, i) for i in range(2 * n_pairs)]
    pairs = [(2 * k, 2 * k + 1) for k in range(n_pairs)]
    lfc_rows = _arm_effects(world, params, drugs, np.ones(len(drugs)), np.ones(params.n_programs), pairs)
    names = [drug_name(i) for i in range(len(drugs))] + [f"{drug_name(a)}+{drug_name(b)}" for a, b in pairs]
    lfc = {name: lfc_rows[k] for k, name in enumerate(names)}

    rng = _rng(seed, _CELLS)
    proportions = np.exp(1.5 * rng.standard_normal(params.n_genes))
    proportions /= proportions.sum()
    mean_depth = 0.25 * params.n_genes if depth is None else float(depth)
    labels = ["control"] + names
    group = np.repeat(np.arange(-1, len(names)), cells_per_group)
    group = group[rng.permutation(group.size)]  # the groups' cells interleaved, as sequenced
    perturbation = [labels[g + 1] for g in group]
    singles = names[: len(drugs)]
    gears = {"control": "ctrl"} | {n: (f"{n}+ctrl" if k % 2 == 0 else f"ctrl+{n}") for k, n in enumerate(singles)}
    obs = pd.DataFrame(
        {
            "perturbation": perturbation,
            "condition": [gears.get(p, p) for p in perturbation],
            "gemgroup": rng.integers(1, n_batches + 1, size=group.size).astype(str),
        },
        index=pd.Index([f"cell{i:06d}" for i in range(group.size)], name="cell"),
    )
    library = mean_depth * np.exp(0.3 * rng.standard_normal(group.size) - 0.045)
    cells = SimulatedCells(obs=obs, genes=list(world.genes), lfc=lfc, baseline=mean_depth * proportions)
    return cells, group, library


def count_blocks(
    cells: SimulatedCells, group: np.ndarray, library: np.ndarray, seed: int = 0, dispersion: float = 0.2,
    block_cells: int = 2000,
) -> Iterator[sp.csr_matrix]:
    """CSR blocks of negative-binomial counts (float32 integers), `block_cells` cells each, in cell order.

    The gamma and the Poisson draws have their own streams, so the counts do not depend on the block size.
    """
    gamma_rng, poisson_rng = (np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(_CELLS, k)))
                              for k in (1, 2))
    proportions = cells.baseline / cells.baseline.sum()
    rows = np.stack([np.zeros_like(proportions)] + list(cells.lfc.values()))
    scale = proportions[None, :] * np.exp2(rows)  # row 0 = control
    shape = 1.0 / dispersion
    for start in range(0, len(group), block_cells):
        stop = min(len(group), start + block_cells)
        mean = library[start:stop, None] * scale[group[start:stop] + 1]
        counts = poisson_rng.poisson(gamma_rng.gamma(shape, mean / shape)).astype(np.float32)
        yield sp.csr_matrix(counts)


def simulate_perturb_seq(
    n_pairs: int = 3, cells_per_group: int = 300, preset: str = "tiny", seed: int = 0, n_batches: int = 3,
    depth: float | None = None, dispersion: float = 0.2, **overrides,
) -> tuple[Any, SimulatedCells]:
    """An in-memory AnnData (X = CSR counts) and its truth; small sizes only (tests, examples)."""
    import anndata

    cells, group, library = simulate_design(n_pairs, cells_per_group, preset, seed, n_batches, depth, **overrides)
    matrix = sp.vstack(list(count_blocks(cells, group, library, seed, dispersion)), format="csr")
    adata = anndata.AnnData(X=matrix, obs=cells.obs, var=pd.DataFrame(index=pd.Index(cells.genes, name="gene")))
    return adata, cells


def write_perturb_seq_h5ad(
    path: str | os.PathLike, n_pairs: int, cells_per_group: int, preset: str = "small", seed: int = 0,
    n_batches: int = 3, depth: float | None = None, dispersion: float = 0.2, block_cells: int = 2000, **overrides,
) -> SimulatedCells:
    """Write a (large) simulated .h5ad block by block, never holding all counts: X is CSR float32."""
    import anndata
    import h5py

    cells, group, library = simulate_design(n_pairs, cells_per_group, preset, seed, n_batches, depth, **overrides)
    skeleton = anndata.AnnData(obs=cells.obs, var=pd.DataFrame(index=pd.Index(cells.genes, name="gene")))
    path = Path(path)
    skeleton.write_h5ad(path)
    with h5py.File(path, "a") as handle:
        if "X" in handle:
            del handle["X"]
        matrix = handle.create_group("X")
        shape = (len(group), len(cells.genes))
        matrix.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": shape})
        data = matrix.create_dataset("data", shape=(0,), maxshape=(None,), dtype="float32", chunks=(1 << 20,))
        indices = matrix.create_dataset("indices", shape=(0,), maxshape=(None,), dtype="int32", chunks=(1 << 20,))
        indptr, total = [np.zeros(1, dtype=np.int64)], 0
        for block in count_blocks(cells, group, library, seed, dispersion, block_cells):
            data.resize((total + block.nnz,))
            indices.resize((total + block.nnz,))
            data[total:], indices[total:] = block.data, block.indices
            indptr.append(block.indptr[1:].astype(np.int64) + total)
            total += block.nnz
        matrix.create_dataset("indptr", data=np.concatenate(indptr))
    return cells
