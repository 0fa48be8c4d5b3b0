"""The original "Hopeless Model": an MLP from [drug1 genes | drug2 genes] to the combination's genes.

Architecture (defaults = the original): input dropout 0.85 -> dense 2500, very leaky ReLU
max(z/3, z) -> dropout 0.5 -> dense G (linear). More hidden layers repeat "dense, activation,
dropout".

Missing values, the policy (the NumPy predictor in `portable.py` applies exactly the same):
- Input blocks, in this order: [drug1 effect | drug2 effect], then optionally
  [drug1 var | drug2 var] (`uses_variances`), then optionally [drug1 measured | drug2 measured]
  (`uses_mask`: 1.0 where the effect was measured, else 0.0).
- An unmeasured effect is 0 ("no change"); an unmeasured variance is `var_fill` (by default the
  median measured training variance, frozen into the model), never 0, which would claim certainty.
- Targets: unmeasured combination entries are left out of the loss (`masked_mse`), so NaN
  never reaches a gradient; a batch with no measured target contributes a zero loss.
Batches carry raw NaN-holding blocks; the fill happens inside `forward`, after augmentation,
so flipped genes take their NaN (and mask) with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from combomap.evaluation.metrics import per_combo_spearman, sign_accuracy
from combomap.models.portable import ACTIVATIONS, PortableMLP
from combomap.models.schedule import LrMomentumScheduler, ScheduleConfig


class Activation(nn.Module):
    """The activations the NumPy predictor can reproduce, by name (see portable.ACTIVATIONS)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
        self.name = name

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.name == "very_leaky_relu":
            return torch.maximum(z / 3.0, z)
        if self.name == "leaky_relu":
            return torch.maximum(z * 0.01, z)
        if self.name == "relu":
            return torch.relu(z)
        if self.name == "tanh":
            return torch.tanh(z)
        if self.name == "elu":
            return torch.where(z > 0, z, torch.expm1(z))
        if self.name == "gelu_tanh":
            return nn.functional.gelu(z, approximate="tanh")
        return z  # identity

    def extra_repr(self) -> str:
        return self.name


def assemble_inputs(
    effects: torch.Tensor,
    variances: torch.Tensor | None,
    uses_variances: bool,
    uses_mask: bool,
    var_fill: float,
) -> torch.Tensor:
    """(B, 2, G) raw blocks (NaN = unmeasured) -> (B, n_inputs) network input, NaN-free (module docstring).

    The torch side of the policy; its NumPy side is `PortableMLP.drug_inputs` (per drug, for a PairBatch and the
    query's per-drug factorization), held equal to this bit for bit by tests/models/test_portable.py."""
    batch = effects.shape[0]
    measured = ~torch.isnan(effects)
    blocks = [torch.where(measured, effects, torch.zeros((), dtype=effects.dtype, device=effects.device))]
    if uses_variances:
        if variances is None:
            raise ValueError("this model uses variances, but the batch has none")
        fill = torch.full((), var_fill, dtype=variances.dtype, device=variances.device)
        blocks.append(torch.where(torch.isnan(variances), fill, variances))
    if uses_mask:
        blocks.append(measured.to(effects.dtype))
    return torch.cat([block.reshape(batch, -1) for block in blocks], dim=1)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over measured (non-NaN) targets only; 0 when none is measured.

    torch.where (not multiplication by a mask) keeps NaN out of the backward pass too.
    """
    measured = ~torch.isnan(target)
    residual = torch.where(measured, prediction - torch.nan_to_num(target), torch.zeros_like(prediction))
    return (residual**2).sum() / measured.sum().clamp(min=1)


class ComboMLP(nn.Module):
    """input dropout -> [dense -> activation -> dropout] x len(hidden_sizes) -> dense (linear)."""

    def __init__(
        self,
        n_genes: int,
        hidden_sizes: Sequence[int] = (2500,),
        activation: str = "very_leaky_relu",
        input_dropout: float = 0.85,
        hidden_dropout: float = 0.5,
        uses_variances: bool = False,
        uses_mask: bool = False,
        var_fill: float = 1.0,
    ) -> None:
        super().__init__()
        self.n_genes = int(n_genes)
        self.hidden_sizes = [int(h) for h in hidden_sizes]
        self.activation_name = activation
        self.uses_variances = bool(uses_variances)
        self.uses_mask = bool(uses_mask)
        self.var_fill = float(var_fill)
        n_inputs = 2 * self.n_genes * (1 + self.uses_variances + self.uses_mask)
        layers: list[nn.Module] = [nn.Dropout(input_dropout)]
        width = n_inputs
        for hidden in self.hidden_sizes:
            layers += [nn.Linear(width, hidden), Activation(activation), nn.Dropout(hidden_dropout)]
            width = hidden
        layers.append(nn.Linear(width, self.n_genes))
        self.layers = nn.Sequential(*layers)

    @property
    def n_inputs(self) -> int:
        return 2 * self.n_genes * (1 + self.uses_variances + self.uses_mask)

    def forward(self, effects: torch.Tensor, variances: torch.Tensor | None = None) -> torch.Tensor:
        """effects (B, 2, G) [drug1, drug2], variances (B, 2, G) or None -> (B, G) predicted combination effect."""
        inputs = assemble_inputs(effects, variances, self.uses_variances, self.uses_mask, self.var_fill)
        return self.layers(inputs)

    def linear_layers(self) -> list[nn.Linear]:
        return [layer for layer in self.layers if isinstance(layer, nn.Linear)]

    def to_portable(self, genes: Sequence[str]) -> PortableMLP:
        """The NumPy-only predictor with these weights (eval-mode semantics: no dropout)."""
        linears = self.linear_layers()
        return PortableMLP(
            weights=[layer.weight.detach().cpu().numpy().astype(np.float32).copy() for layer in linears],
            biases=[layer.bias.detach().cpu().numpy().astype(np.float32).copy() for layer in linears],
            activation=self.activation_name,
            genes=list(genes),
            uses_variances=self.uses_variances,
            uses_mask=self.uses_mask,
            var_fill=self.var_fill,
        )


class MLPModule(pl.LightningModule):
    """A combination network (conf/model) with its masked loss, optimizer, lr+momentum schedule and per-epoch validation metrics.

    Logged (epoch-level): train/loss, train/lr, train/momentum, val/loss, val/sign_acc,
    val/spearman (median per-combination Spearman) and their running bests
    val/loss_best, val/sign_acc_best, val/spearman_best. Metrics come from combomap.evaluation.metrics.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        schedule: ScheduleConfig | None = None,
    ) -> None:
        """`net`: a ComboMLP, or another network with the same forward(effects, variances) and to_portable(genes)
        (e.g. combomap.models.latent_net.LatentPairNet); the loss, optimizer, schedule and metrics are shared."""
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer or (lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True))
        self.schedule = schedule
        self._val_predictions: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []
        self.best: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.diverged_epoch: int | None = None

    def forward(self, effects: torch.Tensor, variances: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(effects, variances)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also the running bests, the history and the global torch RNG (dropout): resuming repeats the same run."""
        checkpoint["combomap"] = {"best": dict(self.best), "history": list(self.history), "torch_rng": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("combomap") or {}
        self.best = dict(saved.get("best", {}))
        self.history = list(saved.get("history", []))
        self._resumed_rng = saved.get("torch_rng")

    def _restore_rng(self) -> None:
        # At the start of the first resumed epoch: after Lightning's restore and restart machinery (which draw
        # from the global RNG), where the uninterrupted run stood when it saved the checkpoint.
        state = getattr(self, "_resumed_rng", None)
        if state is not None:
            torch.set_rng_state(state)
            self._resumed_rng = None

    def _predict_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["effects"], batch.get("variances"))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = masked_mse(self._predict_batch(batch), batch["target"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=batch["target"].shape[0])
        return loss

    def on_train_epoch_start(self) -> None:
        self._restore_rng()
        group = self.trainer.optimizers[0].param_groups[0]
        self.log("train/lr", float(group["lr"]), on_step=False, on_epoch=True)
        momentum = current_momentum(group)
        if momentum is not None:
            self.log("train/momentum", momentum, on_step=False, on_epoch=True)

    def on_train_epoch_end(self) -> None:
        loss = self.trainer.callback_metrics.get("train/loss")
        if loss is not None and not bool(torch.isfinite(loss)):
            # Diverged (learning rate too high?): stop rather than feed NaN to the optimizer for the remaining epochs.
            self.diverged_epoch = int(self.current_epoch)
            self.trainer.should_stop = True

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._val_predictions.append(self._predict_batch(batch).detach().float().cpu())
        self._val_targets.append(batch["target"].detach().float().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_predictions:
            return
        prediction = torch.cat(self._val_predictions)
        target = torch.cat(self._val_targets)
        self._val_predictions.clear()
        self._val_targets.clear()
        if self.trainer.sanity_checking:
            return
        truth, predicted = target.numpy(), prediction.numpy()
        spearman = per_combo_spearman(truth, predicted)
        values = {
            "val/loss": float(masked_mse(prediction, target)),
            "val/sign_acc": sign_accuracy(truth, predicted),
            "val/spearman": float(np.nanmedian(spearman)) if np.isfinite(spearman).any() else float("nan"),
        }
        for key, better in (("val/loss", min), ("val/sign_acc", max), ("val/spearman", max)):
            value = values[key]
            if not math.isnan(value):
                previous = self.best.get(key)
                self.best[key] = value if previous is None else better(previous, value)
        for key, value in values.items():
            self.log(key, value, on_step=False, on_epoch=True)
        for key, value in self.best.items():
            self.log(f"{key}_best", value, on_step=False, on_epoch=True)
        self.history.append({"epoch": float(self.current_epoch), **values})

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.schedule is None:
            return optimizer
        interval = self.schedule.interval
        total = self.trainer.max_epochs if interval == "epoch" else int(self.trainer.estimated_stepping_batches)
        if total is None or total < 1:
            raise ValueError(f"the {self.schedule.shape} schedule needs a finite trainer.max_epochs (got {total})")
        scheduler = LrMomentumScheduler(optimizer, self.schedule, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval, "frequency": 1}}


def current_momentum(group: dict[str, Any]) -> float | None:
    """SGD's momentum or Adam's beta1 of a parameter group (None if the optimizer has neither)."""
    if "momentum" in group:
        return float(group["momentum"])
    if "betas" in group:
        return float(group["betas"][0])
    return None
