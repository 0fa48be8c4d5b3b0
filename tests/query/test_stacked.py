"""The stacked model's fast pair path equals StackedModel.predict on materialized pairs, then scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from combomap.data.dataset import DataError
from combomap.data.pairs import PairBatch
from combomap.models.latent import fit_basis
from combomap.models.portable import PortableMLP
from combomap.models.portable_latent import PortableLatentNet
from combomap.query.pair_scoring import iter_pair_blocks
from combomap.query.scores import prepare_query
from combomap.query.search import rank_pairs
from combomap.query.stacked import (
    BackendPredictor,
    CompiledPredictor,
    DrugInputs,
    StackedPairModel,
    factorized_net,
    load_stacked_model,
)
from combomap.settings import SettingsError
from combomap.stacking.backends import StackerSettings, make_backend
from combomap.stacking.features import FEATURES, needs_projections, stacked_prediction
from combomap.stacking.forest import compile_stacker
from combomap.stacking.final_model import ModelFormatError, StackedModel
from combomap.stacking.oof import symmetric_net_prediction
from tests.query.helpers import all_pairs, ranked, small_library


def _net(genes: list[str], hidden: list[int], activation: str, seed: int, variances: bool = True, mask: bool = False) -> PortableMLP:
    rng = np.random.default_rng(seed)
    sizes = [2 * len(genes) * (1 + variances + mask), *hidden, len(genes)]
    return PortableMLP(
        weights=[rng.normal(scale=0.3, size=(sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1)],
        biases=[rng.normal(scale=0.1, size=sizes[i + 1]) for i in range(len(sizes) - 1)],
        activation=activation, genes=genes, uses_variances=variances, uses_mask=mask, var_fill=0.2,
    )


def _latent_net(basis, seed: int) -> PortableLatentNet:
    rng = np.random.default_rng(seed)
    rank, hidden = basis.rank, 7
    return PortableLatentNet(
        phi=[(rng.normal(size=(hidden, rank)).astype(np.float32), rng.normal(size=hidden).astype(np.float32)),
             (rng.normal(size=(hidden, hidden)).astype(np.float32), rng.normal(size=hidden).astype(np.float32))],
        rho=(rng.normal(size=(rank, hidden)).astype(np.float32), rng.normal(size=rank).astype(np.float32)),
        slope=rng.uniform(0.3, 0.7, size=rank).astype(np.float32), activation="very_leaky_relu", basis=basis,
    )


def _model(library, features=FEATURES, inference="per_net", symmetric=True, n_nets=2, backend="xgboost",
           latent_nets=False) -> StackedModel:
    rng = np.random.default_rng(0)
    table = rng.normal(size=(4000, len(features))).astype(np.float32)
    label = table[:, 0] + 0.3 * table[:, -1] + 0.1 * rng.normal(size=4000)
    stacker = make_backend(StackerSettings.original(name=backend, max_depth=5, n_rounds=4, n_threads=1)).fit(
        table, label, feature_names=list(features)
    )
    basis = fit_basis(library.effects, library.genes, rank=4, source="library")
    if "net_pred" not in features:
        nets = []
    elif latent_nets:
        nets = [_latent_net(basis, seed) for seed in range(n_nets)]
    else:
        nets = [_net(library.genes, [12], "very_leaky_relu", seed) for seed in range(n_nets)]
    return StackedModel(stacker=stacker, features=list(features), genes=list(library.genes), nets=nets,
                        symmetric=symmetric, inference=inference, basis=basis if needs_projections(features) else None)


def _naive_signatures(model, library, prepared, left, right) -> np.ndarray:
    full = model.predict(PairBatch.from_library(library, left, right))
    return full[:, prepared.columns].astype(np.float64)  # model genes == library genes here


@pytest.mark.parametrize("predictor", ["compiled", "backend"])
@pytest.mark.parametrize(
    "features,inference,symmetric,backend,latent_nets",
    [
        (FEATURES, "per_net", True, "xgboost", False),
        (FEATURES, "mean_net", True, "xgboost", False),
        (FEATURES, "per_net", False, "xgboost", False),
        (("d1", "d2", "v1", "v2"), "per_net", True, "xgboost", False),
        (FEATURES, "per_net", True, "lightgbm", False),
        (("d1", "d2", "p1", "p2"), "per_net", True, "xgboost", False),
        (FEATURES, "per_net", True, "xgboost", True),  # latent fold nets
        (("net_pred", "d1", "d2"), "mean_net", True, "lightgbm", True),
    ],
)
def test_stacked_pair_signatures_equal_the_models_own_prediction(features, inference, symmetric, backend, latent_nets,
                                                                 predictor) -> None:
    library = small_library(n_drugs=14, n_genes=40, seed=11)
    model = _model(library, features, inference, symmetric, backend=backend, latent_nets=latent_nets)
    query = pd.Series(np.random.default_rng(3).normal(size=40), index=library.genes)
    prepared = prepare_query(query, library, "pearson", top_n=25, allowed_genes=model.genes)
    pair_model = StackedPairModel(model, library, prepared, stacker_predictor=predictor)
    assert pair_model.stacker_predictor == predictor
    assert isinstance(pair_model.predictor, CompiledPredictor if predictor == "compiled" else BackendPredictor)
    for block in iter_pair_blocks(library.n_drugs, np.array([2, 9]), 11):
        fast = pair_model.signatures(block)
        naive = _naive_signatures(model, library, prepared, block.left, block.right)
        np.testing.assert_allclose(fast, naive, atol=1e-5)


@pytest.mark.parametrize("score", ["pearson", "cosine", "spearman"])
def test_stacked_pair_scores_equal_naive_materialize_and_score(score: str) -> None:
    library = small_library(n_drugs=16, n_genes=36, seed=12)
    model = _model(library)
    query = pd.Series(np.random.default_rng(4).normal(size=36), index=library.genes)
    prepared = prepare_query(query, library, score, top_n=20, allowed_genes=model.genes)
    ranking = rank_pairs(library, prepared, StackedPairModel(model, library, prepared), top_k=None, block_pairs=17)
    pairs = np.array(all_pairs(library.n_drugs))
    naive = prepared.score_block(_naive_signatures(model, library, prepared, pairs[:, 0], pairs[:, 1]))
    names = np.asarray(library.drugs)
    expected = pd.DataFrame({"drug1": names[pairs[:, 0]], "drug2": names[pairs[:, 1]], "naive": naive})
    merged = ranking.table.merge(expected, on=["drug1", "drug2"], validate="one_to_one")
    assert len(merged) == 120 == ranking.n_pairs
    np.testing.assert_allclose(merged.score, merged.naive, atol=1e-5)
    top = rank_pairs(library, prepared, StackedPairModel(model, library, prepared), top_k=7, block_pairs=5).table
    pd.testing.assert_frame_equal(top, ranking.table.head(7))


@pytest.mark.parametrize("activation", ["very_leaky_relu", "relu", "identity", "tanh"])
@pytest.mark.parametrize("hidden", [[10], [10, 6]])
def test_factorized_net_equals_the_full_forward_pass(activation: str, hidden: list[int]) -> None:
    library = small_library(n_drugs=9, n_genes=30, seed=13)
    net = _net(library.genes, hidden, activation, seed=5, variances=True, mask=True)
    prepared = prepare_query(pd.Series(np.arange(30.0) - 15, index=library.genes), library, "pearson", top_n=12)
    factorized = factorized_net(net, library.effects, library.variances, prepared.columns)  # net genes = library's
    for block in iter_pair_blocks(library.n_drugs, None, 8):
        expected = symmetric_net_prediction(net, PairBatch.from_library(library, block.left, block.right))
        np.testing.assert_allclose(factorized.symmetric_prediction(block), expected[:, prepared.columns], atol=1e-5)


def test_stacked_model_errors_and_run_query(tmp_path) -> None:
    library = small_library(n_drugs=8, n_genes=20, seed=14)
    model = _model(library)
    query = pd.Series(np.linspace(-1, 1, 20), index=library.genes)
    wtcs = prepare_query(query, library, "wtcs", top_n=10)
    with pytest.raises(SettingsError, match="query genes only"):
        StackedPairModel(model, library, wtcs)
    no_variances = small_library(n_drugs=8, n_genes=20, seed=14, variances=False)
    with pytest.raises(DataError, match="use variances"):
        StackedPairModel(model, no_variances, prepare_query(query, no_variances, "pearson", 10))
    model.save(tmp_path / "model")
    loaded = load_stacked_model(str(tmp_path / "model"))
    result = ranked(query, library, loaded, top_n=10, pair_model="stacked", pairs_top_k=None)
    assert len(result.pairs) == 28 and result.report["pair_method"] == "streamed"
    with pytest.raises(ModelFormatError, match="manifest"):
        load_stacked_model(str(tmp_path))


def test_stacker_predictor_auto_falls_back_to_the_backend_where_trees_cannot_be_compiled() -> None:
    library = small_library(n_drugs=8, n_genes=20, seed=15)
    model = _model(library)
    prepared = prepare_query(pd.Series(np.linspace(-1, 1, 20), index=library.genes), library, "pearson", 10)
    assert StackedPairModel(model, library, prepared).stacker_predictor == "compiled"
    rng = np.random.default_rng(1)
    table = rng.normal(size=(500, len(FEATURES))).astype(np.float32)
    settings = StackerSettings.original(name="xgboost", max_depth=3, n_rounds=2, n_threads=1, params={"objective": "count:poisson"})
    model.stacker = make_backend(settings).fit(table, np.abs(table[:, 0]), feature_names=list(FEATURES))
    auto = StackedPairModel(model, library, prepared)
    assert auto.stacker_predictor == "backend" and isinstance(auto.predictor, BackendPredictor)
    block = next(iter_pair_blocks(library.n_drugs, None, 50))
    np.testing.assert_allclose(auto.signatures(block), _naive_signatures(model, library, prepared, block.left, block.right), atol=1e-5)
    with pytest.raises(SettingsError, match="pairs.stacker_predictor=compiled: .*identity link"):
        StackedPairModel(model, library, prepared, stacker_predictor="compiled")
    with pytest.raises(SettingsError, match="pairs.stacker_predictor must be one of"):
        StackedPairModel(model, library, prepared, stacker_predictor="gpu")


def test_a_saved_average_model_is_served_by_the_exact_average_path(tmp_path) -> None:
    library = small_library(n_drugs=10, n_genes=30, seed=17)
    model_dir = StackedModel.average(library.genes, info={"feature_set": "average"}).save(tmp_path / "model")
    model = load_stacked_model(str(model_dir))
    assert model.kind == "average" and model.stacker is None
    query = pd.Series(np.random.default_rng(5).normal(size=30), index=library.genes)
    served = ranked(query, library, model, pair_model="stacked", pairs_top_k=None)
    average = ranked(query, library, pair_model="average", pairs_top_k=None)
    assert served.report["stacked_model_kind"] == "average"
    pd.testing.assert_frame_equal(served.pairs, average.pairs)
    pair = np.stack([library.effects[:3], library.effects[3:6]])
    counted = (~np.isnan(pair)).sum(axis=0)
    expected = np.where(counted > 0, np.nansum(pair, axis=0) / np.maximum(counted, 1), np.nan)
    np.testing.assert_allclose(model.predict(PairBatch(pair[0], pair[1])), expected, rtol=1e-6)


def _drug_inputs(seed: int, n_drugs: int = 12, n_genes: int = 17) -> DrugInputs:
    """Per-drug inputs with NaN effects and variances, tied effects (the order falls to the variances) and tied
    effects and variances (the order falls to the projections)."""
    rng = np.random.default_rng(seed)
    effects = rng.normal(size=(n_drugs, n_genes)).astype(np.float32)
    effects[rng.random(effects.shape) < 0.15] = np.nan
    variances = np.abs(rng.normal(size=(n_drugs, n_genes))).astype(np.float32)
    variances[rng.random(variances.shape) < 0.1] = np.nan
    effects[4] = effects[5]
    effects[7], variances[7] = effects[8], variances[8]
    projected = rng.normal(size=effects.shape).astype(np.float32)
    return DrugInputs(effects, variances, projected)


@pytest.mark.parametrize("backend", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("names,n_nets,symmetric", [(FEATURES, 3, True), (FEATURES, 1, False), (("d1", "d2", "v1", "v2"), 0, True),
                                                    (("p2", "d1", "net_pred", "p1", "d2"), 2, True)])
def test_stacker_predictors_equal_the_one_reference_exactly(backend: str, names, n_nets: int, symmetric: bool) -> None:
    """Both stacker predictors of the query == stacked_prediction (build_features + the backend's predict, averaged over nets)
    on the materialized pairs, bit for bit, in either drug order when the model is symmetric."""
    rng = np.random.default_rng(8)
    names = list(names)
    table = rng.normal(size=(3000, len(names))).astype(np.float32)
    table[rng.random(table.shape) < 0.1] = np.nan
    stacker = make_backend(StackerSettings.original(name=backend, max_depth=5, n_rounds=4, n_threads=1)).fit(
        table, np.nan_to_num(table).sum(axis=1), feature_names=names)
    drugs = _drug_inputs(seed=9)
    left = np.array([0, 4, 5, 7, 8, 3, 11, 2])
    right = np.array([1, 5, 4, 8, 7, 3, 0, 9])
    nets = [rng.normal(size=(len(left), 17)).astype(np.float32) for _ in range(n_nets)]
    expected = stacked_prediction(stacker, names, drugs.pairs(left, right), nets, symmetric, drugs.projected_pairs(left, right))
    for predictor in (BackendPredictor(stacker, names, symmetric, drugs),
                      CompiledPredictor(compile_stacker(stacker), names, symmetric, drugs, n_threads=1)):
        got = predictor.predict(left, right, nets)
        assert got.dtype == np.float32 and got.shape == (len(left), 17)
        np.testing.assert_array_equal(got, expected, err_msg=predictor.name)
        if symmetric:
            np.testing.assert_array_equal(predictor.predict(right, left, nets), expected, err_msg=predictor.name)
