"""Gradient-boosting backends for the stacker, one small class each behind a shared interface.

Every backend: `fit(features, label, val_features=None, val_label=None)`, `predict(features)`,
`save(path)` in the library's own safe format (xgboost UBJSON, lightgbm text; never pickle) and
`load(path)`. Both take the same settings as keywords (`BoostingSettings`, whose defaults are the `stacker`
group's; the group's schema `StackerConfig` names the backend class as `_target_`, `_partial_`, so each fit gets a
fresh backend): a maximum depth, a number of rounds with a per-round learning-rate schedule, early stopping when a
validation set is given, a leaf-size floor, an L2 penalty, a row cap, a thread count and a seed. NaN features are
missing values (both libraries route them natively).
"""

from __future__ import annotations

import contextlib
import io
import math
import numbers
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from combomap.errors import UserError
from combomap.settings import SEED, Checked, SettingsError, fixed, key_of, limits


class StackerError(UserError):
    """Bad stacker settings or a stacker file that cannot be used."""


def library_message(error: BaseException) -> str:
    """A native library's error on one line: xgboost's carries a timestamp, source position and C++ stack trace."""
    text = str(error).split("Stack trace:")[0]
    text = re.sub(r"\[\d{2}:\d{2}:\d{2}\] \S+:\d+: ", "", text)
    text = "".join(char if char.isprintable() else " " for char in text)
    return " ".join(text.split()) or type(error).__name__


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass
class BoostingSettings(Checked):
    """What every backend tunes; these defaults are the `stacker` group's (conf/stacker/xgboost.yaml).

    The regularized stacker: trees of depth 6 with at least 500 rows per leaf and an L2 penalty of 10, up to 100
    rounds at rate 0.1 with early stopping after 10 rounds without gain (only where a validation set exists:
    stacking.cv.val_fraction > 0), each fit on a seeded sample of at most 400,000 rows. At the original's settings
    (depth 15, 8 rounds, eta 0.5, 0.5 then 0.15 x 6, no floor, no penalty, every row: ORIGINAL_SETTINGS,
    conf/stacker/xgboost_original.yaml) the stacker lost to the plain average on small unseen data (1.3 points on a
    120 x 1000 compendium). `params` passes library-specific extras through unchanged.
    """

    max_depth: int = field(default=6, metadata=limits(1))
    n_rounds: int = field(default=100, metadata=limits(1))
    learning_rates: list[float] = field(default_factory=lambda: [0.1])  # one per round; a short list repeats its last
    early_stopping_rounds: Optional[int] = 10  # null or < 1: no early stopping
    n_threads: Optional[int] = field(default=None, metadata=limits(1))  # null: every core this process may use
    seed: int = field(default=0, metadata=SEED)
    min_rows_per_leaf: Optional[int] = field(default=500, metadata=limits(1))  # xgboost min_child_weight, lightgbm min_data_in_leaf
    l2: Optional[float] = field(default=10.0, metadata=limits(0.0))  # L2 penalty on leaf values (xgboost lambda, lightgbm lambda_l2)
    max_train_rows: Optional[int] = field(default=400_000, metadata=limits(1))  # a seeded sample of at most this many rows; null = all
    params: dict[str, Any] = field(default_factory=dict)  # passed to xgboost.train / lightgbm.train unchanged

    def validate(self, prefix: str) -> None:
        """Rates: a non-empty list of positive finite numbers (floats from here on); early stopping below 1 is off."""
        rates = self.learning_rates
        good = isinstance(rates, Sequence) and not isinstance(rates, (str, bytes)) and len(rates) > 0 and all(
            isinstance(r, numbers.Real) and not isinstance(r, bool) and math.isfinite(r) and r > 0 for r in rates)
        if not good:
            raise SettingsError(f"{key_of(prefix, 'learning_rates')} must be a non-empty list of positive rates, got {rates!r}")
        self.learning_rates = [float(rate) for rate in rates]
        if self.early_stopping_rounds is not None and self.early_stopping_rounds < 1:
            self.early_stopping_rounds = None
        self.params = dict(self.params or {})

    def schedule(self) -> list[float]:
        """One learning rate per round; a short list repeats its last rate."""
        rates = list(self.learning_rates)
        return (rates + [rates[-1]] * self.n_rounds)[: self.n_rounds]

    def threads(self) -> int:
        return int(self.n_threads) if self.n_threads and self.n_threads > 0 else available_cores()


@dataclass
class StackerSettings(BoostingSettings):
    """A backend's settings: which backend (`name`, xgboost | lightgbm) and its BoostingSettings."""

    name: str = "xgboost"

    @classmethod
    def checked(cls, name: str, values: Mapping[str, Any]) -> "StackerSettings":
        """The settings of backend `name` from keywords (conf/stacker), one line naming any unknown or bad key."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__) | ({"name"} & set(values)))
        if unknown:
            raise StackerError(f"unknown stacker setting(s) {unknown}; library extras go under stacker.params")
        try:
            return cls(name=name, **values).check("stacker")
        except SettingsError as error:
            raise StackerError(str(error)) from None

    @classmethod
    def original(cls, **changes: Any) -> "StackerSettings":
        """The original's stacker (ORIGINAL_SETTINGS) with `changes`: unregularized trees, as code written
        against those defaults expects."""
        return cls(**{**ORIGINAL_SETTINGS, "learning_rates": list(ORIGINAL_SETTINGS["learning_rates"]), **changes})


ORIGINAL_SETTINGS: dict[str, Any] = {  # the original's stacker (blog 2016), as conf/stacker/xgboost_original.yaml
    "max_depth": 15, "n_rounds": 8, "learning_rates": [0.5, 0.5, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15],
    "early_stopping_rounds": None, "min_rows_per_leaf": None, "l2": None, "max_train_rows": None,
}


@dataclass
class StackerConfig(BoostingSettings):
    """The `stacker` group's schema: the backend class Hydra builds (`_partial_`: a fresh, unfitted backend per
    fit, each CV fold and the final model) and its BoostingSettings."""

    _target_: str = field(default="combomap.stacking.backends.XGBoostStacker", metadata=limits(choices=(
        "combomap.stacking.backends.XGBoostStacker", "combomap.stacking.backends.LightGBMStacker")))
    _partial_: bool = fixed(True)


def _as_matrix(features: np.ndarray, n_features: int | None = None) -> np.ndarray:
    matrix = np.ascontiguousarray(features, dtype=np.float32)
    if matrix.ndim != 2:
        raise StackerError(f"stacker features must be 2-D (rows x features), got shape {matrix.shape}")
    if n_features is not None and matrix.shape[1] != n_features:
        raise StackerError(f"stacker was trained on {n_features} features, got {matrix.shape[1]}")
    return matrix


def _as_label(label: np.ndarray, n_rows: int) -> np.ndarray:
    label = np.asarray(label, dtype=np.float32).ravel()
    if label.shape[0] != n_rows:
        raise StackerError(f"{label.shape[0]} labels for {n_rows} feature rows")
    if np.isnan(label).any():
        raise StackerError("stacker labels hold NaN: train only on measured entries")
    return label


class StackerBackend(ABC):
    """A fitted-or-not gradient-boosted regressor on (rows x features) float32 input."""

    name: ClassVar[str]
    suffix: ClassVar[str]

    def __init__(self, **settings: Any) -> None:
        """`settings`: StackerSettings' fields but the name (conf/stacker/*.yaml), checked here."""
        self.settings = StackerSettings.checked(self.name, settings)
        self.feature_names: list[str] = []
        self.n_trees: int = 0
        self.booster: Any = None  # the library's own model object, once fitted or loaded

    @property
    def fitted(self) -> bool:
        return self.n_trees > 0

    def fit(
        self,
        features: np.ndarray,
        label: np.ndarray,
        val_features: np.ndarray | None = None,
        val_label: np.ndarray | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> "StackerBackend":
        """Fit on all rows (or a seeded sample of max_train_rows); with a validation set and
        early_stopping_rounds, keep the best round only."""
        features = _as_matrix(features)
        label = _as_label(label, features.shape[0])
        names = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(features.shape[1])]
        if len(names) != features.shape[1]:
            raise StackerError(f"{len(names)} feature names for {features.shape[1]} feature columns")
        limit = self.settings.max_train_rows
        if limit is not None and features.shape[0] > limit:
            keep = np.sort(np.random.default_rng(self.settings.seed).choice(features.shape[0], limit, replace=False))
            features, label = features[keep], label[keep]
        validation = None
        if val_features is not None and val_label is not None and len(val_label) > 0:
            val_features = _as_matrix(val_features, features.shape[1])
            validation = (val_features, _as_label(val_label, val_features.shape[0]))
        self.feature_names = names
        self._fit(features, label, validation)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise StackerError(f"{self.name} stacker is not fitted")
        return self._predict(_as_matrix(features, len(self.feature_names))).astype(np.float32, copy=False)

    def file_name(self, stem: str = "stacker") -> str:
        return f"{stem}{self.suffix}"

    def save(self, path: str | Path) -> Path:
        if not self.fitted:
            raise StackerError(f"{self.name} stacker is not fitted; nothing to save")
        path = Path(path)
        if path.suffix != self.suffix:
            raise StackerError(f"{self.name} stacker files end in {self.suffix}, got {path.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._save(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "StackerBackend":
        path = Path(path)
        if not path.is_file():
            raise StackerError(f"no {cls.name} stacker file at {path}")
        backend = cls()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # lightgbm prints "[LightGBM] [Fatal] ..." itself
                backend._load(path)
        except StackerError:
            raise
        except Exception as error:  # each library has its own error types, and bytes that are not UTF-8 raise others
            raise StackerError(f"{path}: not a readable {cls.name} model ({library_message(error)})") from error
        return backend

    @abstractmethod
    def _fit(self, features: np.ndarray, label: np.ndarray, validation: tuple[np.ndarray, np.ndarray] | None) -> None: ...

    @abstractmethod
    def _predict(self, features: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _save(self, path: Path) -> None: ...

    @abstractmethod
    def _load(self, path: Path) -> None: ...


class XGBoostStacker(StackerBackend):
    """xgboost `hist` trees grown depth-wise (as the original's xgboost); saved as UBJSON."""

    name = "xgboost"
    suffix = ".ubj"

    def _params(self) -> dict[str, Any]:
        s = self.settings
        params = {
            "objective": "reg:squarederror",
            "tree_method": "hist",
            "max_depth": s.max_depth,
            "eta": s.schedule()[0],
            "nthread": s.threads(),
            "seed": s.seed,
            "verbosity": 0,
        }
        if s.min_rows_per_leaf is not None:
            params["min_child_weight"] = float(s.min_rows_per_leaf)
        if s.l2 is not None:
            params["lambda"] = float(s.l2)
        params.update(s.params)
        return params

    def _fit(self, features, label, validation) -> None:
        import xgboost as xgb

        s = self.settings
        threads = s.threads()
        # the quantile sketch must use the booster's max_bin (xgboost checks they match)
        binning = {"max_bin": int(s.params["max_bin"])} if "max_bin" in s.params else {}
        train = xgb.QuantileDMatrix(features, label=label, feature_names=self.feature_names, nthread=threads, **binning)
        evals, stopping = [], None
        if validation is not None:
            evals = [(xgb.DMatrix(validation[0], label=validation[1], feature_names=self.feature_names, nthread=threads), "val")]
            stopping = s.early_stopping_rounds
        booster = xgb.train(
            self._params(),
            train,
            num_boost_round=s.n_rounds,
            evals=evals,
            early_stopping_rounds=stopping,
            verbose_eval=False,
            callbacks=[xgb.callback.LearningRateScheduler(s.schedule())],
        )
        if stopping is not None and booster.best_iteration + 1 < booster.num_boosted_rounds():
            booster = booster[: booster.best_iteration + 1]
        self.booster = booster
        self.n_trees = booster.num_boosted_rounds()

    def _predict(self, features: np.ndarray) -> np.ndarray:
        self.booster.set_param({"nthread": self.settings.threads()})
        return self.booster.inplace_predict(features)

    def _save(self, path: Path) -> None:
        self.booster.save_model(str(path))

    def _load(self, path: Path) -> None:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(path))
        self.booster = booster
        self.feature_names = list(booster.feature_names or [])
        self.n_trees = booster.num_boosted_rounds()


MAX_LIGHTGBM_LEAVES = 4095


class LightGBMStacker(StackerBackend):
    """lightgbm leaf-wise trees capped at max_depth; saved in lightgbm's text format.

    num_leaves defaults to min(2**max_depth - 1, 4095): lightgbm scans every open leaf for each split,
    so 2**15 - 1 leaves cost minutes per fit on the original's 3M rows (about 400 s of CPU for one
    5-fold CV of d1, d2 against about 65 s with 4095 leaves). Set params.num_leaves to change it.
    """

    name = "lightgbm"
    suffix = ".txt"

    def _params(self) -> dict[str, Any]:
        s = self.settings
        params = {
            "objective": "regression",
            "max_depth": s.max_depth,
            "num_leaves": min(2**s.max_depth - 1, MAX_LIGHTGBM_LEAVES),
            "learning_rate": s.schedule()[0],
            "num_threads": s.threads(),
            "seed": s.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if s.min_rows_per_leaf is not None:
            params["min_data_in_leaf"] = int(s.min_rows_per_leaf)
        if s.l2 is not None:
            params["lambda_l2"] = float(s.l2)
        params.update(s.params)
        return params

    def _fit(self, features, label, validation) -> None:
        import lightgbm as lgb

        s = self.settings
        params = self._params()
        train = lgb.Dataset(features, label=label, feature_name=self.feature_names, params={"verbosity": -1}, free_raw_data=True)
        callbacks = [lgb.reset_parameter(learning_rate=s.schedule())]
        valid_sets = []
        if validation is not None:
            valid_sets = [lgb.Dataset(validation[0], label=validation[1], reference=train)]
            if s.early_stopping_rounds is not None:
                callbacks.append(lgb.early_stopping(s.early_stopping_rounds, verbose=False))
        booster = lgb.train(params, train, num_boost_round=s.n_rounds, valid_sets=valid_sets, callbacks=callbacks)
        if booster.best_iteration and booster.best_iteration < booster.current_iteration():
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        self.booster = booster
        self.n_trees = booster.current_iteration()

    def _predict(self, features: np.ndarray) -> np.ndarray:
        return self.booster.predict(features, num_threads=self.settings.threads())

    def _save(self, path: Path) -> None:
        self.booster.save_model(str(path))

    def _load(self, path: Path) -> None:
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        self.booster = booster
        self.feature_names = list(booster.feature_name())
        self.n_trees = booster.current_iteration()


BACKENDS: dict[str, type[StackerBackend]] = {cls.name: cls for cls in (XGBoostStacker, LightGBMStacker)}


def backend_class(name: str) -> type[StackerBackend]:
    if name not in BACKENDS:
        raise StackerError(f"unknown stacker backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]


def make_backend(settings: StackerSettings) -> StackerBackend:
    """A fresh (unfitted) backend with ready settings (their name picks the backend)."""
    values = {key: value for key, value in vars(settings).items() if key != "name"}
    return backend_class(settings.name)(**values)


def load_backend(name: str, path: str | Path) -> StackerBackend:
    return backend_class(name).load(path)
