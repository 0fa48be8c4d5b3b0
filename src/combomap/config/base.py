"""Turning a composed config node into its checked, typed settings object."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
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
    _refuse_containers(value, schema, key)
    if isinstance(value, Checked):
        value.check(key)
    refuse_non_finite(value, key)
    return value  # type: ignore[return-value]


def _refuse_containers(value: Any, hint: Any, key: str) -> None:
    """OmegaConf keeps a list where a schema says list[str] ([[1, 2]]): a value whose annotation is a plain type
    (str, int, float, bool) must not be a list or a mapping."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hints = _hints(type(value))
        for item in dataclasses.fields(value):
            _refuse_containers(getattr(value, item.name), hints.get(item.name, Any), key_of(key, item.name))
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        kept = [arg for arg in args if arg is not type(None)]
        if len(kept) == 1:
            _refuse_containers(value, kept[0], key)
    elif origin is list and args and isinstance(value, list):
        for position, entry in enumerate(value):
            _refuse_containers(entry, args[0], f"{key}[{position}]")
    elif origin is dict and len(args) == 2 and isinstance(value, Mapping):
        for name, entry in value.items():
            _refuse_containers(entry, args[1], key_of(key, str(name)))
    elif hint in (str, int, float, bool) and isinstance(value, (list, tuple, Mapping)):
        raise SettingsError(f"{key} must be a {hint.__name__}, got {value!r}")


@functools.lru_cache(maxsize=None)
def _hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema)


def refuse_non_finite(value: Any, key: str) -> None:
    """No setting is NaN or infinite: a float anywhere (a field, a list entry, a free mapping such as stacker.params)
    must be finite; the schemas' limits say more only where a range applies."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            refuse_non_finite(getattr(value, item.name), key_of(key, item.name))
    elif isinstance(value, Mapping):
        for name, entry in value.items():
            refuse_non_finite(entry, key_of(key, str(name)))
    elif isinstance(value, (list, tuple)):
        for position, entry in enumerate(value):
            refuse_non_finite(entry, f"{key}[{position}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{key} must be a finite number, got {value!r}")


def check_types(values: Mapping[str, Any], schema: type, key: str) -> None:
    """`values` checked as settings of `schema` (types, ranges, finiteness), its other required fields left empty: for
    the settings a node lists beside its own (conf/predict.yaml's library lists every source's); null: not set."""
    given = {name: value for name, value in values.items() if value is not None}
    unset = {item.name: "" for item in dataclasses.fields(schema) if item.default == MISSING and item.name not in given}
    typed({**unset, **given}, schema, key)


def _converted(convert: Callable[[], Any], key: str) -> Any:
    """convert(), with OmegaConf's refusal (a wrong type, an unknown nested key) as one line naming the full key."""
    try:
        return convert()
    except OmegaConfBaseException as error:
        where = key_of(key, str(getattr(error, "full_key", None) or ""))
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SettingsError(f"{where}: {reason}" if where else reason) from None


# Reads of single settings by key, for the jobs' own top-level keys (a group is read whole with typed()).
_MISSING = object()


def _value(cfg: Any, key: str, default: Any) -> Any:
    if isinstance(cfg, Mapping) and not hasattr(cfg, "_get_node"):
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
            if node is _MISSING:
                break
        value = node
    else:
        value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=True)
    if value is _MISSING:
        if default is _MISSING:
            raise SettingsError(f"setting {key} is missing")
        return default
    return value


def integer(cfg: Any, key: str, minimum: int | None = None, default: Any = _MISSING, allow_none: bool = False) -> int | None:
    """cfg[key] as an int (>= minimum); "abc", 2.5 and true are refused."""
    value = _value(cfg, key, default)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise SettingsError(f"{key} must be an integer{'' if minimum is None else f' >= {minimum}'}"
                            f"{' or null' if allow_none else ''}, got {value!r}")
    if minimum is not None and value < minimum:
        raise SettingsError(f"{key} must be >= {minimum}, got {value!r}")
    return int(value)


def number(cfg: Any, key: str, low: float | None = None, high: float | None = None, *, high_open: bool = False,
           default: Any = _MISSING) -> float:
    """cfg[key] as a finite float in [low, high] ([low, high) with high_open)."""
    value = _value(cfg, key, default)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise SettingsError(f"{key} must be a finite number, got {value!r}")
    too_high = high is not None and (value >= high if high_open else value > high)
    if (low is not None and value < low) or too_high:
        bounds = f"[{'' if low is None else low}, {'' if high is None else high}{')' if high_open else ']'}"
        raise SettingsError(f"{key} must be in {bounds}, got {value!r}")
    return float(value)


def choice(cfg: Any, key: str, options: Iterable[str], default: Any = _MISSING) -> str:
    """cfg[key], one of `options`."""
    value = _value(cfg, key, default)
    options = list(options)
    if value is None or str(value) not in options:
        raise SettingsError(f"{key} must be one of {options}, got {value!r}")
    return str(value)
