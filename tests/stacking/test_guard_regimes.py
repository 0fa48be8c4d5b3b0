"""Folds by drug, split regimes and the guard (combomap.stacking.cv, combomap.stacking.guard)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from combomap.data.folds import FoldError
from combomap.stacking import guard
from combomap.stacking.cv import drug_folds, resolve_grouping, seen_regime


def all_pairs(n_drugs: int, study: str = "s") -> pd.DataFrame:
    pairs = list(itertools.combinations([f"D{i}" for i in range(n_drugs)], 2))
    return pd.DataFrame({"combo": [f"{a}+{b}" for a, b in pairs], "study": study,
                         "drug1": [a for a, _ in pairs], "drug2": [b for _, b in pairs]})


def test_drug_folds_hold_out_every_combination_of_a_held_out_drug() -> None:
    combos = all_pairs(12)
    folds = drug_folds(combos, 4, seed=0)
    assert folds.fold_of_combo.shape == (66,) and set(folds.fold_of_combo) == {0, 1, 2, 3}
    for fold in range(4):
        test = combos[folds.fold_of_combo == fold]
        train = combos[folds.train[fold]]
        held = set(test["drug1"]) | set(test["drug2"])
        trained = set(train["drug1"]) | set(train["drug2"])
        assert not (set(test["combo"]) & set(train["combo"]))
        held_out_drugs = held - trained
        assert held_out_drugs  # each fold holds out drugs
        # a test combination always contains at least one drug its training combinations never saw
        assert all({a, b} & held_out_drugs for a, b in zip(test["drug1"], test["drug2"]))
    regime = seen_regime(combos, folds.fold_of_combo, folds.train)
    assert set(regime) == {"one_seen", "none_seen"}


def test_seen_regime_of_a_combination_split() -> None:
    combos = all_pairs(6)
    fold = np.arange(15) % 3
    regime = seen_regime(combos, fold)
    assert set(regime) == {"both_seen"}  # 6 drugs in all pairs: every drug recurs in the other folds
    lonely = pd.concat([combos, pd.DataFrame([{"combo": "X+Y", "study": "s", "drug1": "X", "drug2": "Y"},
                                              {"combo": "X+D0", "study": "s", "drug1": "X", "drug2": "D0"}])])
    regime = seen_regime(lonely, np.r_[np.zeros(15, int), 1, 2])
    assert regime[15] == "one_seen" and regime[16] == "both_seen"  # X+Y: X seen (X+D0), Y never; X+D0: both


def test_too_few_drugs_name_the_count() -> None:
    with pytest.raises(FoldError, match="3 drug"):
        drug_folds(all_pairs(3), 5)


def test_auto_grouping_is_study_only_with_enough_studies() -> None:
    one_screen = all_pairs(8)
    assert resolve_grouping("auto", one_screen, 2) == "combo"
    many = one_screen.assign(study=[f"s{i}" for i in range(len(one_screen))])
    assert resolve_grouping("auto", many, 2) == "study"
    assert resolve_grouping("combo", many, 2) == "combo"


def table(rows: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "sign_acc": s, "pearson_delta_top20": p, "l2_top20": l} for m, (s, p, l) in rows.items()])


def test_guard_takes_the_best_sign_accuracy_that_passes_the_top_k_floors() -> None:
    scores = table({"average": (0.80, 0.90, 2.0), "additive": (0.80, 0.90, 1.5), "additive_shift": (0.79, 0.91, 1.2),
                    "interaction": (0.85, 0.95, 1.0), "stack_a": (0.87, 0.80, 2.2), "stack_b": (0.86, 0.96, 0.9)})
    choice = guard.choose_final(scores, ["average", "additive_shift", "interaction", "stack_a", "stack_b"],
                                learned=["additive_shift", "interaction"])
    assert choice.model == "stack_b" and not choice.unseen_additive
    assert choice.reasons["stack_a"].startswith("excluded: pearson_delta_top20 0.8000 < 0.9500; l2_top20 2.2000 > 1.5000")
    assert choice.reasons["interaction"] == "eligible" and choice.reasons["stack_b"].startswith("chosen")


def test_guard_makes_unseen_pairs_additive_where_a_model_loses_in_the_none_seen_regime() -> None:
    scores = table({"average": (0.80, 0.90, 2.0), "additive": (0.80, 0.90, 1.5), "interaction": (0.85, 0.95, 1.0),
                    "stack_nets": (0.86, 0.96, 0.9)})
    regimes = table({"average": (0.80, 0.90, 2.0), "additive": (0.80, 0.90, 1.5), "interaction": (0.79, 0.95, 1.0)})
    regimes["regime"] = "none_seen"
    choice = guard.choose_final(scores, ["average", "interaction", "stack_nets"], regimes=regimes, learned=["interaction"])
    assert choice.model == "stack_nets" and choice.final_unseen_additive  # no none_seen estimate: additive there
    assert choice.reasons["stack_nets"] == ("chosen: best CV sign accuracy among the eligible "
                                            "(unseen pairs -> additive: no none_seen estimate)")
    assert "none_seen sign_acc 0.7900 < 0.8000" in choice.reasons["interaction"]
    assert choice.unseen_additive == {"interaction", "stack_nets"}
    regimes.loc[regimes["model"] == "interaction", "sign_acc"] = 0.81
    assert "interaction" not in guard.choose_final(scores, ["interaction"], regimes=regimes).unseen_additive


def test_guard_keeps_the_average_when_nothing_passes_and_obeys_a_forced_choice() -> None:
    scores = table({"average": (0.8, 0.9, 2.0), "additive": (0.8, 0.9, 1.5), "stack_x": (0.9, 0.5, 3.0)})
    choice = guard.choose_final(scores, ["average", "stack_x"])
    assert choice.model == "additive" and "no candidate passes" in choice.reasons["additive"]  # the better L2
    sub_additive = scores.assign(l2_top20=[1.0, 1.5, 3.0])
    assert guard.choose_final(sub_additive, ["average", "additive", "stack_x"]).model == "average"
    forced = guard.choose_final(scores, ["average", "stack_x"], final="stack_x")
    assert forced.model == "stack_x" and forced.reasons["stack_x"].startswith("chosen: forced by stacking.final=stack_x")


def test_a_learned_baseline_below_the_average_raises_no_floor_and_is_never_saved() -> None:
    scores = table({"average": (0.80, 0.90, 2.0), "additive": (0.80, 0.90, 1.5), "interaction": (0.78, 0.97, 1.0),
                    "stack_a": (0.82, 0.92, 1.4)})
    choice = guard.choose_final(scores, ["average", "additive", "interaction", "stack_a"], learned=["interaction"])
    assert choice.model == "stack_a"  # 0.92 >= the simple models' 0.90; interaction's 0.97 is no floor (sign 0.78)
    assert choice.reasons["interaction"] == "excluded: sign_acc 0.7800 < 0.8000"
    assert "pearson_delta_top20 >= 0.9000" in guard.floors_note(scores, ["interaction"])
    better = scores.assign(sign_acc=[0.80, 0.80, 0.81, 0.82])  # now interaction passes and its 0.97 is the floor
    assert guard.choose_final(better, ["average", "additive", "interaction", "stack_a"], learned=["interaction"]).model \
        == "interaction"
