"""The Sweeper Hydra discovers; the Optuna work lives in `_impl` (imported only when a sweep runs)."""

from __future__ import annotations

from typing import Any, List, Optional

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from . import config as _config  # noqa: F401  (registers hydra/sweeper=combomap_optuna)

KEEP_WEIGHTS = ("best", "none", "all")


class CombomapOptunaSweeper(Sweeper):
    """Ask Optuna for `n_jobs` trials, launch them as one batch, tell the results, until the study is full."""

    def __init__(
        self,
        sampler: Any,
        direction: str,
        study_name: Optional[str],
        storage: Optional[str],
        n_trials: int,
        n_jobs: int,
        params: Optional[DictConfig],
        objective: Optional[str] = None,
        max_failure_rate: float = 1.0,
        stale_after_s: Optional[float] = None,
        tag_trials: bool = True,
        keep_weights: str = "best",
        weight_files: Optional[List[str]] = None,
    ) -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"hydra.sweeper.direction must be 'minimize' or 'maximize', got {direction!r}")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError(f"hydra.sweeper.n_trials and n_jobs must be >= 1, got {n_trials} and {n_jobs}")
        if keep_weights not in KEEP_WEIGHTS:
            raise ValueError(f"hydra.sweeper.keep_weights must be one of {', '.join(KEEP_WEIGHTS)}, got {keep_weights!r}")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"hydra.sweeper.max_failure_rate must lie in [0, 1], got {max_failure_rate}")
        self.sampler = sampler
        self.direction = direction
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.params = dict(params or {})
        self.objective = objective
        self.max_failure_rate = max_failure_rate
        self.stale_after_s = stale_after_s
        self.tag_trials = tag_trials
        self.keep_weights = keep_weights
        self.weight_files = [str(pattern) for pattern in (weight_files or [])]
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: List[str]) -> Any:
        from ._impl import run_sweep

        assert self.config is not None and self.launcher is not None, "setup() must run before sweep()"
        return run_sweep(self, arguments)
