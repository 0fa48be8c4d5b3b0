"""The stacking group's typed settings (conf/stacking; its schema in combomap.config.stacking): folds, feature
sets, the guard's final model, inference and what a run saves. The defaults here are the group's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from combomap.settings import SEED, Checked, limits
from combomap.stacking.cv import NET_GROUPINGS, STACKER_GROUPINGS

INFERENCE_MODES = ("per_net", "mean_net")
REGIME_SETTINGS = ("auto", "true", "false")


@dataclass
class NetFoldSettings(Checked):
    """The fold nets' split: each fold's net predicts the combinations it did not train on."""

    n_folds: int = field(default=2, metadata=limits(2))
    by: str = field(default="auto", metadata=limits(choices=NET_GROUPINGS))


@dataclass
class StackerCVSettings(Checked):
    """The stacker's K-fold CV over (combination, gene) rows."""

    n_folds: int = field(default=5, metadata=limits(2))
    by: str = field(default="combo", metadata=limits(choices=STACKER_GROUPINGS))
    val_fraction: float = field(default=0.15, metadata=limits(0.0, 1.0, high_open=True))


def default_feature_sets() -> dict[str, Any]:
    return {
        "avg": ["d1", "d2"], "vars": ["d1", "d2", "v1", "v2"], "nets": ["net_pred", "d1", "d2"],
        "both": ["net_pred", "d1", "d2", "v1", "v2"], "latent": ["d1", "d2", "p1", "p2"],
        "latent_both": ["net_pred", "d1", "d2", "v1", "v2", "p1", "p2"], "learned": ["d1", "d2", "lin_pred"],
        "latent_learned": ["d1", "d2", "p1", "p2", "lin_pred"],
    }


@dataclass
class StackingSettings(Checked):
    """conf/stacking: see conf/stacking/default.yaml for what each setting does."""

    net_folds: NetFoldSettings = field(default_factory=NetFoldSettings)
    cv: StackerCVSettings = field(default_factory=StackerCVSettings)
    feature_sets: dict[str, Optional[list[str]]] = field(default_factory=default_feature_sets)
    regimes: str = field(default="auto", metadata=limits(choices=REGIME_SETTINGS))
    final: str = "auto"
    symmetric: bool = True
    inference: str = field(default="per_net", metadata=limits(choices=INFERENCE_MODES))
    holdout_fraction: float = field(default=0.0, metadata=limits(0.0, 1.0, high_open=True))
    save_model: bool = True
    save_fold_dirs: bool = False
    save_predictions: bool = False
    plots: bool = True
    seed: int = field(default=0, metadata=SEED)

    def __post_init__(self) -> None:
        self.regimes = str(self.regimes).lower()  # YAML true/false arrive as booleans
