"""A NumPy-only MLP predictor and its safe file format (no torch, no pickle).

File: `<name>.safetensors` holding float32 tensors `weight_<i>` (out x in, PyTorch layout) and
`bias_<i>`, with the JSON metadata in the safetensors header (key "combomap"); a readable copy
of the metadata is written beside it as `<name>.json` (informational; loading reads the header).
Metadata: format, version, genes, activation, layer_sizes, uses_variances, uses_mask, var_fill,
input_blocks.

Input layout and missing values: exactly the policy of `combomap.models.mlp` (see its docstring):
[drug1 | drug2] effects with NaN -> 0, then optionally [var1 | var2] with NaN -> var_fill, then
optionally the measured masks [m1 | m2]; `drug_inputs` is its one NumPy definition (the query's factorized
nets use it per drug). So the first layer splits by column:
`first_layer_blocks()["drug1_effect"]` is weights[0][:, 0:G], "drug2_effect" weights[0][:, G:2G], ...
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from combomap.data.pairs import PairBatch
from combomap.models.portable_base import ACTIVATIONS, METADATA_KEY, write_safetensors
from combomap.models.portable_latent import FORMAT as LATENT_FORMAT
from combomap.models.portable_latent import VERSION as LATENT_VERSION
from combomap.models.portable_latent import PortableLatentNet

FORMAT = "combomap-portable-mlp"
VERSION = 1


@dataclass
class PortableMLP:
    """Weights (PyTorch layout: out x in), biases and activation of a trained MLP, with its input policy."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str
    genes: list[str]
    uses_variances: bool = False
    uses_mask: bool = False
    var_fill: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = VERSION

    def __post_init__(self) -> None:
        self.weights = [np.ascontiguousarray(w, dtype=np.float32) for w in self.weights]
        self.biases = [np.ascontiguousarray(b, dtype=np.float32) for b in self.biases]
        self.genes = [str(g) for g in self.genes]
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if not self.weights or len(self.weights) != len(self.biases):
            raise ValueError(f"need one bias per weight matrix, got {len(self.weights)} weights, {len(self.biases)} biases")
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if weight.ndim != 2 or bias.shape != (weight.shape[0],):
                raise ValueError(f"layer {i}: weight {weight.shape} and bias {bias.shape} do not fit (out x in, out)")
            if i and weight.shape[1] != self.weights[i - 1].shape[0]:
                raise ValueError(f"layer {i}: takes {weight.shape[1]} inputs, previous layer gives {self.weights[i - 1].shape[0]}")
        if self.weights[0].shape[1] != self.n_inputs:
            raise ValueError(f"first layer takes {self.weights[0].shape[1]} inputs, the input policy gives {self.n_inputs}")
        if self.weights[-1].shape[0] != self.n_genes:
            raise ValueError(f"last layer gives {self.weights[-1].shape[0]} outputs for {self.n_genes} genes")

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def n_inputs(self) -> int:
        return 2 * self.n_genes * (1 + int(self.uses_variances) + int(self.uses_mask))

    @property
    def layer_sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def input_blocks(self) -> dict[str, slice]:
        """Column ranges of the input (and of the first layer's weight) per block."""
        names = ["drug1_effect", "drug2_effect"]
        if self.uses_variances:
            names += ["drug1_var", "drug2_var"]
        if self.uses_mask:
            names += ["drug1_measured", "drug2_measured"]
        g = self.n_genes
        return {name: slice(i * g, (i + 1) * g) for i, name in enumerate(names)}

    def first_layer_blocks(self) -> dict[str, np.ndarray]:
        """The first layer's weight split by input block, e.g. {"drug1_effect": (hidden x G), ...}."""
        return {name: self.weights[0][:, cols] for name, cols in self.input_blocks.items()}

    def activate(self, z: np.ndarray) -> np.ndarray:
        return ACTIVATIONS[self.activation](z)

    def drug_inputs(self, effects: np.ndarray, variances: np.ndarray | None) -> dict[str, np.ndarray]:
        """One drug's input blocks {"effect", "var", "measured"} (those the model uses) for (n x G) rows, with the
        missing-value policy applied: effect NaN -> 0, variance NaN -> var_fill, measured 1.0 / 0.0."""
        effects = np.asarray(effects, dtype=np.float32)
        blocks = {"effect": np.where(np.isnan(effects), np.float32(0.0), effects)}
        if self.uses_variances:
            if variances is None:
                raise ValueError("this model uses variances: pass drug1_var and drug2_var")
            variances = np.asarray(variances, dtype=np.float32)
            blocks["var"] = np.where(np.isnan(variances), np.float32(self.var_fill), variances)
        if self.uses_mask:
            blocks["measured"] = (~np.isnan(effects)).astype(np.float32)
        return blocks

    def inputs(self, pairs: PairBatch) -> np.ndarray:
        """A batch of pairs -> (n x n_inputs) float32 network input, blocks laid out as `input_blocks`."""
        if pairs.n_genes != self.n_genes:
            raise ValueError(f"the pairs have {pairs.n_genes} genes, the model expects {self.n_genes}")
        drug1 = self.drug_inputs(pairs.drug1_effect, pairs.drug1_var)
        drug2 = self.drug_inputs(pairs.drug2_effect, pairs.drug2_var)
        blocks = {**{f"drug1_{kind}": block for kind, block in drug1.items()},
                  **{f"drug2_{kind}": block for kind, block in drug2.items()}}
        return np.concatenate([blocks[name] for name in self.input_blocks], axis=1)

    def predict(self, pairs: PairBatch, batch_size: int = 4096) -> np.ndarray:
        """Predicted combination effects (n x G, float32), in row batches to bound memory."""
        x = self.inputs(pairs)
        out = np.empty((x.shape[0], self.n_genes), dtype=np.float32)
        for start in range(0, x.shape[0], batch_size):
            out[start : start + batch_size] = self.forward(x[start : start + batch_size])
        return out

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Assembled inputs (n x n_inputs) -> outputs; dense layers with the activation between them."""
        hidden = np.asarray(inputs, dtype=np.float32)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            hidden = hidden @ weight.T + bias
            if i < last:
                hidden = self.activate(hidden)
        return hidden

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "genes": self.genes,
            "activation": self.activation,
            "layer_sizes": self.layer_sizes,
            "uses_variances": self.uses_variances,
            "uses_mask": self.uses_mask,
            "var_fill": self.var_fill,
            "input_blocks": {k: [v.start, v.stop] for k, v in self.input_blocks.items()},
            "extra": self.extra,
        }

    def save(self, path: Path | str) -> Path:
        """Write `path` (.safetensors, metadata in the header) and a readable `<stem>.json` beside it."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        tensors: dict[str, np.ndarray] = {}
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            tensors[f"weight_{i}"] = weight
            tensors[f"bias_{i}"] = bias
        metadata = self.metadata()
        write_safetensors(path, tensors, metadata)
        path.with_suffix(".json").write_text(json.dumps(metadata, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> PortableMLP:
        """Read a file written by `save` (safetensors: plain arrays, never unpickled)."""
        from safetensors import safe_open

        path = Path(path)
        if path.suffix != ".safetensors" and path.with_suffix(".safetensors").is_file():
            path = path.with_suffix(".safetensors")
        if not path.is_file():
            raise FileNotFoundError(f"portable MLP file {path} not found")
        try:
            handle_context = safe_open(str(path), framework="np")
        except Exception as error:  # safetensors raises its own SafetensorError type
            raise ValueError(f"{path} is not a readable safetensors file ({error})") from error
        with handle_context as handle:
            header = (handle.metadata() or {}).get(METADATA_KEY)
            if header is None:
                raise ValueError(f"{path}: no '{METADATA_KEY}' metadata; not written by PortableMLP.save")
            metadata = json.loads(header)
            if metadata.get("format") != FORMAT:
                raise ValueError(f"{path}: format {metadata.get('format')!r}, expected {FORMAT!r}")
            if int(metadata.get("version", 0)) > VERSION:
                raise ValueError(f"{path}: format version {metadata['version']} is newer than this code's {VERSION}")
            n_layers = len(metadata["layer_sizes"]) - 1
            weights = [handle.get_tensor(f"weight_{i}") for i in range(n_layers)]
            biases = [handle.get_tensor(f"bias_{i}") for i in range(n_layers)]
        for name, array in [*((f"weight_{i}", w) for i, w in enumerate(weights)), *((f"bias_{i}", b) for i, b in enumerate(biases))]:
            if not np.isfinite(array).all():
                raise ValueError(f"{path}: {name} holds {int((~np.isfinite(array)).sum())} non-finite value(s) (NaN/inf)")
        if not np.isfinite(float(metadata["var_fill"])):
            raise ValueError(f"{path}: var_fill {metadata['var_fill']!r} is not finite")
        return cls(
            weights=weights,
            biases=biases,
            activation=metadata["activation"],
            genes=metadata["genes"],
            uses_variances=bool(metadata["uses_variances"]),
            uses_mask=bool(metadata["uses_mask"]),
            var_fill=float(metadata["var_fill"]),
            extra=dict(metadata.get("extra") or {}),
            version=int(metadata.get("version", VERSION)),
        )


def split_first_layer(predictor: PortableMLP) -> Sequence[np.ndarray]:
    """(W_drug1, W_drug2): the first layer's weight columns that read drug1's and drug2's effects."""
    blocks = predictor.first_layer_blocks()
    return blocks["drug1_effect"], blocks["drug2_effect"]


def load_net(path: Path | str) -> Any:
    """A saved fold net of either kind (PortableMLP or the latent net), told apart by its file header."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"net file {path} not found")
    try:
        with safe_open(str(path), framework="np") as handle:
            header = json.loads((handle.metadata() or {}).get(METADATA_KEY) or "{}")
            if header.get("format") != LATENT_FORMAT:
                return PortableMLP.load(path)
            if int(header.get("version", 0)) > LATENT_VERSION:
                raise ValueError(f"{path}: latent net format version {header['version']} is newer than this code's "
                                 f"{LATENT_VERSION}")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable net file ({error})") from error
    except Exception as error:  # safetensors raises its own SafetensorError type
        if isinstance(error, ValueError):
            raise
        raise ValueError(f"{path} is not a readable safetensors file ({error})") from error
    return PortableLatentNet.from_file(tensors, header)
