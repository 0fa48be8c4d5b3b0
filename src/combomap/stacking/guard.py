"""The guard: which model `combomap-stack` saves, and why, in one place.

`stacking.final=auto` takes the best cross-validated sign accuracy among the candidates (the average, the
additive model, the learned baselines and the stacked feature sets), but only among those that are not worse
than the simple models, on sign accuracy and on the metrics the field reports for the largest effects:
- sign accuracy not below the better of the average and the additive model (they tie: the same signs);
- top-20 L2 not above the better of the two;
- top-20 Pearson delta not below the best of the two and of the learned baselines that pass these floors
  themselves (so a saved stack is never below an eligible learned baseline on it).
The "none seen" regime (combinations whose drugs no training combination held: what an all-pairs library
query asks for) is judged apart, where the run measured it: a candidate whose sign accuracy, top-20 Pearson
delta or top-20 L2 there is worse than the better of the average and the additive model, or that has no
estimate there (its features need fold nets, which are not split by drug), keeps its place but is saved with
`unseen_pairs=additive`: a pair of two drugs that no training combination held gets d1 + d2, so the saved
model is never below the simple models in that regime either (`combomap.stacking.final_model`).
Ties go to the earlier, simpler candidate; when nothing is eligible the better of the average and the additive
model on top-20 L2 is kept. Each model's reason lands in the table's `guard` column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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


def main_floors(table: pd.DataFrame, learned: Sequence[str] = ()) -> tuple[dict[str, float], list[str]]:
    """The floors of the main CV and the learned baselines that raised them: sign accuracy and top-20 L2 from the
    average and the additive model; top-20 Pearson delta from those and from every learned baseline that passes
    the simple models' floors itself (a learned baseline below the average on sign accuracy raises no floor)."""
    simple = _floors(table, SIMPLE)
    present = set(table["model"])
    raising = [m for m in learned if m in present and not _failures(table, m, simple, (SIGN, PEARSON, L2), "")]
    return _floors(table, [*SIMPLE, *raising]), raising


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


@dataclass
class GuardChoice:
    """The guard's decision: the model, every candidate's reason, and the candidates whose unseen pairs fall
    back to the additive model."""

    model: str
    reasons: dict[str, str]
    unseen_additive: set[str] = field(default_factory=set)

    @property
    def final_unseen_additive(self) -> bool:
        return self.model in self.unseen_additive


def choose_final(table: pd.DataFrame, candidates: Sequence[str], final: str = AUTO,
                 regimes: pd.DataFrame | None = None, learned: Sequence[str] = ()) -> GuardChoice:
    """`table` has one row per model (CV metrics); `regimes` has a `regime` column and the same metrics per
    (model, regime). A `final` other than auto is taken as given (its none_seen check still applies)."""
    reasons: dict[str, str] = {}
    floors, _ = main_floors(table, learned)
    unseen_additive: set[str] = set()
    none_seen = None
    if regimes is not None and (regimes["regime"] == NONE_SEEN).any():
        none_seen = regimes[regimes["regime"] == NONE_SEEN]
        none_floors = _floors(none_seen, SIMPLE)
    eligible = []
    for model in [*candidates, *([final] if final not in (AUTO, *candidates) else [])]:
        failures = _failures(table, model, floors, (SIGN, PEARSON, L2), "")
        unseen = []
        if none_seen is not None and model not in SIMPLE:
            if model not in set(none_seen["model"]):
                unseen = ["no none_seen estimate"]
            else:
                unseen = _failures(none_seen, model, none_floors, (SIGN, PEARSON, L2), "none_seen ")
        if unseen:
            unseen_additive.add(model)
        reason = "excluded: " + "; ".join(failures) if failures else "eligible"
        if unseen:
            reason += " (unseen pairs -> additive: " + "; ".join(unseen) + ")"
        reasons[model] = reason
        if not failures and model in candidates:
            eligible.append(model)
    if final != AUTO:
        reasons[final] = f"chosen: forced by stacking.final={final}" + reasons.get(final, "").partition(" (")[1] + \
            reasons.get(final, "").partition(" (")[2]
        return GuardChoice(final, reasons, unseen_additive)
    simple = [m for m in SIMPLE if m in set(table["model"])]
    fallback = min(simple, key=lambda m: _value(table, m, L2)) if simple else "average"  # the better on L2 (ties: average)
    chosen = fallback
    for model in eligible:
        if chosen not in eligible or _value(table, model, SIGN) > _value(table, chosen, SIGN) + EPSILON:
            chosen = model
    suffix = reasons.get(chosen, "").partition(" (")
    if eligible:
        reasons[chosen] = "chosen: best CV sign accuracy among the eligible" + suffix[1] + suffix[2]
    else:
        reasons[chosen] = f"chosen: no candidate passes the top-k floors, so the better of {' and '.join(simple)} on L2 is kept"
        unseen_additive.discard(chosen)
    return GuardChoice(chosen, reasons, unseen_additive)


def floors_note(table: pd.DataFrame, learned: Sequence[str] = ()) -> str:
    """One line naming the floors the guard applied (for the log and the report)."""
    floors, raising = main_floors(table, learned)
    return (f"guard floors: {SIGN} >= {floors[SIGN]:.4f}, {L2} <= {floors[L2]:.4f} (the better of "
            f"{', '.join(SIMPLE)}), {PEARSON} >= {floors[PEARSON]:.4f} (the best of {', '.join([*SIMPLE, *raising])})")
