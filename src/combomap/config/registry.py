"""Every area's schemas in Hydra's ConfigStore: `register()` before composing (the CLI entry points and the tests'
compose helper call it). An area module lists its schemas in SCHEMAS as (group, dataclass) pairs; add it below."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from combomap.config import stacking, training
from combomap.config.base import SCHEMA_NAME

AREAS: list[list[tuple[str, type]]] = [stacking.SCHEMAS, training.SCHEMAS]
_registered = False


def register() -> None:
    """Store every schema under <group>/schema (idempotent)."""
    global _registered
    if _registered:
        return
    store = ConfigStore.instance()
    for schemas in AREAS:
        for group, schema in schemas:
            store.store(group=group, name=SCHEMA_NAME, node=schema)
    _registered = True
