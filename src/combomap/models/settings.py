"""The typed settings of one network's fit: the schemas of conf/model (the network and its optimizer), conf/trainer
and conf/callbacks (registered by combomap.config.training). The defaults here are the groups' defaults.

The network and optimizer settings are `_partial_` targets: the fit instantiates them and adds what only the data
know (n_genes and var_fill, or the gene-program basis; the net's parameters)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from combomap.models.portable_base import ACTIVATIONS
from combomap.settings import Checked, SettingsError, fixed, key_of, limits

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64", "32", "16", "bf16")
CHECKPOINT_MODES = ("min", "max")
# What combomap.models.mlp.MLPModule logs every epoch, so what a checkpoint can monitor (val/*: with a validation split)
MONITORED = ("val/loss", "val/sign_acc", "val/spearman", "val/loss_best", "val/sign_acc_best", "val/spearman_best",
             "train/loss", "train/lr")
DROPOUT = limits(0.0, 1.0, high_open=True)
ACTIVATION_NAMES = tuple(sorted(ACTIVATIONS))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_sizes(sizes: list[int], key: str, at_least: int = 0) -> None:
    """Layer widths: integers >= 1, at least `at_least` of them."""
    if len(sizes) < at_least:
        raise SettingsError(f"{key} must list at least {at_least} integer(s) >= 1, got {list(sizes)}")
    for position, size in enumerate(sizes):
        if not _is_number(size) or int(size) != size or size < 1:
            raise SettingsError(f"{key}[{position}] must be an integer >= 1, got {size!r}")


@dataclass
class MlpNetSettings(Checked):
    """conf/model/mlp.yaml's network: combomap.models.mlp.ComboMLP (the original's "Hopeless Model")."""

    _target_: str = "combomap.models.mlp.ComboMLP"
    _partial_: bool = fixed(True)
    hidden_sizes: list[int] = field(default_factory=lambda: [2500])
    activation: str = field(default="very_leaky_relu", metadata=limits(choices=ACTIVATION_NAMES))
    input_dropout: float = field(default=0.85, metadata=DROPOUT)
    hidden_dropout: float = field(default=0.5, metadata=DROPOUT)
    uses_variances: bool = False
    uses_mask: bool = False
    var_fill: Union[float, int, str] = "median"  # "median" (of the training rows' measured variances) or a number

    def validate(self, prefix: str) -> None:
        check_sizes(self.hidden_sizes, key_of(prefix, "hidden_sizes"))
        fill = self.var_fill
        if fill != "median" and not (_is_number(fill) and math.isfinite(fill) and fill >= 0):
            raise SettingsError(f"{key_of(prefix, 'var_fill')} must be median or a finite number >= 0, got {fill!r}")


@dataclass
class LatentNetSettings(Checked):
    """conf/model/latent_mlp.yaml's network: combomap.models.latent_net.LatentPairNet (hidden_sizes[0] is the width of
    phi and rho)."""

    _target_: str = "combomap.models.latent_net.LatentPairNet"
    _partial_: bool = fixed(True)
    hidden_sizes: list[int] = field(default_factory=lambda: [64])
    activation: str = field(default="very_leaky_relu", metadata=limits(choices=ACTIVATION_NAMES))
    hidden_dropout: float = field(default=0.1, metadata=DROPOUT)

    def validate(self, prefix: str) -> None:
        check_sizes(self.hidden_sizes, key_of(prefix, "hidden_sizes"), at_least=1)


NetSettings = Union[MlpNetSettings, LatentNetSettings]


@dataclass
class SgdSettings(Checked):
    """torch.optim.SGD. A schedule (conf/schedule) writes lr and momentum every tick; these hold without one."""

    _target_: str = "torch.optim.SGD"
    _partial_: bool = fixed(True)
    lr: float = field(default=0.01, metadata=limits(0.0))
    momentum: float = field(default=0.9, metadata=limits(0.0, 1.0))
    nesterov: bool = True
    weight_decay: float = field(default=0.0, metadata=limits(0.0))

    def validate(self, prefix: str) -> None:
        if self.nesterov and self.momentum <= 0:
            raise SettingsError(f"{key_of(prefix, 'nesterov')}=true needs {key_of(prefix, 'momentum')} > 0, "
                                f"got {self.momentum!r}")


@dataclass
class AdamWSettings(Checked):
    """torch.optim.AdamW. A schedule writes lr, and with momentum values beta1, every tick."""

    _target_: str = "torch.optim.AdamW"
    _partial_: bool = fixed(True)
    lr: float = field(default=1e-3, metadata=limits(0.0))
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = field(default=0.01, metadata=limits(0.0))

    def validate(self, prefix: str) -> None:
        betas = list(self.betas)
        if len(betas) != 2 or not all(_is_number(b) and 0.0 <= b < 1.0 for b in betas):
            raise SettingsError(f"{key_of(prefix, 'betas')} must be two numbers in [0, 1), got {betas}")


OptimizerSettings = Union[SgdSettings, AdamWSettings]


def _batch_limit(value: Any, key: str) -> None:
    """Lightning's limit_*_batches: null (all), a number of batches (int >= 0) or a fraction in (0, 1]."""
    if value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise SettingsError(f"{key} must be null, an integer >= 0 or a fraction in (0, 1], got {value!r}")
    elif not (_is_number(value) and math.isfinite(value) and 0.0 < value <= 1.0):
        raise SettingsError(f"{key} must be null, an integer >= 0 or a fraction in (0, 1], got {value!r}")


@dataclass
class TrainerSettings(Checked):
    """The pytorch_lightning.Trainer arguments of conf/trainer (the fit adds the logger and callbacks)."""

    _target_: str = fixed("pytorch_lightning.Trainer")
    max_epochs: int = field(default=40, metadata=limits(1))
    accelerator: str = field(default="auto", metadata=limits(choices=ACCELERATORS))
    devices: Union[int, str] = 1  # a number of devices (>= 1) or "auto"
    precision: str = field(default="32-true", metadata=limits(choices=PRECISIONS))
    deterministic: bool = True
    log_every_n_steps: int = field(default=1, metadata=limits(1))
    check_val_every_n_epoch: int = field(default=1, metadata=limits(1))
    num_sanity_val_steps: int = field(default=0, metadata=limits(-1))
    enable_progress_bar: bool = False
    enable_checkpointing: bool = False
    enable_model_summary: bool = False
    gradient_clip_val: Optional[float] = field(default=None, metadata=limits(0.0))
    limit_train_batches: Optional[Union[int, float]] = None
    limit_val_batches: Optional[Union[int, float]] = None

    def validate(self, prefix: str) -> None:
        devices = self.devices
        if devices != "auto" and not (isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1):
            raise SettingsError(f"{key_of(prefix, 'devices')} must be an integer >= 1 or auto, got {devices!r}")
        _batch_limit(self.limit_train_batches, key_of(prefix, "limit_train_batches"))
        _batch_limit(self.limit_val_batches, key_of(prefix, "limit_val_batches"))


@dataclass
class CheckpointSettings(Checked):
    """A pytorch_lightning.callbacks.ModelCheckpoint; dirpath null: <run dir>/checkpoints."""

    _target_: str = fixed("pytorch_lightning.callbacks.ModelCheckpoint")
    dirpath: Optional[str] = None
    filename: Optional[str] = None
    monitor: Optional[str] = field(default=None, metadata=limits(choices=MONITORED))  # null: the latest, replaced each time
    mode: str = field(default="min", metadata=limits(choices=CHECKPOINT_MODES))
    save_top_k: int = field(default=1, metadata=limits(-1))
    enable_version_counter: bool = False
    every_n_epochs: int = field(default=1, metadata=limits(1))


@dataclass
class CallbacksSettings(Checked):
    """conf/callbacks: the Lightning callbacks of a fit, by name; null turns one off."""

    checkpoint: Optional[CheckpointSettings] = None
    best_checkpoint: Optional[CheckpointSettings] = None
