"""Turning a composed config node into its checked, typed settings object."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from combomap.settings import Checked, SettingsError

T = TypeVar("T")
SCHEMA_NAME = "schema"  # a group option's defaults list names its schema so: [schema, _self_]


def typed(node: Any, schema: type[T], key: str) -> T:
    """The composed node `key` as a checked `schema` instance; a plain mapping (tests, notebooks) works too.

    Unknown keys and wrong types are refused here as well (a node composed without the schema)."""
    if node is None:
        raise SettingsError(f"{key} is missing")
    if isinstance(node, DictConfig):
        if OmegaConf.get_type(node) is schema:
            value = OmegaConf.to_object(node)
            return value.check(key) if isinstance(value, Checked) else value  # type: ignore[return-value]
        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, Mapping):
        raise SettingsError(f"{key} must be a mapping of settings, got {node!r}")
    return _build(dict(node), schema, key)


def _build(values: dict[str, Any], schema: type[T], key: str) -> T:
    names = {item.name: item for item in dataclasses.fields(schema)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise SettingsError(f"{key}.{unknown[0]} is not a setting of {key} (settings: {', '.join(sorted(names))})")
    merged = OmegaConf.merge(OmegaConf.structured(schema), values)
    value = OmegaConf.to_object(merged)
    return value.check(key) if isinstance(value, Checked) else value  # type: ignore[return-value]
