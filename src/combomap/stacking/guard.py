"""The guard: which model `combomap-stack` saves, and why, in one place.

`stacking.final=auto` takes the best cross-validated sign accuracy among the candidates (the average, the
learned baselines and the stacked feature sets), but only among those that are not worse than the simple
models on the metrics the field reports for the largest effects:
- top-20 Pearson delta not below the best of the average, the additive model and the learned baselines;
- top-20 L2 not above the better of the average and the additive model;
- where the run measured the "none seen" regime (combinations whose drugs no training combination held:
  what an all-pairs library query asks for), sign accuracy, top-20 Pearson delta and top-20 L2 there not
  worse than the better of the average and the additive model either.
A candidate with no estimate in that regime (its features need fold nets, which are not split by drug) is
not eligible. Ties go to the earlier, simpler candidate; when nothing is eligible the average is kept.
Each model's reason lands in the table's `guard` column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

AUTO = "auto"
PEARSON, L2, SIGN = "pearson_delta_top20", "l2_top20", "sign_acc"
SIMPLE = ("average", "additive")
NONE_SEEN = "none_seen"
EPSILON = 1e-9


def _value(table: pd.DataFrame, model: str, metric: str) -> float:
    rows = table.loc[table["model"] == model, metric]
    return float(rows.iloc[0]) if len(rows) and np.isfinite(rows.iloc[0]) else float("nan")


def _floors(table: pd.DataFrame, pearson_models: Sequence[str]) -> dict[str, float]:
    present = set(table["model"])
    pearson = [_value(table, m, PEARSON) for m in pearson_models if m in present]
    simple = [m for m in SIMPLE if m in present]
    return {
        SIGN: max([_value(table, m, SIGN) for m in simple], default=float("nan")),
        PEARSON: float(np.nanmax(pearson)) if np.isfinite(pearson).any() else float("nan"),
        L2: float(np.nanmin([_value(table, m, L2) for m in simple])) if simple else float("nan"),
    }


def _failures(table: pd.DataFrame, model: str, floors: dict[str, float], metrics: Sequence[str], where: str) -> list[str]:
    failures = []
    for metric in metrics:
        value, floor = _value(table, model, metric), floors[metric]
        if not np.isfinite(floor):
            continue
        worse = value > floor + EPSILON if metric == L2 else value < floor - EPSILON
        if not np.isfinite(value) or worse:
            relation = ">" if metric == L2 else "<"
            failures.append(f"{where}{metric} {value:.4f} {relation} {floor:.4f}")
    return failures


def choose_final(table: pd.DataFrame, candidates: Sequence[str], final: str = AUTO,
                 regimes: pd.DataFrame | None = None, learned: Sequence[str] = ()) -> tuple[str, dict[str, str]]:
    """(the chosen model, {model: reason}). `table` has one row per model (CV metrics); `regimes` has a `regime`
    column and the same metrics per (model, regime). A `final` other than auto is taken as given."""
    reasons: dict[str, str] = {}
    if final != AUTO:
        reasons = {model: "" for model in table["model"]}
        reasons[final] = f"chosen: forced by stacking.final={final}"
        return final, reasons
    floors = _floors(table, [*SIMPLE, *learned])
    none_seen = None
    if regimes is not None and (regimes["regime"] == NONE_SEEN).any():
        none_seen = regimes[regimes["regime"] == NONE_SEEN]
        none_floors = _floors(none_seen, SIMPLE)
    eligible = []
    for model in candidates:
        failures = _failures(table, model, floors, (PEARSON, L2), "")
        if none_seen is not None:
            if model not in set(none_seen["model"]):
                failures.append("no none_seen estimate")
            else:
                failures += _failures(none_seen, model, none_floors, (SIGN, PEARSON, L2), "none_seen ")
        reasons[model] = "excluded: " + "; ".join(failures) if failures else "eligible"
        if not failures:
            eligible.append(model)
    chosen = "average"
    for model in eligible:
        if chosen not in eligible or _value(table, model, SIGN) > _value(table, chosen, SIGN) + EPSILON:
            chosen = model
    if eligible:
        reasons[chosen] = "chosen: best CV sign accuracy among the eligible"
    else:
        reasons[chosen] = "chosen: no candidate passes the top-k floors, so the average is kept"
    return chosen, reasons


def floors_note(table: pd.DataFrame, learned: Sequence[str] = ()) -> str:
    """One line naming the floors the guard applied (for the log and the report)."""
    floors = _floors(table, [*SIMPLE, *learned])
    return (f"guard floors: {PEARSON} >= {floors[PEARSON]:.4f} (best of {', '.join([*SIMPLE, *learned])}), "
            f"{L2} <= {floors[L2]:.4f} (better of {', '.join(SIMPLE)})")
