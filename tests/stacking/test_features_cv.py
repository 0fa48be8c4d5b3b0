"""Stacker features (names, NaN, canonical drug order) and grouped folds."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from combomap.data.folds import assign_folds
from combomap.data.pairs import PairBatch
from combomap.stacking.cv import combo_groups, iter_folds, stacker_groups
from combomap.stacking.features import FeatureError, build_features, canonical_order, measured_rows
from tests.conftest import random_dataset


def test_features_by_name_keep_nan_and_row_order() -> None:
    data = random_dataset(4, 6, seed=0)
    net = np.arange(24, dtype=np.float32).reshape(4, 6)
    pairs = PairBatch.from_dataset(data)
    features = build_features(["net_pred", "d1", "d2", "v1", "v2"], pairs, net_pred=net, symmetric=False)
    assert features.shape == (24, 5) and features.dtype == np.float32
    np.testing.assert_array_equal(features[:, 0], net.ravel())
    np.testing.assert_array_equal(features[:, 1], data.drug1_effect.ravel())  # NaN kept as NaN
    rows = measured_rows(data.combo_effect)
    subset = build_features(["d2"], pairs, rows=rows, symmetric=False)
    np.testing.assert_array_equal(subset[:, 0], data.drug2_effect.ravel()[rows])
    no_vars = build_features(["d1", "v1"], PairBatch(data.drug1_effect, data.drug2_effect))
    assert np.isnan(no_vars[:, 1]).all()
    with pytest.raises(FeatureError, match="unknown stacker feature"):
        build_features(["d3"], pairs)
    with pytest.raises(FeatureError, match="net_pred"):
        build_features(["net_pred"], pairs)


def test_canonical_order_is_symmetric_with_nan_and_ties() -> None:
    d1 = np.array([1.0, -1.0, np.nan, 2.0, 0.5, np.nan], dtype=np.float32)
    d2 = np.array([0.0, 3.0, 1.0, 2.0, np.nan, np.nan], dtype=np.float32)
    v1 = np.array([0.1, 0.2, 0.3, 0.9, 0.5, np.nan], dtype=np.float32)
    v2 = np.array([0.4, 0.5, 0.6, 0.1, 0.2, 0.7], dtype=np.float32)
    pairs = PairBatch(d1, d2, v1, v2)
    forward = canonical_order(pairs)
    backward = canonical_order(pairs.swapped())
    for name in ("drug1_effect", "drug2_effect", "drug1_var", "drug2_var"):
        np.testing.assert_array_equal(getattr(forward, name), getattr(backward, name))
    np.testing.assert_array_equal(forward.drug1_effect[0], [0.0, -1.0, 1.0, 2.0, 0.5, np.nan])
    np.testing.assert_array_equal(forward.drug2_effect[0], [1.0, 3.0, np.nan, 2.0, np.nan, np.nan])
    assert forward.drug1_var[0, 3] == np.float32(0.1)  # tie on effect: smaller variance first


def test_stacker_cv_never_splits_a_combination() -> None:
    data = random_dataset(10, 20, seed=1)
    rows = measured_rows(data.combo_effect)
    for by in ("combo", "study"):
        fold_of_row = assign_folds(stacker_groups(rows, data.n_genes, data.combos, by), 5, seed=0)
        combo_of_row = rows // data.n_genes
        for _, train, test in iter_folds(fold_of_row):
            assert not set(combo_of_row[train]) & set(combo_of_row[test])
    by_row = assign_folds(stacker_groups(rows, data.n_genes, data.combos, "row"), 5, seed=0)
    assert any(len(set(by_row[rows // data.n_genes == c])) > 1 for c in range(10))  # the leaky option does split


def test_net_folds_group_by_study() -> None:
    combos = pd.DataFrame({"study": ["a", "a", "b", "b", "c", "d"]})
    folds = assign_folds(combo_groups(combos, "study"), 2, seed=0)
    assert folds[0] == folds[1] and folds[2] == folds[3]
    assert len(set(assign_folds(combo_groups(combos, "combo"), 2, seed=0)[:2])) in (1, 2)


def test_projected_features_swap_with_their_drug_and_break_remaining_ties() -> None:
    data = random_dataset(5, 8, seed=3)
    rng = np.random.default_rng(4)
    p1, p2 = rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=(5, 8)).astype(np.float32)
    data.drug2_effect[0] = data.drug1_effect[0]  # tied effects, variances decide
    data.drug2_var[0, :4] = data.drug1_var[0, :4]  # tied effects and variances: the projections decide
    names = ["d1", "d2", "v1", "v2", "p1", "p2"]
    pairs = PairBatch.from_dataset(data)
    forward = build_features(names, pairs, projected=(p1, p2))
    backward = build_features(names, pairs.swapped(), projected=(p2, p1))
    np.testing.assert_array_equal(forward, backward)
    kept = forward[:, 0] < forward[:, 1]  # untied rows: p1 is the projection of the drug whose effect is d1
    source_p1 = np.where(data.drug1_effect.ravel() <= data.drug2_effect.ravel(), p1.ravel(), p2.ravel())
    np.testing.assert_array_equal(forward[kept, 4], source_p1[kept])
    tied = ~np.isnan(forward[:4, 0])
    assert (forward[:4, 4][tied] <= forward[:4, 5][tied]).all()
    with pytest.raises(FeatureError, match="p1/p2"):
        build_features(["d1", "p1"], pairs)


def test_stacker_cv_predictions_of_a_fold_ignore_its_own_targets() -> None:
    """No leak: the out-of-fold predictions of a held-out combination do not move when its targets change
    (the basis uses inputs only, the stacker and its early stopping see training folds only)."""
    from combomap.models.latent import fit_basis
    from combomap.stacking.backends import StackerSettings, make_backend
    from combomap.stacking.ablation import stacker_cv

    data = random_dataset(30, 40, seed=5, missing=0.05)
    basis = fit_basis(np.concatenate([data.drug1_effect, data.drug2_effect]), data.genes, rank=3)
    names = ["d1", "d2", "p1", "p2"]
    rows = measured_rows(data.combo_effect)
    features = build_features(names, PairBatch(data.drug1_effect, data.drug2_effect), rows=rows,
                              projected=(basis.project(data.drug1_effect), basis.project(data.drug2_effect)))
    combo = rows // data.n_genes
    folds = assign_folds(stacker_groups(rows, data.n_genes, data.combos, "combo"), 5, seed=0)
    settings = StackerSettings.original(max_depth=3, n_rounds=20, learning_rates=[0.3], early_stopping_rounds=3,
                               min_rows_per_leaf=5, n_threads=1)
    label = data.combo_effect.reshape(-1)[rows]
    first = stacker_cv(partial(make_backend, settings), features, label, folds, names, combo, val_fraction=0.2).oof_prediction
    changed = label.copy()
    changed[folds == 2] = np.random.default_rng(6).normal(size=int((folds == 2).sum())) * 10
    second = stacker_cv(partial(make_backend, settings), features, changed, folds, names, combo, val_fraction=0.2).oof_prediction
    np.testing.assert_array_equal(first[folds == 2], second[folds == 2])
    assert not np.array_equal(first[folds != 2], second[folds != 2])  # the other folds did learn from them
