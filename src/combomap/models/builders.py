"""The objects one net's fit instantiates from its NetRecipe: the datamodule, the LightningModule around the
network (optimizer, schedule) and the Trainer with its callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from hydra.utils import instantiate
from pytorch_lightning.callbacks import ModelCheckpoint

from combomap.data.augment import AugmentConfig
from combomap.data.datamodule import ComboDataModule
from combomap.data.dataset import ComboDataset
from combomap.models.mlp import MLPModule
from combomap.models.recipe import NetRecipe
from combomap.models.resume import CHECKPOINT_DIR
from combomap.progress import epoch_callback


def resolve_var_fill(setting: Any, dataset: ComboDataset) -> float:
    """model.var_fill: a number, or "median" = median measured variance of the training rows (1.0 if none)."""
    if setting is None or str(setting) == "median":
        if not dataset.has_variances:
            return 1.0
        values = np.concatenate([dataset.drug1_var.ravel(), dataset.drug2_var.ravel()])
        values = values[~np.isnan(values)]
        return float(np.median(values)) if values.size else 1.0
    return float(setting)


def build_datamodule(recipe: NetRecipe, train: ComboDataset, val: ComboDataset | None = None,
                     augment_batches: bool = True) -> ComboDataModule:
    """The recipe's datamodule on these data sets, with the net's inputs and its augmentation (none: augment_batches False)."""
    augment = recipe.augment if augment_batches else AugmentConfig()
    return instantiate(recipe.datamodule)(train, val_dataset=val, with_variances=recipe.uses_variances, augment=augment)


def build_module(recipe: NetRecipe, n_genes: int, var_fill: float, basis: Any = None) -> MLPModule:
    """The LightningModule around the recipe's network (built for `n_genes` and `var_fill`, or on the latent net's
    `basis`), with its optimizer and schedule."""
    net_on_data = {"basis": basis} if recipe.kind == "latent" else {"n_genes": n_genes, "var_fill": var_fill}
    return MLPModule(net=instantiate(recipe.model)(**net_on_data), optimizer=instantiate(recipe.optimizer),
                     schedule=recipe.schedule)


def build_trainer(recipe: NetRecipe, logger: Any, has_val: bool, run_dir: Path | None = None,
                  progress_desc: str | None = None) -> pl.Trainer:
    """The recipe's Trainer with its callbacks; a ModelCheckpoint without dirpath writes into <run_dir>/checkpoints."""
    callbacks = [instantiate(c) for c in recipe.callbacks.values() if c is not None and _has_target(c)]
    if progress_desc:  # combomap.progress: a bar or log lines per epoch (Lightning's own bar stays off)
        callbacks.append(epoch_callback(progress_desc))
    extra: dict[str, Any] = {"logger": logger, "callbacks": callbacks}
    checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    extra["enable_checkpointing"] = bool(checkpoints)
    if run_dir is not None:
        extra["default_root_dir"] = str(run_dir)  # nothing lands in the working directory (mlflow-active-run/)
    for callback in checkpoints:
        if callback.dirpath is None and run_dir is not None:
            callback.dirpath = str(run_dir / CHECKPOINT_DIR)
        if not has_val and callback.monitor is not None:  # nothing to monitor: the best is the last
            callback.monitor = None
    if not has_val:
        extra["limit_val_batches"] = 0
    return instantiate(recipe.trainer, **extra)


def _has_target(settings: Any) -> bool:
    return "_target_" in settings if isinstance(settings, dict) else getattr(settings, "_target_", None) is not None
