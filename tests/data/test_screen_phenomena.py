"""The real-screen phenomena of the simulator (docs/simulator.md, "Real-screen phenomena") and
combomap.evaluation.screen_stats: the presets without them are unchanged, each phenomenon is gone at 0,
the screen preset's design, determinism, and the statistics on hand-made data."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from combomap.data.dataset import ComboDataset
from combomap.data.simulate import PRESETS, simulate_compendium, simulate_compendium_with_truth
from combomap.evaluation.screen_stats import format_table, load_source, main, screen_statistics

# sha256 of simulate_compendium_with_truth(preset, seed) (the float32 arrays and the combos table) computed
# with the code before the real-screen phenomena were added (commit a44f77a): with them off the
# simulator must give exactly the same data.
HEAD_HASHES = {
    ("tiny", 0): "a0fd42291b52a4a9df3fdb2a145118187886358134bafa5a5dc08d8001695e4a",
    ("tiny", 3): "b60de41486e6e4c3f4299891f0a2b4db4001dbd2ddaa2dc0ccce1e9aceed1ee9",
    ("small", 0): "e209beb3fcc1401b3c0f23eb524ddff40fcc831ee3b83c7b00780aab80f8469b",
    ("default", 0): "c1921c81d237fc83292b8b9f219393a158e4201753e4c04221dfb974a27d1b46",
}


def simulation_hash(dataset: ComboDataset, truth) -> str:
    digest = hashlib.sha256()
    for array in (
        dataset.drug1_effect, dataset.drug2_effect, dataset.combo_effect, dataset.drug1_var, dataset.drug2_var,
        truth.drug1, truth.drug2, truth.combo,
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(dataset.combos.to_csv(index=False).encode())
    digest.update("\n".join(dataset.genes).encode())
    return digest.hexdigest()


@pytest.mark.parametrize(("preset", "seed"), sorted(HEAD_HASHES))
def test_presets_without_the_phenomena_are_unchanged(preset: str, seed: int) -> None:
    assert simulation_hash(*simulate_compendium_with_truth(preset, seed)) == HEAD_HASHES[(preset, seed)]


# a quick screen: 12 drugs (as in Korkut 2015), 40 of their 66 pairs, 300 genes, all measured
QUICK = {"n_genes": 300, "n_core_genes": 300, "n_programs": 12, "n_combos": 40, "screen_drugs": 12}


def drug_design(combos: pd.DataFrame) -> np.ndarray:
    names = sorted(set(combos["drug1"]) | set(combos["drug2"]))
    design = np.zeros((len(combos), len(names)))
    for row, (a, b) in enumerate(zip(combos["drug1"], combos["drug2"])):
        design[row, names.index(a)] += 1
        design[row, names.index(b)] += 1
    return design


def test_screen_preset_design() -> None:
    dataset, truth = simulate_compendium_with_truth("screen", 0)
    sizes = PRESETS["screen"]
    assert dataset.combo_effect.shape == (sizes["n_combos"], sizes["n_genes"]) == (150, 2000)
    assert dataset.combos["study"].nunique() == 1
    assert not np.isnan(dataset.combo_effect).any()  # a screen measures every gene
    assert (truth.combos["design"] == "screen").all()
    per_drug = pd.concat([dataset.combos["drug1"], dataset.combos["drug2"]]).value_counts()
    assert len(per_drug) == sizes["screen_drugs"] == 25
    assert per_drug.min() >= 4 and per_drug.median() >= 10  # every drug recurs across the screen's combos
    pairs = {frozenset(p) for p in zip(dataset.combos["drug1"], dataset.combos["drug2"])}
    assert len(pairs) == dataset.n_combos  # no pair twice
    # a drug's single-drug signature is one arm of the screen, the same in all its combinations
    first = dataset.combos.index[(dataset.combos["drug1"] == per_drug.index[0])]
    assert len(first) >= 2 and (dataset.drug1_effect[first] == dataset.drug1_effect[first[0]]).all()


def test_screen_is_deterministic() -> None:
    first, second, other = (simulate_compendium("screen", seed, **QUICK) for seed in (4, 4, 5))
    for name in ("drug1_effect", "drug2_effect", "combo_effect", "drug1_var", "drug2_var"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
        assert not np.array_equal(getattr(first, name), getattr(other, name))
    assert first.combos.equals(second.combos)


def test_combo_shift_is_one_profile_added_to_every_combination() -> None:
    _, on = simulate_compendium_with_truth("screen", 1, **QUICK, drug_interaction_scale=0)
    _, off = simulate_compendium_with_truth("screen", 1, **QUICK, drug_interaction_scale=0, combo_shift_scale=0)
    # the phenomena draw from their own streams: everything else stays the same
    assert np.array_equal(on.drug1, off.drug1) and np.array_equal(on.drug2, off.drug2)
    added = on.combo.astype(np.float64) - off.combo.astype(np.float64)
    assert np.abs(added).max() > 0.1
    np.testing.assert_allclose(added, np.broadcast_to(added.mean(axis=0), added.shape), atol=1e-4)


def test_drug_interaction_is_explained_by_per_drug_profiles() -> None:
    dataset, on = simulate_compendium_with_truth("screen", 2, **QUICK, combo_shift_scale=0)
    _, off = simulate_compendium_with_truth("screen", 2, **QUICK, combo_shift_scale=0, drug_interaction_scale=0)
    assert np.array_equal(on.drug1, off.drug1)
    added = on.combo.astype(np.float64) - off.combo.astype(np.float64)
    assert np.abs(added - added.mean(axis=0)).max() > 0.1  # not one shift: it differs between combos
    design = drug_design(dataset.combos)
    train, test = np.arange(30), np.arange(30, 40)
    profiles, *_ = np.linalg.lstsq(design[train], added[train], rcond=None)
    # out of sample: held-out combinations' interaction = the sum of their drugs' profiles
    unseen = (design[test][:, design[train].sum(axis=0) == 0] > 0).any(axis=1)
    assert not unseen.all()
    held_out = test[~unseen]
    np.testing.assert_allclose(design[held_out] @ profiles, added[held_out], atol=1e-3)


def test_each_phenomenon_shows_in_the_screen_statistics_and_goes_at_zero() -> None:
    """Same seed, one knob at a time: the statistic that measures a phenomenon rises clearly when it is on.

    (With both off the statistics are not 0: the shared control's noise, the single arms reused in every
    combination and the saturation already make a study-wide and a drug-wise residual; docs/simulator.md.)"""
    stats = {}
    for shift, interaction in ((0.0, 0.0), (0.3, 0.0), (0.0, 0.3)):
        data = simulate_compendium("screen", 0, **QUICK, combo_shift_scale=shift, drug_interaction_scale=interaction)
        stats[(shift, interaction)] = screen_statistics(data)
    off, shift_on, drugs_on = stats[(0.0, 0.0)], stats[(0.3, 0.0)], stats[(0.0, 0.3)]
    assert shift_on["shift_fraction_loo"] > off["shift_fraction_loo"] + 0.1
    assert drugs_on["drug_fraction_loo"] > off["drug_fraction_loo"] + 0.1
    # each knob leaves the other phenomenon's statistic (nearly) where it was
    assert abs(drugs_on["shift_fraction_loo"] - off["shift_fraction_loo"]) < 0.1


def test_validation_of_the_new_knobs() -> None:
    with pytest.raises(ValueError, match="screens of 25 drugs"):
        simulate_compendium("screen", 0, n_combos=400)  # 25 drugs have 300 pairs
    with pytest.raises(ValueError, match="combo_shift_scale"):
        simulate_compendium("tiny", 0, combo_shift_scale=-1.0)
    with pytest.raises(ValueError, match="drug_interaction_gene_share"):
        simulate_compendium("tiny", 0, drug_interaction_gene_share=2.0)


def test_phenomena_work_in_the_compendium_design_too() -> None:
    """Without a screen design (GEO-like studies) the knobs still act: the shift is per study."""
    _, on = simulate_compendium_with_truth("tiny", 0, combo_shift_scale=0.3, drug_interaction_scale=0.3)
    _, off = simulate_compendium_with_truth("tiny", 0)
    assert np.array_equal(on.drug1, off.drug1, equal_nan=True)
    assert not np.allclose(on.combo, off.combo, equal_nan=True)


# ----------------------------------------------------------------------------------------------
# screen_statistics on hand-made data
# ----------------------------------------------------------------------------------------------


def hand_made(y_of) -> ComboDataset:
    """4 drugs, all 6 pairs, 3 genes; y built from d1, d2 and the pair by `y_of`."""
    names = ["A", "B", "C", "D"]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    rng = np.random.default_rng(0)
    singles = {name: rng.normal(size=3) for name in names}
    d1 = np.stack([singles[a] for a, _ in pairs])
    d2 = np.stack([singles[b] for _, b in pairs])
    y = np.stack([y_of(d1[row], d2[row], a, b) for row, (a, b) in enumerate(pairs)])
    combos = pd.DataFrame({
        "combo": [f"{a}+{b}" for a, b in pairs], "study": "S", "drug1": [a for a, _ in pairs],
        "drug2": [b for _, b in pairs],
    })
    return ComboDataset(d1, d2, y, ["g1", "g2", "g3"], combos)


def test_screen_statistics_on_a_scaled_sum() -> None:
    stats = screen_statistics(hand_made(lambda d1, d2, a, b: 0.5 * (d1 + d2)))
    assert stats["sign_acc"] == 1.0
    assert stats["pearson_sum"] == pytest.approx(1.0)
    assert stats["slope_sum"] == pytest.approx(0.5, abs=1e-6)
    assert stats["coef1_median"] == pytest.approx(0.5, abs=1e-5)
    assert stats["coef2_median"] == pytest.approx(0.5, abs=1e-5)
    assert (stats["n_combos"], stats["n_drugs"], stats["n_studies"], stats["combos_per_drug_median"]) == (6, 4, 1, 3)


def test_screen_statistics_split_the_residual_into_shift_and_drug_profiles() -> None:
    """r = y - (d1 + d2) = m + I_a + I_b with m = (1, 0, 0), I = (1, -1, 0, 0) on gene 1 and 0 elsewhere.

    Gene 1's residuals over the pairs AB, AC, AD, BC, BD, CD are 1 + (0, 1, 1, -1, -1, 0): their mean is
    m = 1, SS = 6 + 4, so the shift explains 6 / 10; left one out the mean is 1 - J / 5, the residual
    1.2 J, so 1 - 1.44 * 4 / 10 = 0.424. The drug profiles explain the rest exactly, in and out of sample.
    """
    profiles = {"A": 1.0, "B": -1.0, "C": 0.0, "D": 0.0}
    dataset = hand_made(lambda d1, d2, a, b: d1 + d2 + np.array([1.0 + profiles[a] + profiles[b], 0.0, 0.0]))
    stats = screen_statistics(dataset)
    assert stats["shift_fraction"] == pytest.approx(0.6, abs=1e-5)
    assert stats["shift_fraction_loo"] == pytest.approx(0.424, abs=1e-5)
    assert stats["drug_fraction"] == pytest.approx(1.0, abs=1e-5)
    assert stats["drug_fraction_loo"] == pytest.approx(1.0, abs=1e-5)


def test_cli_prints_files_and_presets_side_by_side(capsys) -> None:
    from tests import REPO_ROOT

    fixture = REPO_ROOT / "tests" / "data" / "fixtures" / "norman_cebpe_cebpb_tidy.csv"
    assert main([str(fixture), "preset=tiny:seed=1:n_genes=200:n_core_genes=50"]) == 0
    printed = capsys.readouterr().out
    assert "slope_sum" in printed and "drug_fraction_loo" in printed and "preset=tiny" in printed
    assert load_source("preset=tiny:seed=1")[1].n_combos == PRESETS["tiny"]["n_combos"]
    assert "statistic" in format_table([("x", {"sign_acc": 0.5})])
    assert main(["preset=tiny:n_genes"]) == 2  # an option without a value
