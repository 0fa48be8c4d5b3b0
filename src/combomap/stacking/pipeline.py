"""The stacking steps of `combomap-stack` (its job, combomap.jobs.stack.run, is one MLflow run around them):
baselines, out-of-fold nets, the stacker ablation, the final model.

`stack_pipeline(cfg, dataset, out_dir)`:
1. baselines (average, additive, no change) on every combination; on simulated data also the
   noise-aware oracle (the ceiling, `combomap.evaluation.baselines.noise_aware_oracle`); the learned
   baselines (`combomap.models.learned`) out of fold on the stacker CV's folds;
2. the gene-program basis (`combomap.models.latent`: rank, ridge and source chosen by grouped CV on
   single-drug inputs) and each drug's projection on it (features p1, p2), when a feature set needs them;
3. K fold nets (child runs) -> an out-of-fold net prediction for every combination;
4. for each feature set (avg, +vars, +nets, +both, latent, latent_both by default) the pooled GBM
   stacker, scored by K-fold CV over (combination, gene) rows grouped by combination; its out-of-fold
   predictions are the table's rows;
5. the split regimes (both / one / none of a combination's drugs seen in training; a second CV by drug) and
   the guard (`combomap.stacking.guard`): with `stacking.final=auto` the final model is the best CV sign
   accuracy among the candidates that are not worse than the simple models on the top-20 metrics;
6. ablation.csv / ablation.md and the evaluation plots (one line per model);
7. the final model refit on every row, saved with the fold nets and the basis it needs;
8. optionally (`stacking.holdout_fraction` > 0) steps 1-7 run on the other studies only and the
   final model predicts the held-out studies with both inference modes (measures the mismatch of
   feeding the mean of the nets to a stacker trained on single-net predictions).

MLflow metric keys (one scheme, also in conf/stack.yaml): `ablation/<model>/<metric>` for every
row of the table, `holdout/<model>/<metric>` for the holdout table, `cv/sign_acc` for the final
model's CV sign accuracy (what the job returns), `final/*` for the guard's choice, `latent/*` for the
basis and `time/<step>_s` for timings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from combomap.data.dataset import ComboDataset
from combomap.data.folds import FoldError, assign_folds
from combomap.data.library_io import load_library
from combomap.data.pairs import PairBatch
from combomap.evaluation.baselines import AVERAGE, additive, average, baseline_predictions, noise_aware_oracle
from combomap.evaluation.metrics import sign_accuracy
from combomap.evaluation.plots import make_plots
from combomap.evaluation.report import (
    FINAL,
    accuracy_by_effect_table,
    formatted,
    results_table,
    table_metrics,
    to_markdown,
    to_text,
    write_results,
)
from combomap.models.latent import TooFewProfiles, basis_for, basis_without
from combomap.models.learned import KINDS as LEARNED_KINDS
from combomap.models.learned import LinearComboModel
from combomap.models.learned import out_of_fold as learned_out_of_fold
from combomap.models.training import check_training_settings, fit_mlp, model_kind
from combomap.progress import Progress
from combomap.settings import choice, integer, number
from combomap.stacking.backends import StackerBackend
from combomap.stacking import guard
from combomap.stacking.cv import (
    NET_GROUPINGS,
    REGIMES,
    STACKER_GROUPINGS,
    combo_groups,
    cross_val_predict,
    drug_folds,
    holdout_split,
    resolve_grouping,
    seen_regime,
    stacker_groups,
)
from combomap.stacking.features import (
    FeatureError,
    build_features,
    check_feature_names,
    measured_rows,
    needs_learned,
    needs_projections,
    needs_variances,
    residual_offset,
)
from combomap.stacking.final_model import StackedModel
from combomap.stacking.oof import FoldNets, mean_net_prediction, out_of_fold_nets
from combomap.stacking.serving import MODEL_NAME, log_pyfunc_model
from combomap.tracking import log_metrics

log = logging.getLogger(__name__)

NET_MODEL = "nets_oof"
ORACLE_MODEL = "oracle"
AUTO_FINAL = "auto"
INTERACTION = "interaction"  # the learned baseline behind the lin_pred feature
ADDITIVE = "additive"
SIMPLE_FINALS = (AVERAGE, ADDITIVE, *LEARNED_KINDS)  # what the guard may save besides a stacked feature set
GUARD = "guard"


def stack_model_name(feature_set: str) -> str:
    return f"stack_{feature_set}"


@dataclass
class StackResult:
    table: pd.DataFrame
    predictions: dict[str, np.ndarray]
    cv_sign_acc: dict[str, float]  # feature set (and "average") -> CV sign accuracy
    final_feature_set: str  # the guard's choice: a feature set or "average"
    model: StackedModel | None = None
    model_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    holdout_table: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    fold_nets: FoldNets | None = None
    basis: Any = None  # the GeneProgramBasis, when a feature set or the nets used one
    basis_table: pd.DataFrame | None = None
    regimes: pd.DataFrame | None = None  # the table per split regime (both / one / none of the drugs seen)
    guard_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def headline(self) -> float:
        """The final model's CV sign accuracy: what sweeps maximize."""
        return float(self.cv_sign_acc[self.final_feature_set])

    @property
    def final_model_name(self) -> str:
        if self.final_feature_set in SIMPLE_FINALS:
            return self.final_feature_set
        return stack_model_name(self.final_feature_set)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def feature_sets_of(stacking_cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    sets = {str(name): check_feature_names(list(names))
            for name, names in _plain(stacking_cfg["feature_sets"]).items() if names is not None}  # null drops a set
    if not sets:
        raise FeatureError("stacking.feature_sets is empty")
    if AVERAGE in sets:
        raise FeatureError(f"stacking.feature_sets: {AVERAGE!r} names the baseline; call the feature set otherwise")
    final = str(stacking_cfg["final"])
    if final not in sets and final not in (AUTO_FINAL, *SIMPLE_FINALS):
        raise FeatureError(f"stacking.final={final!r} is not auto, {', '.join(SIMPLE_FINALS)} or one of "
                           f"stacking.feature_sets {list(sets)}")
    clash = [name for name in sets if name in SIMPLE_FINALS]
    if clash:
        raise FeatureError(f"stacking.feature_sets: {clash[0]!r} names a baseline; call the feature set otherwise")
    return sets


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


def _entries(values: np.ndarray, rows: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    full = np.full(shape[0] * shape[1], np.nan, dtype=np.float32)
    full[rows] = values
    return full.reshape(shape)


@dataclass
class StackingPlan:
    """The resolved stacking settings of one run; building it checks them (a bad stacker setting fails here)."""

    seed: int
    feature_sets: dict[str, list[str]]
    final_set: str
    new_stacker: Callable[[], StackerBackend]  # conf/stacker: a fresh backend per fit
    stacker_name: str  # the backend's name (xgboost, lightgbm)
    symmetric: bool

    @classmethod
    def of(cls, cfg: DictConfig) -> "StackingPlan":
        stacking = cfg.stacking
        new_stacker = instantiate(cfg.stacker)
        checked = new_stacker()  # the backend checks its settings
        return cls(
            seed=int(stacking.get("seed", cfg.get("seed", 0))),
            feature_sets=feature_sets_of(stacking),
            final_set=str(stacking.final),
            new_stacker=new_stacker,
            stacker_name=checked.name,
            symmetric=bool(stacking.symmetric),
        )


def _fold_nets(cfg: DictConfig, dataset: ComboDataset, seed: int, fit_net: Callable[..., Any] | None,
               basis: Any = None) -> FoldNets:
    folds_cfg = cfg.stacking.net_folds
    by = resolved_net_grouping(cfg, dataset)
    log.info("fold nets: %d folds grouped by %s (stacking.net_folds.by=%s)", int(folds_cfg.n_folds), by, folds_cfg.by)
    fold_of_combo = assign_folds(combo_groups(dataset.combos, by), int(folds_cfg.n_folds), seed)
    if fit_net is None:
        # the final model's directory keeps the nets it uses; fold<k>/ copies (and their MLflow artifacts) on request
        keep_files = bool(cfg.stacking.get("save_fold_dirs", False))
        fit_net = _latent_fit(basis, dataset, keep_files) if basis is not None else _fold_fit(keep_files)
    return out_of_fold_nets(cfg, dataset, fold_of_combo, fit=fit_net)


def _fold_fit(keep_files: bool) -> Callable[..., Any]:
    def fit(cfg: DictConfig, train: ComboDataset, val: Any = None, **kwargs: Any) -> Any:
        return fit_mlp(cfg, train, val, keep_files=keep_files, **kwargs)

    return fit


def _latent_fit(basis: Any, dataset: ComboDataset, keep_files: bool = False) -> Callable[..., Any]:
    """fit_mlp for latent fold nets: each net's basis is the run's, refit without the studies it predicts
    (a compendium basis; an external one is shared), so its out-of-fold predictions stay out of fold."""
    fit_net = _fold_fit(keep_files)

    def fit(cfg: DictConfig, train: ComboDataset, val: Any = None, **kwargs: Any) -> Any:
        held_out = sorted(set(dataset.combos["study"].astype(str)) - set(train.combos["study"].astype(str)))
        return fit_net(cfg, train, val, basis=basis_without(basis, dataset, held_out), **kwargs)

    return fit


def _latent_nets(cfg: DictConfig) -> bool:
    return model_kind(cfg) == "latent"


def _stack_features(dataset: ComboDataset, names: list[str], net_pred: np.ndarray | None, rows: np.ndarray,
                    symmetric: bool, projections: tuple[np.ndarray, np.ndarray] | None = None,
                    lin_pred: np.ndarray | None = None) -> np.ndarray:
    return build_features(names, PairBatch.from_dataset(dataset), net_pred=net_pred if "net_pred" in names else None,
                          rows=rows, symmetric=symmetric, projected=projections,
                          learned_pred=lin_pred if needs_learned(names) else None)


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


def _ablation(cfg: DictConfig, plan: StackingPlan, dataset: ComboDataset, net_pred: np.ndarray | None,
              timings: dict[str, float], projections: tuple[np.ndarray, np.ndarray] | None = None,
              basis: Any = None, split: CVSplit | None = None, feature_sets: dict[str, list[str]] | None = None,
              label: str = "") -> tuple[dict[str, np.ndarray], LearnedOOF]:
    """CV out-of-fold predictions (n_combos x n_genes) of the learned baselines and of the stacker for every
    feature set, on the folds of `split` (default: stacking.cv)."""
    cv_cfg = cfg.stacking.cv
    shape = dataset.combo_effect.shape
    rows = measured_rows(dataset.combo_effect)
    label_values = dataset.combo_effect.reshape(-1)[rows]
    if split is None:
        split = cv_split(dataset, rows, resolved_cv_grouping(cfg, dataset), int(cv_cfg.n_folds), plan.seed)
    if split.by == "row":
        log.warning("stacker CV by row: entries of one combination land in several folds (leaky, the original's CV)")
    feature_sets = plan.feature_sets if feature_sets is None else feature_sets
    start = time.perf_counter()
    learned = learned_oof(dataset, split, plan.seed)
    predictions: dict[str, np.ndarray] = dict(learned.predictions)
    timings[f"learned{label}"] = time.perf_counter() - start
    # an external (library) basis never saw the compendium's arms; by row every fold holds every study (that CV
    # is leaky anyway, the original's): only then is one basis shared by every fold
    inductive = (basis is not None and basis.source == "compendium" and split.by != "row"
                 and bool((cfg.get("latent") or {}).get("refit_per_fold", True)))
    fold_projections = _fold_projections(dataset, basis, rows, split.fold_of_row) if inductive else None
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
                return _stack_features(dataset, names, net_pred, rows, plan.symmetric, fold_projected,
                                       lin_pred_of(fold) if needs_learned(names) else None)
        else:
            features = _stack_features(dataset, names, net_pred, rows, plan.symmetric, projections)
        cv = stacker_cv(plan.new_stacker, features, label_values, split.fold_of_row, names, rows // shape[1],
                        float(cv_cfg.get("val_fraction") or 0.0), plan.seed, desc=f"stacker CV {name} fold",
                        train=split.row_train)
        predictions[stack_model_name(name)] = _entries(cv.oof_prediction, rows, shape)
        timings[f"cv_{name}{label}"] = time.perf_counter() - start
        log.info("stacker %s %s%s: CV sign accuracy %.4f (%.1f s; fits %s s)", name, names, label,
                 sign_accuracy(dataset.combo_effect, predictions[stack_model_name(name)]), timings[f"cv_{name}{label}"],
                 [round(s, 1) for s in cv.fit_seconds])
    return predictions, learned


def resolved_cv_grouping(cfg: DictConfig, dataset: ComboDataset) -> str:
    return resolve_grouping(str(cfg.stacking.cv.by), dataset.combos, int(cfg.stacking.cv.n_folds))


def resolved_net_grouping(cfg: DictConfig, dataset: ComboDataset) -> str:
    return resolve_grouping(str(cfg.stacking.net_folds.by), dataset.combos, int(cfg.stacking.net_folds.n_folds))


def _regimes(cfg: DictConfig, plan: StackingPlan, dataset: ComboDataset, predictions: dict[str, np.ndarray],
             main_split: CVSplit, net_pred: np.ndarray | None, timings: dict[str, float],
             projections: tuple[np.ndarray, np.ndarray] | None, basis: Any) -> pd.DataFrame | None:
    """Every model per split regime: "both_seen" combinations of the main CV (both drugs in training
    combinations), and "one_seen" / "none_seen" from a second CV whose folds hold out drugs (`stacking.regimes`:
    true, or auto = when more than half the main CV's combinations have both drugs seen; the fold nets are not
    split by drug, so sets with net_pred have no estimate there) or else from the main CV's own combinations.
    None with stacking.regimes=false."""
    setting = str(cfg.stacking.get("regimes", "auto")).lower()
    if setting in ("false", "none", "off"):
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
            drug_split = cv_split(dataset, rows, "drug", int(cfg.stacking.cv.n_folds), plan.seed)
        except FoldError as error:
            log.warning("split regimes: no by-drug CV (%s); one_seen/none_seen come from the main CV", error)
        else:
            sets = {name: names for name, names in plan.feature_sets.items() if "net_pred" not in names}
            by_drug = dict(baseline_predictions(dataset))
            by_drug.update(_ablation(cfg, plan, dataset, None, timings, projections, basis, drug_split, sets,
                                     label="_by_drug")[0])
            sources["one_seen"] = sources["none_seen"] = (drug_split.regime(dataset.combos), by_drug)
    tables = []
    for regime, (labels, source) in sources.items():
        combos = np.flatnonzero(labels == regime)
        if not combos.size:
            continue
        models = {m: p[combos] for m, p in source.items() if m != "no_change"}
        table = results_table(dataset.combo_effect[combos], models, reference=None, top_k=(20,))
        table.insert(1, "regime", regime)
        table.insert(2, "n_combos", int(combos.size))
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else None


FINAL_AS_SAVED = "final_as_saved"


def _with_final_rows(regimes: pd.DataFrame, final_model: str, unseen_additive: bool) -> pd.DataFrame:
    """The regimes table plus the saved model's rows per regime ("final_as_saved"): the chosen model's, or in the
    none_seen regime the additive model's where the guard made unseen pairs fall back to it."""
    rows = []
    for regime, part in regimes.groupby("regime", sort=False):
        source = "additive" if (unseen_additive and regime == "none_seen") else final_model
        match = part[part["model"] == source]
        if len(match):
            rows.append(match.iloc[[0]].assign(model=FINAL_AS_SAVED))
    return pd.concat([regimes, *rows], ignore_index=True) if rows else regimes


def _fold_projections(dataset: ComboDataset, basis: Any, rows: np.ndarray, fold_of_row: np.ndarray):
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


def _write_reports(dataset: ComboDataset, predictions: dict[str, np.ndarray], table: pd.DataFrame, out_dir: Path,
                   stacking: DictConfig, timings: dict[str, float], final_model: str,
                   reasons: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """ablation.csv/.md (the scored `table` with the final and guard columns), accuracy_by_effect.csv, plots/ (one
    line per model but no_change), predictions/ (optional)."""
    table = table.copy()
    table[FINAL] = np.where(table["model"] == final_model, "*", "")
    table[GUARD] = [(reasons or {}).get(model, "") for model in table["model"]]
    files = write_results(table, out_dir, stem="ablation")
    files.append(out_dir / "accuracy_by_effect.csv")
    accuracy_by_effect_table(dataset.combo_effect, predictions).to_csv(files[-1], index=False)
    log.info("ablation on %s (%d combos x %d genes; final model: %s):\n%s", dataset.source, dataset.n_combos,
             dataset.n_genes, final_model, to_text(table))
    if bool(stacking.get("plots", True)):
        start = time.perf_counter()
        files += make_plots(dataset, {k: v for k, v in predictions.items() if k != "no_change"}, out_dir / "plots",
                            hexbin_model=final_model, hexbin_note="the saved final model")
        timings["plots"] = time.perf_counter() - start
    if bool(stacking.get("save_predictions", False)):
        (out_dir / "predictions").mkdir(exist_ok=True)
        for model, prediction in predictions.items():
            np.save(out_dir / "predictions" / f"{model}.npy", prediction)
    return table, files


def _final_model(cfg: DictConfig, plan: StackingPlan, dataset: ComboDataset, fold_nets: FoldNets | None, chosen: str,
                 cv_sign_acc: Mapping[str, float], cv_row: pd.Series, basis: Any,
                 projections: tuple[np.ndarray, np.ndarray] | None, learned_lin_pred: np.ndarray | None = None,
                 reasons: Mapping[str, str] | None = None, unseen_additive: bool = False) -> StackedModel:
    """The chosen model refit on every measured row (the average needs no fit), with what it needs at inference."""
    stacking = cfg.stacking
    rows = measured_rows(dataset.combo_effect)
    info = {
        "data": dataset.source,
        "n_combos": dataset.n_combos,
        "n_rows": int(rows.shape[0]),
        "feature_set": chosen,
        "selected_by": "stacking.final=auto: best CV sign accuracy among the candidates that pass the guard's top-k "
        "floors (combomap.stacking.guard)" if str(stacking.final) == AUTO_FINAL else f"stacking.final={stacking.final}",
        "guard": dict(reasons or {}),
        "cv_sign_acc": {name: float(value) for name, value in cv_sign_acc.items()},
        "net_folds": {"n_folds": int(stacking.net_folds.n_folds), "by": resolved_net_grouping(cfg, dataset)},
        "cv": {"n_folds": int(stacking.cv.n_folds), "by": resolved_cv_grouping(cfg, dataset), "sign_acc": float(cv_row["sign_acc"]),
               "spearman_median": float(cv_row["spearman_median"])},
        "seed": plan.seed,
    }
    unseen = {"unseen_pairs": "additive" if unseen_additive else "model",
              "training_drugs": sorted(set(dataset.combos["drug1"].astype(str)) | set(dataset.combos["drug2"].astype(str)))}
    if chosen == AVERAGE:
        return StackedModel.average(list(dataset.genes), info=info)
    if chosen == ADDITIVE:
        return StackedModel.additive(list(dataset.genes), info=info)
    if chosen in LEARNED_KINDS:
        return replace(StackedModel.linear(LinearComboModel.fit(dataset, chosen, seed=plan.seed), info=info), **unseen)
    names = plan.feature_sets[chosen]
    net_pred = fold_nets.oof_prediction if fold_nets is not None else None
    features = _stack_features(dataset, names, net_pred, rows, plan.symmetric, projections, learned_lin_pred)
    stacker = fit_stacker(plan.new_stacker, features, dataset.combo_effect.reshape(-1)[rows], names,
                          rows // dataset.n_genes, float(stacking.cv.get("val_fraction") or 0.0), plan.seed)
    return StackedModel(
        stacker=stacker,
        features=names,
        genes=list(dataset.genes),
        nets=list(fold_nets.predictors) if (fold_nets is not None and "net_pred" in names) else [],
        symmetric=plan.symmetric,
        inference=str(stacking.inference),
        info=info,
        basis=basis if needs_projections(names) else None,
        learned=LinearComboModel.fit(dataset, INTERACTION, seed=plan.seed) if needs_learned(names) else None,
        **unseen,
    )


def _score_holdout(model: StackedModel, holdout: ComboDataset, fold_nets: FoldNets | None, final_model: str,
                   out_dir: Path, kept: ComboDataset | None = None, seed: int = 0) -> tuple[pd.DataFrame, list[Path]]:
    """The final model on studies it never saw, with both inference modes (the train/inference mismatch), beside
    the average, the additive model and the learned baselines fit on the kept combinations."""
    held = {AVERAGE: average(holdout.drug1_effect, holdout.drug2_effect)}
    pairs = PairBatch.from_dataset(holdout)
    held["additive"] = additive(holdout.drug1_effect, holdout.drug2_effect)
    if kept is not None:
        held.update({kind: LinearComboModel.fit(kept, kind, seed=seed).predict(pairs)
                     for kind in LEARNED_KINDS if kind != final_model})
    if fold_nets is not None:
        held["nets_mean"] = mean_net_prediction(fold_nets.predictors, pairs)
    if model.uses_nets:
        held[f"{final_model}_per_net"] = model.predict(pairs, inference="per_net")
        held[f"{final_model}_mean_net"] = model.predict(pairs, inference="mean_net")
    elif final_model not in (AVERAGE, ADDITIVE):
        held[final_model] = model.predict(pairs)
    table = results_table(holdout, held, reference=AVERAGE)
    log.info("holdout (%d combos, final model trained without them):\n%s", holdout.n_combos, to_text(table))
    return table, write_results(table, out_dir, stem="holdout")


def _gene_programs(cfg: DictConfig, plan: StackingPlan, dataset: ComboDataset, library: Any, timings: dict[str, float]):
    """The basis (chosen by grouped CV on single-drug inputs) and both drugs' projections; (None, reason) when
    the data cannot support one (too few single-drug profiles; bad settings are errors)."""
    start = time.perf_counter()
    try:
        choice = basis_for(cfg.get("latent") or {}, dataset, library, seed=plan.seed)
    except TooFewProfiles as error:
        return None, str(error)
    projections = (choice.basis.project(dataset.drug1_effect), choice.basis.project(dataset.drug2_effect))
    timings["basis"] = time.perf_counter() - start
    return choice, projections


def stack_pipeline(
    cfg: DictConfig,
    dataset: ComboDataset,
    out_dir: Path | str,
    fit_net: Callable[..., Any] | None = None,
    library: Any = None,
    truth: Any = None,
) -> StackResult:
    """Everything but the MLflow run itself (see module docstring); logs metrics if a run is active.

    `fit_net` replaces combomap.models.training.fit_mlp (tests use stand-ins). `library` (a DrugLibrary) may
    serve as the gene-program basis' source; `truth` (the simulator's) adds the oracle row.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stacking = cfg.stacking
    plan = StackingPlan.of(cfg)
    timings: dict[str, float] = {}

    holdout = None
    split = _holdout_rows(stacking, dataset, plan.seed)
    if split is not None:
        kept, held = split
        dataset, holdout = dataset.subset(kept), dataset.subset(held)
        if truth is not None:
            truth = _truth_subset(truth, kept)
        log.info("holdout: %d combinations held out, %d used for the stack", holdout.n_combos, dataset.n_combos)
    if any(needs_variances(names) for names in plan.feature_sets.values()) and not dataset.has_variances:
        log.warning("%s has no variances: v1/v2 are all missing (NaN), so +vars/+both equal their variance-free sets",
                    dataset.source)

    predictions: dict[str, np.ndarray] = dict(baseline_predictions(dataset))
    if truth is not None:
        predictions[ORACLE_MODEL], oracle_c = noise_aware_oracle(dataset, truth)
        log.info("oracle (the ceiling): truth.combo + %.3f x the singles' measurement noise", oracle_c)
    basis_choice, projections = None, None
    uses_nets = any("net_pred" in names for names in plan.feature_sets.values())
    if any(needs_projections(names) for names in plan.feature_sets.values()) or (uses_nets and _latent_nets(cfg)):
        basis_choice, projections = _gene_programs(cfg, plan, dataset, library, timings)
        if basis_choice is None:
            if uses_nets and _latent_nets(cfg):
                raise TooFewProfiles(f"model=latent_mlp needs a gene-program basis: {projections}")
            dropped = [name for name, names in plan.feature_sets.items() if needs_projections(names)]
            log.warning("no gene-program basis (%s): feature sets %s are left out", projections, dropped)
            plan.feature_sets = {k: v for k, v in plan.feature_sets.items() if k not in dropped}
            if plan.final_set in dropped:
                plan.final_set = AUTO_FINAL
            projections = None
    fold_nets = None
    if uses_nets:
        start = time.perf_counter()
        fold_nets = _fold_nets(cfg, dataset, plan.seed, fit_net,
                               basis_choice.basis if basis_choice is not None and _latent_nets(cfg) else None)
        predictions[NET_MODEL] = fold_nets.oof_prediction
        timings["nets"] = time.perf_counter() - start
    net_pred = fold_nets.oof_prediction if fold_nets is not None else None
    basis = basis_choice.basis if basis_choice is not None else None
    rows = measured_rows(dataset.combo_effect)
    main_split = cv_split(dataset, rows, resolved_cv_grouping(cfg, dataset), int(stacking.cv.n_folds), plan.seed)
    log.info("stacker CV: %d folds grouped by %s (stacking.cv.by=%s)", int(stacking.cv.n_folds), main_split.by,
             stacking.cv.by)
    cv_predictions, learned = _ablation(cfg, plan, dataset, net_pred, timings, projections, basis, main_split)
    predictions.update(cv_predictions)
    regimes = _regimes(cfg, plan, dataset, predictions, main_split, net_pred, timings, projections, basis)
    candidates = [AVERAGE, ADDITIVE, *LEARNED_KINDS, *[stack_model_name(name) for name in plan.feature_sets]]
    scored = results_table(dataset, predictions, reference=AVERAGE, ceiling=ORACLE_MODEL)
    final_name = plan.final_set if plan.final_set in (AUTO_FINAL, *SIMPLE_FINALS) else stack_model_name(plan.final_set)
    choice = guard.choose_final(scored, candidates, final_name, regimes, learned=LEARNED_KINDS)
    final_model, reasons = choice.model, choice.reasons
    chosen = final_model.removeprefix("stack_") if final_model.startswith("stack_") else final_model
    if regimes is not None:
        regimes = _with_final_rows(regimes, final_model, choice.final_unseen_additive)
    sign_acc = scored.set_index("model")["sign_acc"]
    cv_sign_acc = {name: float(sign_acc[name]) for name in (AVERAGE, ADDITIVE, *LEARNED_KINDS)}
    cv_sign_acc.update({name: float(sign_acc[stack_model_name(name)]) for name in plan.feature_sets})
    log.info("final model: %s (CV sign accuracy %.4f; average %.4f); %s", final_model, cv_sign_acc[chosen],
             cv_sign_acc[AVERAGE], guard.floors_note(scored, LEARNED_KINDS))
    table, files = _write_reports(dataset, predictions, scored, out_dir, stacking, timings, final_model, reasons)
    if regimes is not None:
        files += write_results(regimes, out_dir, stem="regimes")
        with open(out_dir / "ablation.md", "a") as markdown:  # the ablation's one page also shows the regimes
            columns = ["model", "regime", "n_combos", "sign_acc_pct", "pearson_delta_top20", "l2_top20", "n_scored"]
            markdown.write("\n## Split regimes (regimes.csv)\n\nboth_seen: the stacker CV's combinations whose two drugs "
                           "are in training combinations; one_seen / none_seen: a CV whose folds hold out drugs "
                           "(combomap.stacking.cv.drug_folds). final_as_saved: the saved model.\n\n"
                           + to_markdown(formatted(regimes, columns, human_headers=False)) + "\n")
        log.info("split regimes (both_seen: stacking.cv folds; one_seen, none_seen: folds by drug):\n%s", to_text(regimes))

    start = time.perf_counter()
    with Progress(1, f"final model fit ({final_model})", unit="fit") as progress:
        model = _final_model(cfg, plan, dataset, fold_nets, chosen, cv_sign_acc, table.set_index("model").loc[final_model],
                             basis, projections, learned_lin_pred=predictions[INTERACTION], reasons=reasons,
                             unseen_additive=choice.final_unseen_additive)
        progress.update()
    model_dir = model.save(out_dir / "model") if bool(stacking.get("save_model", True)) else None
    timings["final_model"] = time.perf_counter() - start

    holdout_table = None
    if holdout is not None:
        start = time.perf_counter()
        holdout_table, holdout_files = _score_holdout(model, holdout, fold_nets, final_model, out_dir, dataset, plan.seed)
        files += holdout_files
        timings["holdout"] = time.perf_counter() - start

    if basis_choice is not None:
        files.append(out_dir / "basis_selection.csv")
        basis_choice.table.to_csv(files[-1], index=False)
    result = StackResult(
        table=table, predictions=predictions, cv_sign_acc=cv_sign_acc, final_feature_set=chosen,
        model=model, model_dir=model_dir, files=files, holdout_table=holdout_table, timings=timings, fold_nets=fold_nets,
        regimes=regimes, guard_reasons=reasons,
        basis=basis_choice.basis if basis_choice is not None else None,
        basis_table=basis_choice.table if basis_choice is not None else None,
    )
    _log_to_mlflow(result, out_dir, cfg.get("library"), library)
    return result


def _truth_subset(truth: Any, rows: np.ndarray) -> Any:
    return replace(truth, drug1=truth.drug1[rows], drug2=truth.drug2[rows], combo=truth.combo[rows],
                   combos=truth.combos.iloc[rows].reset_index(drop=True))


def _log_to_mlflow(result: StackResult, out_dir: Path, library_cfg: Any = None, library: Any = None) -> None:
    """Metrics, tags, the report files (ablation.csv is the table's one artifact), and the final model once:
    as the pyfunc model `model` when a drug library can serve it (combomap.stacking.serving)."""
    if mlflow.active_run() is None:
        return
    metrics = table_metrics(result.table, "ablation")
    if result.holdout_table is not None:
        metrics.update(table_metrics(result.holdout_table, "holdout"))
    if result.regimes is not None:
        for regime, part in result.regimes.groupby("regime", sort=False):
            metrics.update(table_metrics(part.drop(columns=["regime"]), f"regime/{regime}"))
    metrics["cv/sign_acc"] = result.headline
    metrics["final/cv_sign_acc"] = result.headline
    metrics["final/average_cv_sign_acc"] = result.cv_sign_acc[AVERAGE]
    metrics["final/is_average"] = float(result.final_feature_set == AVERAGE)
    if result.basis is not None:
        metrics.update({"latent/rank": result.basis.rank, "latent/ridge": result.basis.ridge,
                        "latent/heldout_sign_acc": result.basis.info.get("heldout_sign_acc", float("nan")),
                        "latent/heldout_mse": result.basis.info.get("heldout_mse", float("nan"))})
        mlflow.set_tags({"latent.source": result.basis.source})
    mlflow.set_tags({"final.model": result.final_model_name})
    metrics.update({f"time/{step}_s": seconds for step, seconds in result.timings.items()})
    log_metrics(metrics)
    for path in result.files:
        path = Path(path)
        artifact_dir = path.parent.relative_to(out_dir).as_posix() if path.parent != out_dir else None
        mlflow.log_artifact(str(path), artifact_path=artifact_dir if artifact_dir not in (None, ".") else None)
    if result.model_dir is not None:
        if library_cfg is not None:
            log_pyfunc_model(result.model, result.model_dir, _plain(library_cfg), library)
        else:
            log.warning("~library: no drug library to serve pairs from; the model is logged as plain artifacts")
            mlflow.log_artifacts(str(result.model_dir), artifact_path=MODEL_NAME)


def _holdout_rows(stacking: DictConfig, dataset: ComboDataset, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(kept, held-out) combination rows of stacking.holdout_fraction, whole groups of net_folds.by; None for 0."""
    fraction = float(stacking.get("holdout_fraction") or 0.0)
    if fraction <= 0:
        return None
    by = resolve_grouping(str(stacking.net_folds.by), dataset.combos, int(stacking.net_folds.n_folds))
    return holdout_split(combo_groups(dataset.combos, by), fraction, seed)


def check_stacking_settings(cfg: DictConfig) -> None:
    """Fold, holdout and fold-net settings, before the data loads."""
    integer(cfg, "stacking.seed", default=0)
    integer(cfg, "stacking.net_folds.n_folds", minimum=2)
    choice(cfg, "stacking.net_folds.by", NET_GROUPINGS)
    integer(cfg, "stacking.cv.n_folds", minimum=2)
    choice(cfg, "stacking.cv.by", STACKER_GROUPINGS)
    number(cfg, "stacking.cv.val_fraction", 0.0, 1.0, high_open=True, default=0.0)
    number(cfg, "stacking.holdout_fraction", 0.0, 1.0, high_open=True, default=0.0)
    regimes = cfg.stacking.get("regimes", "auto")
    if str(regimes).lower() not in ("auto", "true", "false"):
        raise FoldError(f"stacking.regimes must be auto, true or false, got {regimes!r}")
    check_training_settings(cfg)


def check_fold_counts(cfg: DictConfig, plan: StackingPlan, dataset: ComboDataset) -> None:
    """Every fold split the run will make is possible on this data: checked right after it loads, before any
    net trains (stacking.cv.n_folds=1000 used to fail only after the fold nets had trained)."""
    stacking = cfg.stacking
    split = _holdout_rows(stacking, dataset, plan.seed)
    kept = dataset.subset(split[0]) if split is not None else dataset
    cv_by = resolve_grouping(str(stacking.cv.by), kept.combos, int(stacking.cv.n_folds))
    net_by = resolve_grouping(str(stacking.net_folds.by), kept.combos, int(stacking.net_folds.n_folds))
    checks = [("stacking.cv", stacking.cv, cv_by,
               lambda: drug_folds(kept.combos, int(stacking.cv.n_folds), plan.seed) if cv_by == "drug" else
               assign_folds(stacker_groups(measured_rows(kept.combo_effect), kept.n_genes, kept.combos, cv_by),
                            int(stacking.cv.n_folds), plan.seed))]
    if any("net_pred" in names for names in plan.feature_sets.values()):
        checks.insert(0, ("stacking.net_folds", stacking.net_folds, net_by,
                          lambda: assign_folds(combo_groups(kept.combos, net_by), int(stacking.net_folds.n_folds), plan.seed)))
    for key, folds, by, split in checks:
        try:
            split()
        except FoldError as error:
            hint = (f"; set {key}.by=combo (a single screen is one study) or fewer {key}.n_folds" if by == "study"
                    else f"; set fewer {key}.n_folds")
            raise FoldError(f"{key}.n_folds={folds.n_folds} (by {by}) on {dataset.source}: {error}{hint}") from None


def basis_library(cfg: DictConfig, dataset: ComboDataset) -> Any:
    """The drug library offered to the gene-program basis (cfg.library), when a feature set may use it."""
    latent = cfg.get("latent") or {}
    wanted = cfg.get("library") is not None and bool(latent.get("use_library", True)) and str(latent.get("source", "auto")) != "compendium"
    sets = feature_sets_of(cfg.stacking).values()
    needs_basis = any(needs_projections(names) for names in sets) or (_latent_nets(cfg) and any("net_pred" in n for n in sets))
    if not wanted or not needs_basis:
        return None
    if str(cfg.library.get("source")) == "simulated" and str(cfg.data.get("source")) != "simulated":
        log.info("the simulated library serves simulated compendia only: the gene-program basis of %s comes from its "
                 "own single-drug inputs (give library=npy|tidy|gctx to offer a real library)", dataset.source)
        return None
    return load_library(_plain(cfg.library))
