"""The stacker's cross-validation: out-of-fold predictions of every feature set (and of the learned baselines)
on a split's folds, and the table per split regime (both / one / none of a combination's drugs seen)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset
from combomap.data.folds import FoldError
from combomap.data.pairs import PairBatch
from combomap.evaluation.baselines import baseline_predictions
from combomap.evaluation.metrics import sign_accuracy
from combomap.evaluation.report import results_table
from combomap.models.latent import basis_without
from combomap.stacking.backends import StackerBackend
from combomap.stacking.cv import REGIMES, cross_val_predict, holdout_split
from combomap.stacking.features import build_features, measured_rows, needs_learned, needs_projections, residual_offset
from combomap.stacking.splits import CVSplit, LearnedOOF, cv_split, learned_oof, nested_lin_pred

log = logging.getLogger(__name__)

FINAL_AS_SAVED = "final_as_saved"


def stack_model_name(feature_set: str) -> str:
    return f"stack_{feature_set}"


@dataclass
class CVPlan:
    """What the stacker CV needs from the run's settings: feature sets, a fresh backend per fit, symmetry, seed,
    the early-stopping validation fraction, and whether a compendium basis is refit per fold."""

    feature_sets: dict[str, list[str]]
    new_stacker: Callable[[], StackerBackend]
    symmetric: bool
    seed: int
    val_fraction: float = 0.0
    refit_basis_per_fold: bool = True


def stacker_cv(
    new_stacker: Callable[[], StackerBackend],
    features: np.ndarray | Callable[[int], np.ndarray],
    label: np.ndarray,
    fold_of_row: np.ndarray,
    feature_names: list[str],
    early_stopping_groups: np.ndarray | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
    desc: str = "stacker CV fold",
    train: np.ndarray | None = None,
):
    """Out-of-fold stacker predictions (one model per fold). With val_fraction > 0 and early stopping on,
    each fold holds out whole groups of its training rows as the validation set. `features` may be a function
    of the fold (features that depend on what the fold may see, e.g. a basis refit without its studies).
    `new_stacker()` makes a fresh backend (the instantiated `stacker` config). `train` (n_folds x n_rows bool)
    restricts each fold's training rows (by-drug folds)."""

    def fit_predict(train_rows: np.ndarray, test_rows: np.ndarray) -> tuple[np.ndarray, int]:
        table = features(int(fold_of_row[test_rows[0]])) if callable(features) else features
        groups = early_stopping_groups[train_rows] if early_stopping_groups is not None else None
        backend = fit_stacker(new_stacker, table[train_rows], label[train_rows], feature_names, groups, val_fraction, seed)
        prediction = backend.predict(table[test_rows])
        offset = residual_offset(feature_names, table[test_rows])
        return (prediction if offset is None else prediction + offset), backend.n_trees

    return cross_val_predict(fit_predict, fold_of_row, desc, train)


def fit_stacker(new_stacker: Callable[[], StackerBackend], features: np.ndarray, label: np.ndarray,
                feature_names: list[str], groups: np.ndarray | None = None, val_fraction: float = 0.0,
                seed: int = 0) -> StackerBackend:
    """One stacker fit; with val_fraction > 0 and early stopping on, whole groups (combinations) of the rows
    are held out as the early-stopping validation set (the same rule in CV and for the final model)."""
    backend = new_stacker()
    offset = residual_offset(feature_names, features)
    if offset is not None:  # a stacker on lin_pred learns the residual (combomap.stacking.features.residual_offset)
        label = (label - offset).astype(np.float32)
    if val_fraction > 0 and backend.settings.early_stopping_rounds and groups is not None and len(np.unique(groups)) > 1:
        fit_part, val_part = holdout_split(groups, val_fraction, seed)
        return backend.fit(features[fit_part], label[fit_part], features[val_part], label[val_part], feature_names)
    return backend.fit(features, label, feature_names=feature_names)


def entries(values: np.ndarray, rows: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    full = np.full(shape[0] * shape[1], np.nan, dtype=np.float32)
    full[rows] = values
    return full.reshape(shape)


def stack_features(dataset: ComboDataset, names: list[str], net_pred: np.ndarray | None, rows: np.ndarray,
                    symmetric: bool, projections: tuple[np.ndarray, np.ndarray] | None = None,
                    lin_pred: np.ndarray | None = None) -> np.ndarray:
    return build_features(names, PairBatch.from_dataset(dataset), net_pred=net_pred if "net_pred" in names else None,
                          rows=rows, symmetric=symmetric, projected=projections,
                          learned_pred=lin_pred if needs_learned(names) else None)


def cv_predictions(plan: CVPlan, dataset: ComboDataset, split: CVSplit, net_pred: np.ndarray | None,
                   timings: dict[str, float], projections: tuple[np.ndarray, np.ndarray] | None = None,
                   basis: Any = None, feature_sets: dict[str, list[str]] | None = None,
                   label: str = "") -> tuple[dict[str, np.ndarray], LearnedOOF]:
    """CV out-of-fold predictions (n_combos x n_genes) of the learned baselines and of the stacker for every
    feature set, on the folds of `split`."""
    shape = dataset.combo_effect.shape
    rows = measured_rows(dataset.combo_effect)
    label_values = dataset.combo_effect.reshape(-1)[rows]
    if split.by == "row":
        log.warning("stacker CV by row: entries of one combination land in several folds (leaky, the original's CV)")
    feature_sets = plan.feature_sets if feature_sets is None else feature_sets
    start = time.perf_counter()
    learned = learned_oof(dataset, split, plan.seed)
    predictions: dict[str, np.ndarray] = dict(learned.predictions)
    timings[f"learned{label}"] = time.perf_counter() - start
    # an external (library) basis never saw the compendium's arms; by row every fold holds every study (that CV
    # is leaky anyway, the original's): only then is one basis shared by every fold
    inductive = basis is not None and basis.source == "compendium" and split.by != "row" and plan.refit_basis_per_fold
    fold_projections = fold_projections_of(dataset, basis, rows, split.fold_of_row) if inductive else None
    lin_cache: dict[int, np.ndarray] = {}

    def lin_pred_of(fold: int) -> np.ndarray:
        if fold not in lin_cache:
            lin_cache[fold] = nested_lin_pred(dataset, split, learned, fold, plan.seed)
        return lin_cache[fold]

    for name, names in feature_sets.items():
        start = time.perf_counter()
        per_fold = (fold_projections is not None and needs_projections(names)) or needs_learned(names)
        if per_fold:
            def features(fold: int, names: list[str] = names) -> np.ndarray:
                fold_projected = fold_projections(fold) if fold_projections is not None and needs_projections(names) else projections
                return stack_features(dataset, names, net_pred, rows, plan.symmetric, fold_projected,
                                       lin_pred_of(fold) if needs_learned(names) else None)
        else:
            features = stack_features(dataset, names, net_pred, rows, plan.symmetric, projections)
        cv = stacker_cv(plan.new_stacker, features, label_values, split.fold_of_row, names, rows // shape[1],
                        plan.val_fraction, plan.seed, desc=f"stacker CV {name} fold",
                        train=split.row_train)
        predictions[stack_model_name(name)] = entries(cv.oof_prediction, rows, shape)
        timings[f"cv_{name}{label}"] = time.perf_counter() - start
        log.info("stacker %s %s%s: CV sign accuracy %.4f (%.1f s; fits %s s)", name, names, label,
                 sign_accuracy(dataset.combo_effect, predictions[stack_model_name(name)]), timings[f"cv_{name}{label}"],
                 [round(s, 1) for s in cv.fit_seconds])
    return predictions, learned


def regimes_table(setting: str, plan: CVPlan, dataset: ComboDataset, predictions: dict[str, np.ndarray],
                  main_split: CVSplit, n_folds: int, timings: dict[str, float],
                  projections: tuple[np.ndarray, np.ndarray] | None, basis: Any) -> pd.DataFrame | None:
    """Every model per split regime: "both_seen" combinations of the main CV (both drugs in training
    combinations), and "one_seen" / "none_seen" from a second CV whose folds hold out drugs (`stacking.regimes`:
    true, or auto = when more than half the main CV's combinations have both drugs seen; the fold nets are not
    split by drug, so sets with net_pred have no estimate there) or else from the main CV's own combinations.
    None with stacking.regimes=false."""
    if setting == "false":
        return None
    drugs = pd.concat([dataset.combos["drug1"], dataset.combos["drug2"]]).astype(str)
    recurring = bool((drugs.value_counts() >= 2).any())
    main_regime = main_split.regime(dataset.combos)
    sources = {regime: (main_regime, predictions) for regime in REGIMES}  # regime -> (label per combination, models)
    both_seen = float(np.mean(main_regime == "both_seen"))
    # auto: a by-drug CV only where the main CV leaves few combinations with an unseen drug (a screen whose drugs
    # recur); elsewhere (GEO-like compendia) the main CV's own held-out combinations already fill those regimes
    wanted = setting == "true" or (setting == "auto" and both_seen > 0.5)
    if main_split.by != "drug" and recurring and wanted:
        rows = measured_rows(dataset.combo_effect)
        try:
            drug_split = cv_split(dataset, rows, "drug", n_folds, plan.seed)
        except FoldError as error:
            log.warning("split regimes: no by-drug CV (%s); one_seen/none_seen come from the main CV", error)
        else:
            sets = {name: names for name, names in plan.feature_sets.items() if "net_pred" not in names}
            by_drug = dict(baseline_predictions(dataset))
            by_drug.update(cv_predictions(plan, dataset, drug_split, None, timings, projections, basis, sets,
                                          label="_by_drug")[0])
            sources["one_seen"] = sources["none_seen"] = (drug_split.regime(dataset.combos), by_drug)
    tables = []
    for regime, (labels, source) in sources.items():
        combos = np.flatnonzero(labels == regime)
        if not combos.size:
            continue
        models = {m: p[combos] for m, p in source.items() if m != "no_change"}
        table = results_table(dataset.combo_effect[combos], models, reference=None, top_k=(20,),
                              progress=f"scoring the {regime} regime")
        table.insert(1, "regime", regime)
        table.insert(2, "n_combos", int(combos.size))
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else None


def with_final_rows(regimes: pd.DataFrame, final_model: str, unseen_additive: bool) -> pd.DataFrame:
    """The regimes table plus the saved model's rows per regime ("final_as_saved"): the chosen model's, or in the
    none_seen regime the additive model's where the guard made unseen pairs fall back to it."""
    rows = []
    for regime, part in regimes.groupby("regime", sort=False):
        source = "additive" if (unseen_additive and regime == "none_seen") else final_model
        match = part[part["model"] == source]
        if len(match):
            rows.append(match.iloc[[0]].assign(model=FINAL_AS_SAVED))
    return pd.concat([regimes, *rows], ignore_index=True) if rows else regimes


def fold_projections_of(dataset: ComboDataset, basis: Any, rows: np.ndarray, fold_of_row: np.ndarray):
    """fold -> (p1, p2) with a compendium basis refit without the fold's studies
    (`combomap.models.latent.basis_without`). Computed on first use and kept."""
    combo_of_row = rows // dataset.n_genes
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def projections(fold: int) -> tuple[np.ndarray, np.ndarray]:
        if fold not in cache:
            held_out = dataset.combos["study"].astype(str).to_numpy()[np.unique(combo_of_row[fold_of_row == fold])]
            fold_basis = basis_without(basis, dataset, held_out)
            cache[fold] = (fold_basis.project(dataset.drug1_effect), fold_basis.project(dataset.drug2_effect))
        return cache[fold]

    return projections
