"""The simulated combination compendium: a mechanistic, seeded stand-in for the original's data.

The generative model, its parameters and the measured calibration figures are in
docs/simulator.md. In short:

1. World: genes, platforms (a core gene set measured everywhere, the rest per platform) and K gene
   programs with sparse loadings plus a weak dense background.
2. Drugs (a pool of 1309, each from its own random stream, so drug i is the same drug in the
   compendium and in the library): a lognormal potency, drives on a main program, often on the
   broad (proliferation / stress) programs and on a few more, sparse gene-specific effects; 10%
   are pathway inhibitors that block one program.
3. Biology per arm: program activity = transfer(drive), saturating (tanh) for most programs and
   switch-like (Hill) for some; in a combination each drug keeps only the unblocked part of its
   activity and the two drives add; active programs share a limited transcriptional capacity, so
   an arm's log fold changes are divided by (1 + total activity / capacity). Together these give
   mostly additive, partially saturated combinations with a minority of synergy, buffering and
   dominance.
4. Measurement per study: a vehicle control shared by the single-drug and combination groups
   (2-4 replicates), gene variances from a scaled inverse chi-square prior, group means and the
   pooled residual variance (the sufficient statistics of Gaussian replicate arrays), limma's
   squeeze, the moderated t of each contrast and metaMA's d' and var(d').
5. Real-screen phenomena (off by default, on in the `screen` preset): a screen design (a study
   holds `screen_drugs` drugs and combinations among their pairs, so drugs recur), a per-gene shift
   shared by every combination of a study (`combo_shift_scale`) and a per-drug interaction profile
   added to every combination that holds the drug (`drug_interaction_scale`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace
from math import comb

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset, DataError
from combomap.data.effect_size import effect_size, moderated_t, squeeze_variances
from combomap.data.library import DrugLibrary

PRESETS: dict[str, dict[str, float]] = {
    "default": {"n_studies": 148, "n_combos": 257, "n_genes": 11525, "n_core_genes": 3483, "n_programs": 40},
    "small": {"n_studies": 30, "n_combos": 50, "n_genes": 2000, "n_core_genes": 604, "n_programs": 30},
    "tiny": {"n_studies": 6, "n_combos": 12, "n_genes": 300, "n_core_genes": 91, "n_programs": 12},
    # one drug-pair screen (Korkut 2015, Norman 2019): 150 of the 300 pairs of 25 drugs, every gene measured,
    # a shared shift and drug-specific interaction profiles (docs/simulator.md, "Real-screen phenomena")
    # (calibrated to the Korkut 2015 screen's statistics: python -m combomap.evaluation.screen_stats)
    "screen": {
        "n_studies": 1, "n_combos": 150, "n_genes": 2000, "n_core_genes": 2000, "n_programs": 30,
        "screen_drugs": 25, "combo_shift_scale": 0.16, "drug_interaction_scale": 0.17,
        "noise_sd_log_mean": -3.0, "noise_sd_log_sd": 0.0, "response_capacity": 5.0,
    },
}

# Random streams (SeedSequence spawn keys): independent, so e.g. adding studies never changes a drug.
# _SHIFT and _INTERACTION feed only the real-screen phenomena: with those off nothing draws from them.
_WORLD, _DRUG, _DESIGN, _MEASURE, _LIBRARY, _SHIFT, _INTERACTION = 0, 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class SimulationParams:
    """Every knob of the generative model; defaults are the calibrated values (docs/simulator.md)."""

    # sizes
    n_studies: int = 148
    n_combos: int = 257
    n_genes: int = 11525
    n_core_genes: int = 3483
    n_programs: int = 40
    n_drug_pool: int = 1309
    max_combos_per_study: int = 4
    # platforms: non-core coverage of each platform and how often studies use it
    platform_coverage: tuple[float, ...] = (0.80, 0.55, 0.65, 0.45, 0.50, 0.40)
    platform_usage: tuple[float, ...] = (0.40, 0.20, 0.15, 0.10, 0.10, 0.05)
    # gene programs
    n_broad_programs: int = 2
    broad_program_size: float = 0.25
    program_size_median: float = 0.03
    program_size_log_sd: float = 0.6
    switch_program_fraction: float = 0.15
    background_loading_sd: float = 0.3
    gene_responsiveness_log_sd: float = 0.5
    capacity_log_mean: float = 0.0
    capacity_log_sd: float = 0.4
    switch_hill: float = 3.0
    response_capacity: float = 3.0
    # drugs
    potency_log_mean: float = -1.5
    potency_log_sd: float = 1.4
    extra_programs_mean: float = 0.7
    extra_programs_potency_power: float = 0.5
    broad_program_hit_prob: float = 0.5
    broad_program_down_prob: float = 0.9
    drive_log_sd: float = 0.5
    specific_gene_fraction: float = 0.015
    specific_effect_sd: float = 0.6
    blocker_fraction: float = 0.10
    blockade_min: float = 0.8
    blocker_own_activity: float = 0.5
    blocker_broad_activity: float = 0.0
    blocker_basal_range: tuple[float, float] = (0.1, 0.5)
    # study design
    combos_per_study_probs: tuple[float, ...] = (0.45, 0.30, 0.15, 0.10)
    anchor_design_prob: float = 0.6
    related_partner_prob: float = 0.3
    antagonist_design_prob: float = 0.08
    agonist_potency_quantile: float = 0.9
    popularity_exponent: float = 1.0
    context_log_sd: float = 0.35
    dose_log_sd: float = 0.3
    # measurement
    replicate_probs: tuple[float, float, float] = (0.15, 0.55, 0.30)
    noise_sd_log_mean: float = -2.0
    noise_sd_log_sd: float = 0.6
    prior_df_range: tuple[float, float] = (3.0, 12.0)
    effect_scale: float = 1.0  # multiplies every true effect; 0 gives pure measurement noise
    # real-screen phenomena (docs/simulator.md, "Real-screen phenomena"); 0 turns each off
    screen_drugs: int = 0  # > 0: every study is a screen of this many drugs, its combos drawn among their pairs
    combo_shift_scale: float = 0.0  # per-gene shift shared by the combos of a study (x the study's single-arm rms)
    combo_shift_study_share: float = 0.5  # share of the shift's variance specific to the study (rest: all studies)
    combo_shift_gene_share: float = 0.5  # share of the shift's variance gene by gene (rest: on the programs)
    drug_interaction_scale: float = 0.0  # per-drug profile added to each combo holding the drug (x single-arm rms)
    drug_interaction_programs: float = 2.0  # programs a drug's interaction profile loads on (1 + Poisson mean - 1)
    drug_interaction_gene_share: float = 0.3  # share of the profile's variance on a sparse gene-specific part
    drug_interaction_gene_fraction: float = 0.05  # genes in that sparse part

    def __post_init__(self) -> None:
        if not 0 < self.n_core_genes <= self.n_genes:
            raise ValueError(f"n_core_genes={self.n_core_genes} must lie in (0, n_genes={self.n_genes}]")
        for name in ("combo_shift_scale", "drug_interaction_scale", "screen_drugs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        for name in ("combo_shift_study_share", "combo_shift_gene_share", "drug_interaction_gene_share",
                     "drug_interaction_gene_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)} must lie in [0, 1]")
        if self.drug_interaction_programs < 1:
            raise ValueError(f"drug_interaction_programs={self.drug_interaction_programs} must be >= 1")
        if self.screen_drugs:
            if self.screen_drugs < 2 or self.screen_drugs > self.n_drug_pool:
                raise ValueError(f"screen_drugs={self.screen_drugs} must lie in [2, n_drug_pool={self.n_drug_pool}]")
            most = comb(self.screen_drugs, 2) * self.n_studies
            if not self.n_studies <= self.n_combos <= most:
                raise ValueError(
                    f"n_combos={self.n_combos} cannot be spread over n_studies={self.n_studies} screens of "
                    f"{self.screen_drugs} drugs ({comb(self.screen_drugs, 2)} pairs each)"
                )
        elif not self.n_studies <= self.n_combos <= self.max_combos_per_study * self.n_studies:
            raise ValueError(
                f"n_combos={self.n_combos} cannot be spread over n_studies={self.n_studies} "
                f"with 1..{self.max_combos_per_study} combos each"
            )
        if len(self.platform_coverage) != len(self.platform_usage):
            raise ValueError("platform_coverage and platform_usage need one entry per platform")


def simulation_params(preset: str = "default", **overrides) -> SimulationParams:
    """The parameters of a preset with any field overridden by name (unknown names are an error)."""
    if preset not in PRESETS:
        raise DataError(f"unknown simulator preset {preset!r}; choose one of {sorted(PRESETS)}")
    known = {f.name for f in fields(SimulationParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise DataError(f"unknown simulator parameter(s) {unknown}; known: {sorted(known)}")
    for name, value in overrides.items():
        expected = _kind_of(getattr(SimulationParams, name))
        if not _is_kind(value, expected):
            raise DataError(f"simulator preset {preset!r}: overrides.{name} must be {expected}, got {value!r}")
    try:
        return replace(SimulationParams(), **{**PRESETS[preset], **overrides})
    except (ValueError, TypeError) as error:  # a value out of range or of the wrong type, named by __post_init__
        raise DataError(f"simulator preset {preset!r} with overrides {overrides}: {error}") from None


def _kind_of(default: object) -> str:
    if isinstance(default, tuple):
        return "a list of numbers"
    return "an integer" if isinstance(default, int) else "a number"


def _is_kind(value: object, kind: str) -> bool:
    def number(item: object) -> bool:
        return isinstance(item, numbers.Real) and not isinstance(item, bool) and math.isfinite(item)

    if kind == "a list of numbers":
        return isinstance(value, (list, tuple)) and all(number(item) for item in value)
    if kind == "an integer":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return number(value)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


# ----------------------------------------------------------------------------------------------
# World: genes, platforms, programs
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _World:
    genes: list[str]
    core: np.ndarray  # bool (G,)
    platform_measured: np.ndarray  # bool (P x G)
    loadings: np.ndarray  # (K x G), gene responsiveness folded in
    capacity: np.ndarray  # (K,)
    switch: np.ndarray  # bool (K,)


def _make_world(params: SimulationParams, seed: int) -> _World:
    rng = _rng(seed, _WORLD)
    n_genes, n_programs = params.n_genes, params.n_programs
    genes = [f"GENE{j:05d}" for j in range(n_genes)]

    core = np.zeros(n_genes, dtype=bool)
    core[rng.choice(n_genes, size=params.n_core_genes, replace=False)] = True
    coverage = np.asarray(params.platform_coverage)
    measured = rng.random((coverage.size, n_genes)) < coverage[:, None]
    # A non-core gene is missing from at least one platform, so exactly the core is measured everywhere.
    everywhere = np.flatnonzero(measured.all(axis=0) & ~core)
    measured[rng.integers(0, coverage.size, size=everywhere.size), everywhere] = False
    measured[:, core] = True

    sizes = np.empty(n_programs)
    n_broad = min(params.n_broad_programs, n_programs)
    sizes[:n_broad] = params.broad_program_size
    spread = params.program_size_log_sd * rng.standard_normal(n_programs - n_broad)
    sizes[n_broad:] = params.program_size_median * np.exp(spread)
    sizes = np.clip(sizes, 3.0 / n_genes, 0.5)
    member = rng.random((n_programs, n_genes)) < sizes[:, None]
    up_share = rng.uniform(0.2, 0.8, size=n_programs)[:, None]
    direction = np.where(rng.random((n_programs, n_genes)) < up_share, 1.0, -1.0)
    magnitude = np.abs(rng.standard_normal((n_programs, n_genes)))
    responsiveness = np.exp(params.gene_responsiveness_log_sd * rng.standard_normal(n_genes))
    background = params.background_loading_sd * rng.standard_normal((n_programs, n_genes))
    loadings = np.where(member, direction * magnitude, background) * responsiveness[None, :]

    capacity = np.exp(params.capacity_log_mean + params.capacity_log_sd * rng.standard_normal(n_programs))
    switch = rng.random(n_programs) < params.switch_program_fraction
    switch[:n_broad] = False
    return _World(genes, core, measured, loadings, capacity, switch)


def _transfer(world: _World, drive: np.ndarray, hill: float) -> np.ndarray:
    """Program activity from drive (rows = arms): saturating (tanh) or switch-like (Hill) per program."""
    cap = world.capacity
    graded = cap * np.tanh(drive / cap)
    scaled = np.abs(drive / cap) ** hill
    switch_like = np.sign(drive) * cap * scaled / (1.0 + scaled)
    return np.where(world.switch, switch_like, graded)


def _inverse_transfer(world: _World, activity: np.ndarray, hill: float) -> np.ndarray:
    """The drive that gives `activity` (|activity| < capacity), inverse of `_transfer`."""
    cap = world.capacity
    ratio = np.clip(np.abs(activity) / cap, 0.0, 1.0 - 1e-12)
    graded = cap * np.arctanh(ratio)
    switch_like = cap * (ratio / (1.0 - ratio)) ** (1.0 / hill)
    return np.sign(activity) * np.where(world.switch, switch_like, graded)


# ----------------------------------------------------------------------------------------------
# Drugs
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Drug:
    index: int
    potency: float
    drive: np.ndarray  # (K,) program drives at unit dose and context
    blockade: np.ndarray  # (K,) in [0, 1]: how much this drug blocks the partner's drive on each program
    main_program: int
    specific_genes: np.ndarray
    specific_effects: np.ndarray

    @property
    def name(self) -> str:
        return drug_name(self.index)

    @property
    def blocked_program(self) -> int:
        return int(np.argmax(self.blockade)) if self.blockade.max() > 0 else -1


def drug_name(index: int) -> str:
    return f"drug{index:04d}"


def _make_drug(params: SimulationParams, seed: int, index: int) -> _Drug:
    rng = _rng(seed, _DRUG, index)
    n_programs, n_genes = params.n_programs, params.n_genes
    n_broad = min(params.n_broad_programs, n_programs)
    potency = float(np.exp(params.potency_log_mean + params.potency_log_sd * rng.standard_normal()))

    main = int(rng.integers(n_broad, n_programs)) if n_programs > n_broad else 0
    hit = np.zeros(n_programs, dtype=bool)
    hit[main] = True
    hit[:n_broad] |= rng.random(n_broad) < params.broad_program_hit_prob
    # at higher effective dose a drug engages more pathways (off-targets, downstream cascades)
    relative_potency = potency / np.exp(params.potency_log_mean)
    n_extra = rng.poisson(params.extra_programs_mean * relative_potency**params.extra_programs_potency_power)
    if n_extra:
        hit[rng.integers(0, n_programs, size=n_extra)] = True
    sign = np.where(rng.random(n_programs) < 0.5, 1.0, -1.0)
    # broad programs (proliferation, stress) mostly go down
    sign[:n_broad] = np.where(rng.random(n_broad) < params.broad_program_down_prob, -1.0, 1.0)
    strength = np.exp(params.drive_log_sd * rng.standard_normal(n_programs))
    strength[main] *= 1.5
    drive = potency * hit * sign * strength

    blockade = np.zeros(n_programs)
    if rng.random() < params.blocker_fraction:
        blocked = int(rng.integers(n_broad, n_programs)) if n_programs > n_broad else 0
        blockade[blocked] = rng.uniform(params.blockade_min, 1.0)
        # an antagonist alone barely moves its program (basal activity only) and acts weakly elsewhere
        drive *= params.blocker_own_activity
        drive[:n_broad] *= params.blocker_broad_activity
        # alone it lowers the program's basal activity (pathway inhibitor); how much depends on the
        # pathway's basal tone, not on the drug's potency (inhibitors are dosed to block)
        drive[blocked] = -rng.uniform(*params.blocker_basal_range)
        main = blocked

    n_specific = rng.binomial(n_genes, params.specific_gene_fraction)
    specific_genes = np.sort(rng.choice(n_genes, size=n_specific, replace=False))
    specific_effects = potency * params.specific_effect_sd * rng.standard_normal(n_specific)
    if blockade.any():
        specific_effects *= params.blocker_own_activity
    return _Drug(index, potency, drive, blockade, main, specific_genes, specific_effects)


# ----------------------------------------------------------------------------------------------
# True effects of the arms of one study (log2 fold changes against the control)
# ----------------------------------------------------------------------------------------------


def _arm_effects(
    world: _World,
    params: SimulationParams,
    drugs: list[_Drug],
    doses: np.ndarray,
    context: np.ndarray,
    combos: list[tuple[int, int]],
) -> np.ndarray:
    """True LFC (n_drugs + n_combos) x G: single-drug arms first, then the combination arms.

    `combos` holds positions into `drugs`. Blockade is insurmountable: where the partner blocks a
    program, the drug reaches only (1 - blockade) of the activity it reaches alone there; where the
    partner blocks the drug's main target, all of the drug's action shrinks so (it flows through that
    target). The combination's drive is the sum of the two (so reduced) drives.
    """
    hill = params.switch_hill
    single_drive = np.stack([d.drive for d in drugs]) * doses[:, None] * context[None, :]
    single_activity = _transfer(world, single_drive, hill)
    blockade = np.stack([d.blockade for d in drugs])
    left_whole = np.ones((len(combos), 2))
    combo_drive = np.zeros((len(combos), single_drive.shape[1]))
    for row, (a, b) in enumerate(combos):
        left_whole[row, 0] = 1.0 - blockade[b, drugs[a].main_program]
        left_whole[row, 1] = 1.0 - blockade[a, drugs[b].main_program]
        left_a = (1.0 - blockade[b]) * left_whole[row, 0]
        left_b = (1.0 - blockade[a]) * left_whole[row, 1]
        combo_drive[row] = _inverse_transfer(world, single_activity[a] * left_a, hill) + _inverse_transfer(
            world, single_activity[b] * left_b, hill
        )
    activity = _transfer(world, np.concatenate([single_drive, combo_drive]), params.switch_hill)
    effects = activity @ world.loadings
    specific = np.zeros((len(drugs), params.n_genes))
    for row, drug in enumerate(drugs):
        specific[row, drug.specific_genes] = drug.specific_effects * doses[row]
    effects[: len(drugs)] += specific
    for row, (a, b) in enumerate(combos):
        effects[len(drugs) + row] += specific[a] * left_whole[row, 0] + specific[b] * left_whole[row, 1]
    # active programs compete for shared transcriptional machinery: the more total activity an arm
    # has, the less of it reaches the genes (a combination carries the load of both drugs)
    load = np.abs(activity).sum(axis=1) / params.response_capacity
    return effects * (params.effect_scale / (1.0 + load))[:, None]


# ----------------------------------------------------------------------------------------------
# Measurement: sufficient statistics of replicate arrays -> moderated effect sizes
# ----------------------------------------------------------------------------------------------


def _measure_study(
    rng: np.random.Generator,
    params: SimulationParams,
    true_effects: np.ndarray,
    replicates: np.ndarray,
    measured: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observe one study: (d', var(d'), noise sd) for each treatment group against the shared control.

    true_effects: (n_treatment_groups x G) LFC; replicates: (1 + n_treatment_groups,) with the
    control first. Gene variances follow s0^2 d0 / chi2(d0); group means and the pooled residual
    variance are drawn from their exact sampling distributions under Gaussian replicates.
    """
    n_genes = true_effects.shape[1]
    n_measured = int(measured.sum())
    noise_sd = np.exp(params.noise_sd_log_mean + params.noise_sd_log_sd * rng.standard_normal())
    prior_df = rng.uniform(*params.prior_df_range)
    sigma2 = noise_sd**2 * prior_df / rng.chisquare(prior_df, size=n_measured)
    sigma = np.sqrt(sigma2)

    df_residual = int(replicates.sum() - replicates.size)
    group_noise = rng.standard_normal((replicates.size, n_measured)) * sigma / np.sqrt(replicates)[:, None]
    means = group_noise
    means[1:] += true_effects[:, measured]
    s2 = sigma2 * rng.chisquare(df_residual, size=n_measured) / df_residual

    squeezed = squeeze_variances(s2, df_residual)
    df_total = df_residual + squeezed.df_prior
    t = moderated_t(means[1:] - means[0], squeezed.s2_post, replicates[0], replicates[1:, None])
    dprime, vardprime = effect_size(t, df_total, replicates[0], replicates[1:, None])

    shape = (true_effects.shape[0], n_genes)
    out_d, out_v, out_sd = np.full(shape, np.nan), np.full(shape, np.nan), np.full(n_genes, np.nan)
    out_d[:, measured] = dprime
    out_v[:, measured] = vardprime
    out_sd[measured] = sigma
    return out_d, out_v, out_sd


def _replicates(rng: np.random.Generator, params: SimulationParams, n_groups: int) -> np.ndarray:
    base = rng.choice([2, 3, 4], p=params.replicate_probs)
    jitter = rng.choice([-1, 0, 0, 0, 0, 1], size=n_groups)
    return np.clip(base + jitter, 2, 4).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Study design
# ----------------------------------------------------------------------------------------------


def _combos_per_study(rng: np.random.Generator, params: SimulationParams) -> np.ndarray:
    probs = np.asarray(params.combos_per_study_probs[: params.max_combos_per_study], dtype=float)
    counts = rng.choice(np.arange(1, probs.size + 1), size=params.n_studies, p=probs / probs.sum())
    while counts.sum() != params.n_combos:
        if counts.sum() < params.n_combos:
            room = np.flatnonzero(counts < probs.size)
            counts[rng.choice(room)] += 1
        else:
            room = np.flatnonzero(counts > 1)
            counts[rng.choice(room)] -= 1
    return counts


class _DrugPool:
    """The drug pool with popularity weights (a few drugs recur across studies) for picking study drugs."""

    def __init__(self, params: SimulationParams, seed: int, rng: np.random.Generator) -> None:
        self.params, self.seed = params, seed
        self.drugs = [_make_drug(params, seed, i) for i in range(params.n_drug_pool)]
        rank = rng.permutation(params.n_drug_pool)
        weights = 1.0 / (rank + 10.0) ** params.popularity_exponent
        self.weights = weights / weights.sum()
        self.main = np.array([d.main_program for d in self.drugs])
        self.blocked = np.array([d.blocked_program for d in self.drugs])
        self.potency = np.array([d.potency for d in self.drugs])
        self.activates = np.array([d.drive[d.main_program] > 0 for d in self.drugs])

    def pick(self, rng: np.random.Generator, exclude: set[int], candidates: np.ndarray | None = None) -> int:
        pool = np.arange(self.params.n_drug_pool) if candidates is None else candidates
        pool = pool[~np.isin(pool, list(exclude))]
        if pool.size == 0:
            return self.pick(rng, exclude)
        weights = self.weights[pool]
        return int(rng.choice(pool, p=weights / weights.sum()))

    def agonist(self, rng: np.random.Generator, exclude: set[int]) -> int:
        """A potent activator of a program that some pool drug blocks (ligand + pathway inhibitor designs)."""
        blockable = np.isin(self.main, self.blocked[self.blocked >= 0]) & (self.blocked < 0) & self.activates
        potent = self.potency >= np.quantile(self.potency, self.params.agonist_potency_quantile)
        candidates = np.flatnonzero(blockable & potent)
        return self.pick(rng, exclude, candidates if candidates.size else None)

    def partner(self, rng: np.random.Generator, anchor: int, exclude: set[int], design: str) -> int:
        """A partner for `anchor`: an antagonist of its main program, a drug on the same program, or any drug."""
        main = self.main[anchor]
        if design == "antagonist":
            blockers = np.setdiff1d(np.flatnonzero(self.blocked == main), list(exclude))
            if blockers.size:
                return self.pick(rng, exclude, blockers)
        elif design == "related":
            related = np.setdiff1d(np.flatnonzero(self.main == main), list(exclude))
            if related.size:
                return self.pick(rng, exclude, related)
        return self.pick(rng, exclude)


def _design(rng: np.random.Generator, params: SimulationParams) -> str:
    u = rng.random()
    if u < params.antagonist_design_prob:
        return "antagonist"
    return "related" if u < params.antagonist_design_prob + params.related_partner_prob else "random"


def _design_study(
    rng: np.random.Generator, pool: _DrugPool, n_combos: int, params: SimulationParams
) -> tuple[list[int], list[tuple[int, int]], list[str]]:
    """Drugs (pool indices) of a study, its combos as position pairs into that list, and their designs.

    A study either pairs one anchor drug with several partners or holds independent pairs; each
    pair is an agonist + antagonist design, a same-pathway (related) pair or a random pair.
    """
    drugs: list[int] = []
    combos: list[tuple[int, int]] = []
    designs = [_design(rng, params) for _ in range(n_combos)]
    designs.sort(key=lambda d: d != "antagonist")  # an antagonist design decides the anchor
    anchored = n_combos > 1 and rng.random() < params.anchor_design_prob
    for k, design in enumerate(designs):
        if not anchored or k == 0:
            first = pool.agonist(rng, set(drugs)) if design == "antagonist" else pool.pick(rng, set(drugs))
            drugs.append(first)
        anchor = drugs[0] if anchored else drugs[-1]
        drugs.append(pool.partner(rng, anchor, set(drugs), design))
        combos.append((drugs.index(anchor), len(drugs) - 1))
    return drugs, combos, designs


def _screen_counts(params: SimulationParams) -> np.ndarray:
    """Combinations per screen: n_combos spread as evenly as possible over the studies."""
    base, extra = divmod(params.n_combos, params.n_studies)
    return base + (np.arange(params.n_studies) < extra).astype(np.int64)


def _design_screen(
    rng: np.random.Generator, pool: _DrugPool, n_combos: int, params: SimulationParams
) -> tuple[list[int], list[tuple[int, int]], list[str]]:
    """A screen: `screen_drugs` distinct pool drugs (popularity-weighted) and `n_combos` of their pairs,
    drawn at random without replacement, so every drug recurs across the screen's combinations."""
    drugs: list[int] = []
    for _ in range(params.screen_drugs):
        drugs.append(pool.pick(rng, set(drugs)))
    n = len(drugs)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    chosen = rng.choice(len(pairs), size=n_combos, replace=False)
    return drugs, [pairs[int(i)] for i in chosen], ["screen"] * n_combos


# ----------------------------------------------------------------------------------------------
# Real-screen phenomena: a shift shared by a study's combinations, drug-specific interaction profiles
# ----------------------------------------------------------------------------------------------


def _unit_rms(values: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(values**2)))
    return values / rms if rms > 0 else values


def _shift_profile(params: SimulationParams, world: _World, seed: int, *key: int) -> np.ndarray:
    """A per-gene profile of rms ~1: a random mix of the programs plus a gene-by-gene part."""
    rng = _rng(seed, _SHIFT, *key)
    programs = _unit_rms(rng.standard_normal(params.n_programs) @ world.loadings)
    genes = rng.standard_normal(params.n_genes)
    share = params.combo_shift_gene_share
    return np.sqrt(1.0 - share) * programs + np.sqrt(share) * genes


def _interaction_profile(params: SimulationParams, world: _World, drug: _Drug, seed: int) -> np.ndarray:
    """The drug's interaction profile, rms ~1: a few programs (low rank) plus sparse gene-specific effects.

    Its own stream (keyed by the pool index), so a drug has the same profile in every study."""
    rng = _rng(seed, _INTERACTION, drug.index)
    n_programs, n_genes = params.n_programs, params.n_genes
    n_hit = min(n_programs, 1 + int(rng.poisson(params.drug_interaction_programs - 1.0)))
    weights = np.zeros(n_programs)
    weights[rng.choice(n_programs, size=n_hit, replace=False)] = rng.standard_normal(n_hit)
    programs = _unit_rms(weights @ world.loadings)
    specific = np.zeros(n_genes)
    n_specific = max(1, int(rng.binomial(n_genes, params.drug_interaction_gene_fraction)))
    specific[rng.choice(n_genes, size=n_specific, replace=False)] = rng.standard_normal(n_specific)
    share = params.drug_interaction_gene_share
    return np.sqrt(1.0 - share) * programs + np.sqrt(share) * _unit_rms(specific)


def _combo_phenomena(
    params: SimulationParams,
    world: _World,
    seed: int,
    study: int,
    drugs: list[_Drug],
    combos: list[tuple[int, int]],
    single_lfc: np.ndarray,
    profiles: dict[int, np.ndarray],
) -> np.ndarray:
    """What the real-screen phenomena add to each combination's true LFC (n_combos x G).

    Both are sized by the study's reference scale, the rms of its single-drug arms' true LFC (so they
    follow effect_scale and the study's drugs): the shift is combo_shift_scale x ref x (a profile common to
    all studies mixed with the study's own), each drug adds drug_interaction_scale x ref x its profile.
    `profiles` caches the drugs' interaction profiles across studies.
    """
    out = np.zeros((len(combos), params.n_genes))
    reference = float(np.sqrt(np.mean(single_lfc**2))) if single_lfc.size else 0.0
    if params.combo_shift_scale > 0:
        common = _shift_profile(params, world, seed, 0)
        own = _shift_profile(params, world, seed, 1, study)
        share = params.combo_shift_study_share
        shift = np.sqrt(1.0 - share) * common + np.sqrt(share) * own
        out += params.combo_shift_scale * reference * shift[None, :]
    if params.drug_interaction_scale > 0:
        for row, (a, b) in enumerate(combos):
            for drug in (drugs[a], drugs[b]):
                if drug.index not in profiles:
                    profiles[drug.index] = _interaction_profile(params, world, drug, seed)
                out[row] += params.drug_interaction_scale * reference * profiles[drug.index]
    return out


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


@dataclass
class SimulationTruth:
    """Noise-free standardized effects (true LFC / true gene sd of the study), NaN where unmeasured.

    drug1/drug2/combo line up with the data set's rows; `combos` adds per-combination facts of
    the simulation: design (random / related / antagonist), potencies (x dose), antagonist (one
    drug blocks the other's main program), platform and control replicates (n_ctrl).
    """

    drug1: np.ndarray
    drug2: np.ndarray
    combo: np.ndarray
    combos: pd.DataFrame
    params: SimulationParams


def interaction_summary(truth: SimulationTruth, threshold: float = 1.0) -> dict[str, float]:
    """How additive the noise-free combinations are, in the style of Norman et al. 2019.

    Per combination the true combo effect is fitted as c * (d1 + d2) (least squares: c is the
    combination's partial saturation); an entry is non-additive where the residual exceeds
    `threshold` standardized units (1.0 is about the measurement noise of one effect size).
    Non-additive entries are synergy (same sign, stronger than the fit), buffering (same sign,
    weaker) or other (sign opposite to the fit: dominance, suppression).
    """
    single_sum = truth.drug1.astype(np.float64) + truth.drug2.astype(np.float64)
    combo = truth.combo.astype(np.float64)
    measured = ~np.isnan(combo) & ~np.isnan(single_sum)
    single_sum, combo = np.where(measured, single_sum, 0.0), np.where(measured, combo, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = (combo * single_sum).sum(axis=1) / (single_sum**2).sum(axis=1)
    scale = np.nan_to_num(scale, nan=1.0)
    fit = scale[:, None] * single_sum
    off = measured & (np.abs(combo - fit) > threshold)
    same_sign = np.sign(combo) == np.sign(fit)
    n = measured.sum()
    return {
        "non_additive": float(off.sum() / n),
        "synergy": float((off & same_sign & (np.abs(combo) > np.abs(fit))).sum() / n),
        "buffering": float((off & same_sign & (np.abs(combo) <= np.abs(fit))).sum() / n),
        "other": float((off & ~same_sign).sum() / n),
        "scale_median": float(np.median(scale)),
        "scale_q10": float(np.quantile(scale, 0.1)),
        "scale_q90": float(np.quantile(scale, 0.9)),
        "pooled_true_slope": float((combo * single_sum).sum() / (single_sum**2).sum()),
    }


def simulate_compendium_with_truth(
    preset: str = "default", seed: int = 0, **overrides
) -> tuple[ComboDataset, SimulationTruth]:
    """The simulated compendium and its noise-free effects (see `simulate_compendium`)."""
    params = simulation_params(preset, **overrides)
    world = _make_world(params, seed)
    design_rng = _rng(seed, _DESIGN)
    measure_rng = _rng(seed, _MEASURE)
    pool = _DrugPool(params, seed, design_rng)

    n_platforms = len(params.platform_usage)
    usage = np.asarray(params.platform_usage) / np.sum(params.platform_usage)
    platforms = design_rng.choice(n_platforms, size=params.n_studies, p=usage)
    # every platform is used at least once, so only the core genes are measured in every study
    n_forced = min(n_platforms, params.n_studies)
    platforms[design_rng.permutation(params.n_studies)[:n_forced]] = np.arange(n_forced)
    counts = _screen_counts(params) if params.screen_drugs else _combos_per_study(design_rng, params)

    shape = (params.n_combos, params.n_genes)
    names = ("d1", "d2", "dc", "v1", "v2", "t1", "t2", "tc")
    blocks = {name: np.full(shape, np.nan, dtype=np.float32) for name in names}
    rows: list[dict] = []
    study_ids = design_rng.choice(np.arange(10000, 99999), size=params.n_studies, replace=False)
    row = 0
    design_study = _design_screen if params.screen_drugs else _design_study
    phenomena = params.combo_shift_scale > 0 or params.drug_interaction_scale > 0
    profiles: dict[int, np.ndarray] = {}
    for study in range(params.n_studies):
        drug_ids, combos, designs = design_study(design_rng, pool, int(counts[study]), params)
        drugs = [pool.drugs[i] for i in drug_ids]
        doses = np.exp(params.dose_log_sd * design_rng.standard_normal(len(drugs)))
        context = np.exp(params.context_log_sd * design_rng.standard_normal(params.n_programs))
        true_lfc = _arm_effects(world, params, drugs, doses, context, combos)
        if phenomena:  # skipped when off, so the arrays stay bit-identical to the model without them
            n_single = len(drugs)
            true_lfc[n_single:] += _combo_phenomena(
                params, world, seed, study, drugs, combos, true_lfc[:n_single], profiles
            )
        measured = world.platform_measured[platforms[study]]
        replicates = _replicates(measure_rng, params, 1 + true_lfc.shape[0])
        dprime, vardprime, noise_sd = _measure_study(measure_rng, params, true_lfc, replicates, measured)
        true_d = true_lfc / noise_sd[None, :]
        n_single = len(drugs)
        study_id = f"GSE{study_ids[study]}"
        for k, (a, b) in enumerate(combos):
            if design_rng.random() < 0.5:
                a, b = b, a
            c = n_single + k
            for key, values in (("d1", dprime[a]), ("d2", dprime[b]), ("dc", dprime[c]), ("v1", vardprime[a]),
                                ("v2", vardprime[b]), ("t1", true_d[a]), ("t2", true_d[b]), ("tc", true_d[c])):
                blocks[key][row] = values
            drug_a, drug_b = drugs[a], drugs[b]
            rows.append({
                "combo": f"{study_id}_{drug_a.name}+{drug_b.name}",
                "study": study_id,
                "drug1": drug_a.name,
                "drug2": drug_b.name,
                "potency1": drug_a.potency * doses[a],
                "potency2": drug_b.potency * doses[b],
                "design": designs[k],
                "antagonist": bool(
                    drug_a.blockade[drug_b.main_program] > 0 or drug_b.blockade[drug_a.main_program] > 0
                ),
                "platform": int(platforms[study]),
                "n_ctrl": int(replicates[0]),
            })
            row += 1

    combo_table = pd.DataFrame(rows)
    dataset = ComboDataset(
        drug1_effect=blocks["d1"], drug2_effect=blocks["d2"], combo_effect=blocks["dc"], genes=world.genes,
        combos=combo_table[["combo", "study", "drug1", "drug2"]], drug1_var=blocks["v1"], drug2_var=blocks["v2"],
        source=f"simulated(preset={preset}, seed={seed})",
    )
    truth = SimulationTruth(
        drug1=blocks["t1"], drug2=blocks["t2"], combo=blocks["tc"], combos=combo_table, params=params
    )
    return dataset, truth


def simulate_compendium(preset: str = "default", seed: int = 0, **overrides) -> ComboDataset:
    """The embedded default data: a simulated compendium shaped like the original's (148 studies,
    257 combinations, 11525 genes for "default"; "small" and "tiny" for quick work and tests).

    Same preset, seed and overrides -> identical arrays. Overrides name `SimulationParams` fields.
    """
    return simulate_compendium_with_truth(preset, seed, **overrides)[0]


def simulate_library_with_truth(
    n_drugs: int = 1309, preset: str = "default", seed: int = 0, drugs_per_batch: tuple[int, int] = (1, 5), **overrides
) -> tuple[DrugLibrary, np.ndarray]:
    """A CMap-like library of single-drug signatures and their noise-free standardized effects.

    Drug i is pool drug i of the compendium with the same preset and seed (same name, same
    biology), measured in its own batch: a vehicle control shared by 1-5 drugs, every gene measured.
    """
    params = simulation_params(preset, **overrides)
    if n_drugs < 1:
        raise DataError(f"simulate_library: n_drugs must be >= 1, got {n_drugs}")
    world = _make_world(params, seed)
    rng = _rng(seed, _LIBRARY)
    effects = np.empty((n_drugs, params.n_genes), dtype=np.float32)
    variances = np.empty_like(effects)
    truth = np.empty_like(effects)
    all_genes = np.ones(params.n_genes, dtype=bool)
    start = 0
    while start < n_drugs:
        stop = min(n_drugs, start + int(rng.integers(drugs_per_batch[0], drugs_per_batch[1] + 1)))
        drugs = [_make_drug(params, seed, i) for i in range(start, stop)]
        doses = np.exp(params.dose_log_sd * rng.standard_normal(len(drugs)))
        context = np.exp(params.context_log_sd * rng.standard_normal(params.n_programs))
        true_lfc = _arm_effects(world, params, drugs, doses, context, [])
        replicates = _replicates(rng, params, 1 + len(drugs))
        dprime, vardprime, noise_sd = _measure_study(rng, params, true_lfc, replicates, all_genes)
        effects[start:stop], variances[start:stop] = dprime, vardprime
        truth[start:stop] = true_lfc / noise_sd[None, :]
        start = stop
    library = DrugLibrary(
        effects=effects, genes=world.genes, drugs=[drug_name(i) for i in range(n_drugs)], variances=variances,
        source=f"simulated library(n_drugs={n_drugs}, preset={preset}, seed={seed})",
    )
    return library, truth


def simulate_library(n_drugs: int = 1309, preset: str = "default", seed: int = 0, **overrides) -> DrugLibrary:
    """A CMap-sized (1309 drugs) library of single-drug signatures (d' and var(d')) from the same model."""
    return simulate_library_with_truth(n_drugs, preset, seed, **overrides)[0]
