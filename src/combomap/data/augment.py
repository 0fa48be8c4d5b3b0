"""Drug-order augmentations, vectorized in torch on the batch's device (conf/augment/*.yaml, typed as
AugmentConfig).

The combination's effect should not depend on which drug is called "drug1", so training
batches may exchange drug1/drug2 values:
- swap: each sample, with probability `swap_p`, exchanges its whole drug1 and drug2 blocks.
- flip (the original FlipBatchIterator): per batch, a random half (floor(B * flip_sample_fraction))
  of the samples is picked and ONE per-gene coin (p = flip_gene_p) is drawn for the whole batch;
  the picked samples exchange drug1/drug2 values of every gene whose coin came up.
- swap+flip: swap, then flip.
Variance blocks are exchanged exactly like the effects. Also `orient_rows` (applied once to the
training rows by the DataModule, see `orient_rows`): the original's one-time random orientation.

Batches are dicts: effects (B, 2, G) [drug1, drug2], optional variances (B, 2, G), target (B, G).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from combomap.settings import Checked, limits

PROBABILITY = limits(0.0, 1.0)


@dataclass
class AugmentConfig(Checked):
    """conf/augment (the group's schema; these defaults are its defaults). `name` labels the run
    (mlp-<name>-<schedule>-s<seed>) and the ablation report."""

    name: str = "none"
    swap: bool = False
    flip: bool = False
    swap_p: float = field(default=0.5, metadata=PROBABILITY)
    flip_sample_fraction: float = field(default=0.5, metadata=PROBABILITY)
    flip_gene_p: float = field(default=0.5, metadata=PROBABILITY)
    orient_rows: bool = False

    @property
    def active(self) -> bool:
        return self.swap or self.flip


def _exchange(blocks: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """blocks (B, 2, G); where (B, G) or (B, 1) bool -> drug1/drug2 exchanged where True (NaN moves along)."""
    return torch.where(where.unsqueeze(1), blocks.flip(1), blocks)


class Augmenter:
    """Applies the configured augmentation to a training batch, with its own seeded generator per device."""

    def __init__(self, config: AugmentConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._pending: dict[str, torch.Tensor] = {}  # states from a checkpoint, applied when a generator is made

    def generator(self, device: torch.device) -> torch.Generator:
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device not in self._generators:
            generator = torch.Generator(device=device).manual_seed(self.seed)
            if str(device) in self._pending:
                generator.set_state(self._pending.pop(str(device)))
            self._generators[device] = generator
        return self._generators[device]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generators' states by device name, so a resumed training draws what the uninterrupted one would."""
        return {**self._pending, **{str(device): g.get_state() for device, g in self._generators.items()}}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._generators.clear()
        self._pending = dict(state)

    def swap_mask(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """(B, 1) bool: the samples whose whole rows swap."""
        generator = self.generator(device)
        return (torch.rand(batch_size, 1, generator=generator, device=device) < self.config.swap_p)

    def flip_mask(self, batch_size: int, n_genes: int, device: torch.device) -> torch.Tensor:
        """(B, G) bool: picked samples (exactly floor(B * fraction)) AND the batch's shared per-gene coin."""
        generator = self.generator(device)
        n_picked = int(batch_size * self.config.flip_sample_fraction)
        order = torch.randperm(batch_size, generator=generator, device=device)
        picked = torch.argsort(order) < n_picked  # sample i is picked iff it is among the first n_picked of order
        coin = torch.rand(n_genes, generator=generator, device=device) < self.config.flip_gene_p
        return picked[:, None] & coin[None, :]

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.config.active:
            return batch
        effects = batch["effects"]
        batch_size, _, n_genes = effects.shape
        masks = []
        if self.config.swap:
            masks.append(self.swap_mask(batch_size, effects.device))
        if self.config.flip:
            masks.append(self.flip_mask(batch_size, n_genes, effects.device))
        out = dict(batch)
        for where in masks:
            out["effects"] = _exchange(out["effects"], where)
            if out.get("variances") is not None:
                out["variances"] = _exchange(out["variances"], where)
        return out


def orient_rows(
    effects: np.ndarray, variances: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The original's one-time orientation: a random half of the rows get drug1/drug2 exchanged.

    effects/variances (n, 2, G). Returns new arrays and the bool row mask of exchanged rows.
    """
    rng = np.random.default_rng(seed)
    n_rows = effects.shape[0]
    swapped = np.zeros(n_rows, dtype=bool)
    swapped[rng.permutation(n_rows)[: n_rows // 2]] = True
    effects = effects.copy()
    effects[swapped] = effects[swapped][:, ::-1]
    if variances is not None:
        variances = variances.copy()
        variances[swapped] = variances[swapped][:, ::-1]
    return effects, variances, swapped
