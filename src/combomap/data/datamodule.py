"""Train/validation/test splits and batches of a ComboDataset for the MLP (a LightningDataModule).

Splits are grouped by study by default: no study appears on two sides, because combinations of
one study share a control and its noise. `split_by: row` is the original protocol (a plain
shuffled 20% of rows). Batches are dicts of tensors with NaN kept (the model fills them, see
combomap.models.mlp): effects (B, 2, G) [drug1, drug2], variances (B, 2, G) when the model
uses them, target (B, G). The training augmentation runs after the batch reaches its device.
Configured by conf/datamodule/*.yaml (`_partial_`: the job passes the data sets, with_variances and the augmentation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
)

from combomap.data.augment import AugmentConfig, Augmenter, orient_rows
from combomap.data.dataset import ComboDataset, DataError
from combomap.data.pairs import PairBatch
from combomap.settings import SEED, Checked, SettingsError, fixed, key_of, limits

SPLIT_BY = ("auto", "study", "row")
MIN_STUDIES_TO_SPLIT = 5  # auto splits by study only with at least this many studies (one real screen is one study)
FRACTION = limits(0.0, 1.0, high_open=True)


@dataclass
class DataModuleSettings(Checked):
    """conf/datamodule: a `_partial_` ComboDataModule (the fit adds the data sets, with_variances and the
    augmentation). The defaults here are the group's (the original: 20% of rows, batch 70)."""

    _target_: str = fixed("combomap.data.datamodule.ComboDataModule")
    _partial_: bool = fixed(True)
    val_fraction: float = field(default=0.2, metadata=FRACTION)
    test_fraction: float = field(default=0.0, metadata=FRACTION)
    split_by: str = field(default="auto", metadata=limits(choices=SPLIT_BY))
    batch_size: int = field(default=70, metadata=limits(1))
    num_workers: int = field(default=0, metadata=limits(0))
    pin_memory: bool = False
    seed: int = field(default=0, metadata=SEED)

    def validate(self, prefix: str) -> None:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise SettingsError(f"{key_of(prefix, 'val_fraction')} + {key_of(prefix, 'test_fraction')} must be < 1, "
                                f"got {self.val_fraction} + {self.test_fraction}")


def resolve_split_by(dataset: ComboDataset, split_by: str) -> str:
    """`auto` -> "study" with at least MIN_STUDIES_TO_SPLIT studies, else "row"; any other value as given."""
    if split_by != "auto":
        return split_by
    return "study" if dataset.combos["study"].astype(str).nunique() >= MIN_STUDIES_TO_SPLIT else "row"


def split_indices(
    dataset: ComboDataset,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    split_by: str = "study",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) row positions, each sorted.

    auto: by study with at least MIN_STUDIES_TO_SPLIT studies, else by row;
    by study: studies are shuffled (seed) and taken whole into test, then val, until each side
    holds at least round(fraction * n_combos) rows (a fraction > 0 always gets one study at least);
    by row: rows are shuffled and the first round(fraction * n) go to test, the next to val.
    """
    if split_by not in SPLIT_BY:
        raise ValueError(f"unknown split_by {split_by!r}; choose one of {SPLIT_BY}")
    split_by = resolve_split_by(dataset, split_by)
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"need 0 <= val_fraction, test_fraction and their sum < 1, got {val_fraction}, {test_fraction}")
    n_rows = dataset.n_combos
    rng = np.random.default_rng(seed)
    targets = [round(test_fraction * n_rows), round(val_fraction * n_rows)]
    targets = [max(t, 1) if f > 0 else 0 for t, f in zip(targets, (test_fraction, val_fraction))]
    sides: list[list[int]] = [[], []]
    if split_by == "row":
        order = rng.permutation(n_rows)
        sides = [list(order[: targets[0]]), list(order[targets[0] : targets[0] + targets[1]])]
    else:
        studies = dataset.combos["study"].to_numpy()
        unique = np.unique(studies)
        side = 0
        for study in unique[rng.permutation(len(unique))]:
            while side < 2 and len(sides[side]) >= targets[side]:
                side += 1
            if side == 2:
                break
            sides[side].extend(np.flatnonzero(studies == study).tolist())
    test = np.sort(np.asarray(sides[0], dtype=np.int64))
    val = np.sort(np.asarray(sides[1], dtype=np.int64))
    train = np.setdiff1d(np.arange(n_rows), np.concatenate([test, val]))
    if len(train) == 0:
        raise DataError(f"{dataset.source}: no training rows left after the split (val {len(val)}, test {len(test)} of {n_rows})")
    return train, val, test


class ComboBlocks(Dataset):
    """Rows of a ComboDataset as tensors (PairBatch.drug_axis layout); indexing with a list of rows returns a whole batch."""

    def __init__(self, dataset: ComboDataset, with_variances: bool, orient_seed: int | None = None) -> None:
        if with_variances and not dataset.has_variances:
            raise DataError(f"{dataset.source}: the model uses variances but the data set has none")
        effects, variances = PairBatch.from_dataset(dataset).drug_axis()
        variances = variances if with_variances else None
        if orient_seed is not None:
            effects, variances, _ = orient_rows(effects, variances, orient_seed)
        self.effects = torch.from_numpy(np.ascontiguousarray(effects, dtype=np.float32))
        self.variances = None if variances is None else torch.from_numpy(np.ascontiguousarray(variances, dtype=np.float32))
        self.target = torch.from_numpy(np.ascontiguousarray(dataset.combo_effect, dtype=np.float32))

    def __len__(self) -> int:
        return self.target.shape[0]

    def __getitem__(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(rows, dtype=torch.long)
        batch = {"effects": self.effects[rows], "target": self.target[rows]}
        if self.variances is not None:
            batch["variances"] = self.variances[rows]
        return batch


class ComboDataModule(pl.LightningDataModule):
    """Splits (or takes an explicit validation set), batches and augments a ComboDataset."""

    def __init__(
        self,
        dataset: ComboDataset,
        val_dataset: ComboDataset | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        split_by: str = "study",
        batch_size: int = 70,
        num_workers: int = 0,
        pin_memory: bool = False,
        with_variances: bool = False,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        """`augment` (conf/augment): its batch augmentation runs on training batches, seeded by `seed`; its
        orient_rows orients the training rows once."""
        super().__init__()
        augment = augment or AugmentConfig()
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.with_variances = bool(with_variances)
        self.seed = int(seed)
        self.augmenter = Augmenter(augment, seed=self.seed) if augment.active else None
        if val_dataset is not None:
            if list(val_dataset.genes) != list(dataset.genes):
                raise DataError(f"validation set {val_dataset.source}: its genes differ from the training set's")
            train_rows, _, test_rows = split_indices(dataset, 0.0, test_fraction, split_by, seed)
            self.val_set = val_dataset
        else:
            train_rows, val_rows, test_rows = split_indices(dataset, val_fraction, test_fraction, split_by, seed)
            self.val_set = dataset.subset(val_rows) if len(val_rows) else None
        self.train_set = dataset.subset(train_rows)
        self.test_set = dataset.subset(test_rows) if len(test_rows) else None
        self.train_rows, self.test_rows = train_rows, test_rows
        self._train_blocks = ComboBlocks(self.train_set, self.with_variances, self.seed if augment.orient_rows else None)
        self._val_blocks = ComboBlocks(self.val_set, self.with_variances) if self.val_set is not None else None
        self._test_blocks = ComboBlocks(self.test_set, self.with_variances) if self.test_set is not None else None
        self._shuffle_generator: torch.Generator | None = None
        # Set for checkpointed runs (combomap.models.training.fit_net): see _loader.
        self.resumable = False
        self._pending_shuffle_state: torch.Tensor | None = None  # from a checkpoint, applied to the next generator

    def _loader(self, blocks: ComboBlocks, shuffle: bool) -> DataLoader:
        if shuffle:
            generator = torch.Generator().manual_seed(self.seed)
            if self._pending_shuffle_state is not None:
                generator.set_state(self._pending_shuffle_state)
                self._pending_shuffle_state = None
            self._shuffle_generator = generator
            sampler = RandomSampler(blocks, generator=generator)
        else:
            sampler = SequentialSampler(blocks)
        return DataLoader(
            blocks,
            sampler=BatchSampler(sampler, batch_size=self.batch_size, drop_last=False),
            batch_size=None,
            # A checkpointed run draws the per-epoch worker base seed from its own generator: from torch's global
            # RNG (dropout's) the draw falls at a point a resumed run cannot reproduce (combomap.models.resume).
            # Runs without checkpoints (fold nets, sweeps) keep the global draw, so their published numbers hold.
            generator=torch.Generator().manual_seed(self.seed) if self.resumable else None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._train_blocks, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self._val_blocks, shuffle=False) if self._val_blocks is not None else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader(self._test_blocks, shuffle=False) if self._test_blocks is not None else []

    def state_dict(self) -> dict[str, object]:
        """The shuffling and augmentation random states (saved in a training checkpoint, see combomap.models.training).

        The generators advance epoch after epoch, so a resumed run needs their states, not the seed."""
        state: dict[str, object] = {}
        if self._shuffle_generator is not None:
            state["shuffle"] = self._shuffle_generator.get_state()
        if self.augmenter is not None:
            state["augment"] = self.augmenter.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        shuffle = state_dict.get("shuffle")
        if shuffle is not None:
            self._pending_shuffle_state = shuffle  # type: ignore[assignment]
        if self.augmenter is not None and state_dict.get("augment") is not None:
            self.augmenter.load_state_dict(state_dict["augment"])  # type: ignore[arg-type]

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        trainer = self.trainer
        if self.augmenter is not None and trainer is not None and trainer.training:
            batch = self.augmenter(batch)
        return batch
