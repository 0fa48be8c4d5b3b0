"""Schemas of the stacking job's own groups."""

from __future__ import annotations

from combomap.stacking.settings import StackingSettings

SCHEMAS: list[tuple[str, type]] = [("stacking", StackingSettings)]
