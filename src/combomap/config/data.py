"""Schemas of the data, library and export groups and of combomap-data's own settings, and the typed objects jobs
build from them.

A group whose options are different formats has one schema per option, stored under <group>/schema/<option>;
each option names its own first: `defaults: [schema/npy@_here_, _self_]`. `data_source(cfg.data)` picks the
dataclass by the composed node's type (or, for a node composed without one, by its `source`) and returns the
checked source, whose `load()` gives the data set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from combomap.config.base import SCHEMA_NAME, check_types, typed
from combomap.data.export import DATASET_FORMATS, EXPORTS, Export
from combomap.data.library_io import LIBRARY_SOURCES, LibrarySource
from combomap.data.loading import DATA_SOURCES, DataSource
from combomap.settings import Checked, SettingsError, limits


@dataclass
class DataToolSettings(Checked):
    """combomap-data's own settings (conf/data_tool.yaml documents them)."""

    out: str = MISSING
    format: str = field(default="npy", metadata=limits(choices=DATASET_FORMATS))
    overwrite: bool = False


@dataclass
class DataToolConfig(DataToolSettings):
    """The schema of conf/data_tool.yaml as a whole: its own settings typed, the groups typed by theirs."""

    task_name: str = "data"
    progress: bool = True
    paths: Any = None
    data: Any = None
    library: Any = None
    export: Any = None


DATA_TOOL_SCHEMA = "data_tool_schema"

SCHEMAS: list[tuple[str, type, str]] = [
    *[(f"data/{SCHEMA_NAME}", schema, name) for name, schema in DATA_SOURCES.items()],
    *[(f"library/{SCHEMA_NAME}", schema, name) for name, schema in LIBRARY_SOURCES.items()],
    *[(f"export/{SCHEMA_NAME}", schema, name) for name, schema in EXPORTS.items()],
    ("", DataToolConfig, DATA_TOOL_SCHEMA),
]


def data_source(node: Any, key: str = "data") -> DataSource:
    """The `data` config as its checked source (SimulatedData, NpyData, TidyData, H5adData)."""
    return _one_of(node, DATA_SOURCES, "source", key)


def library_source(node: Any, key: str = "library") -> LibrarySource:
    """The `library` config as its checked source (SimulatedLibrary, NpyLibrary, TidyLibrary, GctxLibrary,
    H5adLibrary), from a composed conf/library option (library=npy library.dir=DIR) or a plain mapping with
    `source` (a node listing several sources' settings keeps its source's)."""
    return _one_of(node, LIBRARY_SOURCES, "source", key)


def export_settings(node: Any, key: str = "export") -> Export:
    """The `export` config as its checked settings (DatasetExport, LibraryExport, SignatureExport)."""
    return _one_of(node, EXPORTS, "what", key)


def data_tool_settings(cfg: DictConfig) -> DataToolSettings:
    """combomap-data's out, format and overwrite, checked."""
    names = [item.name for item in fields(DataToolSettings)]
    return typed({name: cfg.get(name, MISSING) for name in names}, DataToolSettings, "")


def _one_of(node: Any, schemas: Mapping[str, type], tag: str, key: str) -> Any:
    if node is None:
        raise SettingsError(f"{key} is missing")
    if isinstance(node, DictConfig) and OmegaConf.get_type(node) in schemas.values():
        _refuse_switch(node, schemas, tag, key)
        _refuse_missing(key, [item.name for item in fields(OmegaConf.get_type(node)) if OmegaConf.is_missing(node, item.name)])
        return typed(node, OmegaConf.get_type(node), key)
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if not isinstance(values, Mapping):
        raise SettingsError(f"{key} must be a mapping of settings, got {values!r}")
    name = values.get(tag)
    if not isinstance(name, str) or name not in schemas:
        raise SettingsError(f"{key}.{tag} must be one of {sorted(schemas)}, got {name!r}")
    schema = schemas[name]
    own = {item.name for item in fields(schema)}
    others = {item.name for other in schemas.values() for item in fields(other)} - own
    for other in schemas.values():  # the settings of other sources, kept for them, still have their types
        listed = {item.name for item in fields(other)} & others & set(values)
        check_types({name: values[name] for name in listed}, other, key)
    values = {k: v for k, v in values.items() if k not in others}
    required = [item.name for item in fields(schema) if item.default == MISSING]  # a null there is missing too
    _refuse_missing(key, [name for name in required if values.get(name) in (None, MISSING)])
    return typed(values, schema, key)


def _refuse_switch(node: DictConfig, schemas: Mapping[str, type], tag: str, key: str) -> None:
    """`library.source=tidy` on a composed npy option would keep npy's settings: the option is chosen as a group."""
    own = next(name for name, schema in schemas.items() if schema is OmegaConf.get_type(node))
    asked = node.get(tag)
    if asked != own:
        if asked in schemas:
            raise SettingsError(f"{key}.{tag}={asked} does not change the {key}'s kind: choose it with {key}={asked} "
                                f"(the config group option), not {key}.{tag}")
        raise SettingsError(f"{key}.{tag} must be one of {sorted(schemas)}, got {asked!r}")


def _refuse_missing(key: str, missing: list[str]) -> None:
    if missing:
        raise SettingsError(f"{key}.{missing[0]} is missing: give {key}.{missing[0]}=...")
