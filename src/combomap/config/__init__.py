"""The config schemas: typed settings dataclasses registered in Hydra's ConfigStore as the schemas of their groups.

A group option names its schema first in its defaults list (`defaults: [schema, _self_]`), so composition refuses
a wrong type or an unknown key with one line, and the defaults live once, in the dataclass. Jobs turn a composed
node into the typed object with `typed(cfg.stacking, StackingSettings, "stacking")` (which also range-checks it);
domain code receives typed objects, never a DictConfig. This package is the one place besides combomap.jobs that
reads a DictConfig.

Each area's schemas live in a module of this package (combomap.config.<area>) that lists them in SCHEMAS as
(group, dataclass) pairs; `combomap.config.registry.register()` stores them all, and every entry point calls it before Hydra composes.
Shared helpers (`typed`) are in combomap.config.base.
"""
