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

from combomap.data.folds import FoldError, assign_folds
from combomap.progress import track

AUTO = "auto"
NET_GROUPINGS = (AUTO, "study", "combo", "row")
STACKER_GROUPINGS = (AUTO, "combo", "study", "row", "drug")
REGIMES = ("both_seen", "one_seen", "none_seen")  # how many of a test combination's drugs its training combos held


def resolve_grouping(by: str, combos: pd.DataFrame, n_folds: int) -> str:
    """`auto` -> "study" when there are at least 2 studies per fold (each fold then holds out whole studies and
    still trains on several), else "combo" (one real screen is one study); any other value as given."""
    if by != AUTO:
        return by
    n_studies = combos["study"].astype(str).nunique()
    return "study" if n_studies >= 2 * n_folds else "combo"


@dataclass
class DrugFolds:
    """K folds over drugs: fold k holds out the drugs of group k and every combination that contains one.

    Each combination is predicted once, in the fold of its lower drug group (`fold_of_combo`); fold k trains on
    the combinations that contain none of its held-out drugs (`train[k]`), so a held-out drug is unseen there.
    A combination whose two drugs are both held out by its fold is in the "none seen" regime, one held out:
    "one seen" (see `seen_regime`)."""

    fold_of_combo: np.ndarray
    train: np.ndarray  # (n_folds x n_combos) bool

    @property
    def n_folds(self) -> int:
        return self.train.shape[0]


def drug_folds(combos: pd.DataFrame, n_folds: int, seed: int = 0) -> DrugFolds:
    """The by-drug split of `DrugFolds` (drugs shuffled by seed, balanced in drug count)."""
    first = combos["drug1"].astype(str).to_numpy()
    second = combos["drug2"].astype(str).to_numpy()
    drugs = np.unique(np.concatenate([first, second]))
    if drugs.shape[0] < n_folds:
        raise FoldError(f"{drugs.shape[0]} drug(s) cannot fill {n_folds} folds")
    fold_of_drug = dict(zip(drugs, assign_folds(drugs, n_folds, seed)))
    fold1 = np.array([fold_of_drug[d] for d in first], dtype=np.int64)
    fold2 = np.array([fold_of_drug[d] for d in second], dtype=np.int64)
    train = np.stack([(fold1 != k) & (fold2 != k) for k in range(n_folds)])
    fold_of_combo = np.minimum(fold1, fold2)
    empty = [k for k in range(n_folds) if not train[k].any() and (fold_of_combo == k).any()]
    if empty:
        raise FoldError(f"by drug, fold {empty[0]} would train on no combination (every combination contains one of "
                        "its held-out drugs); use fewer folds or by=combo")
    return DrugFolds(fold_of_combo=fold_of_combo, train=train)


def seen_regime(combos: pd.DataFrame, fold_of_combo: np.ndarray, train: np.ndarray | None = None) -> np.ndarray:
    """Per combination, in the fold that predicts it: "both_seen", "one_seen" or "none_seen", by how many of its
    two drugs occur in that fold's training combinations. `train` (n_folds x n_combos) defaults to every
    combination of the other folds."""
    first = combos["drug1"].astype(str).to_numpy()
    second = combos["drug2"].astype(str).to_numpy()
    regime = np.empty(len(combos), dtype=object)
    for fold in np.unique(fold_of_combo):
        trained = train[fold] if train is not None else fold_of_combo != fold
        seen = set(first[trained]) | set(second[trained])
        test = np.flatnonzero(fold_of_combo == fold)
        count = np.array([(first[i] in seen) + (second[i] in seen) for i in test], dtype=np.int64)
        regime[test] = np.array(REGIMES[::-1], dtype=object)[count]
    return regime


def combo_groups(combos: pd.DataFrame, by: str) -> np.ndarray:
    """Group label per combination row: its study, its combination id, or its own row."""
    if by == "study":
        return combos["study"].astype(str).to_numpy()
    if by in ("combo", "row", "drug"):  # drug: combination-level folds where a by-drug split has no meaning  # one combination per data-set row
        return np.arange(len(combos))
    raise FoldError(f"unknown net fold grouping {by!r}; choose one of {NET_GROUPINGS}")


def stacker_groups(rows: np.ndarray, n_genes: int, combos: pd.DataFrame, by: str) -> np.ndarray:
    """Group label per flat (combination, gene) row position."""
    combo_index = np.asarray(rows) // n_genes
    if by in ("combo", "drug"):  # drug folds are built by drug_folds; here a combination is the group
        return combo_index
    if by == "study":
        return pd.factorize(combos["study"].astype(str))[0][combo_index]
    if by == "row":
        return np.arange(len(rows))
    raise FoldError(f"unknown stacker CV grouping {by!r}; choose one of {STACKER_GROUPINGS}")


def iter_folds(fold_of_item: np.ndarray, train: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(fold, train positions, test positions) for each fold, in fold order. `train` (n_folds x n_items bool)
    restricts each fold's training items (by-drug folds); default: every item of the other folds."""
    fold_of_item = np.asarray(fold_of_item)
    for fold in np.unique(fold_of_item):
        trained = train[fold] if train is not None else fold_of_item != fold
        yield int(fold), np.flatnonzero(trained), np.flatnonzero(fold_of_item == fold)


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
    train: np.ndarray | None = None,
) -> CVResult:
    """Out-of-fold predictions: fit_predict(train_rows, test_rows) -> (predictions for test_rows, n_trees).
    Each fold is one step of combomap.progress, named `desc`."""
    oof = np.full(len(fold_of_row), np.nan, dtype=np.float32)
    n_trees, seconds = [], []
    folds = iter_folds(fold_of_row, train)
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
