"""The stacker's input: one row per (combination, gene) entry, features chosen by name.

Rows are combination-major: entry (combo i, gene j) is row i * n_genes + j, so a flat vector of
row values reshapes to (n_combos x n_genes). NaN stays NaN (missing for the GBM).

Order invariance: a combination is an unordered pair, so the two drugs' (effect, variance) pairs
are put in a canonical order per entry (`canonical_order`: smaller effect first, NaN last, ties
broken by variance) before they become d1, d2, v1, v2. Any stacker then gives the same output for
(A, B) and (B, A), exactly, at no extra cost; nothing is lost, since the sorted pair is all an
order-free model may use. net_pred must itself be symmetric (the fold nets' predictions are
averaged over both input orders, see `combomap.stacking.oof`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FEATURES: tuple[str, ...] = ("net_pred", "d1", "d2", "v1", "v2")
VARIANCE_FEATURES = frozenset({"v1", "v2"})


class FeatureError(ValueError):
    """An unknown feature name or an input the chosen features need but did not get."""


def check_feature_names(names: Sequence[str]) -> list[str]:
    names = [str(n) for n in names]
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise FeatureError(f"unknown stacker feature(s) {unknown}; known: {list(FEATURES)}")
    if not names:
        raise FeatureError("a stacker needs at least one feature")
    if len(set(names)) != len(names):
        raise FeatureError(f"duplicate stacker feature in {names}")
    return names


def needs_variances(names: Sequence[str]) -> bool:
    return bool(VARIANCE_FEATURES & set(names))


def _greater(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a sorts after b in the order (finite ascending, then NaN)."""
    a_nan, b_nan = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        return (a_nan & ~b_nan) | (~a_nan & ~b_nan & (a > b))


def _equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.isnan(a) & np.isnan(b)) | (a == b)


def canonical_order(
    drug1_effect: np.ndarray,
    drug2_effect: np.ndarray,
    drug1_var: np.ndarray | None = None,
    drug2_var: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Per entry, swap the drugs so that (effect, variance) of 'drug 1' sorts first, making the map
    symmetric: canonical_order(a, b, va, vb) == canonical_order(b, a, vb, va)."""
    swap = _greater(drug1_effect, drug2_effect)
    if drug1_var is not None and drug2_var is not None:
        swap |= _equal(drug1_effect, drug2_effect) & _greater(drug1_var, drug2_var)
    first = np.where(swap, drug2_effect, drug1_effect)
    second = np.where(swap, drug1_effect, drug2_effect)
    if drug1_var is None or drug2_var is None:
        return first, second, drug1_var, drug2_var
    return first, second, np.where(swap, drug2_var, drug1_var), np.where(swap, drug1_var, drug2_var)


def build_features(
    names: Sequence[str],
    drug1_effect: np.ndarray,
    drug2_effect: np.ndarray,
    drug1_var: np.ndarray | None = None,
    drug2_var: np.ndarray | None = None,
    net_pred: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    symmetric: bool = True,
) -> np.ndarray:
    """(n_rows x len(names)) float32 for the entries of (n_combos x n_genes) arrays.

    `rows` selects flat entry positions (e.g. those with a measured label); None = all entries.
    Variance features without variances become all-NaN columns (the GBM then ignores them).
    """
    names = check_feature_names(names)
    shape = np.shape(drug1_effect)
    if "net_pred" in names and net_pred is None:
        raise FeatureError("feature 'net_pred' requested but no network predictions were given")

    def flat(array: np.ndarray | None) -> np.ndarray | None:
        if array is None:
            return None
        array = np.asarray(array, dtype=np.float32)
        if array.shape != shape:
            raise FeatureError(f"input of shape {array.shape} does not match the effects' shape {shape}")
        array = array.reshape(-1)
        return array if rows is None else array[rows]

    d1, d2, v1, v2 = flat(drug1_effect), flat(drug2_effect), flat(drug1_var), flat(drug2_var)
    if v1 is None or v2 is None:
        v1 = v2 = None
    if symmetric:
        d1, d2, v1, v2 = canonical_order(d1, d2, v1, v2)
    n_rows = d1.shape[0]
    columns = {"d1": d1, "d2": d2, "v1": v1, "v2": v2, "net_pred": flat(net_pred)}
    out = np.empty((n_rows, len(names)), dtype=np.float32)
    for position, name in enumerate(names):
        column = columns[name]
        out[:, position] = np.nan if column is None else column
    return out


def measured_rows(combo_effect: np.ndarray) -> np.ndarray:
    """Flat positions of entries whose combination effect is measured (the stacker's training rows)."""
    return np.flatnonzero(~np.isnan(np.asarray(combo_effect).reshape(-1)))
