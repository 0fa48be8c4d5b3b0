"""Schemas of the interactions job's own group."""

from __future__ import annotations

from combomap.interactions.settings import InteractionSettings

SCHEMAS: list[tuple[str, type]] = [("interactions", InteractionSettings)]
