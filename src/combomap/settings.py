"""Typed reads of config settings that fail with one line naming the key and the value.

Hydra passes `trainer.max_epochs=abc` through as the string "abc"; without these reads it failed deep in
Lightning (a TypeError traceback) after the data had loaded. Commands call them before any expensive work.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from omegaconf import OmegaConf

from combomap.errors import UserError

_MISSING = object()


class SettingsError(UserError):
    """A config value of the wrong type or out of range."""


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


def limits(low: float | None = None, high: float | None = None, *, high_open: bool = False,
           choices: Iterable[str] | None = None) -> dict[str, Any]:
    """Field metadata for Checked dataclasses: `n_folds: int = field(default=5, metadata=limits(2))`."""
    return {"low": low, "high": high, "high_open": high_open, "choices": None if choices is None else tuple(choices)}


class Checked:
    """Mixin of the typed settings dataclasses (the schemas of the config groups, combomap.config).

    Hydra checks types when it composes (a schema's field refuses "abc" for an int); `check(prefix)` adds what
    types cannot say, from each field's `limits(...)` metadata: finite numbers, ranges, choices, recursively into
    nested Checked fields, each failure one line naming the full key (prefix.field)."""

    def check(self, prefix: str = "") -> "Checked":
        for item in fields(self):  # type: ignore[arg-type]
            key = f"{prefix}.{item.name}" if prefix else item.name
            value = getattr(self, item.name)
            if isinstance(value, Checked):
                value.check(key)
                continue
            meta = item.metadata
            if value is None or not meta:
                continue
            if meta.get("choices") is not None:
                _choice_value(key, value, meta["choices"])
            elif isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise SettingsError(f"{key} must be a number, got {value!r}")
            else:
                _range_value(key, value, meta.get("low"), meta.get("high"), bool(meta.get("high_open")))
        self.validate(prefix)
        return self

    def validate(self, prefix: str) -> None:
        """Checks across fields (e.g. val_fraction + test_fraction < 1); a subclass overrides it."""


def key_of(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _choice_value(key: str, value: Any, options: Iterable[str]) -> None:
    options = list(options)
    if str(value) not in options:
        raise SettingsError(f"{key} must be one of {options}, got {value!r}")


def _range_value(key: str, value: float, low: float | None, high: float | None, high_open: bool) -> None:
    if not math.isfinite(value):
        raise SettingsError(f"{key} must be a finite number, got {value!r}")
    too_high = high is not None and (value >= high if high_open else value > high)
    if (low is not None and value < low) or too_high:
        bounds = f"[{'' if low is None else low}, {'' if high is None else high}{')' if high_open else ']'}"
        raise SettingsError(f"{key} must be in {bounds}, got {value!r}")
