"""Train one MLP from a composed train-style config, as one MLflow run (or a child run).

    result = fit_mlp(cfg, train_set)                 # split train/val per cfg.datamodule
    result = fit_mlp(cfg, half1, val=half2, nested=True, run_name="net1")
    result.predictor.predict(PairBatch(d1, d2))      # NumPy-only PortableMLP (combomap.data.pairs)

The run holds: the resolved config (combomap.tracking.mlflow_run), per-epoch metrics with
step = epoch (train/loss, train/lr, train/momentum, val/loss, val/sign_acc, val/spearman and
their *_best), final val/* and test/* scores from combomap.evaluation.metrics.score computed with
the portable predictor (what is saved is what is scored), the average baseline on the same rows
(val_average/*, test_average/*), the portable weights (artifact folder model/) and the
evaluation plots (plots/).
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytorch_lightning as pl
from hydra.utils import get_class, instantiate
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from combomap import signals
from combomap.data.augment import AugmentConfig
from combomap.data.datamodule import SPLIT_BY, ComboDataModule
from combomap.data.dataset import ComboDataset, DataError
from combomap.data.pairs import PairBatch
from combomap.evaluation.baselines import average
from combomap.evaluation.metrics import prefixed, score
from combomap.models.latent import basis_for
from combomap.models.latent_net import LatentPairNet, projected_dataset
from combomap.models.mlp import ComboMLP, MLPModule
from combomap.models.portable import PortableMLP
from combomap.models.resume import CHECKPOINT_DIR, config_hash, resume_point, write_record
from combomap.settings import choice, integer, number
from combomap.progress import epoch_callback
from combomap.tracking import log_metrics, mlflow_run

WEIGHTS_NAME = "mlp.safetensors"
NETS = {"mlp": ComboMLP, "latent": LatentPairNet}  # kind (the run's "model" tag) -> network class of conf/model


class TrainingDiverged(DataError):
    """The training loss became non-finite (learning rate too high, inputs far too large): the run failed.

    A DataError, so the console ends with one line (exit 2) and a sweep records the trial as failed."""


class _NoAdvertisement(logging.Filter):
    """Drops Lightning's marketing tips ("Tip: ... install litlogger", "... litmodels" with checkpointing on),
    printed with every Trainer.fit (once per fold net)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return not ("Tip:" in message or "litlogger" in message or "litmodels" in message)


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoAdvertisement())


class ActiveRunLogger(Logger):
    """Lightning logger that writes epoch-level metrics into an existing MLflow run (step = epoch).

    Params are NOT logged here: mlflow_run logged the resolved config once. The run is opened
    and ended by combomap.tracking.mlflow_run, never by Lightning.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self._client = MlflowClient()

    @property
    def name(self) -> str:
        return "mlflow-active-run"

    @property
    def version(self) -> str:
        return self.run_id

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        step = int(epoch) if epoch is not None else int(step or 0)
        timestamp = int(time.time() * 1000)
        batch = [Metric(key, float(value), timestamp, step) for key, value in metrics.items() if float(value) == float(value)]
        if batch:
            self._client.log_batch(self.run_id, metrics=batch, synchronous=True)


@dataclass
class FitResult:
    """What one MLP fit produced. `metrics` are the final values (also in the MLflow run)."""

    predictor: PortableMLP
    metrics: dict[str, float]
    module: MLPModule
    datamodule: ComboDataModule
    run_id: str
    run_name: str
    output_dir: Path | None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def split(self) -> dict[str, np.ndarray]:
        """Row positions (in the data set given to fit_mlp) of the training and test rows."""
        return {"train": self.datamodule.train_rows, "test": self.datamodule.test_rows}


def run_name_for(cfg: DictConfig) -> str:
    """Readable name from the config choices, e.g. "mlp-flip-cosine-s0" (logger.run_name wins)."""
    explicit = OmegaConf.select(cfg, "logger.run_name")
    if explicit:
        return str(explicit)
    augment = OmegaConf.select(cfg, "augment.name", default="none")
    shape = OmegaConf.select(cfg, "schedule.shape", default="none")
    return f"mlp-{augment}-{shape}-s{cfg.seed}"


def resolve_var_fill(setting: Any, dataset: ComboDataset) -> float:
    """model.var_fill: a number, or "median" = median measured variance of the training rows (1.0 if none)."""
    if setting is None or str(setting) == "median":
        if not dataset.has_variances:
            return 1.0
        values = np.concatenate([dataset.drug1_var.ravel(), dataset.drug2_var.ravel()])
        values = values[~np.isnan(values)]
        return float(np.median(values)) if values.size else 1.0
    return float(setting)


def model_kind(cfg: DictConfig) -> str:
    """"mlp" (the original's network) or "latent" (combomap.models.latent_net): the class model._target_ names
    (a config without a model, e.g. a stack whose fold nets are given, counts as "mlp")."""
    target = OmegaConf.select(cfg, "model._target_", default=None)
    if target is None:
        return "mlp"
    try:
        net_class = get_class(str(target))
    except Exception:  # Hydra raises its own error types (or ImportError) for a name that does not resolve
        net_class = None
    for kind, known in NETS.items():
        if isinstance(net_class, type) and issubclass(net_class, known):
            return kind
    names = [f"{known.__module__}.{known.__qualname__}" for known in NETS.values()]
    raise DataError(f"model._target_ must name one of {names}, got {target!r}")


def check_training_settings(cfg: DictConfig) -> None:
    """The net's settings, checked before data loads (one line each), not deep in Lightning after it."""
    integer(cfg, "seed")
    integer(cfg, "trainer.max_epochs", minimum=1)
    model_kind(cfg)
    val = number(cfg, "datamodule.val_fraction", 0.0, 1.0, high_open=True)
    test = number(cfg, "datamodule.test_fraction", 0.0, 1.0, high_open=True, default=0.0)
    if val + test >= 1.0:
        raise DataError(f"datamodule.val_fraction + datamodule.test_fraction must be < 1, got {val} + {test}")
    integer(cfg, "datamodule.batch_size", minimum=1)
    integer(cfg, "datamodule.num_workers", minimum=0, default=0)
    choice(cfg, "datamodule.split_by", SPLIT_BY, default="auto")
    for position, size in enumerate(OmegaConf.select(cfg, "model.hidden_sizes", default=None) or []):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise DataError(f"model.hidden_sizes[{position}] must be an integer >= 1, got {size!r}")
    number(cfg, "model.input_dropout", 0.0, 1.0, high_open=True, default=0.0)
    number(cfg, "model.hidden_dropout", 0.0, 1.0, high_open=True, default=0.0)


def build_datamodule(cfg: DictConfig, train: ComboDataset, val: ComboDataset | None = None,
                     augment_batches: bool = True) -> ComboDataModule:
    """cfg.datamodule on these data sets, with the net's inputs and cfg.augment (or none: augment_batches False)."""
    augment = instantiate(cfg.augment) if augment_batches else AugmentConfig()
    with_variances = bool(OmegaConf.select(cfg, "model.uses_variances", default=False))
    return instantiate(cfg.datamodule)(train, val_dataset=val, with_variances=with_variances, augment=augment)


def build_module(cfg: DictConfig, n_genes: int, var_fill: float, basis: Any = None) -> MLPModule:
    """The LightningModule around cfg.model's network (built for `n_genes` and `var_fill`, or on the latent net's
    `basis`), with cfg.optimizer and cfg.schedule."""
    net_on_data = {"basis": basis} if model_kind(cfg) == "latent" else {"n_genes": n_genes, "var_fill": var_fill}
    schedule = instantiate(cfg.schedule) if cfg.get("schedule") else None
    return MLPModule(net=instantiate(cfg.model)(**net_on_data), optimizer=instantiate(cfg.optimizer), schedule=schedule)


def build_trainer(
    cfg: DictConfig, logger: Logger | bool, has_val: bool, run_dir: Path | None = None, progress_desc: str | None = None
) -> pl.Trainer:
    """The Trainer of cfg.trainer with cfg.callbacks; a ModelCheckpoint without dirpath writes into <run_dir>/checkpoints."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None and "_target_" in c]
    if progress_desc:  # combomap.progress: a bar or log lines per epoch (Lightning's own bar stays off)
        callbacks.append(epoch_callback(progress_desc))
    extra: dict[str, Any] = {"logger": logger, "callbacks": callbacks}
    checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    extra["enable_checkpointing"] = bool(checkpoints)
    if run_dir is not None:
        extra["default_root_dir"] = str(run_dir)  # nothing lands in the working directory (mlflow-active-run/)
    for callback in checkpoints:
        if callback.dirpath is None and run_dir is not None:
            callback.dirpath = str(run_dir / CHECKPOINT_DIR)
        if not has_val and callback.monitor is not None:  # nothing to monitor: the best is the last
            callback.monitor = None
    if not has_val:
        extra["limit_val_batches"] = 0
    return instantiate(cfg.trainer, **extra)


def _output_dir(cfg: DictConfig, run_name: str, nested: bool) -> Path:
    try:
        base = Path(str(cfg.paths.output_dir))
    except (OmegaConfBaseException, ValueError):  # no Hydra run (e.g. a notebook): keep files in a temporary folder
        base = Path(tempfile.mkdtemp(prefix="combomap-train-"))
    out = base / run_name if nested else base
    out.mkdir(parents=True, exist_ok=True)
    return out


def _predict(predictor: PortableMLP, dataset: ComboDataset) -> np.ndarray:
    return predictor.predict(PairBatch.from_dataset(dataset))


def _evaluate(predictor: PortableMLP, dataset: ComboDataset, split: str) -> tuple[dict[str, float], np.ndarray]:
    prediction = _predict(predictor, dataset)
    metrics = prefixed(score(dataset.combo_effect, prediction), split)
    metrics.update(prefixed(score(dataset.combo_effect, average(dataset.drug1_effect, dataset.drug2_effect)), f"{split}_average"))
    return metrics, prediction


def _raw_rows(raw: ComboDataset, projected: ComboDataset) -> ComboDataset:
    """The rows of `raw` that `projected` (a subset of its projection) holds, in the same order."""
    position = {combo: i for i, combo in enumerate(raw.combos["combo"])}
    return raw.subset([position[combo] for combo in projected.combos["combo"]])


def _plots(dataset: ComboDataset, prediction: np.ndarray, out_dir: Path, seed: int) -> list[Path]:
    try:
        from combomap.evaluation.plots import make_plots
    except ImportError as error:  # the evaluation suite is optional for training
        warnings.warn(f"no evaluation plots: combomap.evaluation.plots is unavailable ({error})", stacklevel=2)
        return []
    predictions = {"mlp": prediction, "average": average(dataset.drug1_effect, dataset.drug2_effect)}
    return make_plots(dataset, predictions, out_dir, hexbin_model="mlp", seed=seed)


def _fit(trainer: pl.Trainer, module: MLPModule, datamodule: ComboDataModule, ckpt_path: str | None = None) -> None:
    """trainer.fit, but a SIGTERM/SIGINT ends in combomap.signals.Terminated, not in Lightning's clean stop.

    Lightning stops at the next step on SIGTERM and returns normally (and turns a KeyboardInterrupt into
    sys.exit(1)): the stopped network must be neither saved nor scored as a finished run."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")  # Lightning 2.6 internals, harmless
            # weights_only: a checkpoint holds tensors and plain values only (combomap.models.resume)
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:
        signals.raise_if_received()
        raise
    signals.raise_if_received()
    if trainer.received_sigterm:  # a SIGTERM handler other than ours (e.g. outside combomap.tracking.mlflow_run)
        raise signals.Terminated(signal.SIGTERM)


def fit_mlp(
    cfg: DictConfig,
    train: ComboDataset,
    val: ComboDataset | None = None,
    *,
    run_name: str | None = None,
    nested: bool = False,
    basis: Any = None,
    keep_files: bool = True,
) -> FitResult:
    """Train the MLP of `cfg` on `train` (split per cfg.datamodule unless `val` is given), log one MLflow run.

    nested=True makes the run a child of the active run (e.g. one per stacking fold). The returned
    predictor is the final (last-epoch) network; with no validation rows (val None and
    datamodule.val_fraction 0) only train/* metrics exist, like the original's stacking nets.
    With model=latent_mlp the net is the latent net on the gene-program `basis` (chosen from `train`'s
    single-drug inputs by cfg.latent when not given); it trains on projected profiles, without augmentation
    (it is symmetric by construction), and its predictor projects raw profiles itself.
    """
    run_name = run_name or run_name_for(cfg)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    kind = model_kind(cfg)
    raw_train, raw_val = train, val
    if kind == "latent":
        basis = basis if basis is not None else basis_for(cfg.get("latent") or {}, train, seed=int(cfg.seed)).basis
        basis = basis.restricted(list(train.genes))
        train, val = projected_dataset(train, basis), (projected_dataset(val, basis) if val is not None else None)
    datamodule = build_datamodule(cfg, train, val, augment_batches=kind == "mlp")
    var_fill = resolve_var_fill(OmegaConf.select(cfg, "model.var_fill", default="median"), datamodule.train_set)
    module = build_module(cfg, train.n_genes, var_fill, basis)
    resume = None if nested else resume_point(cfg)
    if resume:
        out_dir = resume.run_dir
    else:
        out_dir = _output_dir(cfg, run_name, nested) if keep_files else Path(tempfile.mkdtemp(prefix="combomap-net-"))
    tags = {"task": str(cfg.get("task_name", "train")), "model": kind}
    with mlflow_run(cfg, run_name=run_name, tags=tags, nested=nested, run_id=resume.run_id if resume else None) as run:
        run_id = run.info.run_id
        has_val = datamodule.val_set is not None
        trainer = build_trainer(cfg, ActiveRunLogger(run_id), has_val, out_dir, progress_desc=f"{run_name} epoch")
        if trainer.checkpoint_callback is not None:
            datamodule.resumable = True
            write_record(out_dir, run_id, config_hash(cfg), finished=False)
        if resume:
            print(f"resuming {resume.run_dir} from {resume.checkpoint.name} (MLflow run {run_id})")
        started = time.perf_counter()
        _fit(trainer, module, datamodule, str(resume.checkpoint) if resume else None)
        fit_seconds = time.perf_counter() - started
        metrics = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith(("train/", "val/")) and value.numel() == 1
        }
        metrics["train/fit_seconds"] = fit_seconds
        metrics["train/epochs"] = float(trainer.current_epoch)
        if module.diverged_epoch is not None:  # no weights saved (checkpoints neither), the run ends FAILED
            mlflow.set_tag("diverged_epoch", str(module.diverged_epoch))
            shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
            raise TrainingDiverged(
                f"{run_name}: the training loss became non-finite at epoch {module.diverged_epoch} "
                "(learning rate too high, or inputs far too large?); no weights were saved"
            )
        predictor = module.net.to_portable(train.genes)
        predictor.extra.update({"run_id": run_id, "run_name": run_name, "seed": int(cfg.seed)})
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
            if split == "val" and cfg.get("plots", True):
                figures = _plots(dataset, prediction, out_dir / "plots", int(cfg.seed))
        metrics.update(final)
        last_epoch = max(int(trainer.current_epoch) - 1, 0)
        validated_last = bool(module.history) and int(module.history[-1]["epoch"]) == last_epoch
        # If the last epoch was validated, its val/sign_acc is already in the history (same network, same value).
        log_metrics({k: v for k, v in final.items() if not (validated_last and k == "val/sign_acc")}, step=last_epoch)
        if keep_files:
            weights = predictor.save(out_dir / WEIGHTS_NAME)
            (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
            mlflow.log_artifact(str(weights), artifact_path="model")
            mlflow.log_artifact(str(weights.with_suffix(".json")), artifact_path="model")
            mlflow.log_artifact(str(out_dir / "metrics.json"))
        if trainer.checkpoint_callback is not None:
            write_record(out_dir, run_id, config_hash(cfg), finished=True)
        for figure in figures:
            mlflow.log_artifact(str(figure), artifact_path="plots")
    if not keep_files:
        shutil.rmtree(out_dir, ignore_errors=True)
    return FitResult(
        predictor=predictor,
        metrics=metrics,
        module=module,
        datamodule=datamodule,
        run_id=run_id,
        run_name=run_name,
        output_dir=out_dir if keep_files else None,
        history=list(module.history),
    )
