"""Out-of-fold network predictions: every combination is predicted by a net that never saw it.

Combinations are split into K folds (grouped by study by default, so combinations that share a
study's control and drugs never sit on both sides); fold k's net trains on the other folds and
predicts fold k. Each fold net is a child MLflow run of the active (pipeline) run when tracking
is on. Predictions are averaged over both input orders, (A, B) and (B, A), so net_pred is
order-invariant like the rest of the stacker's features; the final model does the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from combomap.data.dataset import ComboDataset
from combomap.data.pairs import PairBatch
from combomap.stacking.cv import iter_folds

log = logging.getLogger(__name__)


class NetPredictor(Protocol):
    """A fold net as the stacker uses it (PortableMLP, PortableLatentNet): pairs -> (n x genes) predictions."""

    def predict(self, pairs: PairBatch) -> np.ndarray: ...


def symmetric_net_prediction(predictor: NetPredictor, pairs: PairBatch) -> np.ndarray:
    """(net(A, B) + net(B, A)) / 2: the same prediction whichever drug comes first.

    Non-finite outputs (a diverged net) become NaN, i.e. missing for the stacker, with a warning.
    """
    with np.errstate(all="ignore"):
        forward = np.asarray(predictor.predict(pairs), dtype=np.float32)
        backward = np.asarray(predictor.predict(pairs.swapped()), dtype=np.float32)
        prediction = (0.5 * (forward + backward)).astype(np.float32)
    bad = ~np.isfinite(prediction)
    if bad.any():
        log.warning("net prediction is non-finite for %d of %d entries (diverged net?); they are treated as missing",
                    int(bad.sum()), bad.size)
        prediction[bad] = np.nan
    return prediction


@dataclass
class FoldNets:
    """The K fold nets, which fold each combination is in, and the out-of-fold predictions."""

    predictors: list[Any]
    fold_of_combo: np.ndarray
    oof_prediction: np.ndarray  # (n_combos x n_genes); row i by the net of fold_of_combo[i]
    train_combos: list[list[str]] = field(default_factory=list)  # combo ids each fold net trained on
    fit_seconds: list[float] = field(default_factory=list)


def out_of_fold_nets(
    dataset: ComboDataset,
    fold_of_combo: np.ndarray,
    fit: Callable[..., Any],
    run_prefix: str = "fold",
) -> FoldNets:
    """Train one net per fold on the other folds and predict the fold (both drug orders averaged).

    `fit(train, None, run_name=...)` returns an object with `.predictor` (or the predictor itself; the job's is
    combomap.models.training.child_fit). A fold's net never trains on a combination it predicts.
    """
    fold_of_combo = np.asarray(fold_of_combo)
    if fold_of_combo.shape != (dataset.n_combos,):
        raise ValueError(f"{fold_of_combo.shape[0]} fold labels for {dataset.n_combos} combinations")
    oof = np.full(dataset.combo_effect.shape, np.nan, dtype=np.float32)
    predictors, train_combos, seconds = [], [], []
    for fold, train_rows, test_rows in iter_folds(fold_of_combo):
        assert not np.intersect1d(train_rows, test_rows).size  # the invariant the whole stack rests on
        train = dataset.subset(train_rows)
        start = time.perf_counter()
        result = fit(train, None, run_name=f"{run_prefix}{fold}")
        seconds.append(time.perf_counter() - start)
        predictor = getattr(result, "predictor", result)
        oof[test_rows] = symmetric_net_prediction(predictor, PairBatch.from_dataset(dataset, test_rows))
        predictors.append(predictor)
        train_combos.append(train.combos["combo"].tolist())
        log.info("fold net %d: trained on %d combos, predicted %d (%.1f s)", fold, len(train_rows), len(test_rows), seconds[-1])
    return FoldNets(predictors, fold_of_combo, oof, train_combos, seconds)


def mean_prediction(predictions: Sequence[np.ndarray]) -> np.ndarray:
    """The float32 mean of the nets' predictions, summed in order (the one net_pred of inference="mean_net")."""
    total = None
    for prediction in predictions:
        total = prediction if total is None else total + prediction
    return (total / len(predictions)).astype(np.float32)


def mean_net_prediction(predictors: Sequence[NetPredictor], pairs: PairBatch) -> np.ndarray:
    """The mean of the fold nets' symmetric predictions (what the original fed its stacker at inference)."""
    return mean_prediction([symmetric_net_prediction(predictor, pairs) for predictor in predictors])
