"""The expected combination: learned baselines out of fold, and a saved model only where it never saw the
combination."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from combomap.data.dataset import ComboDataset
from combomap.data.folds import assign_folds
from combomap.data.io import read_tidy
from combomap.data.pairs import PairBatch
from combomap.evaluation.baselines import average
from combomap.interactions.expected import ExpectationError, expectation, model_expectation
from combomap.interactions.settings import InteractionSettings, LearnedSettings
from combomap.models.learned import LinearComboModel
from combomap.stacking.cv import combo_groups
from combomap.stacking.final_model import StackedModel
from tests import REPO_ROOT

KORKUT = REPO_ROOT / "tests" / "data" / "fixtures" / "korkut2015_skmel133_rppa.csv"


@pytest.fixture(scope="module")
def korkut() -> ComboDataset:
    return read_tidy(KORKUT)


def _drugs(dataset: ComboDataset) -> list[str]:
    return sorted(set(dataset.combos["drug1"]) | set(dataset.combos["drug2"]))


def _among(dataset: ComboDataset, drugs: list[str]) -> ComboDataset:
    inside = dataset.combos["drug1"].isin(drugs) & dataset.combos["drug2"].isin(drugs)
    return dataset.subset(np.flatnonzero(inside.to_numpy()))


def test_learned_expectation_is_out_of_fold(korkut: ComboDataset) -> None:
    settings = InteractionSettings(expected="interaction", learned=LearnedSettings(n_folds=3, by="combo"), seed=4)
    expected = expectation(korkut, settings.check())
    folds = assign_folds(combo_groups(korkut.combos, "combo"), 3, 4)
    row = 7
    model = LinearComboModel.fit(korkut.subset(np.flatnonzero(folds != folds[row])), "interaction", seed=4)
    np.testing.assert_allclose(expected.values[row], model.predict(PairBatch.from_dataset(korkut, np.array([row])))[0],
                               rtol=1e-6)
    seen = LinearComboModel.fit(korkut, "interaction", seed=4)
    inside = seen.predict(PairBatch.from_dataset(korkut, np.array([row])))
    assert not np.allclose(expected.values[row], inside[0])  # a model that saw the row predicts it otherwise


def test_learned_expectation_needs_enough_groups(korkut: ComboDataset) -> None:
    settings = InteractionSettings(expected="additive_shift", learned=LearnedSettings(n_folds=5, by="study")).check()
    with pytest.raises(ExpectationError, match=r"1 combination group\(s\) by study cannot fill .*n_folds=5"):
        expectation(korkut, settings)


def test_a_saved_model_judges_only_combinations_it_never_saw(korkut: ComboDataset, tmp_path: Path) -> None:
    drugs = _drugs(korkut)
    training, judged = _among(korkut, drugs[:6]), _among(korkut, drugs[6:])
    learned = LinearComboModel.fit(training, "interaction", seed=0)
    saved = replace(StackedModel.linear(learned), training_drugs=drugs[:6]).save(tmp_path / "model")
    model = StackedModel.load(saved)
    expected = model_expectation(judged, model, str(saved))
    np.testing.assert_allclose(expected.values, model.predict(PairBatch.from_dataset(judged)), rtol=1e-6)
    with pytest.raises(ExpectationError) as refused:
        model_expectation(korkut, model, str(saved))
    message = str(refused.value)
    assert "\n" not in message and str(saved) in message and "15 of 66 combinations" in message
    assert "never judged by a model that saw it" in message


def test_models_without_a_fit_or_without_their_training_drugs(korkut: ComboDataset) -> None:
    plain = model_expectation(korkut, StackedModel.average(korkut.genes), "avg")
    np.testing.assert_allclose(plain.values, average(korkut.drug1_effect, korkut.drug2_effect), rtol=1e-6)
    unknown = StackedModel.linear(LinearComboModel.fit(korkut, "additive_shift"))
    with pytest.raises(ExpectationError, match="lists no training drugs"):
        model_expectation(korkut, unknown, "old-model")


def test_a_model_on_fewer_genes_leaves_the_others_untested(korkut: ComboDataset) -> None:
    model = StackedModel.additive(korkut.genes[:10])
    expected = model_expectation(korkut, model, "m")
    assert np.isfinite(expected.values[:, :10]).all() and np.isnan(expected.values[:, 10:]).all()
