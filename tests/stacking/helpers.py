"""Small stand-ins for the MLP so stacking logic is tested without training a network."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from combomap.data.dataset import ComboDataset
from combomap.models.portable import PortableMLP


def random_portable(genes: list[str], hidden: int = 8, seed: int = 0, uses_variances: bool = True) -> PortableMLP:
    """A PortableMLP with random weights (asymmetric in drug1/drug2 on purpose)."""
    rng = np.random.default_rng(seed)
    n_inputs = 2 * len(genes) * (2 if uses_variances else 1)
    return PortableMLP(
        weights=[rng.normal(scale=0.3, size=(hidden, n_inputs)), rng.normal(scale=0.3, size=(len(genes), hidden))],
        biases=[rng.normal(scale=0.1, size=hidden), rng.normal(scale=0.1, size=len(genes))],
        activation="very_leaky_relu",
        genes=genes,
        uses_variances=uses_variances,
        var_fill=0.1,
    )


@dataclass
class RecordingFit:
    """fit(train, val, run_name=, basis=) (a pipeline's fit_net) that remembers which combos each fold net saw."""

    seen: list[list[str]] = field(default_factory=list)

    def __call__(self, train: ComboDataset, val=None, *, run_name=None, basis=None):
        self.seen.append(train.combos["combo"].tolist())
        return random_portable(train.genes, seed=len(self.seen))
