"""A combination is unordered: every pair model predicts (A, B) exactly as (B, A), whatever the values, ties, signed
zeros and unmeasured (NaN) entries, with or without variances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from combomap.data.pairs import PairBatch
from combomap.evaluation.baselines import additive, average
from combomap.models.latent import fit_basis
from combomap.models.latent_net import LatentPairNet
from combomap.models.learned import LinearComboModel
from combomap.stacking.backends import LightGBMStacker
from combomap.stacking.features import build_features, measured_rows
from combomap.stacking.final_model import StackedModel
from combomap.stacking.oof import symmetric_net_prediction
from tests.conftest import random_dataset
from tests.properties.strategies import blocks, fast, pair_batches
from tests.stacking.helpers import random_portable

N_GENES = 6
STACKED_FEATURES = ["net_pred", "d1", "d2", "v1", "v2"]


def _swapped_equal(predict, pairs: PairBatch) -> None:
    np.testing.assert_array_equal(predict(pairs), predict(pairs.swapped()))


@fast(60)
@given(st.integers(1, 4).flatmap(lambda n: st.tuples(blocks((n, 5)), blocks((n, 5)))))
def test_average_and_additive(arrays: tuple[np.ndarray, np.ndarray]) -> None:
    first, second = arrays
    for model in (average, additive):
        np.testing.assert_array_equal(model(first, second), model(second, first))


@pytest.fixture(scope="module")
def learned_models() -> dict[str, LinearComboModel]:
    """Both learned baselines fitted on drugs that recur, so the interaction model has per-drug profiles."""
    data = random_dataset(n_combos=16, n_genes=N_GENES, seed=2)
    drugs = ["A", "B", "C", "D", "E"]
    rng = np.random.default_rng(2)
    pairs = [rng.choice(drugs, size=2, replace=False) for _ in range(data.n_combos)]
    data.combos["drug1"], data.combos["drug2"] = [p[0] for p in pairs], [p[1] for p in pairs]
    models = {kind: LinearComboModel.fit(data, kind) for kind in ("additive_shift", "interaction")}
    assert models["interaction"].profiles is not None
    return models


@fast(40)
@given(pair_batches(n_genes=N_GENES, names=["A", "B", "C", "D", "E", "unseen"]))
def test_learned_baselines(learned_models: dict[str, LinearComboModel], pairs: PairBatch) -> None:
    for model in learned_models.values():
        _swapped_equal(model.predict, pairs)


@fast(40)
@given(pair_batches(n_genes=N_GENES), st.booleans())
def test_portable_mlp_symmetric_prediction(pairs: PairBatch, uses_variances: bool) -> None:
    """The fold nets are order-dependent MLPs; what the stacker and the query use is their symmetric prediction."""
    net = random_portable([f"G{j}" for j in range(N_GENES)], seed=3, uses_variances=uses_variances)
    if uses_variances and not pairs.has_variances:
        pairs = PairBatch(pairs.drug1_effect, pairs.drug2_effect, np.ones(pairs.shape), np.ones(pairs.shape))
    _swapped_equal(lambda batch: symmetric_net_prediction(net, batch), pairs)


@pytest.fixture(scope="module")
def latent_net():
    """The latent net (symmetric by construction) with random weights everywhere, as its NumPy predictor."""
    rng = np.random.default_rng(0)
    profiles = (rng.normal(size=(40, 3)) * 3) @ rng.normal(size=(3, N_GENES)) + 0.2 * rng.normal(size=(40, N_GENES))
    basis = fit_basis(profiles, [f"G{j}" for j in range(N_GENES)], rank=3)
    net = LatentPairNet(basis, hidden_sizes=[5], hidden_dropout=0.0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return net.eval().to_portable(basis.genes)


@fast(40)
@given(pair_batches(n_genes=N_GENES))
def test_portable_latent_net(latent_net, pairs: PairBatch) -> None:
    _swapped_equal(latent_net.predict, pairs)


@pytest.fixture(scope="module")
def saved_stacked_model(tmp_path_factory: pytest.TempPathFactory) -> StackedModel:
    """A tiny stacked model (two stand-in fold nets, a 4-round LightGBM stacker on effects and variances,
    symmetric=true), saved and loaded."""
    data = random_dataset(n_combos=10, n_genes=N_GENES, seed=5)
    nets = [random_portable(data.genes, seed=seed, uses_variances=False) for seed in (1, 2)]
    pairs = PairBatch.from_dataset(data)
    rows = measured_rows(data.combo_effect)
    features = build_features(STACKED_FEATURES, pairs, net_pred=symmetric_net_prediction(nets[0], pairs), rows=rows)
    stacker = LightGBMStacker(max_depth=3, n_rounds=4, n_threads=1, min_rows_per_leaf=2).fit(
        features, data.combo_effect.reshape(-1)[rows], feature_names=STACKED_FEATURES
    )
    model = StackedModel(stacker=stacker, features=STACKED_FEATURES, genes=data.genes, nets=nets, symmetric=True)
    loaded = StackedModel.load(model.save(Path(tmp_path_factory.mktemp("stacked")) / "model"))
    assert loaded.symmetric and loaded.features == STACKED_FEATURES
    return loaded


@fast(25)
@given(pair_batches(n_genes=N_GENES, with_variances=True), st.sampled_from(["per_net", "mean_net"]))
def test_saved_stacked_model(saved_stacked_model: StackedModel, pairs: PairBatch, inference: str) -> None:
    _swapped_equal(lambda batch: saved_stacked_model.predict(batch, inference=inference), pairs)
