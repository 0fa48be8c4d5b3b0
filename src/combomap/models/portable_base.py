"""What both NumPy net files share (`portable` for the MLP, `portable_latent` for the latent net): the activations
the nets were trained with, in NumPy, and the safetensors header key that holds a file's JSON metadata."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

METADATA_KEY = "combomap"


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
