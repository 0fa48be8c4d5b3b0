"""Schemas of the interactions job: its own group and conf/interactions.yaml as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from combomap.interactions.settings import InteractionSettings
from combomap.settings import SEED, Checked


@dataclass
class InteractionsJobSettings(Checked):
    """The top-level keys of conf/interactions.yaml."""

    task_name: str = "interactions"
    progress: bool = True
    seed: int = field(default=0, metadata=SEED)


@dataclass
class InteractionsConfig(InteractionsJobSettings):
    """The schema of conf/interactions.yaml as a whole; the groups are typed by their own schemas."""

    paths: Any = None
    logger: Any = None
    data: Any = None
    interactions: Any = None


SCHEMAS: list[tuple[Any, ...]] = [
    ("interactions", InteractionSettings),
    ("", InteractionsConfig, "interactions_schema"),
]
