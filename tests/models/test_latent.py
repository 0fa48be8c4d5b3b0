"""Gene-program basis: planted low-rank recovery, projection with missing genes, CV on inputs only, files."""

from __future__ import annotations

import numpy as np
import pytest

from combomap.data.library import DrugLibrary
from combomap.models.latent import (
    BasisError,
    LatentSettings,
    GeneProgramBasis,
    TooFewProfiles,
    basis_for,
    basis_without,
    fit_basis,
    library_profiles_for,
    select_basis,
    single_drug_profiles,
)
from tests.conftest import random_dataset


def _planted(n_profiles: int = 300, n_genes: int = 400, rank: int = 6, noise: float = 0.3, missing: float = 0.3,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noisy profiles with NaN, clean profiles, true orthonormal basis genes x rank)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(n_genes, rank)))
    coefficients = rng.normal(size=(n_profiles, rank)) * np.linspace(12.0, 4.0, rank)
    clean = coefficients @ basis.T
    noisy = clean + noise * rng.normal(size=clean.shape)
    noisy[rng.random(noisy.shape) < missing] = np.nan
    return noisy, clean, basis


def _genes(n: int) -> list[str]:
    return [f"G{j}" for j in range(n)]


def test_basis_recovers_a_planted_low_rank_structure_despite_missing_genes() -> None:
    noisy, clean, truth = _planted()
    basis = fit_basis(noisy, _genes(noisy.shape[1]), rank=6, n_iter=30)
    # principal angles between the fitted and the planted subspace: all cosines near 1
    cosines = np.linalg.svd(truth.T @ basis.components, compute_uv=False)
    assert cosines.min() > 0.99
    np.testing.assert_allclose(basis.components.T @ basis.components, np.eye(6), atol=1e-10)
    assert basis.noise_var == pytest.approx(0.3**2, rel=0.25)
    # the projection denoises: closer to the clean profiles than the measurements are, on measured genes
    measured = ~np.isnan(noisy)
    projected = basis.project(noisy)
    assert np.mean((projected - clean)[measured] ** 2) < 0.2 * np.mean((noisy - clean)[measured] ** 2)


def test_projection_fills_unmeasured_genes_and_matches_a_per_row_ridge_solve() -> None:
    noisy, clean, _ = _planted(missing=0.0)
    basis = fit_basis(noisy, _genes(noisy.shape[1]), rank=6)
    rng = np.random.default_rng(1)
    profiles = clean[:5].copy()
    profiles[rng.random(profiles.shape) < 0.4] = np.nan
    profiles[3] = np.nan  # nothing measured
    projected = basis.project(profiles)
    assert np.isfinite(projected).all()
    np.testing.assert_array_equal(projected[3], 0.0)
    unmeasured = np.isnan(profiles[:3])
    assert np.abs(projected[:3] - clean[:3])[unmeasured].max() < 0.05 * np.abs(clean[:3]).max()
    for row in (0, 4):  # the grouped solve equals the textbook posterior mean of each row
        keep = ~np.isnan(profiles[row])
        sub = basis.components[keep]
        penalty = np.diag(basis.ridge * basis.noise_var / basis.scales**2)
        coefficients = np.linalg.solve(sub.T @ sub + penalty, sub.T @ profiles[row, keep])
        np.testing.assert_allclose(projected[row], basis.components @ coefficients, rtol=1e-5, atol=1e-5)


def test_save_and_load_round_trip_exactly_and_refuse_damage(tmp_path) -> None:
    noisy, _, _ = _planted(n_genes=50, n_profiles=40)
    basis = fit_basis(noisy, _genes(50), rank=3, ridge=2.5, source="unit")
    basis.save(tmp_path / "b")
    loaded = GeneProgramBasis.load(tmp_path / "b")
    np.testing.assert_array_equal(loaded.components, basis.components)
    assert (loaded.genes, loaded.ridge, loaded.noise_var, loaded.source) == (basis.genes, 2.5, basis.noise_var, "unit")
    np.testing.assert_array_equal(loaded.project(noisy[:4]), basis.project(noisy[:4]))
    (tmp_path / "b" / "basis.npz").write_bytes(b"not a zip")
    with pytest.raises(BasisError, match="unreadable"):
        GeneProgramBasis.load(tmp_path / "b")
    with pytest.raises(BasisError, match="rank"):
        fit_basis(noisy[:3], _genes(50), rank=3)


def test_restricted_basis_keeps_the_requested_genes_and_names_the_missing_ones() -> None:
    noisy, _, _ = _planted(n_genes=20, n_profiles=30)
    basis = fit_basis(noisy, _genes(20), rank=2)
    part = basis.restricted(["G5", "G1"])
    np.testing.assert_array_equal(part.components, basis.components[[5, 1]])
    with pytest.raises(ValueError, match="lacks 1 of 2 genes"):
        basis.restricted(["G1", "nope"])


def _dataset_with_programs(seed: int = 0):
    """A compendium whose single-drug arms share a planted rank-4 structure."""
    data = random_dataset(n_combos=40, n_genes=60, seed=seed, missing=0.05)
    rng = np.random.default_rng(seed)
    programs, _ = np.linalg.qr(rng.normal(size=(60, 4)))
    for block in (data.drug1_effect, data.drug2_effect):
        measured = ~np.isnan(block)
        block[...] = np.where(measured, (rng.normal(size=(40, 4)) * 5) @ programs.T + 0.3 * rng.normal(size=(40, 60)), np.nan)
    return data, programs


def test_basis_choice_uses_inputs_only_never_combination_targets() -> None:
    data, _ = _dataset_with_programs()
    first = select_basis(data, ranks=[2, 4, 8], ridges=[1.0, 10.0], n_folds=3)
    data.combo_effect[...] = np.random.default_rng(9).normal(size=data.combo_effect.shape)  # other targets
    second = select_basis(data, ranks=[2, 4, 8], ridges=[1.0, 10.0], n_folds=3)
    np.testing.assert_array_equal(first.basis.components, second.basis.components)
    assert first.table.equals(second.table)
    assert set(first.table["rank"]) == {2, 4, 8} and first.basis.rank >= 4  # the planted rank is not underfit
    assert list(first.table.columns) == ["source", "rank", "ridge", "heldout_mse", "heldout_sign_acc", "heldout_sign_acc_se",
                                         "cv_groups", "candidate"]
    assert set(first.table["cv_groups"]) == {"study"} and set(first.table["candidate"]) == {"configured"}
    assert first.basis.info["cv_groups"] == "study"


def test_one_standard_error_rule_prefers_the_smaller_rank_the_cv_cannot_tell_apart() -> None:
    import pandas as pd

    from combomap.models.latent import choose_candidate

    table = pd.DataFrame({"source": ["compendium"] * 3 + ["library"], "rank": [8, 16, 32, 8], "ridge": [1.0] * 4,
                          "heldout_mse": [3.0, 2.0, 1.9, 5.0], "heldout_sign_acc": [0.60, 0.695, 0.70, 0.65],
                          "heldout_sign_acc_se": [0.01, 0.01, 0.01, 0.01]})
    assert (choose_candidate(table)["source"], choose_candidate(table)["rank"]) == ("compendium", 16)
    table.loc[2, "heldout_sign_acc_se"] = 0.001
    assert choose_candidate(table)["rank"] == 32


def test_a_library_that_fits_competes_and_one_that_does_not_is_reported() -> None:
    data, programs = _dataset_with_programs()
    rng = np.random.default_rng(3)
    effects = (rng.normal(size=(300, 4)) * 5) @ programs.T + 0.3 * rng.normal(size=(300, 60))
    library = DrugLibrary(effects=effects[:, ::-1], genes=list(data.genes)[::-1], drugs=[f"L{i}" for i in range(300)])
    profiles, reason = library_profiles_for(library, data.genes)
    np.testing.assert_allclose(profiles, effects.astype(np.float32))  # put in the data's gene order
    choice = basis_for(LatentSettings(ranks=[4], ridges=[1.0]), data, library)
    assert set(choice.table["source"]) == {"compendium", "library"}
    assert choice.basis.source == ("library" if "library" in str(choice.table.iloc[0]) else choice.basis.source)
    stranger = DrugLibrary(effects=effects[:, :10], genes=[f"X{j}" for j in range(10)], drugs=library.drugs)
    assert library_profiles_for(stranger, data.genes)[0] is None
    assert "0 of 60" in library_profiles_for(stranger, data.genes)[1]
    fallback = basis_for(LatentSettings(ranks=[4]), data, stranger)
    assert fallback.basis.source == "compendium"
    with pytest.raises(BasisError, match="does not cover"):
        basis_for(LatentSettings(ranks=[4], source="library"), data, stranger)


def test_single_drug_arms_are_counted_once_per_study() -> None:
    data = random_dataset(n_combos=6, n_genes=5)
    data.combos.loc[1, "drug1"] = data.combos.loc[0, "drug1"]  # same study S0, same drug: one arm
    arms, studies = single_drug_profiles(data)
    assert arms.shape == (11, 5)
    assert {study: list(studies).count(study) for study in ("S0", "S1", "S2")} == {"S0": 3, "S1": 4, "S2": 4}
    np.testing.assert_array_equal(arms[0], data.drug1_effect[0])


def _one_screen(n_drugs: int, n_genes: int = 40, seed: int = 0):
    """One study holding every pair of `n_drugs` drugs (a Korkut-style screen): n_drugs arms on a planted rank 3."""
    pairs = [(a, b) for a in range(n_drugs) for b in range(a + 1, n_drugs)]
    data = random_dataset(n_combos=len(pairs), n_genes=n_genes, seed=seed, missing=0.0)
    rng = np.random.default_rng(seed)
    programs, _ = np.linalg.qr(rng.normal(size=(n_genes, 3)))
    arms = (rng.normal(size=(n_drugs, 3)) * 5) @ programs.T + 0.3 * rng.normal(size=(n_drugs, n_genes))
    first, second = np.array(pairs).T
    data.drug1_effect[...], data.drug2_effect[...] = arms[first], arms[second]
    data.combos["study"] = "SCREEN"
    data.combos["drug1"], data.combos["drug2"] = [f"D{a}" for a in first], [f"D{b}" for b in second]
    return data


def test_one_screen_gets_a_basis_chosen_by_arm_with_small_ranks_added() -> None:
    from combomap.data.simulate import simulate_compendium

    data = simulate_compendium("tiny", 0, n_studies=1, n_combos=20, max_combos_per_study=20,
                               combos_per_study_probs=(0.0,) * 19 + (1.0,))
    arms, studies = single_drug_profiles(data)
    assert len(set(studies)) == 1 and len(arms) == 21
    choice = basis_for(LatentSettings(ridges=[1.0, 10.0]), data)
    table = choice.table
    assert set(table["cv_groups"]) == {"arm"}  # 1 study < 3 folds: each arm is its own CV group
    # 3 folds of 7 arms: each fit has 14 arms, so ranks up to 13; every configured rank is larger
    assert sorted(set(table["rank"])) == [1, 2, 4, 8, 13]
    assert set(table.loc[table["rank"] < 13, "candidate"]) == {"added"}
    assert set(table.loc[table["rank"] == 13, "candidate"]) == {"capped"}
    assert choice.basis.info["cv_groups"] == "arm" and "each arm is its own group" in choice.basis.info["selected_by"]
    assert choice.basis.rank in set(table["rank"]) and choice.basis.source == "compendium"


def test_one_screen_refits_per_fold_on_all_arms_and_says_why() -> None:
    data = _one_screen(8)  # 8 arms, 28 combinations, one study
    choice = select_basis(data, ranks=[16], ridges=[1.0], n_folds=3)
    assert set(choice.table["cv_groups"]) == {"arm"} and choice.basis.rank <= 4  # 3 folds: fits on >= 5 arms
    fold = basis_without(choice.basis, data, ["SCREEN"])  # what the stacker CV asks (every fold's study)
    assert fold.info["fit_on"].startswith("all 8 arms") and fold.info["refit_without_studies"] == 0
    np.testing.assert_allclose(fold.components, choice.basis.components)  # the same fit: all arms, same rank/ridge
    assert basis_without(choice.basis, data, []).info["fit_on"] == "8 of 8 arms, without the 0 held-out studies"


def test_a_multi_study_fold_basis_still_leaves_out_the_held_out_studies() -> None:
    data, _ = _dataset_with_programs()  # studies S0..S19, 2 combinations (4 arms) each
    basis = select_basis(data, ranks=[4], n_folds=3).basis
    fold = basis_without(basis, data, ["S0", "S1"])
    assert fold.info["fit_on"] == "72 of 80 arms, without the 2 held-out studies" and fold.info["refit_without_studies"] == 2
    kept = ~np.isin(single_drug_profiles(data)[1], ["S0", "S1"])
    refit = fit_basis(single_drug_profiles(data)[0][kept], list(data.genes), 4)
    np.testing.assert_allclose(np.abs(fold.components.T @ refit.components), np.eye(4), atol=1e-8)


def test_the_smallest_screen_works_and_three_arms_are_too_few() -> None:
    smallest = select_basis(_one_screen(4), ranks=[16], n_folds=3)  # 4 arms: folds of 2, 1, 1 -> rank 1 only
    assert list(smallest.table["rank"]) == [1] and smallest.basis.rank == 1
    with pytest.raises(TooFewProfiles, match=r"3 single-drug arms .* at least 4.*library=npy"):
        basis_for(LatentSettings(ranks=[16]), _one_screen(3))
