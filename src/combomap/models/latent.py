"""Gene programs: a low-rank basis of single-drug profiles, and the denoising projection of a profile on it.

Why: expression responses are low-rank (drugs act through shared programs; L1000 measures 978 landmark
genes for that reason) while one measured single-drug signature is noisy. Projecting a signature on a
basis learned from many single-drug profiles keeps its program part and drops most of its noise; the
stacker then sees both the raw and the projected profiles (features p1, p2).

- `fit_basis`: rank-k basis of profiles with missing genes by iterative (hard-impute) SVD: unmeasured
  entries are filled with the current rank-k reconstruction until it settles. Profiles are not centered:
  0 is "no change".
- `GeneProgramBasis.project`: posterior mean of a profile under the probabilistic-PCA reading of the basis
  (program coefficients ~ N(0, scale^2), gene noise ~ N(0, noise_var)), using only the profile's measured
  genes, i.e. ridge least squares with a per-program penalty ridge * noise_var / scale^2; it also fills
  unmeasured genes.
- `select_basis`: rank, ridge and source (the compendium's single-drug inputs or a drug library) chosen by
  grouped cross-validation on inputs only: each evaluation profile's measured genes are split in two halves,
  one half is projected and the other's signs predicted; a compendium basis is refit without the fold's
  studies; the smallest rank within one standard error of the best wins. Combination targets are never used.
  With fewer studies than CV folds (one screen) each arm is its own CV group, and when every configured rank
  needs more arms than a CV fit has, small ranks (1, 2, 4, ...) are tried instead (both said in the table).
- `basis_without`: the basis refit without held-out studies for the stacker CV; when that would leave too
  few arms (one screen: every fold holds out its only study) it is fit on all arms, and says so.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.folds import assign_folds
from combomap.progress import Progress
from combomap.settings import Checked, SettingsError, key_of, limits

log = logging.getLogger(__name__)

BASIS_ARRAYS = "basis.npz"
BASIS_META = "basis.json"
SOURCES = ("compendium", "library")


class BasisError(DataError):
    """Impossible basis settings, or a basis file that cannot be used."""


class TooFewProfiles(BasisError):
    """The data hold too few single-drug profiles for any basis (the latent feature sets are then left out)."""


MIN_ARMS = 4  # a compendium basis needs 3 CV folds of arms, each fit on >= 2 arms (rank >= 1)
_SAID: set[str] = set()
HELP = "give more single-drug profiles, or a drug library whose genes cover the data's (e.g. library=npy library.dir=...)"


@dataclass
class GeneProgramBasis:
    """An (n_genes x rank) basis with per-program coefficient scales, on named genes."""

    genes: list[str]
    components: np.ndarray  # float64 (n_genes x rank)
    scales: np.ndarray  # float64 (rank,): sd of each program's coefficient over the fitted profiles
    noise_var: float  # variance of a measured entry around its rank-k reconstruction
    ridge: float = 1.0
    source: str = "compendium"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.components = np.asarray(self.components, dtype=np.float64)
        self.scales = np.asarray(self.scales, dtype=np.float64)
        self.genes = [str(g) for g in self.genes]
        if self.components.ndim != 2 or self.components.shape[0] != len(self.genes):
            raise BasisError(f"basis components of shape {self.components.shape} for {len(self.genes)} genes")
        if self.scales.shape != (self.components.shape[1],):
            raise BasisError(f"{self.scales.shape[0]} program scales for rank {self.components.shape[1]}")
        if not (np.isfinite(self.components).all() and np.isfinite(self.scales).all() and np.isfinite(self.noise_var)):
            raise BasisError("basis holds non-finite values")
        if self.ridge < 0 or self.noise_var <= 0 or (self.scales <= 0).any():
            raise BasisError(f"basis needs ridge >= 0, noise_var > 0 and positive scales (ridge={self.ridge}, "
                             f"noise_var={self.noise_var})")

    @property
    def rank(self) -> int:
        return int(self.components.shape[1])

    def restricted(self, genes: Sequence[str]) -> "GeneProgramBasis":
        """The basis on `genes` (in that order); every gene must be in the basis."""
        position = {g: i for i, g in enumerate(self.genes)}
        missing = [g for g in genes if g not in position]
        if missing:
            raise DataError(f"gene-program basis ({self.source}) lacks {len(missing)} of {len(genes)} genes, "
                            f"e.g. {missing[:5]}")
        rows = np.array([position[g] for g in genes], dtype=np.int64)
        return GeneProgramBasis(list(genes), self.components[rows], self.scales, self.noise_var, self.ridge,
                                self.source, dict(self.info))

    def coefficients(self, profiles: np.ndarray) -> np.ndarray:
        """(n x rank) float64 posterior-mean program coefficients of (n x n_genes) profiles, NaN = unmeasured."""
        profiles = np.asarray(profiles, dtype=np.float64)
        if profiles.ndim != 2 or profiles.shape[1] != len(self.genes):
            raise DataError(f"profiles of shape {profiles.shape} do not match the basis' {len(self.genes)} genes")
        measured = ~np.isnan(profiles)
        penalty = np.diag(self.ridge * self.noise_var / self.scales**2)
        out = np.zeros((profiles.shape[0], self.rank))
        for rows in _rows_by_pattern(measured):
            genes = measured[rows[0]]
            if not genes.any():
                continue
            basis = self.components[genes]
            gram = basis.T @ basis + penalty
            out[rows] = np.linalg.solve(gram, basis.T @ profiles[np.ix_(rows, np.flatnonzero(genes))].T).T
        return out

    def project(self, profiles: np.ndarray) -> np.ndarray:
        """(n x n_genes) float32 denoised profiles (every gene filled; all-NaN rows give zeros)."""
        return (self.coefficients(profiles) @ self.components.T).astype(np.float32)

    def save(self, directory: str | Path) -> list[Path]:
        """basis.npz (components, scales) + basis.json (genes, noise_var, ridge, source, info); no pickle."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = directory / BASIS_ARRAYS
        with arrays.open("wb") as handle:
            np.savez(handle, components=self.components, scales=self.scales)
        meta = directory / BASIS_META
        meta.write_text(json.dumps({"genes": self.genes, "noise_var": self.noise_var, "ridge": self.ridge,
                                    "source": self.source, "info": self.info}, default=str) + "\n")
        return [arrays, meta]

    @classmethod
    def load(cls, directory: str | Path) -> "GeneProgramBasis":
        directory = Path(directory)
        try:
            meta = json.loads((directory / BASIS_META).read_text())
            with np.load(directory / BASIS_ARRAYS, allow_pickle=False) as arrays:
                components, scales = arrays["components"], arrays["scales"]
        except (OSError, ValueError, KeyError) as error:
            raise BasisError(f"{directory}: unreadable gene-program basis ({error})") from error
        if not isinstance(meta, dict) or "genes" not in meta:
            raise BasisError(f"{directory / BASIS_META}: not a gene-program basis description")
        if not (np.isfinite(components).all() and np.isfinite(scales).all() and np.isfinite(float(meta["noise_var"]))):
            raise BasisError(f"{directory / BASIS_ARRAYS}: the gene-program basis holds non-finite values (NaN/inf)")
        return cls(meta["genes"], components, scales, float(meta["noise_var"]), float(meta.get("ridge", 1.0)),
                   str(meta.get("source", "?")), dict(meta.get("info") or {}))


def _rows_by_pattern(measured: np.ndarray) -> list[np.ndarray]:
    """Row positions grouped by identical measured-gene pattern (platforms share one), in first-seen order."""
    groups: dict[bytes, list[int]] = {}
    for row, packed in enumerate(np.packbits(measured, axis=1)):
        groups.setdefault(packed.tobytes(), []).append(row)
    return [np.array(rows, dtype=np.int64) for rows in groups.values()]


def _top_components(filled: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left vectors n x r, singular values r, right vectors genes x r) of the top `rank` components."""
    if filled.shape[0] <= filled.shape[1]:
        values, left = np.linalg.eigh(filled @ filled.T)
        order = np.argsort(values)[::-1][:rank]
        singular = np.sqrt(np.maximum(values[order], 0.0))
        left = left[:, order]
        keep = singular > 1e-9 * max(singular[0], 1e-300)
        left, singular = left[:, keep], singular[keep]
        right = (filled.T @ left) / singular
        return left, singular, right
    left, singular, right_t = np.linalg.svd(filled, full_matrices=False)
    return left[:, :rank], singular[:rank], right_t[:rank].T


def fit_basis(
    profiles: np.ndarray,
    genes: Sequence[str],
    rank: int,
    n_iter: int = 10,
    tol: float = 1e-4,
    ridge: float = 1.0,
    source: str = "compendium",
    max_profiles: int = 4000,
    seed: int = 0,
) -> GeneProgramBasis:
    """Rank-k gene programs of (n_profiles x n_genes) profiles with missing genes (iterative SVD).

    Rows with no measured gene and exact duplicate rows are dropped; above `max_profiles` rows a seeded
    sample is used (the cost grows with rows squared).
    """
    profiles = np.asarray(profiles, dtype=np.float64)
    if profiles.ndim != 2 or profiles.shape[1] != len(genes):
        raise BasisError(f"profiles of shape {profiles.shape} for {len(genes)} genes")
    profiles = profiles[(~np.isnan(profiles)).any(axis=1)]
    distinct: dict[bytes, int] = {}
    for row, values in enumerate(np.nan_to_num(profiles, nan=np.inf)):
        distinct.setdefault(values.tobytes(), row)
    profiles = profiles[sorted(distinct.values())]
    if profiles.shape[0] > max_profiles:
        keep = np.sort(np.random.default_rng(seed).choice(profiles.shape[0], max_profiles, replace=False))
        profiles = profiles[keep]
    n_profiles = profiles.shape[0]
    if rank < 1:
        raise BasisError(f"basis rank must be >= 1, got {rank}")
    if n_profiles < 2 or rank >= n_profiles:
        raise TooFewProfiles(f"a rank-{rank} basis needs more than {rank} distinct single-drug profiles, got {n_profiles}")
    measured = ~np.isnan(profiles)
    filled = np.where(measured, profiles, 0.0)
    scale = max(float(np.sum(filled**2)), 1e-300)
    for _ in range(max(1, n_iter) if not measured.all() else 0):
        left, singular, right = _top_components(filled, rank)
        imputed = np.where(measured, profiles, (left * singular) @ right.T)
        change = float(np.sum((imputed - filled) ** 2)) / scale
        filled = imputed
        if change < tol:
            break
    left, singular, right = _top_components(filled, rank)
    reconstruction = (left * singular) @ right.T
    noise_var = float(np.mean((profiles[measured] - reconstruction[measured]) ** 2))
    scales = singular / np.sqrt(n_profiles)
    info = {"n_profiles": int(n_profiles), "rank": int(right.shape[1]), "measured_fraction": float(measured.mean()),
            "n_iter": int(n_iter)}
    return GeneProgramBasis(list(genes), right, scales, max(noise_var, 1e-12), float(ridge), source, info)


def single_drug_profiles(dataset: ComboDataset) -> tuple[np.ndarray, np.ndarray]:
    """The compendium's distinct single-drug arms (n_arms x n_genes) and each arm's study.

    One arm = one (study, drug): a drug used in several combinations of one study was measured once.
    Only inputs are read, never the combination targets.
    """
    combos = dataset.combos.reset_index(drop=True)
    arms = pd.DataFrame({
        "study": np.concatenate([combos["study"].astype(str), combos["study"].astype(str)]),
        "drug": np.concatenate([combos["drug1"].astype(str), combos["drug2"].astype(str)]),
        "row": np.concatenate([np.arange(len(combos)), np.arange(len(combos))]),
        "side": np.repeat([0, 1], len(combos)),
    }).drop_duplicates(["study", "drug"])
    stacked = np.stack([dataset.drug1_effect, dataset.drug2_effect])
    return stacked[arms["side"].to_numpy(), arms["row"].to_numpy()], arms["study"].to_numpy()


@dataclass
class BasisChoice:
    """The selected basis and the CV table it was chosen from (lower heldout_mse is better)."""

    basis: GeneProgramBasis
    table: pd.DataFrame


def _split_halves(measured: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of each profile's measured genes (one seeded coin per gene, so profiles measured on
    the same platform share their masks and are projected together)."""
    coin = np.random.default_rng(seed).random(measured.shape[1]) < 0.5
    return measured & coin[None, :], measured & ~coin[None, :]


def _heldout_error(basis: GeneProgramBasis, profiles: np.ndarray, seed: int) -> tuple[float, float, int]:
    """Squared errors, sign hits and count predicting each half of the measured genes from the other half."""
    measured = ~np.isnan(profiles)
    first, second = _split_halves(measured, seed)
    total, hits, count = 0.0, 0.0, 0
    for seen, hidden in ((first, second), (second, first)):
        prediction = basis.project(np.where(seen, profiles, np.nan))
        errors = (prediction - profiles)[hidden]
        total += float(np.sum(errors.astype(np.float64) ** 2))
        hits += float(np.sum(np.sign(prediction[hidden]) == np.sign(profiles[hidden])))
        count += int(hidden.sum())
    return total, hits, count


def choose_candidate(table: pd.DataFrame) -> pd.Series:
    """The source with the best held-out sign accuracy; within it the smallest rank whose accuracy lies within one
    standard error (across folds) of that source's best (the one-standard-error rule: prefer the simpler basis
    when the CV cannot tell them apart), and at that rank the best ridge."""
    ordered = table.sort_values(["heldout_sign_acc", "heldout_mse"], ascending=[False, True], kind="stable")
    top = ordered.iloc[0]
    same_source = ordered[ordered["source"] == top["source"]]
    close = same_source[same_source["heldout_sign_acc"] >= top["heldout_sign_acc"] - top["heldout_sign_acc_se"]]
    return close[close["rank"] == close["rank"].min()].iloc[0]


def select_basis(
    dataset: ComboDataset,
    ranks: Sequence[int],
    ridges: Sequence[float] = (1.0,),
    library_profiles: np.ndarray | None = None,
    library_name: str = "library",
    n_folds: int = 3,
    n_iter: int = 10,
    seed: int = 0,
    sources: Sequence[str] = SOURCES,
) -> BasisChoice:
    """The (source, rank, ridge) whose projections best predict the signs of held-out genes of the
    compendium's arms (sign accuracy is the project's metric), by `choose_candidate`'s one-standard-error rule.

    library_profiles: (n_drugs x dataset genes) or None. A compendium basis is evaluated with K-fold CV
    grouped by study (refit without the fold); a library basis is external, so it is fit once.
    """

    ranks = sorted({int(r) for r in ranks})
    ridges = sorted({float(r) for r in ridges})
    arms, studies = single_drug_profiles(dataset)
    genes = list(dataset.genes)
    rows = []
    n_studies = len(set(studies))
    # the CV groups: studies (arms of one study share its vehicle control); with fewer studies than folds (one
    # screen) each arm is its own group, the only split left (its evaluation arm shares the training arms' control)
    by_arm = n_studies < int(n_folds)
    cv_groups = "arm" if by_arm else "study"
    groups = np.arange(len(arms)) if by_arm else studies
    folds = min(int(n_folds), len(arms)) if by_arm else int(n_folds)
    fold_of_arm = assign_folds(groups, folds, seed) if folds >= 2 else np.zeros(len(arms), dtype=np.int64)
    too_few = (f"{len(arms)} single-drug arms (distinct (study, drug) profiles) in {n_studies} studies; a compendium "
               f"basis needs at least {MIN_ARMS}") if len(arms) < MIN_ARMS or folds < 2 else ""
    if too_few and library_profiles is None:
        raise TooFewProfiles(f"too few single-drug profiles to choose a gene-program basis: {too_few}; {HELP}")
    # a rank-k basis needs more than k profiles: ranks below the arms of the smallest CV training fold
    smallest = len(arms) - int(np.bincount(fold_of_arm).max()) if folds >= 2 else len(arms)
    cap = max(1, smallest - 1)
    origin = {r: "configured" for r in ranks if r <= cap}
    origin.update({cap: "capped"} if ranks[-1] > cap and cap not in origin else {})
    if ranks[0] > cap:  # every configured rank is too large: try small ones as well
        origin.update({int(r): "added" for r in 2 ** np.arange(int(np.log2(cap)) + 1) if r < cap})
        log.warning("latent.ranks %s all need more than the %d arms of the smallest basis-CV training fold: "
                    "candidate ranks %s instead", ranks, smallest, sorted(origin))
    compendium_ranks = sorted(origin)
    use_compendium = not too_few and "compendium" in sources
    use_library = library_profiles is not None and len(arms) > 0
    library_cap = max(1, len(library_profiles) - 1) if use_library else 0
    library_ranks = sorted({min(r, library_cap) for r in ranks}) if use_library else []
    steps = (folds + len(compendium_ranks) * len(ridges) if use_compendium else 0) + \
        (1 + len(library_ranks) * len(ridges) if use_library else 0)
    progress = Progress(steps, "gene-program basis selection", unit="fit")

    def score(basis_of_fold, evaluation_folds, source: str, candidate_ranks: list[int], labels: dict) -> None:
        for rank in candidate_ranks:
            for ridge in ridges:
                total, hits, count, fold_accuracy = 0.0, 0.0, 0, []
                for fold, (basis, profiles) in enumerate(zip(basis_of_fold, evaluation_folds)):
                    if basis is None or rank > basis.rank:
                        continue
                    truncated = GeneProgramBasis(genes, basis.components[:, :rank], basis.scales[:rank], basis.noise_var,
                                                 ridge, source)
                    part = _heldout_error(truncated, profiles, seed + fold)
                    total, hits, count = total + part[0], hits + part[1], count + part[2]
                    fold_accuracy.append(part[1] / max(part[2], 1))
                if count:
                    spread = np.std(fold_accuracy, ddof=1) / np.sqrt(len(fold_accuracy)) if len(fold_accuracy) > 1 else 0.0
                    rows.append({"source": source, "rank": rank, "ridge": ridge, "heldout_mse": total / count,
                                 "heldout_sign_acc": hits / count, "heldout_sign_acc_se": float(spread),
                                 "cv_groups": cv_groups, "candidate": labels.get(rank, "configured")})
                progress.update(note=f"{source} rank {rank}")

    with progress:
        if use_compendium:
            bases, evaluations = [], []
            for fold in range(folds):
                train = arms[fold_of_arm != fold]
                usable = min(compendium_ranks[-1], max(1, len(train) - 1))
                try:
                    bases.append(fit_basis(train, genes, usable, n_iter=n_iter, source="compendium", seed=seed))
                except BasisError:
                    bases.append(None)
                evaluations.append(arms[fold_of_arm == fold])
                progress.update(note=f"compendium fold {fold}")
            score(bases, evaluations, "compendium", compendium_ranks, origin)
        if use_library:
            library_basis = fit_basis(library_profiles, genes, library_ranks[-1], n_iter=n_iter, source=library_name,
                                      seed=seed)
            progress.update(note="library")
            evaluation = [arms[fold_of_arm == fold] for fold in range(folds)] if folds >= 2 else [arms]
            score([library_basis] * len(evaluation), evaluation, "library", library_ranks,
                  {library_cap: "capped"} if ranks[-1] > library_cap else {})
    table = pd.DataFrame(rows, columns=["source", "rank", "ridge", "heldout_mse", "heldout_sign_acc", "heldout_sign_acc_se",
                                        "cv_groups", "candidate"])
    if table.empty:
        raise TooFewProfiles(f"too few single-drug profiles to choose a gene-program basis: "
                             f"{too_few or f'{len(arms)} arms in {n_studies} studies'}; {HELP}")
    if too_few:
        log.warning("no compendium gene-program basis (%s): only the library competes", too_few)
    best = choose_candidate(table)
    chosen_rank, chosen_ridge = int(best["rank"]), float(best["ridge"])
    if best["source"] == "library":
        basis = fit_basis(library_profiles, genes, chosen_rank, n_iter=n_iter, ridge=chosen_ridge, source=library_name,
                          seed=seed)
    else:
        basis = fit_basis(arms, genes, min(chosen_rank, len(arms) - 1), n_iter=n_iter, ridge=chosen_ridge,
                          source="compendium", seed=seed)
    basis.info.update({"heldout_mse": float(best["heldout_mse"]), "heldout_sign_acc": float(best["heldout_sign_acc"]),
                       "cv_groups": cv_groups,
                       "selected_by": f"{folds}-fold CV grouped by {cv_groups} on held-out genes of single-drug inputs"
                                      + (f" ({n_studies} studies < latent.cv_folds={int(n_folds)}: each arm is its own "
                                         "group)" if by_arm else "")})
    log.info("gene-program basis: %s, rank %d, ridge %g (held-out gene sign accuracy %.4f, MSE %.4f; %s; candidates:\n%s)",
             basis.source, basis.rank, basis.ridge, best["heldout_sign_acc"], best["heldout_mse"],
             basis.info["selected_by"], table.to_string(index=False))
    return BasisChoice(basis, table)


def basis_without(basis: GeneProgramBasis, dataset: ComboDataset, held_out_studies: Sequence[str]) -> GeneProgramBasis:
    """The basis as it would be had the held-out studies never been seen: a compendium basis is refit (same rank
    and ridge) on the other studies' arms; an external (library) basis is returned as it is.

    Why: arms of one study share its vehicle control, so a compendium basis fit on a held-out combination's
    own arms learns that study's control noise, which is also in the combination's target; cross-validation
    must refit it per fold to score what a saved model does on new studies.

    When fewer than MIN_ARMS arms lie outside the held-out studies (one screen: every fold holds out its only
    study), no CV can score new studies; the basis is then fit on all arms (the singles are the model's inputs,
    there at prediction time) and its info says so. Leaving out only the held-out combinations' own arms would
    not help: every arm of a study carries the same control noise as its combinations.
    """
    if basis.source != "compendium":
        return basis
    arms, studies = single_drug_profiles(dataset)
    held = sorted({str(s) for s in held_out_studies})
    kept = ~np.isin(studies, np.asarray(held, dtype=str))
    n_kept, n_studies = int(kept.sum()), len(set(studies))
    if n_kept >= MIN_ARMS:
        fit_on = f"{n_kept} of {len(arms)} arms, without the {len(held)} held-out studies"
    else:
        fit_on = (f"all {len(arms)} arms: only {n_kept} lie outside the {len(held)} held-out studies "
                  f"(of {n_studies}), too few for a refit, so this CV scores new combinations of seen studies")
        if fit_on not in _SAID:  # said once, not once per fold and feature set
            _SAID.add(fit_on)
            (log.info if n_studies == 1 else log.warning)("gene-program basis for a CV fold fit on %s", fit_on)
        kept = np.ones(len(arms), dtype=bool)
    rank = min(basis.rank, max(1, int(kept.sum()) - 1))
    refit = fit_basis(arms[kept], list(dataset.genes), rank, n_iter=int(basis.info.get("n_iter", 10)), ridge=basis.ridge)
    refit.info["refit_without_studies"] = len(held) if n_kept >= MIN_ARMS else 0
    refit.info["fit_on"] = fit_on
    return refit


def library_profiles_for(library, genes: Sequence[str]) -> tuple[np.ndarray | None, str]:
    """The library's profiles on `genes` (n_drugs x len(genes)), or None and the one-line reason it cannot serve."""
    if library is None:
        return None, "no drug library given"
    position = {g: i for i, g in enumerate(library.genes)}
    found = [position[g] for g in genes if g in position]
    if len(found) < len(genes):
        return None, (f"library {library.source} does not cover the data's genes ({len(found)} of {len(genes)} found); "
                      "the gene-program basis comes from the compendium's single-drug inputs")
    return library.effects[:, np.asarray(found, dtype=np.int64)], ""


@dataclass
class LatentSettings(Checked):
    """The `latent` group (conf/latent): how the gene-program basis is chosen (docs/latent.md)."""

    source: str = field(default="auto", metadata=limits(choices=("auto", *SOURCES)))
    use_library: bool = True
    ranks: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    ridges: list[float] = field(default_factory=lambda: [1.0])
    cv_folds: int = field(default=3, metadata=limits(2))
    n_iter: int = field(default=10, metadata=limits(1))
    refit_per_fold: bool = True

    def validate(self, prefix: str) -> None:
        if not self.ranks or any(isinstance(r, bool) or int(r) != r or r < 1 for r in self.ranks):
            raise SettingsError(f"{key_of(prefix, 'ranks')} must list integers >= 1, got {list(self.ranks)}")
        if not self.ridges or any(not math.isfinite(r) or r < 0 for r in self.ridges):
            raise SettingsError(f"{key_of(prefix, 'ridges')} must list finite numbers >= 0, got {list(self.ridges)}")


def basis_for(settings: LatentSettings, dataset: ComboDataset, library=None, seed: int = 0) -> BasisChoice:
    """The gene-program basis the latent settings ask for (source auto | compendium | library)."""
    settings.check("latent")
    source = settings.source
    profiles, reason = (None, "latent.source=compendium") if source == "compendium" else library_profiles_for(library, dataset.genes)
    if profiles is None and source == "library":
        raise BasisError(f"latent.source=library: {reason}")
    if profiles is None and library is not None:
        log.warning("%s", reason)
    choice = select_basis(
        dataset,
        ranks=[int(rank) for rank in settings.ranks],
        ridges=[float(ridge) for ridge in settings.ridges],
        library_profiles=profiles,
        library_name=getattr(library, "source", "library"),
        n_folds=settings.cv_folds,
        n_iter=settings.n_iter,
        seed=seed,
        sources=("library",) if source == "library" else ("compendium", "library"),
    )
    return choice
