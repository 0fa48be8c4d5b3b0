"""Learned linear baselines of a combination: what real screens show that the average cannot.

Real double-perturbation screens (Norman 2019, Korkut 2015) share two effects that no single drug carries:
- a **shared combination component**: on many genes every combination of a screen is sub-additive and
  shifted the same way, so y_g ~ slope_g (d1 + d2) + shift_g fits better than d1 + d2;
- **recurring interactions**: the part of a combination that the shared model misses, r = y - shared, has a
  drug-specific profile that recurs in every combination containing that drug: r_AB ~ I_A + I_B.

`LinearComboModel` is both, fitted from training combinations only (the stack runs it out of fold):
- kind "additive_shift": d1 + d2 + shift_g (slope 1, no drug profiles), the plainest learned baseline;
- kind "interaction": slope_g (d1 + d2) + shift_g + I_A + I_B, with each gene's slope shrunk toward the pooled
  slope and the drug profiles ridge-shrunk toward 0 (penalty chosen by grouped CV over the training
  combinations). A drug seen in no training combination has no profile (I = 0): it gets the shared part only,
  which is what an all-pairs library query mostly asks for (the "none seen" regime).

Prediction needs the pairs' drug names (`PairBatch.drug1_name`, `drug2_name`) only for the profiles; without
names every drug counts as unseen. Missing values: the additive part follows `evaluation.baselines.additive`
(a missing drug counts as 0, NaN only when both are missing); a missing target is left out of every fit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.folds import assign_folds
from combomap.data.pairs import PairBatch
from combomap.errors import UserError
from combomap.evaluation.baselines import additive
from combomap.progress import track

KINDS = ("additive_shift", "interaction")
RIDGES = (0.25, 1.0, 4.0, 16.0, 64.0, 256.0)  # drug-profile penalty in units of one combination's weight
SWEEPS = 40
PARAMETERS_FILE = "linear.npz"
DRUGS_FILE = "linear.json"


class LearnedModelError(UserError):
    """A learned baseline that cannot be fitted or loaded."""


def _nanmean0(values: np.ndarray, axis: int = 0) -> np.ndarray:
    measured = ~np.isnan(values)
    count = measured.sum(axis=axis)
    total = np.where(measured, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def shared_fit(summed: np.ndarray, target: np.ndarray, use_slope: bool, slope_prior: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per gene (slope, shift) of target ~ slope * summed + shift over the measured entries.

    Each gene's slope is shrunk toward the pooled slope with the weight of a typical gene's spread of `summed`
    (`slope_prior` scales that weight): a gene with little spread keeps the pooled slope, a gene with a lot
    keeps its own. Without `use_slope` the slope is 1 and the shift is the mean of target - summed."""
    both = ~np.isnan(summed) & ~np.isnan(target)
    x = np.where(both, summed, np.nan).astype(np.float64)
    y = np.where(both, target, np.nan).astype(np.float64)
    n_genes = summed.shape[1]
    if not use_slope:
        slope = np.ones(n_genes)
        return slope, _nanmean0(y - x)
    x_mean, y_mean = _nanmean0(x), _nanmean0(y)
    xc = np.where(both, x - x_mean, 0.0)
    yc = np.where(both, y - y_mean, 0.0)
    sxx = (xc * xc).sum(axis=0)
    sxy = (xc * yc).sum(axis=0)
    pooled = float(sxy.sum() / sxx.sum()) if sxx.sum() > 0 else 1.0
    weight = slope_prior * float(np.median(sxx[sxx > 0])) if (sxx > 0).any() else 1.0
    slope = (sxy + weight * pooled) / (sxx + weight)
    return slope, y_mean - slope * x_mean


def drug_profiles(residual: np.ndarray, drug1: np.ndarray, drug2: np.ndarray, n_drugs: int, ridge: float,
                  sweeps: int = SWEEPS, tolerance: float = 1e-4) -> np.ndarray:
    """(n_drugs x n_genes) ridge solution of residual[c] ~ I[drug1[c]] + I[drug2[c]] per gene, missing entries
    left out (block coordinate descent over drugs: each update is exact given the partners' profiles; it stops
    when no profile moves by more than `tolerance` x the largest residual)."""
    measured = ~np.isnan(residual)
    values = np.where(measured, residual, 0.0)
    weights = measured.astype(np.float64)
    profiles = np.zeros((n_drugs, residual.shape[1]))
    plan = []
    for drug in range(n_drugs):
        combos = np.flatnonzero((drug1 == drug) | (drug2 == drug))
        if combos.size == 0:
            continue
        partner = np.where(drug1[combos] == drug, drug2[combos], drug1[combos])
        multiplicity = np.where(partner == drug, 2.0, 1.0)[:, None]  # a combination of a drug with itself: 2 I_A
        weighted = weights[combos] * multiplicity
        denominator = (weighted * multiplicity).sum(axis=0) + ridge
        partner[partner == drug] = n_drugs  # row n_drugs of `padded` stays 0
        plan.append((drug, partner, weighted, weighted * values[combos], denominator))
    padded = np.zeros((n_drugs + 1, residual.shape[1]))
    scale = max(float(np.abs(values).max()), 1e-12)
    for _ in range(sweeps):
        change = 0.0
        for drug, partner, weighted, weighted_values, denominator in plan:
            updated = (weighted_values - weighted * padded[partner]).sum(axis=0) / denominator
            change = max(change, float(np.max(np.abs(updated - padded[drug]))))
            padded[drug] = updated
        if change < tolerance * scale:
            break
    profiles = padded[:n_drugs]
    return profiles


def _encode(names: Sequence[str], vocabulary: dict[str, int]) -> np.ndarray:
    return np.array([vocabulary.get(str(name), -1) for name in names], dtype=np.int64)


@dataclass
class LinearComboModel:
    """slope_g (d1 + d2) + shift_g [+ I_A + I_B]: see the module docstring. Fit with `fit`, never by hand."""

    kind: str
    genes: list[str]
    slope: np.ndarray
    shift: np.ndarray
    drugs: list[str] = field(default_factory=list)
    profiles: np.ndarray | None = None  # (n_drugs x n_genes), rows in `drugs` order
    ridge: float | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LearnedModelError(f"unknown learned baseline {self.kind!r}; choose one of {list(KINDS)}")
        self.slope = np.asarray(self.slope, dtype=np.float64)
        self.shift = np.asarray(self.shift, dtype=np.float64)
        if self.slope.shape != (len(self.genes),) or self.shift.shape != (len(self.genes),):
            raise LearnedModelError(f"slope {self.slope.shape} and shift {self.shift.shape} must be ({len(self.genes)},)")
        if self.profiles is not None:
            self.profiles = np.asarray(self.profiles, dtype=np.float64)
            if self.profiles.shape != (len(self.drugs), len(self.genes)):
                raise LearnedModelError(f"drug profiles {self.profiles.shape} must be ({len(self.drugs)}, {len(self.genes)})")

    @classmethod
    def fit(cls, dataset: ComboDataset, kind: str = "interaction", ridges: Sequence[float] = RIDGES,
            cv_folds: int = 4, seed: int = 0, slope_prior: float = 1.0) -> "LinearComboModel":
        """Fit on every combination of `dataset`; the interaction model picks its ridge by grouped CV (by
        combination) over them, on the entries of drugs that recur (a drug in one combination teaches nothing
        about its other combinations)."""
        if kind not in KINDS:
            raise LearnedModelError(f"unknown learned baseline {kind!r}; choose one of {list(KINDS)}")
        summed = additive(dataset.drug1_effect, dataset.drug2_effect)
        target = dataset.combo_effect
        slope, shift = shared_fit(summed, target, use_slope=kind == "interaction", slope_prior=slope_prior)
        model = cls(kind=kind, genes=list(dataset.genes), slope=slope, shift=shift,
                    info={"n_combos": dataset.n_combos, "slope_median": float(np.median(slope))})
        if kind == "additive_shift":
            return model
        drugs = sorted(set(dataset.combos["drug1"].astype(str)) | set(dataset.combos["drug2"].astype(str)))
        vocabulary = {d: i for i, d in enumerate(drugs)}
        drug1 = _encode(dataset.combos["drug1"].astype(str), vocabulary)
        drug2 = _encode(dataset.combos["drug2"].astype(str), vocabulary)
        counts = np.bincount(np.concatenate([drug1, drug2]), minlength=len(drugs))
        if not (counts >= 2).any():
            model.info["profiles"] = "none: no drug is in two training combinations"
            return model
        residual = target.astype(np.float64) - model.shared(summed)
        ridge = cls._choose_ridge(dataset, residual, drug1, drug2, len(drugs), ridges, cv_folds, seed, slope_prior)
        model.drugs, model.ridge = drugs, ridge
        model.profiles = drug_profiles(residual, drug1, drug2, len(drugs), ridge)
        model.info.update({"ridge": ridge, "n_drugs": len(drugs), "n_recurring_drugs": int((counts >= 2).sum())})
        return model

    @staticmethod
    def _choose_ridge(dataset: ComboDataset, residual: np.ndarray, drug1: np.ndarray, drug2: np.ndarray, n_drugs: int,
                      ridges: Sequence[float], cv_folds: int, seed: int, slope_prior: float) -> float:
        ridges = sorted(float(r) for r in ridges)
        if len(ridges) == 1 or dataset.n_combos < 2 * cv_folds:
            return ridges[len(ridges) // 2]
        fold = assign_folds(np.arange(dataset.n_combos), cv_folds, seed)
        errors = np.zeros(len(ridges))
        summed = additive(dataset.drug1_effect, dataset.drug2_effect)
        for k in range(cv_folds):
            train, test = fold != k, fold == k
            slope, shift = shared_fit(summed[train], dataset.combo_effect[train], True, slope_prior)
            shared = slope * np.nan_to_num(summed, nan=0.0) + shift
            inner_residual = dataset.combo_effect.astype(np.float64) - shared
            seen = np.zeros(n_drugs, dtype=bool)
            seen[drug1[train]] = True
            seen[drug2[train]] = True
            scored = seen[drug1[test]] | seen[drug2[test]]  # only where a profile can act
            if not scored.any():
                continue
            for position, ridge in enumerate(ridges):
                profiles = drug_profiles(inner_residual[train], drug1[train], drug2[train], n_drugs, ridge)
                profiles[~seen] = 0.0
                predicted = profiles[drug1[test]] + profiles[drug2[test]]
                error = (inner_residual[test] - predicted)[scored]
                errors[position] += float(np.nansum(error**2))
        return ridges[int(np.argmin(errors))]

    def shared(self, summed: np.ndarray) -> np.ndarray:
        """slope_g * summed + shift_g; NaN where summed is NaN (no drug measured)."""
        return (self.slope * summed + self.shift).astype(np.float64)

    def drug_terms(self, names: Sequence[str] | None, n_rows: int) -> np.ndarray:
        """(n_rows x n_genes) each drug's learned profile; 0 for drugs without one (or without names)."""
        terms = np.zeros((n_rows, len(self.genes)))
        if self.profiles is None or names is None:
            return terms
        index = _encode(names, {d: i for i, d in enumerate(self.drugs)})
        known = index >= 0
        terms[known] = self.profiles[index[known]]
        return terms

    def predict(self, pairs: PairBatch) -> np.ndarray:
        """(n_pairs x n_genes) float32 in the model's gene order (a drug pair's names select its profiles)."""
        if pairs.n_genes != len(self.genes):
            raise DataError(f"inputs must be (n_pairs x {len(self.genes)}) in the learned model's gene order, got {pairs.shape}")
        prediction = self.shared(additive(pairs.drug1_effect, pairs.drug2_effect))
        prediction += self.drug_terms(pairs.drug1_name, pairs.n_pairs) + self.drug_terms(pairs.drug2_name, pairs.n_pairs)
        return prediction.astype(np.float32)

    def seen(self, names: Sequence[str]) -> np.ndarray:
        """True for drugs with a learned profile."""
        known = set(self.drugs) if self.profiles is not None else set()
        return np.array([str(n) in known for n in names], dtype=bool)

    def save(self, directory: str | Path) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"slope": self.slope, "shift": self.shift}
        if self.profiles is not None:
            arrays["profiles"] = self.profiles
        np.savez(directory / PARAMETERS_FILE, **arrays)
        meta = {"kind": self.kind, "genes": self.genes, "drugs": self.drugs, "ridge": self.ridge, "info": self.info}
        (directory / DRUGS_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        return [directory / PARAMETERS_FILE, directory / DRUGS_FILE]

    @classmethod
    def load(cls, directory: str | Path) -> "LinearComboModel":
        directory = Path(directory)
        try:
            meta = json.loads((directory / DRUGS_FILE).read_text(encoding="utf-8"))
            with np.load(directory / PARAMETERS_FILE, allow_pickle=False) as arrays:
                parameters = {name: arrays[name] for name in arrays.files}
        except (OSError, ValueError, KeyError) as error:
            raise LearnedModelError(f"{directory}: unreadable learned model ({error})") from error
        if not isinstance(meta, dict) or "kind" not in meta or "genes" not in meta:
            raise LearnedModelError(f"{directory / DRUGS_FILE}: must name the model's kind and genes")
        if "slope" not in parameters or "shift" not in parameters:
            raise LearnedModelError(f"{directory / PARAMETERS_FILE}: lacks slope or shift")
        return cls(kind=str(meta["kind"]), genes=[str(g) for g in meta["genes"]], slope=parameters["slope"],
                   shift=parameters["shift"], drugs=[str(d) for d in meta.get("drugs") or []],
                   profiles=parameters.get("profiles"), ridge=meta.get("ridge"), info=dict(meta.get("info") or {}))


def out_of_fold(dataset: ComboDataset, fold_of_combo: np.ndarray, train: np.ndarray | None = None,
                seed: int = 0) -> tuple[dict[str, np.ndarray], dict[int, LinearComboModel]]:
    """Each learned baseline fit on a fold's training combinations (`train[k]`, default every other fold),
    predicting the fold's combinations: ({kind: (n_combos x n_genes)}, {fold: the fold's interaction model})."""
    fold_of_combo = np.asarray(fold_of_combo)
    predictions = {kind: np.full(dataset.combo_effect.shape, np.nan, dtype=np.float32) for kind in KINDS}
    interaction = {}
    for fold in track(np.unique(fold_of_combo), "learned baselines fold", unit="fold", leave=False):
        fit_rows = np.flatnonzero(train[fold] if train is not None else fold_of_combo != fold)
        test_rows = np.flatnonzero(fold_of_combo == fold)
        subset, pairs = dataset.subset(fit_rows), PairBatch.from_dataset(dataset, test_rows)
        for kind in KINDS:
            model = LinearComboModel.fit(subset, kind, seed=seed)
            predictions[kind][test_rows] = model.predict(pairs)
            if kind == "interaction":
                interaction[int(fold)] = model
    return predictions, interaction
