"""Schemas of the network groups and the NetRecipe a job builds from its composed config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from combomap.config.base import typed
from combomap.data.augment import AugmentConfig
from combomap.models.latent import LatentSettings
from combomap.models.recipe import NetRecipe
from combomap.data.datamodule import SPLIT_BY
from combomap.settings import SettingsError, choice, integer, number

SCHEMAS: list[tuple[str, type]] = [("latent", LatentSettings)]


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _augment(node: Any) -> AugmentConfig:
    if node is None:
        return AugmentConfig()
    values = {key: value for key, value in _plain(node).items() if key != "_target_"}
    return typed(values, AugmentConfig, "augment")


def output_dir(cfg: DictConfig) -> Path | None:
    """paths.output_dir, None outside a Hydra run (a notebook composing the config)."""
    try:
        value = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=True)
    except Exception:  # ${hydra:...} cannot resolve without a Hydra run
        return None
    return Path(str(value)) if value else None


def net_recipe(cfg: DictConfig) -> NetRecipe:
    """The network of a composed train or stack config, typed (checked before any data loads)."""
    check_net_settings(cfg)
    latent = cfg.get("latent")
    recipe = NetRecipe(
        seed=int(integer(cfg, "seed")),
        model=_plain(cfg.get("model")),
        optimizer=_plain(cfg.get("optimizer")),
        datamodule=_plain(cfg.get("datamodule")),
        trainer=_plain(cfg.get("trainer")),
        augment=_augment(cfg.get("augment")),
        schedule=_plain(cfg.get("schedule")) or None,
        callbacks={str(name): value for name, value in (_plain(cfg.get("callbacks")) or {}).items() if value is not None},
        latent=typed(latent, LatentSettings, "latent") if latent is not None else LatentSettings(),
        plots=bool(cfg.get("plots", True)),
        run_name=OmegaConf.select(cfg, "logger.run_name", default=None),
        task_name=str(cfg.get("task_name", "train")),
        output_dir=output_dir(cfg),
    )
    recipe.kind  # an unknown model._target_ fails here
    return recipe


def check_net_settings(cfg: DictConfig) -> None:
    """The net's settings that its groups do not type yet, checked before data loads (one line each), not deep in
    Lightning after it."""
    integer(cfg, "trainer.max_epochs", minimum=1)
    val = number(cfg, "datamodule.val_fraction", 0.0, 1.0, high_open=True)
    test = number(cfg, "datamodule.test_fraction", 0.0, 1.0, high_open=True, default=0.0)
    if val + test >= 1.0:
        raise SettingsError(f"datamodule.val_fraction + datamodule.test_fraction must be < 1, got {val} + {test}")
    integer(cfg, "datamodule.batch_size", minimum=1)
    integer(cfg, "datamodule.num_workers", minimum=0, default=0)
    choice(cfg, "datamodule.split_by", SPLIT_BY, default="auto")
    for position, size in enumerate(OmegaConf.select(cfg, "model.hidden_sizes", default=None) or []):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise SettingsError(f"model.hidden_sizes[{position}] must be an integer >= 1, got {size!r}")
    number(cfg, "model.input_dropout", 0.0, 1.0, high_open=True, default=0.0)
    number(cfg, "model.hidden_dropout", 0.0, 1.0, high_open=True, default=0.0)


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain, resolved values (without the hydra node)."""
    kept = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    return OmegaConf.to_container(kept, resolve=True)  # type: ignore[return-value]
