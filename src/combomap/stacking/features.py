"""The stacker's input: one row per (combination, gene) entry, features chosen by name.

Rows are combination-major: entry (combo i, gene j) is row i * n_genes + j, so a flat vector of
row values reshapes to (n_combos x n_genes). NaN stays NaN (missing for the GBM).

Order invariance: a combination is an unordered pair, so the two drugs' (effect, variance, projected
effect) triples are put in a canonical order per entry (`canonical_swap`: smaller effect first, NaN
last, ties broken by variance, then by projection) before they become d1, d2, v1, v2, p1, p2. Any stacker then gives the same output for
(A, B) and (B, A), exactly, at no extra cost; nothing is lost, since the sorted pair is all an
order-free model may use. net_pred must itself be symmetric (the fold nets' predictions are
averaged over both input orders, see `combomap.stacking.oof`).

p1, p2 are the drugs' profiles projected on a gene-program basis (`combomap.models.latent`): denoised,
and defined on every gene (also where the measured effect is missing).

This module is the one definition of the stacker's input and of its use: `build_features` assembles it,
`stacked_prediction` runs the stacker on it (once per fold net's prediction, averaged). Other ways of
computing the same numbers faster are engines tested equal to these two: the query's backend engine and
the compiled kernel (`combomap.stacking.forest`, which assembles the rows itself, as `canonical_swap` says).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from combomap.data.pairs import PairBatch
from combomap.errors import UserError

# the features every engine assembles from per-drug arrays and net predictions (the compiled kernel's codes)
FEATURES: tuple[str, ...] = ("net_pred", "d1", "d2", "v1", "v2", "p1", "p2")
VARIANCE_FEATURES = frozenset({"v1", "v2"})
PROJECTED_FEATURES = frozenset({"p1", "p2"})
LEARNED_FEATURE = "lin_pred"  # the learned interaction baseline's prediction (combomap.models.learned), symmetric
STACKER_FEATURES: tuple[str, ...] = (*FEATURES, LEARNED_FEATURE)  # every name a feature set may use


class FeatureError(UserError):
    """An unknown feature name or an input the chosen features need but did not get."""


def check_feature_names(names: Sequence[str]) -> list[str]:
    names = [str(n) for n in names]
    unknown = [n for n in names if n not in STACKER_FEATURES]
    if unknown:
        raise FeatureError(f"unknown stacker feature(s) {unknown}; known: {list(STACKER_FEATURES)}")
    if not names:
        raise FeatureError("a stacker needs at least one feature")
    if len(set(names)) != len(names):
        raise FeatureError(f"duplicate stacker feature in {names}")
    return names


def needs_variances(names: Sequence[str]) -> bool:
    return bool(VARIANCE_FEATURES & set(names))


def needs_projections(names: Sequence[str]) -> bool:
    return bool(PROJECTED_FEATURES & set(names))


def needs_learned(names: Sequence[str]) -> bool:
    return LEARNED_FEATURE in names


def _greater(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a sorts after b in the order (finite ascending, then NaN)."""
    a_nan, b_nan = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        return (a_nan & ~b_nan) | (~a_nan & ~b_nan & (a > b))


def _equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.isnan(a) & np.isnan(b)) | (a == b)


def canonical_swap(
    drug1_effect: np.ndarray,
    drug2_effect: np.ndarray,
    drug1_var: np.ndarray | None = None,
    drug2_var: np.ndarray | None = None,
    drug1_projected: np.ndarray | None = None,
    drug2_projected: np.ndarray | None = None,
) -> np.ndarray:
    """True where the drugs must swap so that (effect, variance, projection) of 'drug 1' sorts first."""
    swap = _greater(drug1_effect, drug2_effect)
    tied = _equal(drug1_effect, drug2_effect)
    if drug1_var is not None and drug2_var is not None:
        swap |= tied & _greater(drug1_var, drug2_var)
        tied &= _equal(drug1_var, drug2_var)
    if drug1_projected is not None and drug2_projected is not None:
        swap |= tied & _greater(drug1_projected, drug2_projected)
    return swap


def _ordered(swap: np.ndarray, first: np.ndarray | None, second: np.ndarray | None):
    if first is None or second is None:
        return first, second
    return np.where(swap, second, first), np.where(swap, first, second)


def canonical_order(pairs: PairBatch) -> PairBatch:
    """Per entry, swap the drugs so that (effect, variance) of 'drug 1' sorts first, making the map
    symmetric: canonical_order(pairs) == canonical_order(pairs.swapped())."""
    swap = canonical_swap(pairs.drug1_effect, pairs.drug2_effect, pairs.drug1_var, pairs.drug2_var)
    return PairBatch(*_ordered(swap, pairs.drug1_effect, pairs.drug2_effect), *_ordered(swap, pairs.drug1_var, pairs.drug2_var))


def build_features(
    names: Sequence[str],
    pairs: PairBatch,
    net_pred: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    symmetric: bool = True,
    projected: tuple[np.ndarray, np.ndarray] | None = None,
    learned_pred: np.ndarray | None = None,
) -> np.ndarray:
    """(n_rows x len(names)) float32 for the (pair, gene) entries of a batch of pairs.

    `rows` selects flat entry positions (e.g. those with a measured label); None = all entries.
    Variance features without variances become all-NaN columns (the GBM then ignores them).
    projected: (drug 1, drug 2) gene-program projections, each (n_pairs x n_genes) (needed for p1, p2).
    learned_pred: the learned interaction baseline's prediction (n_pairs x n_genes) (needed for lin_pred).
    """
    names = check_feature_names(names)
    shape = pairs.shape
    if "net_pred" in names and net_pred is None:
        raise FeatureError("feature 'net_pred' requested but no network predictions were given")
    if needs_projections(names) and projected is None:
        raise FeatureError("features p1/p2 requested but no gene-program projections were given")
    if needs_learned(names) and learned_pred is None:
        raise FeatureError("feature 'lin_pred' requested but no learned-baseline prediction was given")

    def flat(array: np.ndarray | None) -> np.ndarray | None:
        if array is None:
            return None
        array = np.asarray(array, dtype=np.float32)
        if array.shape != shape:
            raise FeatureError(f"input of shape {array.shape} does not match the effects' shape {shape}")
        array = array.reshape(-1)
        return array if rows is None else array[rows]

    d1, d2, v1, v2 = flat(pairs.drug1_effect), flat(pairs.drug2_effect), flat(pairs.drug1_var), flat(pairs.drug2_var)
    p1, p2 = (flat(projected[0]), flat(projected[1])) if needs_projections(names) else (None, None)
    if symmetric:
        swap = canonical_swap(d1, d2, v1, v2, p1, p2)
        (d1, d2), (v1, v2), (p1, p2) = _ordered(swap, d1, d2), _ordered(swap, v1, v2), _ordered(swap, p1, p2)
    n_rows = d1.shape[0]
    columns = {"d1": d1, "d2": d2, "v1": v1, "v2": v2, "p1": p1, "p2": p2, "net_pred": flat(net_pred),
               LEARNED_FEATURE: flat(learned_pred) if needs_learned(names) else None}
    out = np.empty((n_rows, len(names)), dtype=np.float32)
    for position, name in enumerate(names):
        column = columns[name]
        out[:, position] = np.nan if column is None else column
    return out


def stacked_prediction(
    stacker: Any,
    names: Sequence[str],
    pairs: PairBatch,
    net_predictions: Sequence[np.ndarray] = (),
    symmetric: bool = True,
    projected: tuple[np.ndarray, np.ndarray] | None = None,
    learned_pred: np.ndarray | None = None,
) -> np.ndarray:
    """The stacker's output per (pair, gene) as float32 (n_pairs x n_genes): the reference every stacker engine
    reproduces (the saved model's predict, the query's backend and compiled engines).

    With net_pred among the features, the stacker runs once per net prediction (each one as net_pred) and its
    outputs are averaged in float64; without, it runs once (any net predictions are not read). With lin_pred among
    the features the stacker predicts the residual y - lin_pred (`residual_offset`), which is added back.
    """
    if "net_pred" not in names:
        net_predictions = ()
    features = build_features(names, pairs, net_pred=net_predictions[0] if len(net_predictions) else None,
                              symmetric=symmetric, projected=projected, learned_pred=learned_pred)
    offset = residual_offset(names, features)
    if not len(net_predictions):
        output = stacker.predict(features).astype(np.float64)
        return (output if offset is None else output + offset).reshape(pairs.shape).astype(np.float32)
    net_column = list(names).index("net_pred")
    total = np.zeros(pairs.shape, dtype=np.float64)
    for k, net_pred in enumerate(net_predictions):
        if k:
            features[:, net_column] = np.asarray(net_pred, dtype=np.float32).reshape(-1)
        total += stacker.predict(features).reshape(pairs.shape)
    total /= len(net_predictions)
    return (total if offset is None else total + offset.reshape(pairs.shape)).astype(np.float32)


def residual_offset(names: Sequence[str], features: np.ndarray) -> np.ndarray | None:
    """A stacker with lin_pred among its features learns the residual y - lin_pred (missing lin_pred counts as 0),
    so it starts from the learned baseline and keeps its large effects, which trees pooled over every entry would
    shrink: this offset (float64, per feature row) is subtracted from the label in training and added back to the
    output. None for other stackers."""
    if not needs_learned(names):
        return None
    return np.nan_to_num(features[:, list(names).index(LEARNED_FEATURE)].astype(np.float64), nan=0.0)


def measured_rows(combo_effect: np.ndarray) -> np.ndarray:
    """Flat positions of entries whose combination effect is measured (the stacker's training rows)."""
    return np.flatnonzero(~np.isnan(np.asarray(combo_effect).reshape(-1)))
