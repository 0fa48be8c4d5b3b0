"""What a combination is expected to be without an interaction, entry by entry.

- additive: d1 + d2; average: (d1 + d2) / 2 (combomap.evaluation.baselines);
- additive_shift, interaction: the learned baselines of combomap.models.learned, each combination predicted by
  a model fit on the other folds' combinations only (out of fold);
- model: a saved combomap-stack model (combomap.stacking.final_model.StackedModel). It must never have seen the
  combination it judges. Its manifest records the drugs of its training combinations (not the combinations), so a
  combination of two of those drugs counts as seen and is refused; the average and additive kinds fit nothing.

`single_weight` says how the singles' measurement variances enter the expected's: var(expected) =
single_weight * (v1 + v2) (1 for d1 + d2, 1/4 for the average; the learned and saved models are taken as additive,
an approximation the calibration of combomap.interactions.noise absorbs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from combomap.data.dataset import ComboDataset
from combomap.data.folds import assign_folds
from combomap.data.pairs import PairBatch
from combomap.errors import UserError
from combomap.evaluation.baselines import additive, average
from combomap.interactions.settings import LEARNED_EXPECTED, MODEL_EXPECTED, InteractionSettings
from combomap.models.learned import out_of_fold
from combomap.stacking.cv import combo_groups, resolve_grouping
from combomap.stacking.final_model import SIMPLE_KINDS, StackedModel, align_genes

SINGLE_WEIGHT = {"additive": 1.0, "average": 0.25}


class ExpectationError(UserError):
    """An expectation that cannot be formed for this data set (too few folds, a model that saw a combination)."""


@dataclass(frozen=True)
class Expectation:
    """The expected combination (n_combos x n_genes; NaN = no expectation) and how it was formed."""

    name: str
    values: np.ndarray
    single_weight: float
    note: str


def simple_expectation(dataset: ComboDataset, name: str) -> Expectation:
    rule = additive if name == "additive" else average
    values = rule(dataset.drug1_effect, dataset.drug2_effect).astype(np.float64)
    formula = "d1 + d2" if name == "additive" else "(d1 + d2) / 2"
    return Expectation(name, values, SINGLE_WEIGHT[name], f"expected = {formula}")


def learned_expectation(dataset: ComboDataset, name: str, n_folds: int, by: str, seed: int) -> Expectation:
    """The learned baseline `name`, out of fold: folds grouped `by` (auto: by study with >= 2 studies per fold)."""
    grouping = resolve_grouping(by, dataset.combos, n_folds)
    groups = combo_groups(dataset.combos, grouping)
    n_groups = len(np.unique(groups))
    if n_groups < n_folds:
        raise ExpectationError(f"expected={name}: {n_groups} combination group(s) by {grouping} cannot fill "
                               f"interactions.learned.n_folds={n_folds}; lower it or use expected=additive")
    predictions, _ = out_of_fold(dataset, assign_folds(groups, n_folds, seed), seed=seed)
    return Expectation(name, predictions[name].astype(np.float64), 1.0,
                       f"expected = the learned {name} baseline, out of {n_folds} folds by {grouping}")


def seen_combinations(model: StackedModel, combos) -> np.ndarray:
    """True for the combinations a saved model may have trained on: both drugs among its training drugs."""
    known = set(model.training_drugs)
    first = combos["drug1"].astype(str).isin(known).to_numpy()
    second = combos["drug2"].astype(str).isin(known).to_numpy()
    return first & second


def check_out_of_fold(model: StackedModel, dataset: ComboDataset, model_dir: str) -> None:
    """Refuse a model that saw any of the data set's combinations (one line naming the first)."""
    if model.kind in SIMPLE_KINDS:
        return
    if not model.training_drugs:
        raise ExpectationError(f"{model_dir}: the model's manifest lists no training drugs, so nothing shows it never "
                               "saw these combinations; save it again with a current combomap-stack")
    seen = seen_combinations(model, dataset.combos)
    if seen.any():
        row = dataset.combos.iloc[int(np.argmax(seen))]
        raise ExpectationError(
            f"{model_dir}: the model was trained on combinations of {row['drug1']!r} and {row['drug2']!r} (combination "
            f"{row['combo']!r}; {int(seen.sum())} of {dataset.n_combos} combinations have both drugs among its "
            "training drugs): a combination is never judged by a model that saw it; use interactions.expected="
            "interaction (learned out of fold) or a model trained without these drugs")


def model_expectation(dataset: ComboDataset, model: StackedModel, model_dir: str) -> Expectation:
    """A saved model's prediction on its own genes (the data set's other genes get no expectation)."""
    check_out_of_fold(model, dataset, model_dir)
    columns = align_genes(model.genes, dataset.genes, dataset.source)
    pick = lambda values: None if values is None else values[:, columns]  # noqa: E731
    names = dataset.combos[["drug1", "drug2"]].astype(str).to_numpy(dtype=object)
    pairs = PairBatch(pick(dataset.drug1_effect), pick(dataset.drug2_effect), pick(dataset.drug1_var),
                      pick(dataset.drug2_var), names[:, 0], names[:, 1])
    values = np.full(dataset.combo_effect.shape, np.nan)
    values[:, columns] = model.predict(pairs)
    return Expectation(MODEL_EXPECTED, values, 1.0, f"expected = the saved {model.kind} model in {model_dir}")


def expectation(dataset: ComboDataset, settings: InteractionSettings, model: StackedModel | None = None) -> Expectation:
    """The expectation `settings.expected` names (`model`: the loaded saved model of settings.model_dir)."""
    if settings.expected in SINGLE_WEIGHT:
        return simple_expectation(dataset, settings.expected)
    if settings.expected in LEARNED_EXPECTED:
        return learned_expectation(dataset, settings.expected, settings.learned.n_folds, settings.learned.by,
                                   settings.seed)
    if model is None:
        raise ExpectationError("expected=model needs the saved model (interactions.model_dir)")
    return model_expectation(dataset, model, str(settings.model_dir))
