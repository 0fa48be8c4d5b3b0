"""Grouped K-fold splits: a group (study, combination) never straddles two folds.

Used twice: for the out-of-fold networks (items = combinations, grouped by study by default) and
for the stacker's cross-validation (items = (combination, gene) rows, grouped by combination by
default; grouping by row reproduces the original's leaky 5-fold CV for comparison only). The groups are
placed into folds by `combomap.data.folds.assign_folds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from combomap.data.folds import FoldError
from combomap.progress import track

NET_GROUPINGS = ("study", "combo", "row")
STACKER_GROUPINGS = ("combo", "study", "row")


def combo_groups(combos: pd.DataFrame, by: str) -> np.ndarray:
    """Group label per combination row: its study, its combination id, or its own row."""
    if by == "study":
        return combos["study"].astype(str).to_numpy()
    if by in ("combo", "row"):  # one combination per data-set row
        return np.arange(len(combos))
    raise FoldError(f"unknown net fold grouping {by!r}; choose one of {NET_GROUPINGS}")


def stacker_groups(rows: np.ndarray, n_genes: int, combos: pd.DataFrame, by: str) -> np.ndarray:
    """Group label per flat (combination, gene) row position."""
    combo_index = np.asarray(rows) // n_genes
    if by == "combo":
        return combo_index
    if by == "study":
        return pd.factorize(combos["study"].astype(str))[0][combo_index]
    if by == "row":
        return np.arange(len(rows))
    raise FoldError(f"unknown stacker CV grouping {by!r}; choose one of {STACKER_GROUPINGS}")


def iter_folds(fold_of_item: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(fold, train positions, test positions) for each fold, in fold order."""
    fold_of_item = np.asarray(fold_of_item)
    for fold in np.unique(fold_of_item):
        yield int(fold), np.flatnonzero(fold_of_item != fold), np.flatnonzero(fold_of_item == fold)


@dataclass
class CVResult:
    oof_prediction: np.ndarray  # one out-of-fold prediction per row
    fold_of_row: np.ndarray
    n_trees: list[int]
    fit_seconds: list[float]


def cross_val_predict(
    fit_predict: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, int]],
    fold_of_row: np.ndarray,
    desc: str = "stacker CV fold",
) -> CVResult:
    """Out-of-fold predictions: fit_predict(train_rows, test_rows) -> (predictions for test_rows, n_trees).
    Each fold is one step of combomap.progress, named `desc`."""
    oof = np.full(len(fold_of_row), np.nan, dtype=np.float32)
    n_trees, seconds = [], []
    folds = iter_folds(fold_of_row)
    for _, train_rows, test_rows in track(folds, desc, total=len(np.unique(fold_of_row)), unit="fold", leave=False):
        start = time.perf_counter()
        prediction, trees = fit_predict(train_rows, test_rows)
        seconds.append(time.perf_counter() - start)
        n_trees.append(int(trees))
        oof[test_rows] = prediction
    return CVResult(oof_prediction=oof, fold_of_row=np.asarray(fold_of_row), n_trees=n_trees, fit_seconds=seconds)


def holdout_split(groups: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept positions, held-out positions): whole groups, shuffled, until `fraction` of the items is held out."""
    if not 0.0 < fraction < 1.0:
        raise FoldError(f"holdout fraction must lie in (0, 1), got {fraction}")
    codes, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)[1:]
    if counts.shape[0] < 2:
        raise FoldError("a holdout needs at least 2 groups")
    order = np.random.default_rng(seed).permutation(counts.shape[0])
    target = fraction * len(codes)
    taken, held = 0, []
    for group in order:
        if taken >= target or len(held) == counts.shape[0] - 1:
            break
        held.append(group)
        taken += counts[group]
    is_held = np.isin(codes, held)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)
