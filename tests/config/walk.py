"""Walking a composed config: its leaves and mappings, and the values a hostile user would give each leaf (a wrong
type, NaN or inf where a float is allowed, a string outside a field's choices, another class as a `_target_`,
`_partial_: false`), as command-line overrides."""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Iterator

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.base import UnionNode
from omegaconf.nodes import AnyNode, BooleanNode, FloatNode, IntegerNode, StringNode

FLOAT_VALUES = ["abc", "nan", "inf", "-inf"]


def leaves(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted key, OmegaConf node) of every value, list or null entry under node."""
    for key in node.keys():
        child = node._get_node(key)
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(child, DictConfig) and not child._is_none():
            yield from leaves(child, path)
        else:
            yield path, child


def is_free_mapping(node: DictConfig) -> bool:
    """A mapping whose keys the user chooses (stacker.params, data.overrides, predictions): a dict-typed field."""
    return typing.get_origin(node._metadata.ref_type) is dict or node._metadata.ref_type is dict


def mappings(node: DictConfig, prefix: str) -> Iterator[str]:
    """The dotted key of node and of every mapping under it that has a fixed set of settings."""
    if not is_free_mapping(node):
        yield prefix
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            yield from mappings(child, f"{prefix}.{key}" if prefix else str(key))


def choices_of(node: object) -> tuple[str, ...] | None:
    """The choices a string leaf's schema field allows (limits(choices=...)), None for a free string."""
    parent = node._get_parent()  # type: ignore[attr-defined]
    schema = OmegaConf.get_type(parent)
    if not dataclasses.is_dataclass(schema):
        return None
    named = {item.name: item for item in dataclasses.fields(schema)}
    item = named.get(node._key())  # type: ignore[attr-defined]
    return None if item is None else item.metadata.get("choices")


def _list_values(node: ListConfig) -> list[str]:
    element = node._metadata.element_type
    if element is str:
        return ["abc", "[[1,2]]"]
    if element is float:
        return ["abc", "[abc]", "[nan,0.5]", "[inf]"]
    if element is int:
        return ["abc", "[abc]", "[2.5]"]
    return ["5", "{a:1}"]  # a list of anything (predict's pairs, data.control): a number or a mapping is wrong


def _untyped_values(node: AnyNode) -> list[str]:
    """A leaf of a node without a schema at composition (conf/predict.yaml's library): by its value's type."""
    value = node._value()
    if isinstance(value, bool):
        return ["abc", "2.5"]
    if isinstance(value, int):
        return ["abc", "2.5"]
    if isinstance(value, float):
        return FLOAT_VALUES
    return ["[1,2]"]  # a string or a null: a list is never a file name or a choice


def bad_values(node: object) -> list[str]:
    """Override values of the wrong type for this leaf (and NaN / inf where a float is allowed)."""
    if isinstance(node, ListConfig):
        return _list_values(node)
    if isinstance(node, DictConfig):  # a structured entry set to null (a callback turned off)
        return ["abc"]
    if isinstance(node, BooleanNode):
        return ["2.5", "abc", *(["false"] if node._key() == "_partial_" else [])]  # type: ignore[attr-defined]
    if isinstance(node, IntegerNode):
        return ["abc", "2.5"]
    if isinstance(node, FloatNode):
        return FLOAT_VALUES
    if isinstance(node, UnionNode):
        return ["abc", "nan", "inf"]
    if isinstance(node, StringNode):
        fixed_set = choices_of(node) or node._key() == "_target_"  # type: ignore[attr-defined]
        return ["[1,2]", *(["abc"] if fixed_set else [])]
    if isinstance(node, AnyNode):
        return _untyped_values(node)
    raise AssertionError(f"a leaf of an unknown kind: {type(node).__name__} at {node._get_full_key(None)}")  # type: ignore[attr-defined]


def with_override(cfg: DictConfig, override: str) -> DictConfig:
    """A copy of cfg with one command-line override applied as compose applies it (Hydra's override parser and
    ConfigLoaderImpl._apply_overrides_to_config, compose's last step); raises what compose would."""
    changed = copy.deepcopy(cfg)
    OmegaConf.set_struct(changed, True)
    ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides([override]), changed)
    return changed
