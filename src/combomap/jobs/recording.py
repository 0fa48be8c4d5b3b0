"""The jobs' Recorder: MLflow. Domain code reports through combomap.recording.Recorder; this one writes into the
active MLflow run (opened by combomap.tracking.mlflow_run), its children and the Lightning logger below."""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

import mlflow
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from combomap.data.dataset import ComboDataset
from combomap.data.library import DrugLibrary
from combomap.data.library_io import LibrarySource
from combomap.data.loading import DataSource, SimulatedData
from combomap import signals
from combomap.paths import file_label
from combomap.recording import Recorder
from combomap.config.run import run_config
from combomap.tracking import RunConfig, log_metrics, mlflow_run


class ActiveRunLogger(Logger):
    """Lightning logger that writes epoch-level metrics into an existing MLflow run (step = epoch).

    Params are not logged here: mlflow_run logged the resolved config once. The run is opened and ended by
    combomap.tracking.mlflow_run, never by Lightning. A resumed run already holds the epochs logged before it was
    killed (some after its last checkpoint): those steps are not logged again (a resumed epoch recomputes the
    same values).
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self._client = MlflowClient()
        self._logged_through = {key: max(m.step for m in self._client.get_metric_history(run_id, key))
                                for key in self._client.get_run(run_id).data.metrics}

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
        batch = [Metric(key, float(value), timestamp, step) for key, value in metrics.items()
                 if float(value) == float(value) and step > self._logged_through.get(key, -1)]
        if batch:
            with signals.deferred():  # a stop during the write would leave the store locked
                self._client.log_batch(self.run_id, metrics=batch, synchronous=True)


class MlflowRecorder(Recorder):
    """Records into `run`, or into whatever MLflow run is active when it records (a recorder made before the job
    opens its run); `config` (the job's composed config) is what each child run logs as its params and
    config.yaml, as the job's own run did."""

    def __init__(self, config: Any, run: Any | None = None) -> None:
        self.config = config if isinstance(config, RunConfig) else run_config(config)
        self._run_id = run.info.run_id if run is not None else None

    @property
    def run_id(self) -> str | None:  # type: ignore[override]
        if self._run_id is not None:
            return self._run_id
        active = mlflow.active_run()
        return active.info.run_id if active is not None else None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        log_metrics(metrics, step=step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        mlflow.set_tags(dict(tags))

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_artifacts(self, directory: Path | str, artifact_path: str | None = None) -> None:
        mlflow.log_artifacts(str(directory), artifact_path=artifact_path)

    @contextlib.contextmanager
    def child(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator[Recorder]:
        with mlflow_run(self.config, run_name=name, tags=tags, nested=True) as run:
            yield MlflowRecorder(self.config, run)

    def lightning_logger(self) -> Any:
        return ActiveRunLogger(self.run_id) if self.run_id else False


class RunInput(MetaDataset):
    """A data set or drug library as an MLflow run input (the run page's Datasets, the runs table's Dataset column):
    its name, the digest of its values, where it came from (the file, or the simulator with its settings), and its
    shape as the profile."""

    def __init__(self, name: str, digest: str, source: Any, profile: dict[str, Any]) -> None:
        self._profile = profile
        super().__init__(_origin(source), name=name, digest=digest)

    @property
    def profile(self) -> dict[str, Any]:
        return self._profile

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self._profile)}


def _origin(source: Any) -> Any:
    """A typed data or library source as MLflow's: the simulator's settings, or the file or folder it reads."""
    if source.source == "simulated":
        settings = {key: str(value) if not isinstance(value, dict) else json.dumps(value)
                    for key, value in asdict(source).items() if key != "source"}
        return CodeDatasetSource({"generator": "combomap.data.simulate", **settings})
    with warnings.catch_warnings():  # MLflow registers its local-file source twice and says so
        warnings.simplefilter("ignore", UserWarning)
        return resolve_dataset_source(str(Path(_location(source)).resolve()))


def _location(source: Any) -> str | None:
    """The file or folder a typed source reads (None: the simulator)."""
    location = getattr(source, "path", None) or getattr(source, "dir", None)
    return None if location is None else str(location)


def log_dataset_input(dataset: ComboDataset, source: DataSource, context: str) -> None:
    """The job's data set as an input of the active run; `context` says its role (training, evaluation)."""
    profile = {"n_combos": dataset.n_combos, "n_genes": dataset.n_genes,
               "n_measured": int(np.count_nonzero(~np.isnan(dataset.combo_effect))), "has_variances": dataset.has_variances}
    name = f"simulated-{source.label}" if isinstance(source, SimulatedData) else source.label
    mlflow.log_input(RunInput(name, dataset.digest(), source, profile), context=context)


def log_library_input(library: DrugLibrary, source: LibrarySource, context: str = "library") -> None:
    """A drug library the job read (query's search space, the stack's basis and serving library) as a run input."""
    location = _location(source)
    name = f"library-{file_label(location)}" if location else f"simulated-library-{source.preset}"
    profile = {"n_drugs": len(library.drugs), "n_genes": len(library.genes), "has_variances": library.variances is not None}
    mlflow.log_input(RunInput(name, library.digest(), source, profile), context=context)
