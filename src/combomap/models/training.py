"""Train one network from its NetRecipe, reporting through a Recorder (the job's MLflow run, or a child run).

    result = fit_net(recipe, train_set, recorder=recorder)          # split train/val per the recipe's datamodule
    result = fit_net(recipe, half1, val=half2, run_name="net1")    # no recorder: nothing recorded
    result.predictor.predict(PairBatch(d1, d2))                    # NumPy-only PortableMLP (combomap.data.pairs)

What is recorded: per-epoch metrics with step = epoch through the recorder's Lightning logger (train/loss,
train/lr, train/momentum, val/loss, val/sign_acc, val/spearman and their *_best), final val/* and test/* scores
from combomap.evaluation.metrics.score computed with the portable predictor (what is saved is what is scored), the
average baseline on the same rows (val_average/*, test_average/*), metrics.json and the evaluation plots (plots/).
The portable weights (mlp.safetensors + mlp.json) stay in the run dir, once (a sweep's 40 trials would otherwise hold
every trial's weights twice); the record's `weights_file` tag names them.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl

from combomap import signals
from combomap.data.datamodule import ComboDataModule
from combomap.data.dataset import ComboDataset, DataError
from combomap.data.pairs import PairBatch
from combomap.evaluation.baselines import average
from combomap.evaluation.metrics import prefixed, score
from combomap.evaluation.plots import make_plots
from combomap.models.builders import build_datamodule, build_module, build_trainer, resolve_var_fill
from combomap.models.latent import basis_for
from combomap.models.latent_net import projected_dataset
from combomap.models.mlp import MLPModule
from combomap.models.portable import PortableMLP
from combomap.models.recipe import NetRecipe
from combomap.models.resume import CHECKPOINT_DIR, ResumePoint, write_record
from combomap.recording import Recorder

log = logging.getLogger(__name__)

WEIGHTS_NAME = "mlp.safetensors"
WEIGHTS_TAG = "weights_file"  # the record's tag: the absolute path of the weights in the run dir


class TrainingDiverged(DataError):
    """The training loss became non-finite (learning rate too high, inputs far too large): the run failed.

    A DataError, so the console ends with one line (exit 2) and a sweep records the trial as failed."""


class _QuietLightning(logging.Filter):
    """Folds Lightning's per-fit chatter into the project's progress: its marketing tips ("Tip: ... litlogger",
    "litmodels") and "`Trainer.fit` stopped: `max_epochs=N` reached" go; the accelerator lines ("GPU available:
    False, used: False", TPU, HPU) are said once per process, not once per fold net."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        if "Tip:" in message or "litlogger" in message or "litmodels" in message or "`Trainer.fit` stopped" in message:
            return False
        if " available: " in message and message.split(" available: ")[0] in ("GPU", "TPU", "HPU"):
            if message in self.seen:
                return False
            self.seen.add(message)
        return True


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_QuietLightning())


@dataclass
class FitResult:
    """What one fit produced. `metrics` are the final values (also recorded)."""

    predictor: PortableMLP
    metrics: dict[str, float]
    module: MLPModule
    datamodule: ComboDataModule
    run_id: str | None
    run_name: str
    output_dir: Path | None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def split(self) -> dict[str, np.ndarray]:
        """Row positions (in the data set given to fit_net) of the training and test rows."""
        return {"train": self.datamodule.train_rows, "test": self.datamodule.test_rows}


@dataclass(frozen=True)
class Checkpointing:
    """Resume bookkeeping of a top-level training: where a killed run left off (None: a new run) and the hash of
    the config that checkpoints/run.json records (combomap.models.resume)."""

    config_hash: str
    resume: ResumePoint | None = None


def run_dir_for(recipe: NetRecipe, run_name: str, nested: bool) -> Path:
    """The fit's folder: the recipe's output dir (a child's: <output dir>/<run name>), or a temporary one."""
    base = recipe.output_dir if recipe.output_dir is not None else Path(tempfile.mkdtemp(prefix="combomap-train-"))
    out = Path(base) / run_name if nested else Path(base)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _evaluate(predictor: PortableMLP, dataset: ComboDataset, split: str) -> tuple[dict[str, float], np.ndarray]:
    prediction = predictor.predict(PairBatch.from_dataset(dataset))
    metrics = prefixed(score(dataset.combo_effect, prediction), split)
    metrics.update(prefixed(score(dataset.combo_effect, average(dataset.drug1_effect, dataset.drug2_effect)), f"{split}_average"))
    return metrics, prediction


def _raw_rows(raw: ComboDataset, projected: ComboDataset) -> ComboDataset:
    """The rows of `raw` that `projected` (a subset of its projection) holds, in the same order."""
    position = {combo: i for i, combo in enumerate(raw.combos["combo"])}
    return raw.subset([position[combo] for combo in projected.combos["combo"]])


def _plots(dataset: ComboDataset, prediction: np.ndarray, out_dir: Path, seed: int) -> list[Path]:
    predictions = {"mlp": prediction, "average": average(dataset.drug1_effect, dataset.drug2_effect)}
    return make_plots(dataset, predictions, out_dir, hexbin_model="mlp", seed=seed)


def _fit(trainer: pl.Trainer, module: MLPModule, datamodule: ComboDataModule, ckpt_path: str | None = None) -> None:
    """trainer.fit, but a SIGTERM/SIGINT ends in combomap.signals.Terminated, not in Lightning's clean stop.

    Lightning stops at the next step on SIGTERM and returns normally (and turns a KeyboardInterrupt into
    sys.exit(1)): the stopped network must be neither saved nor scored as a finished run."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")  # Lightning 2.6 internals, harmless
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")  # our run.json
            # weights_only: a checkpoint holds tensors and plain values only (combomap.models.resume)
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:
        signals.raise_if_received()
        raise
    signals.raise_if_received()
    if trainer.received_sigterm:  # a SIGTERM handler other than ours (e.g. outside combomap.tracking.mlflow_run)
        raise signals.Terminated(signal.SIGTERM)


def fit_net(
    recipe: NetRecipe,
    train: ComboDataset,
    val: ComboDataset | None = None,
    *,
    recorder: Recorder | None = None,
    run_name: str | None = None,
    nested: bool = False,
    basis: Any = None,
    keep_files: bool = True,
    log_weights: bool = False,
    checkpointing: Checkpointing | None = None,
) -> FitResult:
    """Train the recipe's network on `train` (split per its datamodule unless `val` is given), recording into
    `recorder` (the job's run, or a child record for a fold net).

    The returned predictor is the final (last-epoch) network; with no validation rows (val None and
    datamodule.val_fraction 0) only train/* metrics exist, like the original's stacking nets. With the latent
    net the network is built on the gene-program `basis` (chosen from `train`'s single-drug inputs by the recipe's
    latent settings when not given); it trains on projected profiles, without augmentation (it is symmetric by
    construction), and its predictor projects raw profiles itself. `nested` puts the files in
    <output dir>/<run name>; `checkpointing` (top-level runs) writes checkpoints/run.json and may resume.
    With `keep_files` the weights are stored once, in the run dir (the record gets a `weights_file` tag naming
    them); `log_weights` also copies them into the record (the stack's fold runs, on request).
    """
    recorder = recorder or Recorder()
    run_name = run_name or recipe.default_run_name()
    pl.seed_everything(recipe.seed, workers=True, verbose=False)
    kind = recipe.kind
    raw_train, raw_val = train, val
    if kind == "latent":
        basis = basis if basis is not None else basis_for(recipe.latent, train, seed=recipe.seed).basis
        basis = basis.restricted(list(train.genes))
        train, val = projected_dataset(train, basis), (projected_dataset(val, basis) if val is not None else None)
    datamodule = build_datamodule(recipe, train, val, augment_batches=kind == "mlp")
    var_fill = resolve_var_fill(recipe.var_fill, datamodule.train_set)
    module = build_module(recipe, train.n_genes, var_fill, basis)
    resume = checkpointing.resume if checkpointing is not None else None
    if resume:
        out_dir = resume.run_dir
    else:
        out_dir = run_dir_for(recipe, run_name, nested) if keep_files else Path(tempfile.mkdtemp(prefix="combomap-net-"))
    has_val = datamodule.val_set is not None
    trainer = build_trainer(recipe, recorder.lightning_logger(), has_val, out_dir, progress_desc=f"{run_name} epoch")
    records = trainer.checkpoint_callback is not None and checkpointing is not None and recorder.run_id is not None
    if trainer.checkpoint_callback is not None:
        datamodule.resumable = True
    if records:
        write_record(out_dir, recorder.run_id, checkpointing.config_hash, finished=False)
    if resume:
        log.info("resuming %s from %s (MLflow run %s)", resume.run_dir, resume.checkpoint.name, recorder.run_id)
    started = time.perf_counter()
    _fit(trainer, module, datamodule, str(resume.checkpoint) if resume else None)
    fit_seconds = time.perf_counter() - started
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
               if key.startswith(("train/", "val/")) and value.numel() == 1}
    metrics["train/fit_seconds"] = fit_seconds
    metrics["train/epochs"] = float(trainer.current_epoch)
    if module.diverged_epoch is not None:  # no weights saved (checkpoints neither), the run ends FAILED
        recorder.set_tags({"diverged_epoch": str(module.diverged_epoch)})
        shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
        raise TrainingDiverged(f"{run_name}: the training loss became non-finite at epoch {module.diverged_epoch} "
                               "(learning rate too high, or inputs far too large?); no weights were saved")
    predictor = module.net.to_portable(train.genes)
    predictor.extra.update({"run_id": recorder.run_id, "run_name": run_name, "seed": recipe.seed})
    final: dict[str, float] = {"train/fit_seconds": fit_seconds}
    figures: list[Path] = []
    for split, dataset in (("val", datamodule.val_set), ("test", datamodule.test_set)):
        if dataset is None:
            continue
        if kind == "latent":  # score the predictor on the raw inputs of the same combinations
            dataset = raw_val if (split == "val" and raw_val is not None) else _raw_rows(raw_train, dataset)
        scores, prediction = _evaluate(predictor, dataset, split)
        scores.pop(f"{split}/loss", None)
        final.update(scores)
        if split == "val" and recipe.plots:
            figures = _plots(dataset, prediction, out_dir / "plots", recipe.seed)
    metrics.update(final)
    last_epoch = max(int(trainer.current_epoch) - 1, 0)
    validated_last = bool(module.history) and int(module.history[-1]["epoch"]) == last_epoch
    # If the last epoch was validated, its val/sign_acc is already in the history (same network, same value).
    recorder.log_metrics({k: v for k, v in final.items() if not (validated_last and k == "val/sign_acc")}, step=last_epoch)
    if keep_files:
        weights = predictor.save(out_dir / WEIGHTS_NAME)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
        recorder.set_tags({WEIGHTS_TAG: str(weights.resolve())})
        if log_weights:
            recorder.log_artifact(weights, artifact_path="model")
            recorder.log_artifact(weights.with_suffix(".json"), artifact_path="model")
        recorder.log_artifact(out_dir / "metrics.json")
    if records:
        write_record(out_dir, recorder.run_id, checkpointing.config_hash, finished=True)
    for figure in figures:
        recorder.log_artifact(figure, artifact_path="plots")
    if not keep_files:
        shutil.rmtree(out_dir, ignore_errors=True)
    return FitResult(predictor=predictor, metrics=metrics, module=module, datamodule=datamodule, run_id=recorder.run_id,
                     run_name=run_name, output_dir=out_dir if keep_files else None, history=list(module.history))


def child_fit(recipe: NetRecipe, recorder: Recorder, keep_files: bool) -> Callable[..., FitResult]:
    """fit(train, val=None, run_name=..., basis=None): one fit as a child record of `recorder` (one per fold net),
    its files in <output dir>/<run name> and its weights also in the child record (kept with keep_files)."""

    def fit(train: ComboDataset, val: ComboDataset | None = None, *, run_name: str, basis: Any = None) -> FitResult:
        with recorder.child(run_name, tags={"model": recipe.kind}) as child:
            return fit_net(recipe, train, val, recorder=child, run_name=run_name, nested=True, basis=basis,
                           keep_files=keep_files, log_weights=True)

    return fit
