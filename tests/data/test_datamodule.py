"""Splits (grouped by study by default) and batches of the MLP's DataModule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from combomap.data.datamodule import ComboDataModule, split_indices
from combomap.data.dataset import DataError
from combomap.data.augment import AugmentConfig
from tests.conftest import random_dataset


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_split_keeps_each_study_on_one_side(seed: int) -> None:
    dataset = random_dataset(n_combos=40, n_genes=5, seed=seed)
    train, val, test = split_indices(dataset, val_fraction=0.2, test_fraction=0.2, split_by="study", seed=seed)
    studies = dataset.combos["study"].to_numpy()
    sides = [set(studies[rows]) for rows in (train, val, test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(40))
    assert len(val) >= 8 and len(test) >= 8 and len(val) <= 10 and len(test) <= 10


def test_row_split_is_the_original_protocol_and_seeded() -> None:
    dataset = random_dataset(n_combos=50, n_genes=5)
    train, val, test = split_indices(dataset, val_fraction=0.2, split_by="row", seed=0)
    assert (len(train), len(val), len(test)) == (40, 10, 0)
    again = split_indices(dataset, val_fraction=0.2, split_by="row", seed=0)
    assert np.array_equal(val, again[1])
    assert not np.array_equal(val, split_indices(dataset, val_fraction=0.2, split_by="row", seed=1)[1])
    assert len(split_indices(dataset, val_fraction=0.0)[1]) == 0
    with pytest.raises(ValueError, match="split_by"):
        split_indices(dataset, split_by="drug")
    with pytest.raises(ValueError):
        split_indices(dataset, val_fraction=0.6, test_fraction=0.5)


def test_batches_hold_raw_blocks_and_augment_only_in_training() -> None:
    dataset = random_dataset(n_combos=20, n_genes=7)
    dm = ComboDataModule(dataset, batch_size=6, with_variances=True, augment=AugmentConfig(flip=True))
    batch = next(iter(dm.train_dataloader()))
    assert batch["effects"].shape == (6, 2, 7) and batch["variances"].shape == (6, 2, 7) and batch["target"].shape == (6, 7)
    assert torch.isnan(batch["effects"]).any()  # NaN is kept; the model fills it
    sizes = [len(b["target"]) for b in dm.train_dataloader()]
    assert sum(sizes) == dm.train_set.n_combos and max(sizes) == 6
    assert dm.on_after_batch_transfer(batch, 0) is batch  # no trainer -> not training -> no augmentation
    val_rows = np.concatenate([b["target"].numpy() for b in dm.val_dataloader()])
    np.testing.assert_array_equal(val_rows, dm.val_set.combo_effect)  # in order, unshuffled


def test_explicit_validation_set_and_variance_check() -> None:
    dataset = random_dataset(n_combos=20, n_genes=7)
    other = random_dataset(n_combos=6, n_genes=7, seed=3)
    dm = ComboDataModule(dataset, val_dataset=other)
    assert dm.train_set.n_combos == 20 and dm.val_set is other
    no_var = random_dataset(n_combos=20, n_genes=7)
    no_var.drug1_var = no_var.drug2_var = None
    with pytest.raises(DataError, match="variances"):
        ComboDataModule(no_var, with_variances=True)
