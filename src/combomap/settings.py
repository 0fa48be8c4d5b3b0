"""Typed settings: the Checked mixin of every settings dataclass (the schemas of the config groups) and the one
error a bad setting raises, one line naming the key and what it accepts.

Hydra checks a schema's types when it composes; Checked.check adds ranges, choices and finiteness, so a bad value
fails before any data loads, not deep in Lightning after it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import field, fields
from typing import Any

from combomap.errors import UserError


class SettingsError(UserError):
    """A config value of the wrong type or out of range."""


SEED_MAX = 2**32 - 1  # NumPy's legacy seeding and Lightning's seed_everything take unsigned 32-bit seeds


def limits(low: float | None = None, high: float | None = None, *, high_open: bool = False,
           choices: Iterable[str] | None = None) -> dict[str, Any]:
    """Field metadata for Checked dataclasses: `n_folds: int = field(default=5, metadata=limits(2))`."""
    return {"low": low, "high": high, "high_open": high_open, "choices": None if choices is None else tuple(choices)}


SEED = limits(0, SEED_MAX)  # the metadata of every seed field


def fixed(value: Any) -> Any:
    """A field that must keep its value, e.g. a `_target_` class or `_partial_: true` (Hydra builds the object)."""
    return field(default=value, metadata=limits(choices=(str(value),)))


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
        if high is None:
            accepted = f">= {low}"
        elif low is None:
            accepted = f"{'<' if high_open else '<='} {high}"
        else:
            accepted = f"in [{low}, {high}{')' if high_open else ']'}"
        raise SettingsError(f"{key} must be {accepted}, got {value!r}")
