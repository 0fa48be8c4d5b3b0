"""Schemas of the stacking job's own groups."""

from __future__ import annotations

from combomap.config.base import SCHEMA_NAME
from combomap.stacking.backends import StackerConfig
from combomap.stacking.settings import StackingSettings

# stacker/schema/backend, not stacker/schema: the group's options are listed to a user who picks one (stacker=...)
SCHEMAS: list[tuple] = [("stacking", StackingSettings), (f"stacker/{SCHEMA_NAME}", StackerConfig, "backend")]
