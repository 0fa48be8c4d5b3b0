"""Schemas of the stacking job's own groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from combomap.config.base import SCHEMA_NAME, typed
from combomap.settings import SettingsError
from combomap.stacking.backends import StackerConfig
from combomap.stacking.settings import StackingSettings

# stacker/schema/backend, not stacker/schema: the group's options are listed to a user who picks one (stacker=...)
SCHEMAS: list[tuple] = [("stacking", StackingSettings), (f"stacker/{SCHEMA_NAME}", StackerConfig, "backend")]


def stacker_config(node: Any) -> StackerConfig:
    """The `stacker` group, checked; a key it does not know is pointed to stacker.params (the library's own)."""
    keys = node.keys() if isinstance(node, (Mapping, DictConfig)) else ()
    unknown = sorted(set(map(str, keys)) - {item.name for item in fields(StackerConfig)})
    if unknown:
        value = OmegaConf.select(node, unknown[0]) if isinstance(node, DictConfig) else node[unknown[0]]
        raise SettingsError(f"stacker.{unknown[0]} is not a stacker setting; a GBM library's own parameters go under "
                            f"stacker.params (stacker.params.{unknown[0]}={value})")
    return typed(node, StackerConfig, "stacker")
