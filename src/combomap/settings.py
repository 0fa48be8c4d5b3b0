"""Typed reads of config settings that fail with one line naming the key and the value.

Hydra passes `trainer.max_epochs=abc` through as the string "abc"; without these reads it failed deep in
Lightning (a TypeError traceback) after the data had loaded. Commands call them before any expensive work.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
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
