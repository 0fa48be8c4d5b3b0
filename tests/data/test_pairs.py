"""PairBatch: the inputs of a batch of combinations, checked once; its constructors and methods pick the right rows."""

from __future__ import annotations

import numpy as np
import pytest

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.data.pairs import PairBatch
from tests.conftest import random_dataset


def test_from_dataset_keeps_each_drugs_arrays_and_selects_rows() -> None:
    data = random_dataset(6, 5, seed=0)
    pairs = PairBatch.from_dataset(data)
    assert pairs.shape == (6, 5) and pairs.n_pairs == 6 and pairs.n_genes == 5 and pairs.has_variances
    assert pairs.drug1_effect is data.drug1_effect  # float32 already: no copy
    rows = np.array([4, 1])
    picked = PairBatch.from_dataset(data, rows)
    np.testing.assert_array_equal(picked.drug1_effect, data.drug1_effect[rows])
    np.testing.assert_array_equal(picked.drug2_effect, data.drug2_effect[rows])
    np.testing.assert_array_equal(picked.drug1_var, data.drug1_var[rows])
    np.testing.assert_array_equal(picked.drug2_var, data.drug2_var[rows])
    taken = pairs.take(rows)
    for name in ("drug1_effect", "drug2_effect", "drug1_var", "drug2_var"):
        np.testing.assert_array_equal(getattr(taken, name), getattr(picked, name))
    np.testing.assert_array_equal(pairs.take(slice(2, 4)).drug2_var, data.drug2_var[2:4])


def test_swapped_exchanges_effects_and_variances_together() -> None:
    data = random_dataset(4, 7, seed=1)
    pairs = PairBatch.from_dataset(data)
    swapped = pairs.swapped()
    np.testing.assert_array_equal(swapped.drug1_effect, data.drug2_effect)
    np.testing.assert_array_equal(swapped.drug2_effect, data.drug1_effect)
    np.testing.assert_array_equal(swapped.drug1_var, data.drug2_var)
    np.testing.assert_array_equal(swapped.drug2_var, data.drug1_var)
    np.testing.assert_array_equal(swapped.drug1_measured, ~np.isnan(data.drug2_effect))
    np.testing.assert_array_equal(pairs.drug2_measured, ~np.isnan(data.drug2_effect))
    assert np.isnan(data.drug1_effect).any()  # the masks above were tested on missing values


def test_from_library_picks_pairs_of_drugs_on_chosen_genes() -> None:
    rng = np.random.default_rng(2)
    effects = rng.normal(size=(5, 6)).astype(np.float32)
    variances = rng.random(size=(5, 6)).astype(np.float32)
    library = DrugLibrary(effects=effects, variances=variances, genes=list("abcdef"), drugs=["d0", "d1", "d2", "d3", "d4"])
    left, right, columns = np.array([0, 3, 4]), np.array([2, 1, 0]), np.array([5, 1])
    pairs = PairBatch.from_library(library, left, right, columns)
    np.testing.assert_array_equal(pairs.drug1_effect, effects[left][:, columns])
    np.testing.assert_array_equal(pairs.drug2_effect, effects[right][:, columns])
    np.testing.assert_array_equal(pairs.drug1_var, variances[left][:, columns])
    np.testing.assert_array_equal(pairs.drug2_var, variances[right][:, columns])
    no_variances = DrugLibrary(effects=effects, genes=list("abcdef"), drugs=library.drugs)
    assert not PairBatch.from_library(no_variances, left, right).has_variances


def test_inputs_are_checked_once() -> None:
    one = PairBatch(np.arange(4.0), np.ones(4))  # one pair given as 1-D rows
    assert one.shape == (1, 4) and one.drug1_effect.dtype == np.float32 and not one.has_variances
    assert PairBatch(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), None).drug1_var is None  # both or neither
    with pytest.raises(DataError, match="differ in shape"):
        PairBatch(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(DataError, match="drug2_var"):
        PairBatch(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(DataError, match="n_pairs x n_genes"):
        PairBatch(np.ones((2, 3, 1)), np.ones((2, 3, 1)))
    with pytest.raises(AttributeError):
        one.drug1_effect = np.zeros((1, 4))  # frozen


def test_drug_axis_is_the_nets_batch_layout_and_what_the_datamodule_serves() -> None:
    from combomap.data.datamodule import ComboBlocks

    data = random_dataset(5, 7, seed=2)
    effects, variances = PairBatch.from_dataset(data).drug_axis()
    assert effects.shape == variances.shape == (5, 2, 7)
    np.testing.assert_array_equal(effects[:, 0], data.drug1_effect)
    np.testing.assert_array_equal(effects[:, 1], data.drug2_effect)
    np.testing.assert_array_equal(variances[:, 1], data.drug2_var)
    batch = ComboBlocks(data, with_variances=True)[[3, 1]]
    np.testing.assert_array_equal(batch["effects"].numpy(), effects[[3, 1]])
    np.testing.assert_array_equal(batch["variances"].numpy(), variances[[3, 1]])
    assert "variances" not in ComboBlocks(data, with_variances=False)[[0]]
    assert PairBatch(data.drug1_effect, data.drug2_effect).drug_axis()[1] is None
