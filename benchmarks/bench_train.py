"""Training throughput of the MLP: the Lightning loop vs a bare PyTorch loop, and the flip's share.

    python benchmarks/bench_train.py                       # quick_mlp on the default compendium
    python benchmarks/bench_train.py --preset small --rounds 2 --epochs 2
    python benchmarks/bench_train.py --override trainer=gpu --override model.hidden_sizes=[2500]

Same model, data, batches, optimizer, schedule and augmentation in both loops; validation off.
Rounds interleave the two loops (Lightning k epochs, bare k epochs, ...) so a busy machine
slows both alike; figures are medians of per-epoch times (Lightning's trainer setup is timed
apart). The flip's share = time of the augmentation call alone / time of a whole training step.
Targets (issue 3): Lightning overhead <= 10 %, flip share <= 5 %. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from combomap.config.data import data_source
from combomap.data.augment import Augmenter
from combomap.data.loading import load_dataset
from combomap.models.mlp import masked_mse
from combomap.models.schedule import LrMomentumScheduler
from combomap.config.training import net_recipe
from combomap.models.builders import build_datamodule, build_module, resolve_var_fill
from combomap.paths import CONF_DIR

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import record  # noqa: E402  (benchmarks/results.py: the figures the docs quote)


def compose_cfg(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (first batch fetch to last optimizer step)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        synchronize(module.device)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        synchronize(module.device)
        self.seconds.append(time.perf_counter() - self._start)


def lightning_epochs(cfg: DictConfig, dataset, var_fill: float, epochs: int, accelerator: str) -> tuple[list[float], float]:
    """Per-epoch seconds of `epochs` Lightning epochs, and the trainer's setup+teardown seconds."""
    pl.seed_everything(int(cfg.seed), verbose=False)
    module = build_module(net_recipe(cfg), dataset.n_genes, var_fill)
    datamodule = build_datamodule(net_recipe(cfg), dataset)
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator=accelerator, devices=1, deterministic=bool(cfg.trainer.deterministic),
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    total = time.perf_counter() - started
    return timer.seconds, total - sum(timer.seconds)


def bare_epochs(cfg: DictConfig, dataset, var_fill: float, epochs: int, device: torch.device) -> tuple[list[float], list[float], int]:
    """Per-epoch seconds of the same training in a plain loop, plus the seconds spent in the augmenter."""
    pl.seed_everything(int(cfg.seed), verbose=False)
    module = build_module(net_recipe(cfg), dataset.n_genes, var_fill)
    datamodule = build_datamodule(net_recipe(cfg), dataset)
    net = module.net.to(device).train()
    optimizer = module.optimizer_factory(net.parameters())
    scheduler = LrMomentumScheduler(optimizer, module.schedule, epochs)
    augmenter = datamodule.augmenter
    loader = datamodule.train_dataloader()
    epoch_seconds, augment_seconds, steps = [], [], 0
    for _ in range(epochs):
        synchronize(device)
        start, in_augment = time.perf_counter(), 0.0
        for batch in loader:
            batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
            if augmenter is not None:
                synchronize(device)
                t0 = time.perf_counter()
                batch = augmenter(batch)
                synchronize(device)
                in_augment += time.perf_counter() - t0
            loss = masked_mse(net(batch["effects"], batch.get("variances")), batch["target"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        scheduler.step()
        synchronize(device)
        epoch_seconds.append(time.perf_counter() - start)
        augment_seconds.append(in_augment)
    return epoch_seconds, augment_seconds, steps // epochs


def augment_alone(cfg: DictConfig, dataset, device: torch.device, chunks: int = 9, repeats: int = 20) -> float:
    """Seconds per call of the configured augmentation on one full training batch (median over chunks)."""
    datamodule = build_datamodule(net_recipe(cfg), dataset)
    batch = {k: v.to(device) for k, v in next(iter(datamodule.train_dataloader())).items()}
    augmenter = Augmenter(net_recipe(cfg).augment, seed=0)
    for _ in range(5):
        augmenter(batch)
    seconds = []
    for _ in range(chunks):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            augmenter(batch)
        synchronize(device)
        seconds.append((time.perf_counter() - start) / repeats)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="quick_mlp")
    parser.add_argument("--preset", default="default", help="simulated compendium preset (default: 257 x 11525)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of both loops")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop per round (the first round also warms up)")
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = compose_cfg([f"experiment={args.experiment}", f"data.preset={args.preset}", *args.override])
    accelerator = str(cfg.trainer.accelerator)
    use_cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if use_cuda else "cpu")
    torch.use_deterministic_algorithms(bool(cfg.trainer.deterministic))
    dataset = load_dataset(data_source(cfg.data))
    var_fill = resolve_var_fill(cfg.model.get("var_fill", "median"), dataset)
    print(f"data {dataset.n_combos} x {dataset.n_genes} ({dataset.source}); model hidden {list(cfg.model.hidden_sizes)}, "
          f"augment {cfg.augment.name}, batch {cfg.datamodule.batch_size}; device {device}, torch threads {torch.get_num_threads()}")

    lightning, bare, augment, setup = [], [], [], []
    steps = 0
    for round_index in range(args.rounds):
        seconds, overhead = lightning_epochs(cfg, dataset, var_fill, args.epochs, "gpu" if use_cuda else "cpu")
        bare_seconds, augment_seconds, steps = bare_epochs(cfg, dataset, var_fill, args.epochs, device)
        skip = 1 if round_index == 0 else 0  # the very first epoch of each loop warms caches / allocator
        lightning += seconds[skip:]
        bare += bare_seconds[skip:]
        augment += augment_seconds[skip:]
        setup.append(overhead)
        print(f"round {round_index}: lightning epochs {[round(s, 3) for s in seconds]}  bare epochs {[round(s, 3) for s in bare_seconds]}")

    lightning_epoch, bare_epoch = statistics.median(lightning), statistics.median(bare)
    augment_epoch = statistics.median(augment)
    samples = len(build_datamodule(net_recipe(cfg), dataset).train_set.combos)
    alone = augment_alone(cfg, dataset, device) if cfg.augment.flip or cfg.augment.swap else 0.0
    step_seconds = bare_epoch / steps
    print()
    print(f"training rows {samples}, steps per epoch {steps}")
    print(f"lightning: {lightning_epoch:.3f} s/epoch  {samples / lightning_epoch:8.1f} samples/s  (trainer setup+teardown {statistics.median(setup):.2f} s per fit)")
    print(f"bare loop: {bare_epoch:.3f} s/epoch  {samples / bare_epoch:8.1f} samples/s")
    print(f"lightning / bare time ratio: {lightning_epoch / bare_epoch:.3f}  (overhead {100 * (lightning_epoch / bare_epoch - 1):+.1f} %, target <= 10 %)")
    print(f"augmentation ({cfg.augment.name}) in the bare loop: {augment_epoch / steps * 1e3:.3f} ms/step = "
          f"{100 * augment_epoch / bare_epoch:.2f} % of step time (target <= 5 %)")
    print(f"augmentation alone on one batch: {alone * 1e3:.3f} ms/call = {100 * alone / step_seconds:.2f} % of a {step_seconds * 1e3:.1f} ms step")
    record("train", {"lightning_s_per_epoch": round(lightning_epoch, 3), "bare_s_per_epoch": round(bare_epoch, 3),
                     "lightning_over_bare": round(lightning_epoch / bare_epoch, 3),
                     "augment_share_pct": round(100 * augment_epoch / bare_epoch, 1),
                     "augment_alone_share_pct": round(100 * alone / step_seconds, 1)},
           "python benchmarks/bench_train.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
