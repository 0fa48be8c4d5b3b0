"""The network groups' schemas on the composed train and stack configs: every schema field is in the composed config,
ranges and checks across fields name the key, and the recipe holds typed settings with the configs' values. (Every
leaf of every job refusing a bad value: tests/config/test_every_job.py.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from combomap.config.training import net_recipe
from combomap.console import USAGE_ERROR, describe
from combomap.models.settings import AdamWSettings, MlpNetSettings, TrainerSettings
from tests.conftest import compose_config
from tests.config.walk import leaves

CONFIGS = ("train", "stack")


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DictConfig]]:
    out = tmp_path_factory.mktemp("out")
    yield {name: compose_config(name, [], out) for name in CONFIGS}
    GlobalHydra.instance().clear()


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
