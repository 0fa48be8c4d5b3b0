"""The schema of conf/evaluate.yaml as a whole: combomap-evaluate's own settings typed and checked, the groups typed
by their own schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from combomap.evaluation.baselines import BASELINES
from combomap.interactions.settings import LearnedSettings
from combomap.models.learned import KINDS as LEARNED_KINDS
from combomap.models.settings import check_sizes
from combomap.settings import SEED, Checked, SettingsError, key_of, limits


@dataclass
class EvaluateConfig(Checked):
    """combomap-evaluate's settings (conf/evaluate.yaml documents them); reference and plot_model name a model this
    run scores: a baseline, a learned baseline (unless learned is null) or a key of predictions."""

    task_name: str = "evaluate"
    progress: bool = True
    predictions: dict[str, str] = field(default_factory=dict)
    learned: Optional[LearnedSettings] = field(default_factory=LearnedSettings)
    reference: str = "average"
    top_k: list[int] = field(default_factory=lambda: [20, 200, 1000])
    plots: bool = True
    plot_model: Optional[str] = None
    max_plot_points: int = field(default=300_000, metadata=limits(1))
    seed: int = field(default=0, metadata=SEED)
    paths: Any = None
    logger: Any = None
    data: Any = None

    def validate(self, prefix: str) -> None:
        models = [*BASELINES, *(LEARNED_KINDS if self.learned is not None else ()), *self.predictions]
        for name in ("reference", "plot_model"):
            value = getattr(self, name)
            if value is not None and value not in models:
                raise SettingsError(f"{key_of(prefix, name)} must be one of {models}, got {value!r}")
        check_sizes(self.top_k, key_of(prefix, "top_k"), at_least=1)


EVALUATE_SCHEMA = "evaluate_schema"

SCHEMAS: list[tuple[Any, ...]] = [("", EvaluateConfig, EVALUATE_SCHEMA)]
