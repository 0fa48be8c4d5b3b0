"""Structured configs of the sweeper: `hydra/sweeper: combomap_optuna`, `hydra/sweeper/sampler: tpe|random`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TPESamplerConf:
    """optuna.samplers.TPESampler; `_partial_` so the sweeper can derive the seed per resume."""

    _target_: str = "optuna.samplers.TPESampler"
    _partial_: bool = True
    seed: Optional[int] = 0
    n_startup_trials: int = 10
    multivariate: bool = False
    # Batches of trials asked together (n_jobs > 1) get distinct points instead of the same one.
    constant_liar: bool = True


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    _partial_: bool = True
    seed: Optional[int] = 0


@dataclass
class CombomapOptunaSweeperConf:
    _target_: str = "hydra_plugins.combomap_optuna_sweeper.combomap_optuna_sweeper.CombomapOptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])

    sampler: Any = MISSING
    # "minimize" or "maximize" the task function's return value.
    direction: str = "minimize"
    # One study per name in the storage; the same name resumes it (and lets several workers share it).
    # null: <task_name>-<hash of the fixed, non-searched config>, so a sweep on other data is another study.
    # A named study refuses trials of another fixed config (the hash is stored as a study user attr).
    study_name: Optional[str] = None
    # Any Optuna RDB URL: sqlite:///... (default, under the project) or postgresql://... for a cluster.
    storage: Optional[str] = "sqlite:///${combomap.root:}/mlruns/optuna.db"  # combomap.root: $COMBOMAP_ROOT, "." when unset or empty
    # Trials the STUDY should hold in the end (finished + running), not trials of this process.
    n_trials: int = 20
    # Trials asked and launched together through hydra/launcher (joblib: in parallel; submitit: as SLURM jobs).
    n_jobs: int = 1
    # Search space, Hydra override syntax: choice(...), range(...), interval(...), tag(log, interval(...)),
    # int(interval(...)); plain values are fixed overrides for every trial.
    params: Dict[str, Any] = field(default_factory=dict)
    # When the task returns a mapping, the key of the objective in it.
    objective: Optional[str] = None
    # Stop this process when more than this fraction of its trials failed (1.0: failures never stop it).
    max_failure_rate: float = 1.0
    # RUNNING trials of a sweep process that is gone (same host) are always reclaimed (FAIL, re-queued) at start;
    # also those RUNNING for longer than this many seconds (e.g. left by a sweep on another machine).
    stale_after_s: Optional[float] = None
    # Add ++sweep.study_name=... ++sweep.trial=... to every trial (the MLflow run is tagged with them, and the trial
    # gets its MLflow run id as user attr mlflow_run_id).
    tag_trials: bool = True
    # Which finished trials keep their weight_files: best (the study's best trial only, once it is known), none, all.
    keep_weights: str = "best"
    # A trial's weights: glob patterns relative to its output dir (e.g. [mlp.safetensors, checkpoints]); [] = the
    # sweeper deletes nothing, whatever keep_weights says.
    weight_files: List[str] = field(default_factory=list)


ConfigStore.instance().store(
    group="hydra/sweeper", name="combomap_optuna", node=CombomapOptunaSweeperConf, provider="combomap_optuna_sweeper"
)
ConfigStore.instance().store(
    group="hydra/sweeper/sampler", name="tpe", node=TPESamplerConf, provider="combomap_optuna_sweeper"
)
ConfigStore.instance().store(
    group="hydra/sweeper/sampler", name="random", node=RandomSamplerConf, provider="combomap_optuna_sweeper"
)
