"""The stacking pipeline of `combomap-stack` as an estimator: `StackingPipeline(...).fit(dataset)` -> StackResult
(the ablation table, the final model, the basis choice); the result predicts and saves like the model it holds.
Its job (combomap.jobs.stack) instantiates it from the config, fits it and logs the result as one MLflow run.

fit(dataset):
1. baselines (average, additive, no change) on every combination; on simulated data also the noise-aware oracle
   (the ceiling, `combomap.evaluation.baselines.noise_aware_oracle`); the learned baselines
   (`combomap.models.learned`) out of fold on the stacker CV's folds;
2. the gene-program basis (`combomap.models.latent`: rank, ridge and source chosen by grouped CV on single-drug
   inputs) and each drug's projection on it (features p1, p2), when a feature set needs them;
3. K fold nets (`fit_net`, one child record each) -> an out-of-fold net prediction for every combination;
4. for each feature set the pooled GBM stacker, scored by K-fold CV over (combination, gene) rows grouped as
   stacking.cv says (combomap.stacking.ablation); its out-of-fold predictions are the table's rows;
5. the split regimes and the guard (`combomap.stacking.guard`): with `final=auto` the final model is the best CV
   sign accuracy among the candidates that are not worse than the simple models on the top-20 metrics;
6. ablation.csv / ablation.md and the evaluation plots (combomap.stacking.reports);
7. the final model refit on every row, saved with the fold nets and the basis it needs;
8. optionally (holdout_fraction > 0) steps 1-7 run on the other studies only and the final model predicts the
   held-out studies with both inference modes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset
from combomap.data.folds import assign_folds
from combomap.data.pairs import PairBatch
from combomap.evaluation.baselines import AVERAGE, baseline_predictions, noise_aware_oracle
from combomap.evaluation.report import results_table
from combomap.models.latent import BasisChoice, LatentSettings, TooFewProfiles, basis_for, basis_without
from combomap.models.learned import KINDS as LEARNED_KINDS
from combomap.models.learned import LinearComboModel
from combomap.progress import Progress
from combomap.stacking import guard
from combomap.stacking.ablation import (
    CVPlan,
    cv_predictions,
    fit_stacker,
    regimes_table,
    stack_features,
    stack_model_name,
    with_final_rows,
)
from combomap.stacking.backends import StackerBackend
from combomap.stacking.cv import combo_groups
from combomap.stacking.features import FeatureError, check_feature_names, measured_rows, needs_learned, needs_projections, needs_variances
from combomap.stacking.final_model import StackedModel
from combomap.stacking.oof import FoldNets, out_of_fold_nets
from combomap.stacking.reports import ADDITIVE, score_holdout, write_regimes, write_reports
from combomap.stacking.settings import StackingSettings
from combomap.stacking.splits import INTERACTION, cv_split, holdout_rows, resolved_cv_grouping, resolved_net_grouping

log = logging.getLogger(__name__)

NET_MODEL = "nets_oof"
ORACLE_MODEL = "oracle"
AUTO_FINAL = "auto"
SIMPLE_FINALS = (AVERAGE, ADDITIVE, *LEARNED_KINDS)  # what the guard may save besides a stacked feature set


def feature_sets_of(settings: StackingSettings) -> dict[str, list[str]]:
    """The feature sets the settings ask for (a null entry drops a set), checked against the final choice."""
    sets = {str(name): check_feature_names(list(names)) for name, names in settings.feature_sets.items() if names is not None}
    if not sets:
        raise FeatureError("stacking.feature_sets is empty")
    if AVERAGE in sets:
        raise FeatureError(f"stacking.feature_sets: {AVERAGE!r} names the baseline; call the feature set otherwise")
    if settings.final not in sets and settings.final not in (AUTO_FINAL, *SIMPLE_FINALS):
        raise FeatureError(f"stacking.final={settings.final!r} is not auto, {', '.join(SIMPLE_FINALS)} or one of "
                           f"stacking.feature_sets {list(sets)}")
    clash = [name for name in sets if name in SIMPLE_FINALS]
    if clash:
        raise FeatureError(f"stacking.feature_sets: {clash[0]!r} names a baseline; call the feature set otherwise")
    return sets


@dataclass
class StackResult:
    """A fitted stacking pipeline: the ablation table, every model's CV predictions, the final model and what it
    was chosen from; predicts and saves as its final model does."""

    table: pd.DataFrame
    predictions: dict[str, np.ndarray]
    cv_sign_acc: dict[str, float]  # feature set (and the simple models) -> CV sign accuracy
    final_feature_set: str  # the guard's choice: a feature set or a simple model
    model: StackedModel | None = None
    model_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    holdout_table: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    fold_nets: FoldNets | None = None
    basis_choice: BasisChoice | None = None
    regimes: pd.DataFrame | None = None  # the table per split regime (both / one / none of the drugs seen)
    guard_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def headline(self) -> float:
        """The final model's CV sign accuracy: what sweeps maximize."""
        return float(self.cv_sign_acc[self.final_feature_set])

    @property
    def final_model_name(self) -> str:
        return self.final_feature_set if self.final_feature_set in SIMPLE_FINALS else stack_model_name(self.final_feature_set)

    @property
    def basis(self) -> Any:
        return self.basis_choice.basis if self.basis_choice is not None else None

    def predict(self, pairs: PairBatch) -> np.ndarray:
        return self.model.predict(pairs)

    def save(self, directory: Path | str) -> Path:
        return self.model.save(Path(directory))


class StackingPipeline:
    """The stacking ablation and its final model, from typed settings.

    `new_stacker()` makes a fresh GBM backend (the instantiated stacker group); `fit_net(train, run_name=...,
    basis=None)` trains one fold net (combomap.models.training.child_fit; tests pass stand-ins); `latent_nets`:
    the fold nets are latent nets, which need the gene-program basis."""

    def __init__(self, settings: StackingSettings, new_stacker: Callable[[], StackerBackend], *,
                 fit_net: Callable[..., Any] | None = None, latent: LatentSettings | None = None,
                 latent_nets: bool = False) -> None:
        self.settings = settings
        self.new_stacker = new_stacker
        self.stacker_name = new_stacker().name  # the backend checks its settings here
        self.feature_sets = feature_sets_of(settings)
        self.fit_net = fit_net
        self.latent = latent or LatentSettings()
        self.latent_nets = latent_nets

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def uses_nets(self) -> bool:
        return any("net_pred" in names for names in self.feature_sets.values())

    @property
    def needs_basis(self) -> bool:
        return any(needs_projections(names) for names in self.feature_sets.values()) or (self.uses_nets and self.latent_nets)

    def cv_plan(self, feature_sets: dict[str, list[str]]) -> CVPlan:
        return CVPlan(feature_sets, self.new_stacker, self.settings.symmetric, self.seed, self.settings.cv.val_fraction,
                      self.latent.refit_per_fold)

    def fit(self, dataset: ComboDataset, out_dir: Path | str, library: Any = None, truth: Any = None) -> StackResult:
        """Everything of the module docstring on `dataset`, files in `out_dir`. `library` (a DrugLibrary) may serve
        as the gene-program basis' source; `truth` (the simulator's) adds the oracle row."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        settings, seed, timings = self.settings, self.seed, {}
        holdout = None
        split = holdout_rows(settings, dataset, seed)
        if split is not None:
            kept, held = split
            dataset, holdout = dataset.subset(kept), dataset.subset(held)
            truth = _truth_subset(truth, kept) if truth is not None else None
            log.info("holdout: %d combinations held out, %d used for the stack", holdout.n_combos, dataset.n_combos)
        if any(needs_variances(names) for names in self.feature_sets.values()) and not dataset.has_variances:
            log.warning("%s has no variances: v1/v2 are all missing (NaN), so +vars/+both equal their variance-free sets",
                        dataset.source)
        predictions: dict[str, np.ndarray] = dict(baseline_predictions(dataset))
        if truth is not None:
            predictions[ORACLE_MODEL], oracle_c = noise_aware_oracle(dataset, truth)
            log.info("oracle (the ceiling): truth.combo + %.3f x the singles' measurement noise", oracle_c)
        feature_sets, final_set = dict(self.feature_sets), settings.final
        basis_choice, projections = None, None
        if self.needs_basis:
            basis_choice, projections, reason = self._gene_programs(dataset, library, timings)
            if basis_choice is None:
                if self.uses_nets and self.latent_nets:
                    raise TooFewProfiles(f"model=latent_mlp needs a gene-program basis: {reason}")
                dropped = [name for name, names in feature_sets.items() if needs_projections(names)]
                log.warning("no gene-program basis (%s): feature sets %s are left out", reason, dropped)
                feature_sets = {k: v for k, v in feature_sets.items() if k not in dropped}
                final_set = AUTO_FINAL if final_set in dropped else final_set
        basis = basis_choice.basis if basis_choice is not None else None
        fold_nets = None
        if self.uses_nets:
            start = time.perf_counter()
            fold_nets = self._fold_nets(dataset, basis if self.latent_nets else None)
            predictions[NET_MODEL] = fold_nets.oof_prediction
            timings["nets"] = time.perf_counter() - start
        net_pred = fold_nets.oof_prediction if fold_nets is not None else None
        plan = self.cv_plan(feature_sets)
        main_split = cv_split(dataset, measured_rows(dataset.combo_effect), resolved_cv_grouping(settings, dataset),
                              settings.cv.n_folds, seed)
        log.info("stacker CV: %d folds grouped by %s (stacking.cv.by=%s)", settings.cv.n_folds, main_split.by, settings.cv.by)
        cv_preds, learned = cv_predictions(plan, dataset, main_split, net_pred, timings, projections, basis)
        predictions.update(cv_preds)
        regimes = regimes_table(settings.regimes, plan, dataset, predictions, main_split, settings.cv.n_folds, timings,
                                projections, basis)
        candidates = [AVERAGE, ADDITIVE, *LEARNED_KINDS, *[stack_model_name(name) for name in feature_sets]]
        scored = results_table(dataset, predictions, reference=AVERAGE, ceiling=ORACLE_MODEL,
                               progress="scoring the ablation table")
        final_name = final_set if final_set in (AUTO_FINAL, *SIMPLE_FINALS) else stack_model_name(final_set)
        choice = guard.choose_final(scored, candidates, final_name, regimes, learned=LEARNED_KINDS)
        final_model, reasons = choice.model, choice.reasons
        chosen = final_model.removeprefix("stack_") if final_model.startswith("stack_") else final_model
        if regimes is not None:
            regimes = with_final_rows(regimes, final_model, choice.final_unseen_additive)
        sign_acc = scored.set_index("model")["sign_acc"]
        cv_sign_acc = {name: float(sign_acc[name]) for name in (AVERAGE, ADDITIVE, *LEARNED_KINDS)}
        cv_sign_acc.update({name: float(sign_acc[stack_model_name(name)]) for name in feature_sets})
        log.info("final model: %s (CV sign accuracy %.4f; average %.4f); %s", final_model, cv_sign_acc[chosen],
                 cv_sign_acc[AVERAGE], guard.floors_note(scored, LEARNED_KINDS))
        table, files = write_reports(dataset, predictions, scored, out_dir, timings, final_model, reasons,
                                     plots=settings.plots, save_predictions=settings.save_predictions)
        if regimes is not None:
            files += write_regimes(regimes, out_dir)
        start = time.perf_counter()
        with Progress(1, f"final model fit ({final_model})", unit="fit") as progress:
            model = self._final_model(dataset, feature_sets, fold_nets, chosen, cv_sign_acc,
                                      table.set_index("model").loc[final_model], basis, projections,
                                      predictions[INTERACTION], reasons, choice.final_unseen_additive)
            progress.update()
        model_dir = model.save(out_dir / "model") if settings.save_model else None
        timings["final_model"] = time.perf_counter() - start
        holdout_table = None
        if holdout is not None:
            start = time.perf_counter()
            holdout_table, holdout_files = score_holdout(model, holdout, fold_nets, final_model, out_dir, dataset, seed)
            files += holdout_files
            timings["holdout"] = time.perf_counter() - start
        if basis_choice is not None:
            files.append(out_dir / "basis_selection.csv")
            basis_choice.table.to_csv(files[-1], index=False)
        return StackResult(table=table, predictions=predictions, cv_sign_acc=cv_sign_acc, final_feature_set=chosen,
                           model=model, model_dir=model_dir, files=files, holdout_table=holdout_table, timings=timings,
                           fold_nets=fold_nets, basis_choice=basis_choice, regimes=regimes, guard_reasons=reasons)

    def _gene_programs(self, dataset: ComboDataset, library: Any, timings: dict[str, float]):
        """(basis choice, both drugs' projections, "") or (None, None, reason) when the data cannot support a basis
        (too few single-drug profiles; bad settings are errors)."""
        start = time.perf_counter()
        try:
            choice = basis_for(self.latent, dataset, library, seed=self.seed)
        except TooFewProfiles as error:
            return None, None, str(error)
        projections = (choice.basis.project(dataset.drug1_effect), choice.basis.project(dataset.drug2_effect))
        timings["basis"] = time.perf_counter() - start
        return choice, projections, ""

    def _fold_nets(self, dataset: ComboDataset, basis: Any) -> FoldNets:
        folds = self.settings.net_folds
        by = resolved_net_grouping(self.settings, dataset)
        log.info("fold nets: %d folds grouped by %s (stacking.net_folds.by=%s)", folds.n_folds, by, folds.by)
        if self.fit_net is None:
            raise FeatureError("a feature set uses net_pred but the pipeline was given no fit_net")
        fit = self.fit_net if basis is None else _latent_fit(self.fit_net, dataset, basis)
        fold_of_combo = assign_folds(combo_groups(dataset.combos, by), folds.n_folds, self.seed)
        return out_of_fold_nets(dataset, fold_of_combo, fit=fit)

    def _final_model(self, dataset: ComboDataset, feature_sets: dict[str, list[str]], fold_nets: FoldNets | None,
                     chosen: str, cv_sign_acc: Mapping[str, float], cv_row: pd.Series, basis: Any,
                     projections: tuple[np.ndarray, np.ndarray] | None, learned_lin_pred: np.ndarray | None,
                     reasons: Mapping[str, str], unseen_additive: bool) -> StackedModel:
        """The chosen model refit on every measured row (the average needs no fit), with what it needs at inference."""
        settings, seed = self.settings, self.seed
        rows = measured_rows(dataset.combo_effect)
        info = {
            "data": dataset.source, "n_combos": dataset.n_combos, "n_rows": int(rows.shape[0]), "feature_set": chosen,
            "selected_by": "stacking.final=auto: best CV sign accuracy among the candidates that pass the guard's top-k "
            "floors (combomap.stacking.guard)" if settings.final == AUTO_FINAL else f"stacking.final={settings.final}",
            "guard": dict(reasons or {}),
            "cv_sign_acc": {name: float(value) for name, value in cv_sign_acc.items()},
            "net_folds": {"n_folds": settings.net_folds.n_folds, "by": resolved_net_grouping(settings, dataset)},
            "cv": {"n_folds": settings.cv.n_folds, "by": resolved_cv_grouping(settings, dataset),
                   "sign_acc": float(cv_row["sign_acc"]), "spearman_median": float(cv_row["spearman_median"])},
            "seed": seed,
        }
        unseen = {"unseen_pairs": "additive" if unseen_additive else "model",
                  "training_drugs": sorted(set(dataset.combos["drug1"].astype(str)) | set(dataset.combos["drug2"].astype(str)))}
        if chosen == AVERAGE:
            return StackedModel.average(list(dataset.genes), info=info)
        if chosen == ADDITIVE:
            return StackedModel.additive(list(dataset.genes), info=info)
        if chosen in LEARNED_KINDS:
            return replace(StackedModel.linear(LinearComboModel.fit(dataset, chosen, seed=seed), info=info), **unseen)
        names = feature_sets[chosen]
        net_pred = fold_nets.oof_prediction if fold_nets is not None else None
        features = stack_features(dataset, names, net_pred, rows, settings.symmetric, projections, learned_lin_pred)
        stacker = fit_stacker(self.new_stacker, features, dataset.combo_effect.reshape(-1)[rows], names,
                              rows // dataset.n_genes, settings.cv.val_fraction, seed)
        return StackedModel(
            stacker=stacker, features=names, genes=list(dataset.genes),
            nets=list(fold_nets.predictors) if (fold_nets is not None and "net_pred" in names) else [],
            symmetric=settings.symmetric, inference=settings.inference, info=info,
            basis=basis if needs_projections(names) else None,
            learned=LinearComboModel.fit(dataset, INTERACTION, seed=seed) if needs_learned(names) else None,
            **unseen,
        )


def _latent_fit(fit_net: Callable[..., Any], dataset: ComboDataset, basis: Any) -> Callable[..., Any]:
    """fit_net for latent fold nets: each net's basis is the run's, refit without the studies it predicts (a
    compendium basis; an external one is shared), so its out-of-fold predictions stay out of fold."""

    def fit(train: ComboDataset, val: Any = None, *, run_name: str) -> Any:
        held_out = sorted(set(dataset.combos["study"].astype(str)) - set(train.combos["study"].astype(str)))
        return fit_net(train, val, run_name=run_name, basis=basis_without(basis, dataset, held_out))

    return fit


def _truth_subset(truth: Any, rows: np.ndarray) -> Any:
    return replace(truth, drug1=truth.drug1[rows], drug2=truth.drug2[rows], combo=truth.combo[rows],
                   combos=truth.combos.iloc[rows].reset_index(drop=True))
