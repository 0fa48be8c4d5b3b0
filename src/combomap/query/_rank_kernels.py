"""numba kernels of `combomap.query.rank` (imported only when a compiled rank score is used).

One pass over a signature's genes gives, for every query member, the number of genes with a greater value
and its rank among equal values (ties by column order), with a binary search in the row's sorted member
values: O(n_genes log k) per row, no sort of the row. WTCS and extreme XSum follow from these counts with
the same floating-point operations, in the same order, as `combomap.query.scores`.
"""

from __future__ import annotations

import numba
import numpy as np

WTCS = 0
XSUM = 1
ROWS_PER_TASK = 64


@numba.njit(nogil=True, boundscheck=False)
def _sum(a, start, n):
    """a[start:start + n] summed in order: numpy's add.reduce over the columns of a (B > 1) x n block
    of fancy-indexed columns, which numpy lays out column-major (a single row is summed pairwise there,
    which can differ in the last bits)."""
    res = 0.0
    for i in range(n):
        res += a[start + i]
    return res


@numba.njit(nogil=True, boundscheck=False)
def _enrichment(weights, positions, order, start, k, n_genes):
    """Weighted KS enrichment of members start..start+k-1 (as scores._enrichment, same operations)."""
    if k == 0:
        return 0.0
    # members by position (distinct): order[start:start + k] comes by descending value, so only members
    # with equal values can be out of place; insertion sort
    for i in range(start + 1, start + k):
        m = order[i]
        p = positions[m]
        j = i - 1
        while j >= start and positions[order[j]] > p:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = m
    total = 0.0
    for i in range(k):
        total += weights[order[start + i]]
    if not total > 0:
        return 0.0
    denominator = float(max(n_genes - k, 1))
    cumulative = 0.0
    highest = -np.inf
    lowest = np.inf
    for i in range(k):
        w = weights[order[start + i]]
        cumulative += w
        misses = (float(positions[order[start + i]]) - float(i)) / denominator
        after = cumulative / total - misses
        before = (cumulative - w) / total - misses
        if after > highest:
            highest = after
        if before < lowest:
            lowest = before
    return highest if abs(highest) > abs(lowest) else lowest


@numba.njit(nogil=True, boundscheck=False)
def _sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


@numba.njit(nogil=True, boundscheck=False, inline="always")
def _uniform_cell(x, low, scale, top):
    """0 below u_0, top above u_k-1, else 1 + the uniform cell (scale > 0); no branches, so loops vectorize."""
    t = (x - low) * scale
    t = t if t > -1.0 else -1.0  # NaN too: cell 0, never an undefined conversion
    t = t if t < top - 1.0 else top - 1.0
    return int(t) + 1


@numba.njit(nogil=True, boundscheck=False, inline="always")
def _cell(x, low, scale, top):
    """A monotone (non-decreasing) cell of x: `_uniform_cell`; scale 0 (all members equal, or an infinite
    range) puts every value in cell 1."""
    if scale == 0.0:
        return 1
    return _uniform_cell(x, low, scale, top)


@numba.njit(nogil=True, boundscheck=False)
def _score_row(row, members, member_of, k_up, mode, extreme, scratch_f, scratch_i, hist, cell_lo, cell_hi, gene_cells):
    """One row's score (mode WTCS or XSUM); a NaN in the row, or an infinite member value, returns NaN (the
    caller recomputes the row in numpy).

    The genes are counted in a histogram of n_cells uniform cells over [u_0, u_k-1] (u: the members' sorted
    values); only genes in a cell that holds a member are placed exactly among that cell's members (cell()
    is monotone: members in earlier cells are < x, in later cells > x). cell_lo / cell_hi (the members of a
    cell: sorted indices cell_lo..cell_hi-1) are all 0 on entry and on return.
    """
    n_genes = row.shape[0]
    k = members.shape[0]
    if k == 0:
        return 0.0
    values = scratch_f[0]
    sorted_values = scratch_f[1]
    weights = scratch_f[2]
    kept = scratch_f[3]
    order = scratch_i[0]
    rank = scratch_i[1]
    below = scratch_i[2]
    equal = scratch_i[3]
    tie = scratch_i[4]
    positions = scratch_i[5]
    above = scratch_i[6]
    cell_of = scratch_i[7]
    counts = scratch_i[2]  # reused for the number of genes greater than each sorted member
    for m in range(k):
        v = row[members[m]]
        if not (v - v == 0.0):  # NaN or infinite member: numpy's arithmetic (NaN) decides
            return np.nan
        values[m] = v
    sort_order = np.argsort(values[:k])
    for i in range(k):
        m = sort_order[i]
        sorted_values[i] = values[m]
        rank[m] = i
        below[i] = 0
        equal[i] = 0
        above[i] = 0
    n_cells = cell_lo.shape[0]  # cells 0 and n_cells - 1 take the genes far below / above the members
    low = sorted_values[0]
    high = sorted_values[k - 1]
    scale = (n_cells - 2.5) / (high - low) if high > low else 0.0
    if not (scale < np.inf):
        scale = 0.0
    top = n_cells - 1.0
    for i in range(k):
        c = _cell(sorted_values[i], low, scale, top)
        cell_of[i] = c
        if cell_hi[c] == 0:
            cell_lo[c] = i
        cell_hi[c] = i + 1
    for h in range(n_cells):
        hist[h] = 0
    nan_found = False
    if scale == 0.0:
        gene_cells[:n_genes] = 1
        for j in range(n_genes):
            nan_found |= row[j] != row[j]
    else:  # every gene's cell first, in a loop without branches that the compiler vectorizes
        for j in range(n_genes):
            x = row[j]
            nan_found |= x != x
            gene_cells[j] = _uniform_cell(x, low, scale, top)
    for j in range(n_genes if not nan_found else 0):
        x = row[j]
        c = gene_cells[j]
        hist[c] += 1
        g1 = cell_hi[c]
        if g1 > 0:
            lo = cell_lo[c]
            hi = g1
            while lo < hi:
                mid = (lo + hi) >> 1
                if sorted_values[mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < g1:
                below[lo] += 1
                if sorted_values[lo] == x:
                    m = member_of[j]
                    if m >= 0:
                        tie[m] = equal[lo]
                    equal[lo] += 1
            else:
                above[g1 - 1] += 1
    # greater(i) = genes in later cells + genes of i's cell placed after i
    running = 0
    next_cell = n_cells - 1
    i = k - 1
    while i >= 0:
        c = cell_of[i]
        while next_cell > c:
            running += hist[next_cell]
            next_cell -= 1
        inside = above[i]  # the cell's last member: genes above all of the cell's members
        g0 = cell_lo[c]
        t = i
        while t >= g0:
            counts_t = below[t]
            below[t] = running + inside  # greater(t)
            inside += counts_t
            t -= 1
        i = g0 - 1
    for i in range(k):
        c = cell_of[i]
        cell_lo[c] = 0
        cell_hi[c] = 0
    if nan_found:
        return np.nan
    if mode == WTCS:
        for m in range(k):
            positions[m] = counts[rank[m]] + tie[m]
            weights[m] = abs(values[m])
        n_up = 0
        n_down = k_up
        for i in range(k - 1, -1, -1):
            m = sort_order[i]
            if m < k_up:
                order[n_up] = m
                n_up += 1
            else:
                order[n_down] = m
                n_down += 1
        k_down = k - k_up
        es_up = _enrichment(weights, positions, order, 0, k_up, n_genes)
        es_down = _enrichment(weights, positions, order, k_up, k_down, n_genes)
        if k_down == 0:
            return es_up
        if k_up == 0:
            return -es_down
        if _sign(es_up) != _sign(es_down):
            return (es_up - es_down) / 2.0
        return 0.0
    # extreme xsum: v >= (X-th largest) <=> #(greater) < X; v <= (X-th smallest) <=> #(smaller) < X
    for m in range(k):
        v = values[m]
        i = rank[m]
        first = i
        while first > 0 and sorted_values[first - 1] == v:
            first -= 1
        greater = counts[i]
        smaller = n_genes - greater - equal[first]
        keep = (v > 0 and greater < extreme) or (v < 0 and smaller < extreme)
        kept[m] = v if keep else 0.0
    return _sum(kept, 0, k_up) - _sum(kept, k_up, k - k_up)


@numba.njit(cache=True)
def _scratch(n_members, n_cells, n_genes):
    """Per-task work arrays of _score_row (n_cells: the histogram's cells, see rank.cells_for)."""
    return (np.empty((4, n_members + 1), dtype=np.float64), np.empty((8, n_members + 1), dtype=np.int64),
            np.empty(n_cells, dtype=np.int32), np.zeros(n_cells, dtype=np.int64), np.zeros(n_cells, dtype=np.int64),
            np.empty(n_genes, dtype=np.int32))


@numba.njit(cache=True, parallel=True, boundscheck=False)
def score_rows(signatures, members, member_of, k_up, mode, extreme, n_cells):
    """Scores of each row of a (B x n_genes) float64 block."""
    n_rows = signatures.shape[0]
    out = np.empty(n_rows, dtype=np.float64)
    n_tasks = (n_rows + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in numba.prange(n_tasks):
        scratch_f, scratch_i, hist, cell_lo, cell_hi, gene_cells = _scratch(members.shape[0], n_cells, signatures.shape[1])
        for r in range(task * ROWS_PER_TASK, min(n_rows, (task + 1) * ROWS_PER_TASK)):
            out[r] = _score_row(signatures[r], members, member_of, k_up, mode, extreme, scratch_f, scratch_i, hist, cell_lo,
                                cell_hi, gene_cells)
    return out


@numba.njit(cache=True, parallel=True, boundscheck=False)
def score_pairs(values, left, right, weight, members, member_of, k_up, mode, extreme, n_cells):
    """Scores of the pair signatures weight * (values[left] + values[right]) in float64, built row by row."""
    n_rows = left.shape[0]
    n_genes = values.shape[1]
    out = np.empty(n_rows, dtype=np.float64)
    n_tasks = (n_rows + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in numba.prange(n_tasks):
        scratch_f, scratch_i, hist, cell_lo, cell_hi, gene_cells = _scratch(members.shape[0], n_cells, n_genes)
        row = np.empty(n_genes, dtype=np.float64)
        for r in range(task * ROWS_PER_TASK, min(n_rows, (task + 1) * ROWS_PER_TASK)):
            a = values[left[r]]
            b = values[right[r]]
            for j in range(n_genes):
                row[j] = (np.float64(a[j]) + np.float64(b[j])) * weight
            out[r] = _score_row(row, members, member_of, k_up, mode, extreme, scratch_f, scratch_i, hist, cell_lo, cell_hi,
                                gene_cells)
    return out


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")  # x / 0 is inf / NaN, as in numpy
def gram_tile_pairs(gram, rows, col0, projection, norm2, q_norm, outside, sign, floor):
    """Pair scores of one Gram tile (rows x columns col0..), with the same operations as the numpy path of
    `pairs.gram_pair_scores`; only the valid pairs whose key (sign x score, NaN lowest) is >= floor are
    returned, as (scores, lower drug, higher drug), plus the number of valid pairs scored. outside: empty
    for all pairs (column > row), else the drugs outside `include` (any column != row that is outside or above)."""
    n_rows, n_cols = gram.shape
    capacity = 1024
    scores = np.empty(capacity, dtype=np.float64)
    lower = np.empty(capacity, dtype=np.int64)
    higher = np.empty(capacity, dtype=np.int64)
    kept = 0
    n_valid = 0
    all_pairs = outside.shape[0] == 0
    for i in range(n_rows):
        a = rows[i]
        for j in range(n_cols):
            b = col0 + j
            if all_pairs:
                if b <= a:
                    continue
            elif b == a or not (outside[b] or b > a):
                continue
            n_valid += 1
            scale = norm2[a] + norm2[b]
            den2 = gram[i, j] * 2.0 + scale
            root = np.sqrt(den2 if den2 > 0.0 else (den2 if den2 != den2 else 0.0))
            value = (projection[a] + projection[b]) / (root * q_norm)
            if den2 > 1e-12 * scale:
                if value > 1.0:
                    value = 1.0
                elif value < -1.0:
                    value = -1.0
                key = sign * value
                if key != key:
                    key = -np.inf
            else:
                value = np.nan
                key = -np.inf
            if key < floor:
                continue
            if kept == capacity:
                capacity *= 2
                scores = np.concatenate((scores, np.empty(capacity - kept, dtype=np.float64)))
                lower = np.concatenate((lower, np.empty(capacity - kept, dtype=np.int64)))
                higher = np.concatenate((higher, np.empty(capacity - kept, dtype=np.int64)))
            scores[kept] = value
            lower[kept] = min(a, b)
            higher[kept] = max(a, b)
            kept += 1
    return scores[:kept], lower[:kept], higher[:kept], n_valid
