"""numba kernels of `combomap.stacking.forest` (imported only when a compiled forest is used)."""

from __future__ import annotations

import numba
import numpy as np

ROWS_PER_BLOCK = 4096
ZERO_THRESHOLD = np.float32(1e-35)  # lightgbm's kZeroThreshold


@numba.njit(inline="always")
def _go_right(packed, x, split):
    """1 if x goes right: NaN to the node's missing side (bit 3), else x >= split (split NaN at leaves: never)."""
    return (np.uint32(x != x) & ((packed >> np.uint32(3)) & np.uint32(1))) | np.uint32(x >= split)


@numba.njit(inline="always")
def _go_right_zero_missing(packed, x, split):
    """`_go_right`, where a node flagged zero-is-missing (bit 4, lightgbm missing_type Zero) also treats |x| <= 1e-35 as missing."""
    one = np.uint32(1)
    missing = np.uint32(x != x) | (((packed >> np.uint32(4)) & one) & np.uint32(abs(x) <= ZERO_THRESHOLD))
    return (missing & ((packed >> np.uint32(3)) & one)) | ((missing ^ one) & np.uint32(x >= split))


@numba.njit(cache=True, nogil=True, boundscheck=False)
def walk(rows, threshold, hi, leaf_value, roots, base, depth, zero_missing, nodes, out):
    """out[r] = base + sum over trees of the leaf row r reaches; every tree walked level by level for all rows.

    A node's right child follows its left child (bits 5+); leaves point to themselves, so `depth` steps
    reach every leaf. The zero-is-missing rule costs a third of the speed, so it has its own loop.
    """
    n_rows = rows.shape[0]
    for r in range(n_rows):
        out[r] = base
    for t in range(roots.shape[0]):
        root = roots[t]
        for r in range(n_rows):
            nodes[r] = root
        for _ in range(depth):
            if zero_missing:
                for r in range(n_rows):
                    packed = hi[nodes[r]]
                    nodes[r] = (packed >> np.uint32(5)) + _go_right_zero_missing(packed, rows[r, packed & np.uint32(7)], threshold[nodes[r]])
            else:
                for r in range(n_rows):
                    packed = hi[nodes[r]]
                    nodes[r] = (packed >> np.uint32(5)) + _go_right(packed, rows[r, packed & np.uint32(7)], threshold[nodes[r]])
        for r in range(n_rows):
            out[r] += leaf_value[nodes[r]]


@numba.njit(cache=True, parallel=True, boundscheck=False)
def predict_rows(features, threshold, hi, leaf_value, roots, base, depth, zero_missing):
    n_rows = features.shape[0]
    out = np.empty(n_rows, dtype=leaf_value.dtype)  # float32 sums for xgboost, float64 for lightgbm, as they do
    n_blocks = (n_rows + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
    for block in numba.prange(n_blocks):
        start = block * ROWS_PER_BLOCK
        stop = min(n_rows, start + ROWS_PER_BLOCK)
        nodes = np.empty(stop - start, dtype=np.uint32)
        walk(features[start:stop], threshold, hi, leaf_value, roots, base, depth, zero_missing, nodes, out[start:stop])
    return out


@numba.njit(inline="always")
def _after(a, b):
    """a sorts after b in (finite ascending, then NaN), as combomap.stacking.features._greater."""
    a_nan, b_nan = a != a, b != b
    return (a_nan and not b_nan) or (not a_nan and not b_nan and a > b)


@numba.njit(inline="always")
def _same(a, b):
    return (a != a and b != b) or a == b


@numba.njit(cache=True, parallel=True, boundscheck=False)
def predict_pairs(
    effects, variances, has_var, projected, has_proj, left, right, nets, codes, symmetric, threshold, hi, leaf_value, roots,
    base, depth, zero_missing
):
    """(pairs x genes) stacker output averaged over nets: features.stacked_prediction, rows assembled in place
    (canonical order as features.canonical_swap; numba cannot call its array code, so `_after` / `_same` restate
    its comparisons per entry, and tests/stacking/test_forest.py holds them equal)."""
    n_pairs = left.shape[0]
    n_genes = effects.shape[1]
    n_nets = nets.shape[0]
    per_entry = max(n_nets, 1)
    n_features = codes.shape[0]
    out = np.empty((n_pairs, n_genes), dtype=np.float32)
    pairs_per_block = max(1, ROWS_PER_BLOCK // (n_genes * per_entry))
    n_blocks = (n_pairs + pairs_per_block - 1) // pairs_per_block
    nan = np.float32(np.nan)
    for block in numba.prange(n_blocks):
        first = block * pairs_per_block
        last = min(n_pairs, first + pairs_per_block)
        n_rows = (last - first) * per_entry * n_genes
        rows = np.empty((n_rows, n_features), dtype=np.float32)
        values = np.empty(7, dtype=np.float32)  # features.FEATURES order: net_pred, d1, d2, v1, v2, p1, p2
        row = 0
        for pair in range(first, last):
            a = left[pair]
            b = right[pair]
            for k in range(per_entry):
                for gene in range(n_genes):
                    effect_a = effects[a, gene]
                    effect_b = effects[b, gene]
                    var_a = variances[a, gene] if has_var else nan
                    var_b = variances[b, gene] if has_var else nan
                    proj_a = projected[a, gene] if has_proj else nan
                    proj_b = projected[b, gene] if has_proj else nan
                    swap = False
                    if symmetric:  # features.canonical_swap: effect, then variance, then projection
                        swap = _after(effect_a, effect_b)
                        if not swap and _same(effect_a, effect_b):
                            if has_var and _after(var_a, var_b):
                                swap = True
                            elif (not has_var or _same(var_a, var_b)) and has_proj:
                                swap = _after(proj_a, proj_b)
                    if swap:
                        values[1], values[2], values[3], values[4] = effect_b, effect_a, var_b, var_a
                        values[5], values[6] = proj_b, proj_a
                    else:
                        values[1], values[2], values[3], values[4] = effect_a, effect_b, var_a, var_b
                        values[5], values[6] = proj_a, proj_b
                    values[0] = nets[k, pair, gene] if n_nets > 0 else nan
                    for column in range(n_features):
                        rows[row, column] = values[codes[column]]
                    row += 1
        nodes = np.empty(n_rows, dtype=np.uint32)
        stacked = np.empty(n_rows, dtype=leaf_value.dtype)
        walk(rows, threshold, hi, leaf_value, roots, base, depth, zero_missing, nodes, stacked)
        for pair in range(first, last):
            base_row = (pair - first) * per_entry * n_genes
            for gene in range(n_genes):
                if n_nets == 0:
                    out[pair, gene] = np.float32(stacked[base_row + gene])
                else:
                    total = 0.0
                    for k in range(n_nets):  # each net's output as the backend returns it (float32), summed in float64
                        total += np.float64(np.float32(stacked[base_row + k * n_genes + gene]))
                    out[pair, gene] = np.float32(total / n_nets)
    return out
