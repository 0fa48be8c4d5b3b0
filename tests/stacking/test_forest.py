"""The compiled stacker reproduces each backend's own predictions, row by row and pair by pair."""

from __future__ import annotations

import numpy as np
import pytest

from combomap.stacking.backends import StackerSettings, make_backend
from combomap.data.pairs import PairBatch
from combomap.stacking.features import FEATURES, stacked_prediction
from combomap.stacking.forest import ForestError, _float32_above, compile_stacker


def _table(n_rows: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One column per feature, with NaN and exact zeros in every column, so every missing-value rule is exercised."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(n_rows, len(FEATURES))).astype(np.float32)
    table[rng.random(table.shape) < 0.12] = np.nan
    table[rng.random(table.shape) < 0.05] = 0.0
    clean = np.nan_to_num(table)
    label = clean[:, 0] + 0.5 * clean[:, 1] * clean[:, 2] - np.abs(clean[:, 3]) + np.isnan(table[:, 4]) + 0.1 * rng.normal(size=n_rows)
    return table, label


def _fit(backend: str, params: dict | None = None, depth: int = 7, rounds: int = 5):
    table, label = _table()
    if "poisson" in str((params or {}).get("objective")):
        label = np.abs(label)
    settings = StackerSettings.original(name=backend, max_depth=depth, n_rounds=rounds, n_threads=1, params=params or {})
    return make_backend(settings).fit(table, label, feature_names=list(FEATURES))


BACKENDS = [
    ("xgboost", {}),
    ("xgboost", {"max_bin": 32, "min_child_weight": 5}),
    ("lightgbm", {}),  # missing_type NaN
    ("lightgbm", {"zero_as_missing": True}),  # missing_type Zero: zero and NaN to the default side
    ("lightgbm", {"use_missing": False}),  # missing_type None: NaN read as 0.0
]


@pytest.mark.parametrize("backend,params", BACKENDS)
def test_compiled_rows_equal_the_backend_bit_for_bit(backend: str, params: dict) -> None:
    stacker = _fit(backend, params)
    forest = compile_stacker(stacker)
    assert forest.n_trees == stacker.n_trees and forest.depth <= 7
    table, _ = _table(3000, seed=1)
    table[:7] = np.array([0.0, -0.0, np.nan, 1e-36, -1e-36, np.inf, -np.inf], dtype=np.float32)[:, None]
    expected = stacker.predict(table)
    got = forest.predict(table, n_threads=2)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert forest.zero_missing == bool(params.get("zero_as_missing"))


def test_thresholds_split_float32_inputs_like_the_double_comparison() -> None:
    rng = np.random.default_rng(2)
    for threshold in np.concatenate([rng.normal(size=300), [0.0, -0.0, 1e-40, 1.0, 0.1, 3.4e38, -1e300]]):
        bound = np.float32(_float32_above(float(threshold)))
        assert float(bound) > threshold
        with np.errstate(over="ignore"):  # below the lowest float32 is -inf
            assert float(np.nextafter(bound, np.float32(-np.inf))) <= threshold
    assert np.isnan(_float32_above(1e300)) and np.isnan(_float32_above(float(np.finfo(np.float32).max)))


def _pairs_reference(stacker, names, effects, variances, left, right, nets, symmetric=True, projected=None) -> np.ndarray:
    """The one reference: build_features + the backend's predict per fold net, averaged (stacked_prediction)."""
    pairs = PairBatch.from_drugs(effects, variances, left, right)
    return stacked_prediction(stacker, names, pairs, nets, symmetric,
                              None if projected is None else (projected[left], projected[right]))


def _pair_inputs(seed: int = 3, n_drugs: int = 25, n_genes: int = 31):
    rng = np.random.default_rng(seed)
    effects = rng.normal(size=(n_drugs, n_genes)).astype(np.float32)
    effects[rng.random(effects.shape) < 0.15] = np.nan
    variances = np.abs(rng.normal(size=(n_drugs, n_genes))).astype(np.float32)
    variances[rng.random(variances.shape) < 0.1] = np.nan
    effects[4] = effects[5]  # equal effects: the order falls to the variances
    left = np.array([0, 4, 5, 7, 3, 12, 24, 1, 8])
    right = np.array([1, 5, 4, 7, 20, 11, 0, 2, 9])
    nets = [rng.normal(size=(len(left), n_genes)).astype(np.float32) for _ in range(3)]
    projected = np.nan_to_num(effects) * np.float32(0.6) + rng.normal(size=effects.shape).astype(np.float32) * np.float32(0.2)
    return effects, variances, left, right, nets, projected


@pytest.mark.parametrize("backend,params", [BACKENDS[0], BACKENDS[3]])
@pytest.mark.parametrize(
    "names,n_nets,with_variances,symmetric",
    [
        (list(FEATURES), 2, True, True),
        (list(FEATURES), 3, True, False),
        (["d1", "net_pred", "v2", "d2", "v1"], 1, True, True),  # any column order
        (list(FEATURES), 2, False, True),  # no variances: v1/v2 are NaN
        (["d1", "d2", "v1", "v2"], 0, True, True),  # no nets
        (["d1", "d2", "p1", "p2"], 0, True, True),  # the latent set: projections swap with the effects
        (["p2", "net_pred", "d1", "v1", "p1", "d2", "v2"], 2, True, True),
        (["p1", "p2", "d1"], 1, False, False),
    ],
)
def test_compiled_pairs_equal_build_features_and_predict(backend, params, names, n_nets, with_variances, symmetric) -> None:
    rng = np.random.default_rng(4)
    table = rng.normal(size=(5000, len(names))).astype(np.float32)
    table[rng.random(table.shape) < 0.1] = np.nan
    label = np.nan_to_num(table).sum(axis=1) + np.nan_to_num(table[:, 0]) ** 2
    settings = StackerSettings.original(name=backend, max_depth=6, n_rounds=4, n_threads=1, params=params)
    stacker = make_backend(settings).fit(table, label, feature_names=names)
    forest = compile_stacker(stacker)
    effects, variances, left, right, nets, projected = _pair_inputs()
    variances = variances if with_variances else None
    projected = projected if {"p1", "p2"} & set(names) else None
    nets = nets[:n_nets]
    got = forest.predict_pairs(names, effects, variances, left, right, nets, symmetric=symmetric, projected=projected)
    expected = _pairs_reference(stacker, names, effects, variances, left, right, nets, symmetric, projected)
    assert got.shape == (len(left), effects.shape[1]) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    if symmetric:
        swapped = forest.predict_pairs(names, effects, variances, right, left, nets, symmetric=True, projected=projected)
        np.testing.assert_array_equal(swapped, got)


def test_compiled_kernel_is_deterministic_across_thread_counts() -> None:
    stacker = _fit("xgboost", depth=9, rounds=6)
    forest = compile_stacker(stacker)
    table, _ = _table(20000, seed=5)
    one = forest.predict(table, n_threads=1)
    np.testing.assert_array_equal(one, forest.predict(table, n_threads=2))
    np.testing.assert_array_equal(one, forest.predict(table, n_threads=2))


def test_what_cannot_be_compiled_is_refused() -> None:
    with pytest.raises(ForestError, match="not fitted"):
        compile_stacker(make_backend(StackerSettings.original(name="xgboost")))
    poisson = _fit("xgboost", {"objective": "count:poisson"}, depth=3, rounds=2)
    with pytest.raises(ForestError, match="identity link"):
        compile_stacker(poisson)
    lightgbm_poisson = _fit("lightgbm", {"objective": "poisson"}, depth=3, rounds=2)
    with pytest.raises(ForestError, match="identity link"):
        compile_stacker(lightgbm_poisson)
    forest = compile_stacker(_fit("xgboost", depth=3, rounds=2))
    with pytest.raises(ForestError, match=rf"rows x {len(FEATURES)}"):
        forest.predict(np.zeros((3, 4), np.float32))
    effects, variances, left, right, _, _ = _pair_inputs()
    with pytest.raises(ForestError, match="net_pred"):
        forest.predict_pairs(list(FEATURES), effects, variances, left, right, [])
    with pytest.raises(ForestError, match="p1/p2"):
        forest.predict_pairs(list(FEATURES), effects, variances, left, right, [effects[left]])
