"""Out-of-fold nets, order invariance, the saved model and its clear errors (stand-in nets, fast)."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
from hydra.utils import instantiate

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.data.pairs import PairBatch
from combomap.stacking.backends import StackerSettings, make_backend
from combomap.data.folds import assign_folds
from combomap.stacking.cv import combo_groups
from combomap.stacking.features import build_features, measured_rows
from combomap.stacking.final_model import ModelFormatError, StackedModel
from combomap.stacking.oof import out_of_fold_nets, symmetric_net_prediction
from combomap.stacking.pipeline import StackingPipeline
from combomap.stacking.settings import NetFoldSettings, StackerCVSettings, StackingSettings
from combomap.stacking.predict import parse_pairs, predict_pairs
from tests.conftest import random_dataset
from tests.stacking.helpers import RecordingFit, random_portable

FEATURES = ["net_pred", "d1", "d2", "v1", "v2"]
BACKENDS = {"xgboost": "combomap.stacking.backends.XGBoostStacker", "lightgbm": "combomap.stacking.backends.LightGBMStacker"}


def _pipeline(backend: str = "xgboost", **stacking) -> StackingPipeline:
    """A pipeline on stand-in fold nets (RecordingFit) and a small backend."""
    settings = StackingSettings(
        net_folds=NetFoldSettings(n_folds=2, by="study"),
        cv=StackerCVSettings(n_folds=3, by="combo", val_fraction=0.0),
        feature_sets={"avg": ["d1", "d2"], "vars": ["d1", "d2", "v1", "v2"], "nets": ["net_pred", "d1", "d2"],
                      "both": FEATURES},
        final="both", plots=False, **stacking,
    )
    new_stacker = instantiate({"_target_": BACKENDS[backend], "_partial_": True, "max_depth": 4, "n_rounds": 4,
                               "learning_rates": [0.5, 0.15], "n_threads": 1, "seed": 0})
    return StackingPipeline(settings.check("stacking"), new_stacker, fit_net=RecordingFit())


def test_out_of_fold_nets_never_see_their_own_fold() -> None:
    data = random_dataset(12, 16, seed=0)
    folds = assign_folds(combo_groups(data.combos, "study"), 3, seed=0)
    fit = RecordingFit()
    nets = out_of_fold_nets(data, folds, fit=fit)
    assert len(fit.seen) == 3
    combo_ids = data.combos["combo"].to_numpy()
    for fold, seen in enumerate(fit.seen):
        predicted = set(combo_ids[folds == fold])
        assert predicted and not predicted & set(seen)
        assert set(seen) | predicted == set(combo_ids)
        rows = np.flatnonzero(folds == fold)
        expected = symmetric_net_prediction(nets.predictors[fold], PairBatch.from_dataset(data, rows))
        np.testing.assert_array_equal(nets.oof_prediction[rows], expected)
    assert not np.isnan(nets.oof_prediction).any()


def _fitted_model(data, inference="per_net") -> StackedModel:
    nets = [random_portable(data.genes, seed=s) for s in (1, 2)]
    pairs = PairBatch.from_dataset(data)
    net_pred = symmetric_net_prediction(nets[0], pairs)
    rows = measured_rows(data.combo_effect)
    features = build_features(FEATURES, pairs, net_pred=net_pred, rows=rows)
    settings = StackerSettings.original(name="lightgbm", max_depth=4, n_rounds=4, n_threads=1)
    stacker = make_backend(settings).fit(features, data.combo_effect.reshape(-1)[rows], feature_names=FEATURES)
    return StackedModel(stacker=stacker, features=FEATURES, genes=data.genes, nets=nets, inference=inference)


@pytest.mark.parametrize("inference", ["per_net", "mean_net"])
def test_prediction_is_order_invariant(inference: str) -> None:
    data = random_dataset(10, 20, seed=3)
    model = _fitted_model(data)
    pairs = PairBatch.from_dataset(data)
    forward = model.predict(pairs, inference=inference)
    backward = model.predict(pairs.swapped(), inference=inference)
    np.testing.assert_array_equal(forward, backward)
    assert np.isfinite(forward).all()


def test_pipeline_stack_predictions_are_order_invariant(tmp_path) -> None:
    data = random_dataset(12, 20, seed=4)
    first = _pipeline().fit(data, tmp_path / "a")
    second = _pipeline().fit(data.swapped(), tmp_path / "b")
    for name in ("additive_shift", "interaction", "stack_avg", "stack_vars", "stack_nets", "stack_both"):
        np.testing.assert_array_equal(first.predictions[name], second.predictions[name])
    assert list(first.table["model"]) == ["average", "additive", "no_change", "nets_oof", "additive_shift", "interaction",
                                          "stack_avg", "stack_vars", "stack_nets", "stack_both"]
    assert first.headline == pytest.approx(first.table.set_index("model").loc["stack_both", "sign_acc"])


def test_saved_model_round_trip_and_clear_errors(tmp_path) -> None:
    data = random_dataset(10, 20, seed=5)
    model = _fitted_model(data)
    directory = model.save(tmp_path / "model")
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["features"] == FEATURES and manifest["n_genes"] == 20 and len(manifest["nets"]) == 2
    assert manifest["stacker"]["backend"] == "lightgbm" and (directory / manifest["stacker"]["file"]).is_file()
    loaded = StackedModel.load(directory)
    pairs = PairBatch.from_dataset(data)
    np.testing.assert_array_equal(loaded.predict(pairs), model.predict(pairs))

    # a library in shuffled gene order with an extra gene predicts the same pairs
    effects = np.vstack([data.drug1_effect[:3], data.drug2_effect[:3]])
    variances = np.vstack([data.drug1_var[:3], data.drug2_var[:3]])
    order = np.random.default_rng(0).permutation(20)
    library = DrugLibrary(
        effects=np.c_[effects[:, order], np.ones(6)], variances=np.c_[variances[:, order], np.ones(6)],
        genes=[data.genes[i] for i in order] + ["EXTRA"], drugs=["a0", "a1", "a2", "b0", "b1", "b2"],
    )
    named = parse_pairs(["a0+b0", ["b1", "a1"], "a2 + b2"])
    predicted = predict_pairs(loaded, library, named)
    expected = model.predict(pairs.take(slice(0, 3)))
    np.testing.assert_array_equal(predicted[[0, 2]], expected[[0, 2]])
    np.testing.assert_array_equal(predicted[1], expected[1])  # (b1, a1): order does not matter

    with pytest.raises(DataError, match="unknown drug"):
        predict_pairs(loaded, library, [("a0", "nope")])
    short = DrugLibrary(effects=effects[:, :15], genes=data.genes[:15], drugs=library.drugs)
    with pytest.raises(DataError, match="gene set does not match"):
        predict_pairs(loaded, short, named)
    manifest["format_version"] = 99
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="incompatible"):
        StackedModel.load(directory)
    with pytest.raises(ModelFormatError, match="not a combomap stacked model"):
        StackedModel.load(tmp_path)
    with pytest.raises(DataError, match="drug1\\+drug2"):
        parse_pairs(["a0+b0+c0"])


def test_stacker_cv_early_stopping_uses_inner_validation_only() -> None:
    from combomap.stacking.cv import stacker_groups
    from combomap.stacking.ablation import stacker_cv

    data = random_dataset(12, 40, seed=6)
    rows = measured_rows(data.combo_effect)
    features = build_features(["d1", "d2"], PairBatch.from_dataset(data), rows=rows)
    label = data.combo_effect.reshape(-1)[rows]
    fold_of_row = assign_folds(stacker_groups(rows, data.n_genes, data.combos, "combo"), 3, seed=0)
    settings = StackerSettings.original(name="xgboost", max_depth=6, n_rounds=40, learning_rates=[0.5], early_stopping_rounds=2,
                               n_threads=1)
    stopped = stacker_cv(partial(make_backend, settings), features, label, fold_of_row, ["d1", "d2"], rows // data.n_genes, val_fraction=0.3)
    assert all(1 <= trees < 40 for trees in stopped.n_trees)
    assert np.isfinite(stopped.oof_prediction).all()
    full = stacker_cv(partial(make_backend, settings), features, label, fold_of_row, ["d1", "d2"], rows // data.n_genes, val_fraction=0.0)
    assert full.n_trees == [40, 40, 40]
