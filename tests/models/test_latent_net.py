"""The latent net: symmetric by construction, starts as the projected average, portable == torch, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from combomap.data.pairs import PairBatch
from combomap.models.latent import fit_basis
from combomap.models.latent_net import LatentPairNet, projected_dataset
from combomap.models.portable import load_net
from tests.conftest import random_dataset


def _basis(n_genes: int = 30, rank: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    profiles = (rng.normal(size=(80, rank)) * 3) @ rng.normal(size=(rank, n_genes)) + 0.2 * rng.normal(size=(80, n_genes))
    return fit_basis(profiles, [f"G{j}" for j in range(n_genes)], rank=rank)


def _trained_like(net: LatentPairNet, seed: int = 1) -> LatentPairNet:
    """Random weights everywhere (rho's last layer starts at zero), so every term is exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return net.eval()


def test_untrained_net_is_the_average_of_the_projected_drugs() -> None:
    basis = _basis()
    data = random_dataset(n_combos=6, n_genes=30)
    portable = LatentPairNet(basis, hidden_sizes=[8]).to_portable(basis.genes)
    expected = 0.5 * (basis.project(data.drug1_effect) + basis.project(data.drug2_effect))
    np.testing.assert_allclose(portable.predict(PairBatch.from_dataset(data)), expected, atol=1e-5)


def test_prediction_is_exactly_symmetric_and_portable_equals_torch() -> None:
    basis = _basis()
    data = random_dataset(n_combos=7, n_genes=30, missing=0.2)
    net = _trained_like(LatentPairNet(basis, hidden_sizes=[8], hidden_dropout=0.0))
    portable = net.to_portable(basis.genes)
    forward = portable.predict(PairBatch.from_dataset(data))
    np.testing.assert_array_equal(forward, portable.predict(PairBatch.from_dataset(data).swapped()))
    projected = projected_dataset(data, basis)
    effects = torch.tensor(np.stack([projected.drug1_effect, projected.drug2_effect], axis=1))
    with torch.no_grad():
        torch_forward = net(effects).numpy()
        torch_backward = net(effects.flip(1)).numpy()
    np.testing.assert_allclose(torch_forward, forward, atol=1e-4)
    np.testing.assert_allclose(torch_forward, torch_backward, atol=1e-5)


def test_saved_net_loads_as_the_same_predictor_and_damage_is_refused(tmp_path) -> None:
    basis = _basis()
    data = random_dataset(n_combos=5, n_genes=30)
    portable = _trained_like(LatentPairNet(basis, hidden_sizes=[6])).to_portable(basis.genes)
    path = portable.save(tmp_path / "fold0.safetensors")
    loaded = load_net(path)
    assert type(loaded) is type(portable) and loaded.genes == basis.genes
    np.testing.assert_array_equal(loaded.predict(PairBatch.from_dataset(data)),
                                  portable.predict(PairBatch.from_dataset(data)))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="readable"):
        load_net(path)
    with pytest.raises(ValueError, match="non-finite"):
        bad = portable.slope.copy()
        bad[0] = np.nan
        type(portable)(phi=portable.phi, rho=portable.rho, slope=bad, activation=portable.activation, basis=basis)


def test_fit_mlp_trains_the_latent_net_and_scores_it_on_raw_inputs(compose_cfg) -> None:
    from combomap.data.simulate import simulate_compendium
    from combomap.jobs.train import fit_mlp

    cfg = compose_cfg("train", ["model=latent_mlp", "data.preset=tiny", "trainer.max_epochs=30"])
    data = simulate_compendium("tiny", 0)
    result = fit_mlp(cfg, data)
    assert type(result.predictor).__name__ == "PortableLatentNet"
    val = data.subset([list(data.combos["combo"]).index(c) for c in result.datamodule.val_set.combos["combo"]])
    predicted = result.predictor.predict(PairBatch.from_dataset(val))
    from combomap.evaluation.metrics import sign_accuracy

    assert result.metrics["val/sign_acc"] == pytest.approx(sign_accuracy(val.combo_effect, predicted))
    assert result.metrics["val/sign_acc"] > result.metrics["val_average/sign_acc"] - 0.05


def test_latent_net_with_an_explicit_validation_set_scores_each_split_on_its_own_rows(compose_cfg) -> None:
    from combomap.data.simulate import simulate_compendium
    from combomap.evaluation.metrics import sign_accuracy
    from combomap.jobs.train import fit_mlp

    cfg = compose_cfg("train", ["model=latent_mlp", "data.preset=tiny", "trainer.max_epochs=5",
                                "datamodule.test_fraction=0.3", "datamodule.split_by=row"])
    data = simulate_compendium("tiny", 0)
    train, val = data.subset(list(range(8))), data.subset(list(range(8, 12)))
    result = fit_mlp(cfg, train, val)
    test = train.subset(result.split["test"])
    predicted = result.predictor.predict(PairBatch.from_dataset(test))
    assert result.metrics["test/sign_acc"] == pytest.approx(sign_accuracy(test.combo_effect, predicted))
    on_val = result.predictor.predict(PairBatch.from_dataset(val))
    assert result.metrics["val/sign_acc"] == pytest.approx(sign_accuracy(val.combo_effect, on_val))
