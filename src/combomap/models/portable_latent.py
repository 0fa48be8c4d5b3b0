"""The latent net's NumPy predictor and its safe file format (no torch, no pickle); see `combomap.models.latent_net`.

File: `<name>.safetensors` holding float32 tensors phi_weight_0/1, phi_bias_0/1, rho_weight, rho_bias, slope and
the basis (components, scales), with JSON metadata in the header (key "combomap", format
"combomap-latent-net"); `combomap.models.portable.load_net` reads either net kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from combomap.data.pairs import PairBatch
from combomap.models.latent import GeneProgramBasis
from combomap.models.portable_base import ACTIVATIONS, METADATA_KEY, write_safetensors

FORMAT = "combomap-latent-net"
VERSION = 1


@dataclass
class PortableLatentNet:
    """The trained latent net in NumPy, with its basis: predicts from raw (noisy, NaN-holding) profiles."""

    phi: list[tuple[np.ndarray, np.ndarray]]  # two (weight out x in, bias) layers
    rho: tuple[np.ndarray, np.ndarray]
    slope: np.ndarray
    activation: str
    basis: GeneProgramBasis
    extra: dict[str, Any] = field(default_factory=dict)
    uses_variances: bool = False  # the FoldNets / query protocol of combomap.models.portable.PortableMLP
    uses_mask: bool = False
    suffix = ".safetensors"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")
        arrays = [a for layer in self.phi for a in layer] + list(self.rho) + [self.slope]
        if not all(np.isfinite(a).all() for a in arrays):
            raise ValueError("latent net weights hold non-finite values")
        if self.rho[0].shape[0] != self.basis.rank or self.phi[0][0].shape[1] != self.basis.rank:
            raise ValueError(f"latent net of rank {self.phi[0][0].shape[1]} for a rank-{self.basis.rank} basis")

    @property
    def genes(self) -> list[str]:
        return self.basis.genes

    def activate(self, z: np.ndarray) -> np.ndarray:
        return ACTIVATIONS[self.activation](z)

    def embed(self, coefficients: np.ndarray) -> np.ndarray:
        """phi of (n x k) program coefficients: (n x hidden), summed over the two drugs by `programs_from`."""
        (w1, b1), (w2, b2) = self.phi
        return self.activate(coefficients.astype(np.float32) @ w1.T + b1) @ w2.T + b2

    def programs_from(self, coefficient_sum: np.ndarray, embedding_sum: np.ndarray) -> np.ndarray:
        weight, bias = self.rho
        return self.slope * coefficient_sum + self.activate(embedding_sum) @ weight.T + bias

    def predict_programs(self, drug1_effect: np.ndarray, drug2_effect: np.ndarray) -> np.ndarray:
        first = self.basis.coefficients(drug1_effect).astype(np.float32)
        second = self.basis.coefficients(drug2_effect).astype(np.float32)
        return self.programs_from(first + second, self.embed(first) + self.embed(second))

    def predict(self, pairs: PairBatch) -> np.ndarray:
        """(n x G) float32 combination effects from a batch of pairs in the net's gene order (variances unused)."""
        programs = self.predict_programs(pairs.drug1_effect, pairs.drug2_effect)
        return (programs @ self.basis.components.T.astype(np.float32)).astype(np.float32)

    def metadata(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "activation": self.activation, "genes": self.basis.genes,
                "noise_var": self.basis.noise_var, "ridge": self.basis.ridge, "source": self.basis.source,
                "rank": self.basis.rank, "hidden": int(self.rho[0].shape[1]), "extra": self.extra}

    def save(self, path: Path | str) -> Path:
        """One .safetensors file (weights and basis; metadata in the header) and a readable .json beside it."""
        path = Path(path).with_suffix(".safetensors")
        tensors = {"phi_weight_0": self.phi[0][0], "phi_bias_0": self.phi[0][1], "phi_weight_1": self.phi[1][0],
                   "phi_bias_1": self.phi[1][1], "rho_weight": self.rho[0], "rho_bias": self.rho[1], "slope": self.slope,
                   "components": self.basis.components, "scales": self.basis.scales}
        metadata = self.metadata()
        write_safetensors(path, tensors, metadata)
        path.with_suffix(".json").write_text(json.dumps({k: v for k, v in metadata.items() if k != "genes"}, indent=1) + "\n")
        return path

    @classmethod
    def from_file(cls, tensors: dict[str, np.ndarray], metadata: dict[str, Any]) -> "PortableLatentNet":
        basis = GeneProgramBasis(metadata["genes"], tensors["components"], tensors["scales"], float(metadata["noise_var"]),
                                 float(metadata["ridge"]), str(metadata.get("source", "?")))
        return cls(
            phi=[(tensors["phi_weight_0"], tensors["phi_bias_0"]), (tensors["phi_weight_1"], tensors["phi_bias_1"])],
            rho=(tensors["rho_weight"], tensors["rho_bias"]),
            slope=tensors["slope"],
            activation=str(metadata["activation"]),
            basis=basis,
            extra=dict(metadata.get("extra") or {}),
        )
