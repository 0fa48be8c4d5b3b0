"""Turning a composed config node into its checked, typed settings object."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from combomap.settings import Checked, SettingsError, key_of

T = TypeVar("T")
SCHEMA_NAME = "schema"  # a group option's defaults list names its schema so: [schema, _self_]


def typed(node: Any, schema: type[T], key: str) -> T:
    """The composed node `key` as a checked `schema` instance; a plain mapping (tests, notebooks) works too.

    Unknown keys and wrong types are refused here as well (a node composed without the schema)."""
    if node is None:
        raise SettingsError(f"{key} is missing")
    if isinstance(node, DictConfig):  # rebuilt from plain values: a key added with +key=... is refused too
        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, Mapping):
        raise SettingsError(f"{key} must be a mapping of settings, got {node!r}")
    plain = {name: OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
             for name, value in node.items()}
    return _build(plain, schema, key)


def _build(values: dict[str, Any], schema: type[T], key: str) -> T:
    names = {item.name: item for item in dataclasses.fields(schema)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise SettingsError(f"{key_of(key, unknown[0])} is not a setting of {key or 'this config'} "
                            f"(settings: {', '.join(sorted(names))})")
    value = _converted(lambda: OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values)), key)
    return value.check(key) if isinstance(value, Checked) else value  # type: ignore[return-value]


def _converted(convert: Callable[[], Any], key: str) -> Any:
    """convert(), with OmegaConf's refusal (a wrong type, an unknown nested key) as one line naming the full key."""
    try:
        return convert()
    except OmegaConfBaseException as error:
        where = key_of(key, str(getattr(error, "full_key", None) or ""))
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SettingsError(f"{where}: {reason}" if where else reason) from None
