"""A simulated compendium with interactions planted at known entries and sizes, and the scoring of calls.

`plant_interactions` keeps the simulator's design (studies, drugs, platforms, control replicates) and the singles'
noise-free standardized effects t1, t2 (combomap.data.simulate's truth), sets each combination's truth to exactly

    expected(t1, t2) + planted            (expected: t1 + t2, or (t1 + t2) / 2)

and measures every study again as the simulator does (combomap.data.effect_size): gene variances from a scaled
inverse chi-square prior, replicate group means against one shared control, limma's squeeze, the moderated t and
metaMA's d' and var(d'). The simulator's own non-additivity (saturation, blockade, ...) is gone, so the planted
entries are the only true interactions. In `combo_fraction` of the combinations, `gene_fraction` of the measured
genes get a departure of size s noise SDs (s drawn from `sizes`; sign at random, relative to the expected's:
half stronger, half weaker). The noise SD is that of observed - expected from the replicates, in the truth's units:
sqrt(1/n_c + w^2 (1/n_1 + 1/n_2) + (2w - 1)^2 / n_0) (w = 1 additive, 1/2 average; n_0: the control's replicates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.effect_size import effect_size, moderated_t, squeeze_variances
from combomap.data.simulate import SimulationTruth
from combomap.interactions.calls import BUFFERING, SYNERGY
from combomap.interactions.settings import PlantSettings

WEIGHTS = {"additive": 1.0, "average": 0.5}
PRIOR_DF_RANGE = (3.0, 12.0)  # the simulator's range of the gene-variance prior's degrees of freedom
REPLICATE_JITTER = (-1, 0, 0, 0, 0, 1)  # an arm's replicates: the control's, sometimes one more or fewer (2 to 4)


@dataclass(frozen=True)
class PlantedCompendium:
    """The measured data set with planted interactions and its truth (n_combos x n_genes arrays):
    `size` the planted size in noise SDs (0: none, NaN: unmeasured), `departure` its value (truth's units),
    `kind` the call it deserves (1 synergy: |true combination| > |true expected|, -1 buffering, 0 none);
    `noise_sd` (n_combos,) each combination's noise SD of observed - expected."""

    dataset: ComboDataset
    size: np.ndarray
    departure: np.ndarray
    kind: np.ndarray
    noise_sd: np.ndarray

    @property
    def truth(self) -> np.ndarray:
        return np.nan_to_num(self.size, nan=0.0) > 0


def _measure(rng: np.random.Generator, true_effects: np.ndarray,
             replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d', var(d')) of each treatment arm (rows of true_effects, in units of each gene's noise SD) against one
    shared control (replicates[0]); the simulator's measurement with the gene's true variance drawn per study."""
    n_genes = true_effects.shape[1]
    prior_df = rng.uniform(*PRIOR_DF_RANGE)
    sigma2 = prior_df / rng.chisquare(prior_df, size=n_genes)
    sigma = np.sqrt(sigma2)
    df_residual = int(replicates.sum() - replicates.size)
    means = rng.standard_normal((replicates.size, n_genes)) * sigma / np.sqrt(replicates)[:, None]
    means[1:] += true_effects * sigma
    s2 = sigma2 * rng.chisquare(df_residual, size=n_genes) / df_residual
    squeezed = squeeze_variances(s2, df_residual)
    t = moderated_t(means[1:] - means[0], squeezed.s2_post, replicates[0], replicates[1:, None])
    return effect_size(t, df_residual + squeezed.df_prior, replicates[0], replicates[1:, None])


def _single_truth(truth: SimulationTruth, combos: pd.DataFrame, rows: np.ndarray) -> dict[str, np.ndarray]:
    singles: dict[str, np.ndarray] = {}
    for row in rows:
        for column, values in (("drug1", truth.drug1), ("drug2", truth.drug2)):
            singles.setdefault(str(combos[column].iloc[row]), values[row].astype(np.float64))
    return singles


def plant_interactions(dataset: ComboDataset, truth: SimulationTruth, settings: PlantSettings,
                       expected: str = "additive") -> PlantedCompendium:
    """The compendium measured again with exactly `expected` combinations plus planted interactions (module doc)."""
    if expected not in WEIGHTS:
        raise DataError(f"planted interactions need expected additive or average, got {expected!r}")
    weight = WEIGHTS[expected]
    rng = np.random.default_rng(settings.seed)
    sizes = np.asarray(settings.sizes, dtype=np.float64)
    shape = dataset.combo_effect.shape
    arrays = {name: np.full(shape, np.nan) for name in ("d1", "d2", "y", "v1", "v2", "size", "departure", "base")}
    noise_sd = np.full(dataset.n_combos, np.nan)
    n_ctrl = truth.combos["n_ctrl"].to_numpy() if "n_ctrl" in truth.combos else np.full(dataset.n_combos, 3)
    combos = dataset.combos
    for study, rows in combos.groupby("study", sort=False).indices.items():
        rows = np.asarray(rows)
        measured = ~np.isnan(truth.combo[rows[0]])
        singles = _single_truth(truth, combos, rows)
        names = list(singles)
        replicates = np.clip(int(n_ctrl[rows[0]]) + rng.choice(REPLICATE_JITTER, size=1 + len(names) + rows.size), 2, 4)
        replicates[0] = int(n_ctrl[rows[0]])
        arm = {name: position for position, name in enumerate(names)}
        true_arms = [singles[name][measured] for name in names]
        for number, row in enumerate(rows):
            first, second = arm[str(combos["drug1"].iloc[row])], arm[str(combos["drug2"].iloc[row])]
            base = weight * (true_arms[first] + true_arms[second])
            n_0, n_1, n_2, n_c = (replicates[0], replicates[1 + first], replicates[1 + second],
                                  replicates[1 + len(names) + number])
            noise_sd[row] = np.sqrt(1 / n_c + weight**2 * (1 / n_1 + 1 / n_2) + (2 * weight - 1) ** 2 / n_0)
            size = np.zeros(base.size)
            if rng.random() < settings.combo_fraction:
                picked = rng.choice(base.size, size=min(base.size, int(round(settings.gene_fraction * base.size))),
                                    replace=False)
                size[picked] = rng.choice(sizes, size=picked.size)
            sign = rng.choice([-1.0, 1.0], size=base.size) * np.where(base >= 0, 1.0, -1.0)
            departure = size * noise_sd[row] * sign
            true_arms.append(base + departure)
            for name, values in (("size", size), ("departure", departure), ("base", base)):
                arrays[name][row, measured] = values
        dprime, variance = _measure(rng, np.vstack(true_arms), replicates)
        for number, row in enumerate(rows):
            first, second = arm[str(combos["drug1"].iloc[row])], arm[str(combos["drug2"].iloc[row])]
            for name, position in (("d1", first), ("d2", second), ("y", len(names) + number)):
                arrays[name][row, measured] = dprime[position]
            arrays["v1"][row, measured] = variance[first]
            arrays["v2"][row, measured] = variance[second]
    stronger = np.abs(arrays["base"] + arrays["departure"]) > np.abs(arrays["base"])
    kind = np.where(np.nan_to_num(arrays["size"]) > 0, np.where(stronger, SYNERGY, BUFFERING), 0).astype(np.int8)
    planted = ComboDataset(drug1_effect=arrays["d1"], drug2_effect=arrays["d2"], combo_effect=arrays["y"],
                           genes=list(dataset.genes), combos=combos, drug1_var=arrays["v1"], drug2_var=arrays["v2"],
                           source=f"{dataset.source} + planted interactions (seed {settings.seed})")
    return PlantedCompendium(dataset=planted, size=arrays["size"], departure=arrays["departure"], kind=kind,
                             noise_sd=noise_sd)


def score_calls(call: np.ndarray, planted: PlantedCompendium, tested: np.ndarray) -> dict[str, float]:
    """Precision, recall and the realised false discovery proportion of calls (int8 as EntryTests.call, n_combos x
    n_genes) against the planted truth over the tested entries; direction_acc: the share of true calls whose
    synergy/buffering label is the planted one."""
    called = (call != 0) & tested
    true = planted.truth & tested
    hits = int((called & true).sum())
    n_called, n_true = int(called.sum()), int(true.sum())
    return {
        "n_called": float(n_called), "n_true": float(n_true), "true_positives": float(hits),
        "precision": hits / n_called if n_called else float("nan"),
        "recall": hits / n_true if n_true else float("nan"),
        "fdp": (n_called - hits) / n_called if n_called else 0.0,
        "direction_acc": float((call == planted.kind)[called & true].mean()) if hits else float("nan"),
    }


def recall_by_size(call: np.ndarray, planted: PlantedCompendium, tested: np.ndarray) -> pd.DataFrame:
    """Recall of the planted entries per planted size (noise SDs)."""
    called = call != 0
    size = np.nan_to_num(planted.size, nan=0.0)
    rows = []
    for value in np.unique(size[size > 0]):
        entries = (size == value) & tested
        rows.append({"size_sd": float(value), "n_true": int(entries.sum()),
                     "recall": float((called & entries).sum() / entries.sum()) if entries.any() else float("nan")})
    return pd.DataFrame(rows, columns=["size_sd", "n_true", "recall"])
