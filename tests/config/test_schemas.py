"""The network groups' schemas on the composed train and stack configs: every leaf of model, optimizer, schedule,
augment, datamodule, trainer, callbacks, logger and paths and every top-level scalar refuses a value of the wrong type
(and a float NaN or inf, a string outside its choices), and every node of those groups an unknown key, each with one
line naming the key, before any data loads.

The leaves are found by walking the composed config. Each config is composed once; each bad value is applied to a copy
of it the way compose applies a command-line override (Hydra's override parser and
ConfigLoaderImpl._apply_overrides_to_config, compose's last step), then the job's checks run (net_recipe). A fixed,
evenly spaced sample of the cases also goes through a full compose, which must end in the same line.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.base import UnionNode
from omegaconf.nodes import BooleanNode, FloatNode, IntegerNode, StringNode

from combomap.config.training import net_recipe
from combomap.console import USAGE_ERROR, describe
from combomap.models.recipe import NetRecipe
from combomap.models.settings import AdamWSettings, MlpNetSettings, TrainerSettings
from tests.conftest import compose_config

CONFIGS = ("train", "stack")
GROUPS = ("model", "optimizer", "schedule", "augment", "datamodule", "trainer", "callbacks", "logger", "paths")
FULL_COMPOSE_EVERY = 25  # every 25th case of each config is also composed from scratch (about 0.4 s each)


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DictConfig]]:
    out = tmp_path_factory.mktemp("out")
    yield {name: compose_config(name, [], out) for name in CONFIGS}
    GlobalHydra.instance().clear()


def leaves(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted key, OmegaConf node) of every value, list or null entry under node."""
    for key in node.keys():
        child = node._get_node(key)
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(child, DictConfig) and not child._is_none():
            yield from leaves(child, path)
        else:
            yield path, child


def mappings(node: DictConfig, prefix: str) -> Iterator[str]:
    """The dotted key of node and of every mapping under it."""
    yield prefix
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            yield from mappings(child, f"{prefix}.{key}")


def choices_of(node: object) -> tuple[str, ...] | None:
    """The choices a string leaf's schema field allows (limits(choices=...)), None for a free string."""
    parent = node._get_parent()  # type: ignore[attr-defined]
    schema = OmegaConf.get_type(parent)
    if not dataclasses.is_dataclass(schema):
        return None
    named = {item.name: item for item in dataclasses.fields(schema)}
    item = named.get(node._key())  # type: ignore[attr-defined]
    return None if item is None else item.metadata.get("choices")


def bad_values(node: object) -> list[str]:
    """Override values of the wrong type for this leaf (and NaN / inf where a float is allowed)."""
    if isinstance(node, ListConfig):
        return ["abc", "[abc]", "[nan,0.5]"]
    if isinstance(node, DictConfig):  # a structured entry set to null (a callback turned off)
        return ["abc"]
    if isinstance(node, BooleanNode):
        return ["2.5", "abc"]
    if isinstance(node, IntegerNode):
        return ["abc", "2.5"]
    if isinstance(node, FloatNode):
        return ["abc", "nan", "inf", "-inf"]
    if isinstance(node, UnionNode):
        return ["abc", "nan", "inf"]
    if isinstance(node, StringNode):
        return ["[1,2]", *(["abc"] if choices_of(node) else [])]
    raise AssertionError(f"a leaf of an untyped kind: {type(node).__name__} at {node._get_full_key(None)}")  # type: ignore[attr-defined]


def cases(cfg: DictConfig) -> list[tuple[str, str]]:
    """(override, the key its error line must name) for every leaf and every mapping of the groups."""
    found = []
    for key in cfg.keys():
        node = cfg._get_node(key)
        if key in GROUPS and isinstance(node, DictConfig):
            found += [(f"{path}={value}", path) for path, leaf in leaves(node, str(key)) for value in bad_values(leaf)]
            for path in mappings(node, str(key)):
                found += [(f"+{path}.nosuchkey=1", f"{path}.nosuchkey"), (f"{path}.nosuchkey=1", f"{path}.nosuchkey")]
        elif not isinstance(node, (DictConfig, ListConfig)):
            found += [(f"{key}={value}", str(key)) for value in bad_values(node)]
    return found


def refusal(cfg: DictConfig, override: str) -> str | None:
    """The one line the command would end with, after the override applied as compose applies it; None: accepted."""
    changed = copy.deepcopy(cfg)
    OmegaConf.set_struct(changed, True)
    try:
        ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides([override]), changed)
        net_recipe(changed)
    except Exception as error:  # noqa: BLE001 - what the console makes of it is the assertion
        described = describe(error)
        assert described is not None, f"{override}: a bug, not a refusal: {error!r}"
        line, status = described
        assert status == USAGE_ERROR
        return line
    return None


def full_compose_refusal(config: str, override: str, out: Path) -> str | None:
    try:
        net_recipe(compose_config(config, [override], out))
    except Exception as error:  # noqa: BLE001
        described = describe(error)
        return None if described is None else described[0]
    return None


@pytest.mark.parametrize("config", CONFIGS)
def test_every_leaf_refuses_a_wrong_value_naming_its_key(config: str, composed: dict[str, DictConfig],
                                                         tmp_path: Path) -> None:
    cfg = composed[config]
    assert isinstance(net_recipe(cfg), NetRecipe)  # the composed config itself passes
    all_cases = cases(cfg)
    named = {key for _, key in all_cases}
    for group in GROUPS:
        assert any(key.startswith(f"{group}.") for key in named), f"no leaf found under {group}"
    assert {"seed", "progress", "plots", "task_name", "optimized_metric"} <= named
    accepted, unnamed = [], []
    for override, key in all_cases:
        line = refusal(cfg, override)
        if line is None:
            accepted.append(override)
        elif key not in line or "\n" in line:
            unnamed.append(f"{override}: {line}")
    assert accepted == [], f"accepted: {accepted}"
    assert unnamed == [], "\n".join(unnamed)
    for override, _ in all_cases[::FULL_COMPOSE_EVERY]:
        assert full_compose_refusal(config, override, tmp_path / "out") == refusal(cfg, override), override


def test_the_walk_sees_each_schema_field(composed: dict[str, DictConfig]) -> None:
    """The leaves come from the composed config; the schemas' fields are all there (no group lost its schema)."""
    keys = {path for path, _ in leaves(composed["train"])}
    for group, schema in (("model", MlpNetSettings), ("optimizer", AdamWSettings), ("trainer", TrainerSettings)):
        assert {f"{group}.{item.name}" for item in dataclasses.fields(schema)} <= keys
    assert OmegaConf.get_type(composed["train"].datamodule).__name__ == "DataModuleSettings"
    assert OmegaConf.get_type(composed["stack"].callbacks).__name__ == "CallbacksSettings"


@pytest.mark.parametrize(("config", "overrides", "message"), [
    ("train", ["datamodule.val_fraction=0.6", "datamodule.test_fraction=0.5"],
     "datamodule.val_fraction + datamodule.test_fraction must be < 1, got 0.6 + 0.5"),
    ("train", ["augment.flip_gene_p=1.5"], "augment.flip_gene_p must be in [0.0, 1.0], got 1.5"),
    ("train", ["augment.swap_p=-0.1"], "augment.swap_p must be in [0.0, 1.0], got -0.1"),
    ("train", ["augment.flip_sample_fraction=2"], "augment.flip_sample_fraction must be in [0.0, 1.0], got 2.0"),
    ("train", ["trainer.devices=0"], "trainer.devices must be an integer >= 1 or auto, got 0"),
    ("train", ["trainer.limit_val_batches=1.5"], "trainer.limit_val_batches must be null, an integer >= 0 or a fraction"),
    ("train", ["trainer.num_sanity_val_steps=-2"], "trainer.num_sanity_val_steps must be >= -1, got -2"),
    ("train", ["trainer.precision=15"], "trainer.precision must be one of"),
    ("train", ["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val must be >= 0.0, got -1.0"),
    ("train", ["callbacks.checkpoint.every_n_epochs=0"], "callbacks.checkpoint.every_n_epochs must be >= 1, got 0"),
    ("train", ["callbacks.best_checkpoint.save_top_k=-2"], "callbacks.best_checkpoint.save_top_k must be >= -1"),
    ("train", ["callbacks.best_checkpoint.mode=maximum"], "callbacks.best_checkpoint.mode must be one of ['min', 'max']"),
    ("train", ["model.var_fill=-1"], "model.var_fill must be median or a finite number >= 0, got -1"),
    ("train", ["model.hidden_sizes=[16,0]"], "model.hidden_sizes[1] must be an integer >= 1, got 0"),
    ("train", ["model=latent_mlp", "model.hidden_sizes=[]"], "model.hidden_sizes must list at least 1 integer(s)"),
    ("train", ["optimizer.betas=[0.9]"], "optimizer.betas must be two numbers in [0, 1), got [0.9]"),
    ("train", ["model=mlp", "optimizer.momentum=0"], "optimizer.nesterov=true needs optimizer.momentum > 0, got 0.0"),
    ("train", ["schedule.momentum_end=null"], "set both schedule.momentum_start and schedule.momentum_end"),
    ("train", ["seed=-1"], "seed must be in [0, 4294967295], got -1"),
    ("stack", ["datamodule.batch_size=0"], "datamodule.batch_size must be >= 1, got 0"),
    ("stack", ["model._target_=nope"], "model._target_ must name one of"),
])
def test_ranges_and_cross_checks_name_the_key(compose_cfg, config: str, overrides: list[str], message: str) -> None:
    with pytest.raises(Exception) as error:
        net_recipe(compose_cfg(config, overrides))
    described = describe(error.value)
    assert described is not None and described[1] == USAGE_ERROR
    assert message in described[0]


def test_the_recipe_holds_typed_settings_with_the_configs_values(compose_cfg) -> None:
    recipe = net_recipe(compose_cfg("train", ["model=mlp", "schedule=cosine", "callbacks=none", "seed=3"]))
    assert isinstance(recipe.model, MlpNetSettings) and recipe.model.hidden_sizes == [512]  # experiment quick_mlp's
    assert recipe.optimizer.lr == recipe.schedule.lr_start == 1e-3  # type: ignore[union-attr]
    assert type(recipe.optimizer).__name__ == "SgdSettings" and recipe.optimizer.momentum == 0.9
    assert recipe.schedule is not None and recipe.schedule.shape == "cosine" and recipe.schedule.interval == "epoch"
    assert recipe.callbacks == {} and recipe.seed == 3 and recipe.datamodule.seed == 3
    adam = net_recipe(compose_cfg("train", [])).optimizer
    assert isinstance(adam, AdamWSettings) and adam.betas == [0.9, 0.999] and adam.weight_decay == 0.01
    checkpoints = net_recipe(compose_cfg("train", ["callbacks.checkpoint.every_n_epochs=2"])).callbacks
    assert [(name, c.filename, c.monitor, c.mode, c.every_n_epochs) for name, c in checkpoints.items()] == [
        ("checkpoint", "last", None, "min", 2), ("best_checkpoint", "best", "val/sign_acc", "max", 2)]
