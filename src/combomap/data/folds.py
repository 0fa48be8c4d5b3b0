"""Grouped fold assignment: items of one group (a study, a combination) always share a fold.

Below the models and the stacking layers, which both split by it: the latent models' held-out arms
(`combomap.models.latent`) and the stacking cross-validation (`combomap.stacking.cv`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from combomap.errors import UserError


class FoldError(UserError):
    """Impossible fold settings (too few groups, unknown grouping)."""


def assign_folds(groups: np.ndarray | pd.Series | list, n_splits: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..n_splits-1) per item; all items of a group share a fold.

    Groups are shuffled (seed), then placed largest first into the fold with the fewest items so
    far, so folds are balanced in items, not only in groups.
    """
    if n_splits < 2:
        raise FoldError(f"K-fold needs at least 2 folds, got {n_splits}")
    codes, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)[1:]
    n_groups = counts.shape[0]
    if n_groups < n_splits:
        raise FoldError(f"{n_groups} group(s) cannot fill {n_splits} folds")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    if (counts == 1).all():
        group_fold = np.empty(n_groups, dtype=np.int64)
        group_fold[order] = np.arange(n_groups) % n_splits
        return group_fold[codes]
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_sizes = np.zeros(n_splits, dtype=np.int64)
    group_fold = np.empty(n_groups, dtype=np.int64)
    for group in order:
        fold = int(np.argmin(fold_sizes))
        group_fold[group] = fold
        fold_sizes[fold] += counts[group]
    return group_fold[codes]
