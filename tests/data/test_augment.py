"""Drug-order augmentations: which entries swap, variances follow, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from combomap.config.training import net_recipe
from combomap.data.augment import AugmentConfig, Augmenter, orient_rows
from combomap.models.builders import build_datamodule
from tests.conftest import random_dataset


def _batch(batch_size: int = 10, n_genes: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    effects = torch.randn(batch_size, 2, n_genes, generator=generator)
    effects[0, 0, 3] = float("nan")
    return {
        "effects": effects,
        "variances": torch.rand(batch_size, 2, n_genes, generator=generator) + 0.1,
        "target": torch.randn(batch_size, n_genes, generator=generator),
    }


def _exchanged(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(B, G) bool: entries whose drug1/drug2 values were exchanged (inputs are distinct almost surely)."""
    same = torch.isclose(after, before, equal_nan=True).all(dim=1)
    crossed = torch.isclose(after[:, 0], before[:, 1], equal_nan=True) & torch.isclose(after[:, 1], before[:, 0], equal_nan=True)
    assert bool((same | crossed).all()), "every entry is either kept or exchanged"
    return crossed & ~same


def test_flip_swaps_half_the_samples_on_one_shared_gene_coin() -> None:
    batch = _batch(batch_size=11)
    out = Augmenter(AugmentConfig(name="flip", flip=True), seed=3)(batch)
    swapped = _exchanged(batch["effects"], out["effects"])
    picked = swapped.any(dim=1)
    assert int(picked.sum()) == 11 // 2  # exactly floor(B / 2) samples picked
    coin = swapped[picked][0]
    assert bool((swapped[picked] == coin).all())  # the same genes swap in every picked sample
    assert 0 < int(coin.sum()) < 64  # a coin per gene, not all-or-nothing
    assert not bool(swapped[~picked].any())
    # Variance blocks follow the effects exactly; the target is untouched.
    assert torch.equal(_exchanged(batch["variances"], out["variances"]), swapped)
    assert out["target"] is batch["target"]
    # NaN moves with its value: sample 0's drug1 gene 3 is NaN before; after, it sits where the swap put it.
    assert torch.isnan(out["effects"][0, 1 if swapped[0, 3] else 0, 3])


def test_flip_is_reproducible_with_a_seed_and_varies_between_batches() -> None:
    batch = _batch()
    config = AugmentConfig(name="flip", flip=True)
    first, second = Augmenter(config, seed=7), Augmenter(config, seed=7)
    a1, b1 = first(batch), second(batch)
    assert torch.equal(a1["effects"].nan_to_num(), b1["effects"].nan_to_num())
    a2 = first(batch)
    assert not torch.equal(a1["effects"].nan_to_num(), a2["effects"].nan_to_num())
    other = Augmenter(config, seed=8)(batch)
    assert not torch.equal(a1["effects"].nan_to_num(), other["effects"].nan_to_num())


def test_swap_exchanges_whole_rows_and_none_is_identity() -> None:
    batch = _batch(batch_size=40)
    out = Augmenter(AugmentConfig(name="swap", swap=True), seed=0)(batch)
    swapped = _exchanged(batch["effects"], out["effects"])
    rows = swapped.any(dim=1)
    assert bool((swapped[rows]).all())  # whole rows
    assert 5 < int(rows.sum()) < 35
    assert torch.equal(_exchanged(batch["variances"], out["variances"]), swapped)
    assert Augmenter(AugmentConfig(), seed=0)(batch) is batch


def test_swap_flip_without_variances() -> None:
    batch = _batch()
    del batch["variances"]
    out = Augmenter(AugmentConfig(name="swap_flip", swap=True, flip=True), seed=1)(batch)
    assert "variances" not in out
    _exchanged(batch["effects"], out["effects"])  # still only exchanges, per entry


def test_orient_rows_swaps_half_of_the_rows_once() -> None:
    rng = np.random.default_rng(0)
    effects = rng.normal(size=(9, 2, 5)).astype(np.float32)
    variances = rng.random(size=(9, 2, 5)).astype(np.float32)
    new_effects, new_variances, swapped = orient_rows(effects, variances, seed=0)
    assert swapped.sum() == 4
    np.testing.assert_array_equal(new_effects[swapped], effects[swapped][:, ::-1])
    np.testing.assert_array_equal(new_effects[~swapped], effects[~swapped])
    np.testing.assert_array_equal(new_variances[swapped], variances[swapped][:, ::-1])
    np.testing.assert_array_equal(orient_rows(effects, variances, seed=0)[2], swapped)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("none", AugmentConfig()),
        ("swap", AugmentConfig(name="swap", swap=True)),
        ("flip", AugmentConfig(name="flip", flip=True)),
        ("swap_flip", AugmentConfig(name="swap_flip", swap=True, flip=True)),
    ],
)
def test_each_augment_option_composes_and_builds_its_config(compose_cfg, option: str, expected: AugmentConfig) -> None:
    config = net_recipe(compose_cfg("train", [f"augment={option}"])).augment
    assert config == expected
    batch = _batch()
    out = Augmenter(config, seed=0)(batch)
    exchanged = _exchanged(batch["effects"], out["effects"])
    assert bool(exchanged.any()) == (option != "none")
    if expected.swap and not expected.flip:
        assert bool(exchanged.all(dim=1)[exchanged.any(dim=1)].all())  # whole rows only


def test_augment_settings_reach_the_config_and_the_datamodule(compose_cfg) -> None:
    recipe = net_recipe(compose_cfg("train", ["augment=swap", "augment.swap_p=1.0", "augment.orient_rows=true"]))
    config = recipe.augment
    assert config == AugmentConfig(name="swap", swap=True, swap_p=1.0, orient_rows=True)
    batch = _batch()
    out = Augmenter(config, seed=0)(batch)
    assert torch.equal(out["effects"].nan_to_num(), batch["effects"].flip(1).nan_to_num())  # every row swaps
    datamodule = build_datamodule(recipe, random_dataset(8, 6))
    assert datamodule.augmenter is not None and datamodule.augmenter.config == config
