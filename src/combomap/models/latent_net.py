"""The latent net: a combination model in gene-program space (`model=latent_mlp`), symmetric by construction.

Why: the original MLP maps 23,050 noisy inputs to 11,525 outputs from a few hundred combinations, and its
out-of-fold predictions stay far below the plain average. In program space (the basis of
`combomap.models.latent`, rank k of about 16-64) the same data fit a model with a few thousand weights:

    c_A, c_B = program coefficients of the two drugs (the basis' posterior-mean projection)
    c_AB = slope * (c_A + c_B) + rho(phi(c_A) + phi(c_B))       (k-dimensional)
    prediction = components @ c_AB                               (decoded to every gene)

phi and rho are small MLPs (a Deep Sets sum, so prediction(A, B) == prediction(B, A) exactly); `slope`
starts at 0.5 and rho's last layer at zero, so an untrained net is the average of the projected drugs and
training learns per-program saturation and interactions on top. The nets train in seconds on CPU and serve as
the stacker's fold nets (net_pred) exactly like the original MLP.

Training reuses the MLP's LightningModule (masked MSE, schedules, validation metrics) with this network
injected; its inputs are the drugs' projected profiles (B, 2, G), from which the net reads the coefficients
with the basis' pseudo-inverse (exact, since a projection lies in the basis' span).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from combomap.models.mlp import Activation
from combomap.models.latent import GeneProgramBasis
from combomap.models.portable_latent import PortableLatentNet


class LatentPairNet(nn.Module):
    """c_AB = slope * (c_A + c_B) + rho(phi(c_A) + phi(c_B)), decoded through the basis (module docstring)."""

    def __init__(self, basis: GeneProgramBasis, hidden_sizes: Sequence[int] = (64,), activation: str = "very_leaky_relu",
                 hidden_dropout: float = 0.1) -> None:
        """hidden_sizes[0]: the width of phi and rho; hidden_dropout: before rho's output layer. The names are the
        MLP's (conf/model), so experiments that size the fold nets size either network."""
        super().__init__()
        self.basis = basis
        rank = basis.rank
        self.hidden = int(list(hidden_sizes)[0])
        self.activation_name = activation
        self.register_buffer("decoder", torch.tensor(basis.components.T, dtype=torch.float32))  # k x G
        self.register_buffer("encoder", torch.tensor(np.linalg.pinv(basis.components), dtype=torch.float32))  # k x G
        self.phi = nn.Sequential(nn.Linear(rank, self.hidden), Activation(activation), nn.Linear(self.hidden, self.hidden))
        self.rho = nn.Sequential(Activation(activation), nn.Dropout(hidden_dropout), nn.Linear(self.hidden, rank))
        self.slope = nn.Parameter(torch.full((rank,), 0.5))
        nn.init.zeros_(self.rho[-1].weight)
        nn.init.zeros_(self.rho[-1].bias)

    def programs(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """(B, k) combination coefficients from the drugs' (B, k) coefficients."""
        return self.slope * (first + second) + self.rho(self.phi(first) + self.phi(second))

    def forward(self, effects: torch.Tensor, variances: torch.Tensor | None = None) -> torch.Tensor:
        """effects: (B, 2, G) projected profiles (NaN-free) -> (B, G) predicted combination effect."""
        coefficients = torch.nan_to_num(effects) @ self.encoder.T
        return self.programs(coefficients[:, 0], coefficients[:, 1]) @ self.decoder

    def to_portable(self, genes: Sequence[str]) -> PortableLatentNet:
        def numpy(tensor: torch.Tensor) -> np.ndarray:
            return tensor.detach().cpu().numpy().astype(np.float32).copy()

        return PortableLatentNet(
            phi=[(numpy(self.phi[0].weight), numpy(self.phi[0].bias)), (numpy(self.phi[2].weight), numpy(self.phi[2].bias))],
            rho=(numpy(self.rho[2].weight), numpy(self.rho[2].bias)),
            slope=numpy(self.slope),
            activation=self.activation_name,
            basis=self.basis.restricted(list(genes)),
        )


def projected_dataset(dataset: Any, basis: GeneProgramBasis) -> Any:
    """The data set with each drug's effect replaced by its projection (the latent net's training input)."""
    from dataclasses import replace

    return replace(dataset, drug1_effect=basis.project(dataset.drug1_effect),
                   drug2_effect=basis.project(dataset.drug2_effect), source=f"{dataset.source} (projected)")
