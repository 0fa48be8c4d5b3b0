"""Both GBM backends: NaN input, per-round learning rates, early stopping, exact save/load round trip."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hydra.utils import instantiate

from combomap.stacking.backends import (
    BACKENDS,
    ORIGINAL_SETTINGS,
    LightGBMStacker,
    StackerError,
    StackerSettings,
    XGBoostStacker,
    load_backend,
    make_backend,
)

NAMES = ["net_pred", "d1", "d2", "v1", "v2"]


def _data(n_rows: int = 3000, seed: int = 0, missing: float = 0.2):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_rows, 5)).astype(np.float32)
    label = (0.6 * features[:, 1] + 0.6 * features[:, 2] + 0.3 * features[:, 0] + 0.1 * rng.normal(size=n_rows)).astype(np.float32)
    features[rng.random(features.shape) < missing] = np.nan
    return features, label


def _settings(name: str, **extra) -> StackerSettings:
    return StackerSettings.original(**{**dict(name=name, max_depth=4, n_rounds=8, learning_rates=[0.5, 0.5, 0.15], n_threads=1), **extra})


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_nan_fit_predict_and_exact_round_trip(name: str, tmp_path) -> None:
    features, label = _data()
    backend = make_backend(_settings(name)).fit(features, label, feature_names=NAMES)
    assert backend.n_trees == 8
    prediction = backend.predict(features)
    assert prediction.dtype == np.float32 and np.isfinite(prediction).all()
    assert np.corrcoef(prediction, label)[0, 1] > 0.8  # NaN routed, still learns
    path = backend.save(tmp_path / backend.file_name())
    loaded = load_backend(name, path)
    assert loaded.feature_names == NAMES and loaded.n_trees == 8
    np.testing.assert_array_equal(loaded.predict(features), prediction)
    all_nan = np.full((4, 5), np.nan, dtype=np.float32)
    assert np.isfinite(loaded.predict(all_nan)).all()


def _first_trees_predict(backend, features: np.ndarray, n_trees: int) -> np.ndarray:
    if backend.name == "xgboost":
        return backend.booster.inplace_predict(features, iteration_range=(0, n_trees))
    return backend.booster.predict(features, num_iteration=n_trees)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_learning_rate_schedule_is_applied_per_round(name: str) -> None:
    """Round k uses rate k: the first k trees of a scheduled fit are the fit with the schedule cut at k rounds."""
    features, label = _data(seed=1)
    rates = [0.9, 0.1, 0.5]
    scheduled = make_backend(_settings(name, n_rounds=3, learning_rates=rates)).fit(features, label)
    for rounds in (1, 2):
        cut = make_backend(_settings(name, n_rounds=rounds, learning_rates=rates[:rounds])).fit(features, label)
        np.testing.assert_allclose(_first_trees_predict(scheduled, features, rounds), cut.predict(features), rtol=1e-6, atol=1e-6)
    reversed_first = make_backend(_settings(name, n_rounds=1, learning_rates=rates[::-1])).fit(features, label)
    assert not np.allclose(_first_trees_predict(scheduled, features, 1), reversed_first.predict(features), atol=1e-3)
    again = make_backend(_settings(name, n_rounds=3, learning_rates=rates)).fit(features, label)
    np.testing.assert_array_equal(scheduled.predict(features), again.predict(features))  # same seed, same numbers


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_early_stopping_keeps_best_rounds_only(name: str) -> None:
    features, label = _data(seed=2)
    rng = np.random.default_rng(3)
    noise_label = rng.normal(size=label.shape).astype(np.float32)  # validation unrelated to training: stops early
    backend = make_backend(_settings(name, n_rounds=30, learning_rates=[0.5], early_stopping_rounds=2))
    backend.fit(features, label, val_features=features, val_label=noise_label)
    assert 1 <= backend.n_trees < 30
    without_val = make_backend(_settings(name, n_rounds=30, learning_rates=[0.5], early_stopping_rounds=2)).fit(features, label)
    assert without_val.n_trees == 30


def test_settings_and_errors(tmp_path) -> None:
    assert StackerSettings(n_rounds=5, learning_rates=[0.5, 0.2]).schedule() == [0.5, 0.2, 0.2, 0.2, 0.2]
    assert StackerSettings(n_rounds=2).schedule() == [0.1, 0.1]
    with pytest.raises(StackerError, match="unknown stacker backend"):
        make_backend(StackerSettings(name="catboost"))
    with pytest.raises(StackerError, match="stacker.params"):
        XGBoostStacker(colsample=0.5)
    with pytest.raises(StackerError, match="NaN"):
        make_backend(_settings("xgboost")).fit(np.zeros((3, 2)), np.array([1.0, np.nan, 0.0]))
    backend = make_backend(_settings("lightgbm")).fit(*_data(500))
    with pytest.raises(StackerError, match="5 features"):
        backend.predict(np.zeros((2, 3)))
    bad = tmp_path / "stacker.ubj"
    bad.write_bytes(b"not a model")
    with pytest.raises(StackerError, match="not a readable xgboost model"):
        load_backend("xgboost", bad)


def test_defaults_are_the_regularized_stacker_and_the_original_is_an_option(compose_cfg) -> None:
    """One place for the defaults: the schema's are conf/stacker/xgboost.yaml's; the original's is its own option."""
    defaults = XGBoostStacker().settings
    assert (defaults.max_depth, defaults.n_rounds, defaults.learning_rates) == (6, 100, [0.1])
    assert (defaults.early_stopping_rounds, defaults.min_rows_per_leaf, defaults.l2, defaults.max_train_rows) == (10, 500, 10.0, 400_000)
    for option, backend in (("xgboost", XGBoostStacker), ("lightgbm", LightGBMStacker)):
        new_backend = instantiate(compose_cfg("stack", [f"stacker={option}", "seed=3"]).stacker)
        built = new_backend()
        assert type(built) is backend and built.settings == StackerSettings(name=backend.name, seed=3)
    original = instantiate(compose_cfg("stack", ["stacker=xgboost_original"]).stacker)().settings
    assert original == StackerSettings(**ORIGINAL_SETTINGS) == StackerSettings.original()
    assert ORIGINAL_SETTINGS["max_depth"] == 15 and ORIGINAL_SETTINGS["learning_rates"] == [0.5, 0.5] + [0.15] * 6


@pytest.mark.parametrize(("values", "message"), [
    ({"max_depth": 0}, "stacker.max_depth must be >= 1, got 0"),
    ({"n_threads": 0}, "stacker.n_threads must be >= 1, got 0"),
    ({"l2": -1.0}, "stacker.l2 must be >= 0.0, got -1.0"),
    ({"learning_rates": []}, "stacker.learning_rates must be a non-empty list of positive rates"),
    ({"learning_rates": [0.1, 0.0]}, "stacker.learning_rates must be a non-empty list of positive rates"),
    ({"max_train_rows": "many"}, "stacker.max_train_rows must be a number, got 'many'"),
])
def test_bad_settings_name_the_key(values: dict, message: str) -> None:
    with pytest.raises(StackerError, match=re.escape(message)):
        XGBoostStacker(**values)


def test_settings_are_normalised() -> None:
    settings = XGBoostStacker(learning_rates=[1, 0.5], early_stopping_rounds=0).settings
    assert settings.learning_rates == [1.0, 0.5] and isinstance(settings.learning_rates[0], float)
    assert settings.early_stopping_rounds is None
