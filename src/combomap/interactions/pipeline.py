"""The whole analysis of one data set: expectation -> noise SD -> tests and calls -> per-combination summaries."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from combomap.data.dataset import ComboDataset
from combomap.interactions.calls import BUFFERING, SYNERGY, EntryTests, call_entries
from combomap.interactions.expected import Expectation, expectation
from combomap.interactions.noise import NullScale, check_singles, null_scale, resolve_method, entries_to_test
from combomap.interactions.settings import InteractionSettings
from combomap.interactions.summaries import CLASSES, combination_summaries
from combomap.stacking.final_model import StackedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InteractionResult:
    """Everything the outputs are made of."""

    dataset: ComboDataset
    expectation: Expectation
    null: NullScale
    tests: EntryTests
    combinations: pd.DataFrame

    def headline(self) -> dict[str, float]:
        """The run's numbers (MLflow metrics without their prefix)."""
        tested = self.tests.tested
        calls = self.tests.call
        counts = self.combinations["class"].value_counts()
        numbers = {
            "n_combos": float(self.dataset.n_combos), "n_tested": float(tested.sum()),
            "n_called": float((calls != 0).sum()), "n_synergy": float((calls == SYNERGY).sum()),
            "n_buffering": float((calls == BUFFERING).sum()),
            "called_fraction": float((calls != 0).sum() / max(int(tested.sum()), 1)),
            "calibration": self.null.calibration,
        }
        numbers.update({f"class_{name}": float(counts.get(name, 0)) for name in CLASSES})
        return numbers


def prepare(dataset: ComboDataset, settings: InteractionSettings, model: StackedModel | None = None) -> Expectation:
    """The expectation, after every check a bad input fails (a model that saw a combination, a combination whose
    singles are missing, a variance method the data cannot serve): each one line, before any result is written."""
    expected = expectation(dataset, settings, model)
    log.info("%s", expected.note)
    tested = entries_to_test(dataset, expected.values)
    check_singles(dataset, tested)
    resolve_method(settings.variance, dataset, tested, settings.min_combos_per_gene)
    return expected


def call_interactions(dataset: ComboDataset, settings: InteractionSettings, expected: Expectation | None = None,
                      model: StackedModel | None = None) -> InteractionResult:
    """Test every entry of every combination against its expectation (`prepare`d here unless given) and summarize
    each combination."""
    expected = prepare(dataset, settings, model) if expected is None else expected
    null = null_scale(dataset, expected.values, expected.single_weight, settings.variance,
                      settings.min_combos_per_gene, settings.calibrate, settings.null_shape)
    log.info("%s", null.note)
    tests = call_entries(dataset.combo_effect, expected.values, null.scale, null.df, settings.fdr,
                         settings.fdr_scope)
    combinations = combination_summaries(dataset, tests, settings.classes, settings.dcor_genes, settings.seed)
    return InteractionResult(dataset=dataset, expectation=expected, null=null, tests=tests, combinations=combinations)
