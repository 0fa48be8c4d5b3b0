"""The stacking run's splits: the stacker CV's folds (by combination, study, row or drug) at row and combination
level, the learned baselines out of fold on them (and lin_pred nested inside each fold), the holdout, and the
check that every split the settings ask for is possible on the data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset
from combomap.data.folds import FoldError, assign_folds
from combomap.data.pairs import PairBatch
from combomap.models.learned import LinearComboModel
from combomap.models.learned import out_of_fold as learned_out_of_fold
from combomap.stacking.cv import combo_groups, drug_folds, holdout_split, resolve_grouping, seen_regime, stacker_groups
from combomap.stacking.features import measured_rows
from combomap.stacking.settings import StackingSettings

INTERACTION = "interaction"  # the learned baseline behind the lin_pred feature


@dataclass
class CVSplit:
    """The stacker CV's folds, at the two levels the stack needs: per measured (combination, gene) row (the
    stacker) and per combination (the learned baselines, the regimes). `train` None: a fold trains on every
    other fold; by drug it trains only on the combinations without its held-out drugs."""

    by: str
    fold_of_row: np.ndarray
    fold_of_combo: np.ndarray
    train: np.ndarray | None = None  # (n_folds x n_combos) bool
    combo_of_row: np.ndarray | None = None

    @property
    def folds(self) -> np.ndarray:
        return np.unique(self.fold_of_combo)

    def train_combos(self, fold: int) -> np.ndarray:
        return np.flatnonzero(self.train[fold] if self.train is not None else self.fold_of_combo != fold)

    def test_combos(self, fold: int) -> np.ndarray:
        return np.flatnonzero(self.fold_of_combo == fold)

    @property
    def row_train(self) -> np.ndarray | None:
        return None if self.train is None else self.train[:, self.combo_of_row]

    def regime(self, combos: pd.DataFrame) -> np.ndarray:
        return seen_regime(combos, self.fold_of_combo, self.train)


def cv_split(dataset: ComboDataset, rows: np.ndarray, by: str, n_folds: int, seed: int) -> CVSplit:
    """The folds of the stacker CV grouped `by` (combo, study, row or drug; auto resolved before)."""
    combo_of_row = np.asarray(rows) // dataset.n_genes
    if by == "drug":
        folds = drug_folds(dataset.combos, n_folds, seed)
        return CVSplit(by, folds.fold_of_combo[combo_of_row], folds.fold_of_combo, folds.train, combo_of_row)
    fold_of_row = assign_folds(stacker_groups(rows, dataset.n_genes, dataset.combos, by), n_folds, seed)
    if by == "row":  # the learned baselines fit whole combinations: their folds are by combination
        fold_of_combo = assign_folds(np.arange(dataset.n_combos), n_folds, seed)
    else:
        fold_of_combo = np.empty(dataset.n_combos, dtype=np.int64)
        fold_of_combo[combo_of_row] = fold_of_row
    return CVSplit(by, fold_of_row, fold_of_combo, None, combo_of_row)


@dataclass
class LearnedOOF:
    """Out-of-fold predictions of the learned baselines, and each fold's interaction model (for lin_pred)."""

    predictions: dict[str, np.ndarray]
    fold_models: dict[int, LinearComboModel]


def learned_oof(dataset: ComboDataset, split: CVSplit, seed: int) -> LearnedOOF:
    """Each learned baseline fit on a fold's training combinations, predicting the fold's combinations."""
    return LearnedOOF(*learned_out_of_fold(dataset, split.fold_of_combo, split.train, seed))


def nested_lin_pred(dataset: ComboDataset, split: CVSplit, learned: LearnedOOF, fold: int, seed: int,
                    inner_folds: int = 4) -> np.ndarray:
    """lin_pred as stacker CV fold `fold` may see it: out of fold (inner folds) on its training combinations,
    the fold's own interaction model on its test combinations; NaN elsewhere (combinations it neither trains
    nor tests on). The stacker then learns from lin_pred distributed as at inference."""
    out = np.full(dataset.combo_effect.shape, np.nan, dtype=np.float32)
    test = split.test_combos(fold)
    out[test] = learned.predictions[INTERACTION][test]
    train = split.train_combos(fold)
    outer = learned.fold_models[fold]
    groups = combo_groups(dataset.combos.iloc[train], "study" if split.by == "study" else "combo")
    n_inner = min(inner_folds, len(np.unique(groups)))
    if n_inner < 2:
        out[train] = outer.predict(PairBatch.from_dataset(dataset, train))
        return out
    inner = assign_folds(groups, n_inner, seed)
    ridges = [outer.ridge] if outer.ridge is not None else None
    for k in range(n_inner):
        fit_rows, predict_rows = train[inner != k], train[inner == k]
        kwargs = {"ridges": ridges} if ridges else {}
        model = LinearComboModel.fit(dataset.subset(fit_rows), INTERACTION, seed=seed, **kwargs)
        out[predict_rows] = model.predict(PairBatch.from_dataset(dataset, predict_rows))
    return out


def resolved_cv_grouping(settings: StackingSettings, dataset: ComboDataset) -> str:
    return resolve_grouping(settings.cv.by, dataset.combos, settings.cv.n_folds)


def resolved_net_grouping(settings: StackingSettings, dataset: ComboDataset) -> str:
    return resolve_grouping(settings.net_folds.by, dataset.combos, settings.net_folds.n_folds)


def holdout_rows(settings: StackingSettings, dataset: ComboDataset, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(kept, held-out) combination rows of stacking.holdout_fraction, whole groups of net_folds.by; None for 0."""
    if settings.holdout_fraction <= 0:
        return None
    return holdout_split(combo_groups(dataset.combos, resolved_net_grouping(settings, dataset)), settings.holdout_fraction, seed)


def check_fold_counts(settings: StackingSettings, uses_nets: bool, dataset: ComboDataset) -> None:
    """Every fold split the run will make is possible on this data: checked right after it loads, before any
    net trains (a fold count too large for the data fails here, not after the fold nets have trained)."""
    seed = settings.seed
    split = holdout_rows(settings, dataset, seed)
    kept = dataset.subset(split[0]) if split is not None else dataset
    cv, net_folds = settings.cv, settings.net_folds
    cv_by = resolved_cv_grouping(settings, kept)
    net_by = resolved_net_grouping(settings, kept)
    checks = [("stacking.cv", cv, cv_by,
               lambda: drug_folds(kept.combos, cv.n_folds, seed) if cv_by == "drug" else
               assign_folds(stacker_groups(measured_rows(kept.combo_effect), kept.n_genes, kept.combos, cv_by),
                            cv.n_folds, seed))]
    if uses_nets:
        checks.insert(0, ("stacking.net_folds", net_folds, net_by,
                          lambda: assign_folds(combo_groups(kept.combos, net_by), net_folds.n_folds, seed)))
    for key, folds, by, split in checks:
        try:
            split()
        except FoldError as error:
            hint = (f"; set {key}.by=combo (a single screen is one study) or fewer {key}.n_folds" if by == "study"
                    else f"; set fewer {key}.n_folds")
            raise FoldError(f"{key}.n_folds={folds.n_folds} (by {by}) on {dataset.source}: {error}{hint}") from None
