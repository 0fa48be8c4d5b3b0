"""What both NumPy net files share (`portable` for the MLP, `portable_latent` for the latent net): the activations
the nets were trained with, in NumPy, the safetensors header key that holds a file's JSON metadata, and the writer."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from combomap.data.atomic import atomic_file

METADATA_KEY = "combomap"


def write_safetensors(path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, Any]) -> Path:
    """Write a .safetensors file in one rename, with the mode of every other output file (0666 less the umask).

    safetensors' own save_file creates its file mode 0600, so weights were the one output others could not read."""
    from safetensors.numpy import save

    payload = save({name: np.ascontiguousarray(array) for name, array in tensors.items()},
                   metadata={METADATA_KEY: json.dumps(dict(metadata))})
    with atomic_file(path) as staging:
        staging.write_bytes(payload)
    return path


def _very_leaky_relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z / np.float32(3.0), z)


def _gelu_tanh(z: np.ndarray) -> np.ndarray:
    inner = np.float32(np.sqrt(2.0 / np.pi)) * (z + np.float32(0.044715) * z**3)
    return np.float32(0.5) * z * (np.float32(1.0) + np.tanh(inner))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "very_leaky_relu": _very_leaky_relu,
    "leaky_relu": lambda z: np.maximum(z * np.float32(0.01), z),
    "relu": lambda z: np.maximum(z, np.float32(0.0)),
    "tanh": np.tanh,
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "gelu_tanh": _gelu_tanh,
    "identity": lambda z: z,
}
