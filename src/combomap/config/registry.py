"""Every area's schemas in Hydra's ConfigStore: `register()` before composing (the CLI entry points and the tests'
compose helper call it). An area module lists its schemas in SCHEMAS as (group, dataclass) pairs, stored as
<group>/schema, or (group, dataclass, name) triples, stored as <group>/<name> (a group whose options each have their
own schema: data/schema/npy; "" for a primary config's); add it below. It also registers the configs' own resolvers
(RESOLVERS)."""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from combomap.config import data, evaluate, interactions, predict, query, run, stacking, training
from combomap.config.base import SCHEMA_NAME
from combomap.paths import root_setting

AREAS: list[list[tuple[Any, ...]]] = [stacking.SCHEMAS, training.SCHEMAS, data.SCHEMAS, query.SCHEMAS,
                                      interactions.SCHEMAS, run.SCHEMAS, evaluate.SCHEMAS, predict.SCHEMAS]
# ${combomap.root:}: $COMBOMAP_ROOT, or "." when unset or empty (oc.env would give "" and paths under /)
RESOLVERS: dict[str, Any] = {"combomap.root": root_setting}
_registered = False


def register() -> None:
    """Store every schema under <group>/schema and register RESOLVERS (idempotent)."""
    global _registered
    if _registered:
        return
    store = ConfigStore.instance()
    for schemas in AREAS:
        for group, schema, *name in schemas:
            store.store(group=group or None, name=name[0] if name else SCHEMA_NAME, node=schema)
    for name, resolver in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)
    _registered = True
