"""One MLflow run per job: store location, resolved config as params, artifacts.

The store defaults to `./mlruns/` of the working directory (SQLite backend, artifacts beside it);
`MLFLOW_TRACKING_URI` (or the logger config) overrides it. Experiments are marked as model-training
experiments (MLflow 3's experiment kind). A run ends FINISHED, FAILED (an error) or KILLED
(SIGTERM/SIGINT, see combomap.signals); a run whose process died without ending it (SIGKILL, power loss) is
marked KILLED by the next job on the same host (combomap.runs).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from combomap import runs, signals
from combomap.store import STORE_ENV, TRACKING_ENV, checked, configure, default_tracking_uri

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


# MLflow 3's experiment type: its UI opens a "custom_model_development" experiment on the runs table (training
# runs, metrics, models) and an untyped one it cannot classify on the GenAI traces overview.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# A saved view of the runs table (MLflow's "share view": an experiment tag the UI reads for ?viewStateShareKey=...):
# MLflow shows no metric column until one is chosen, so combomap's experiments carry one with the headline columns.
VIEW_KEY = "combomap"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_COLUMNS = ("attributes.`Dataset`", "metrics.`final_sign_acc`", "metrics.`average_sign_acc`", "metrics.`gain_pts`",
                "tags.`final.model`", "tags.`overrides`")
VIEW_STATE = json.dumps({"selectedColumns": list(VIEW_COLUMNS), "orderByKey": "attributes.start_time",
                         "orderByAsc": False})


def runs_view(experiment_id: str) -> str:
    """The UI's address (after the server's) of an experiment's runs table with the headline columns."""
    return f"#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}&workflowType=machine_learning"


def ensure_experiment(name: str, artifact_root: Path | str | None = None) -> str:
    """Create the experiment with artifacts under the store's `artifacts/` folder, once, typed as model training
    (an experiment made before combomap typed them gets the tag the first time it is used)."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        for key, value in ((EXPERIMENT_KIND_TAG, EXPERIMENT_KIND), (VIEW_TAG, VIEW_STATE)):
            if key not in experiment.tags:
                mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    uri = mlflow.get_tracking_uri()
    if artifact_root is None and uri.startswith("sqlite:///"):
        artifact_root = Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    location = Path(artifact_root).resolve().as_uri() if artifact_root else None
    return mlflow.create_experiment(name, artifact_location=location,
                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, VIEW_TAG: VIEW_STATE})


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"a.b.c": "value"}; MLflow params are flat and at most 6000 chars."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


# Keys of the resolved config that differ between any two runs without saying anything about them (timestamped
# output folders): logged as tags, so that a comparison's "show diff only" lists what was chosen differently.
RUN_LOCAL_PREFIXES = ("paths.",)
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own key: its UI shows it on the run page


def run_params(resolved: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) of a resolved config: every flattened key is a param except the run-local ones (paths.*),
    which become tags."""
    flat = flatten(resolved)
    local = {key: value for key, value in flat.items() if key.startswith(RUN_LOCAL_PREFIXES)}
    return {key: value for key, value in flat.items() if key not in local}, local


@functools.lru_cache(maxsize=8)
def git_tags(folder: str) -> dict[str, str]:
    """{mlflow.source.git.commit, git.branch, git.dirty} of the git checkout whose tracked files include `folder`
    (the code that ran); {} when it is not one or git is not installed."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if not git("ls-files", "--error-unmatch", "__init__.py"):  # an installed copy inside some other checkout
        return {}
    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    changed = git("status", "--porcelain", "--untracked-files=no")
    tags = {GIT_COMMIT_TAG: commit, "git.branch": git("rev-parse", "--abbrev-ref", "HEAD") or "",
            "git.dirty": "unknown" if changed is None else str(bool(changed)).lower()}
    return {key: value for key, value in tags.items() if value}


def code_tags() -> dict[str, str]:
    """git_tags of the combomap package itself."""
    return git_tags(str(Path(__file__).resolve().parent))


def sweep_tags(resolved: Mapping[str, Any]) -> dict[str, str]:
    """{"sweep_study": ..., "sweep_trial": ...} from the resolved config's `sweep` entry (set per trial by the Optuna
    sweeper or a driver)."""
    sweep = resolved.get("sweep") if isinstance(resolved, Mapping) else None
    if not sweep:
        return {}
    tags = {"sweep_study": sweep.get("study_name"), "sweep_trial": sweep.get("trial")}
    return {key: str(value) for key, value in tags.items() if value is not None}


def search_runs(
    experiment_names: list[str] | str,
    filter_string: str = "",
    tracking_uri: str | None = None,
    order_by: list[str] | None = None,
) -> "pd.DataFrame":
    """Runs of the named experiments as a DataFrame (params.*, metrics.*, tags.* columns); missing ones are skipped.

    e.g. search_runs("combomap-train", "tags.sweep_study = 'mlp_optuna'")."""
    import pandas as pd

    configure(tracking_uri, origin="tracking_uri", write=False)
    names = [experiment_names] if isinstance(experiment_names, str) else list(experiment_names)
    ids = [e.experiment_id for e in (mlflow.get_experiment_by_name(name) for name in names) if e is not None]
    if not ids:
        return pd.DataFrame()
    return mlflow.search_runs(experiment_ids=ids, filter_string=filter_string, order_by=order_by, output_format="pandas")


def store_uri(uri: str | None = None) -> str:
    """The store to read: explicit, $COMBOMAP_MLFLOW_URI, $MLFLOW_TRACKING_URI, else ./mlruns (the default
    store of combomap-* commands run in the working directory)."""
    return uri or os.environ.get(STORE_ENV) or os.environ.get(TRACKING_ENV) or default_tracking_uri()


def load_runs(
    experiments: str | list[str],
    filter_string: str = "",
    tracking_uri: str | None = None,
    finished_only: bool = True,
    top_level_only: bool = True,
) -> "pd.DataFrame":
    """Runs of the experiments (missing experiments give no rows), newest first; child runs (fold nets, parts of
    their parent's job) left out by default."""
    if finished_only:
        status = "attributes.status = 'FINISHED'"
        filter_string = f"{filter_string} and {status}" if filter_string else status
    runs = search_runs(experiments, filter_string, tracking_uri=store_uri(tracking_uri), order_by=["attributes.start_time DESC"])
    parent = "tags.mlflow.parentRunId"
    if top_level_only and parent in runs.columns:
        runs = runs[runs[parent].isna()]
    return runs.reset_index(drop=True)


def download_artifact(run_id: str, path: str, tracking_uri: str | None = None,
                      into: str | Path | None = None) -> Path | None:
    """A run's artifact as a local file, in `into` (default: a new temporary folder the caller keeps); None when
    the run has no such artifact."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars in notebooks and logs
    uri = checked(store_uri(tracking_uri), origin="tracking_uri", write=False)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=str(into or tempfile.mkdtemp(prefix="combomap-")),
            tracking_uri=uri,
        )  # fmt: skip
    except (MlflowException, OSError):  # the artifact is not there
        return None
    return Path(local)


def artifact_table(run_id: str, path: str, tracking_uri: str | None = None) -> "pd.DataFrame | None":
    """A CSV artifact (e.g. ablation.csv) as the table it was written from: floats parsed round-trip, so every
    value equals the one the job computed (None when the run has no such artifact)."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="combomap-") as folder:
        local = download_artifact(run_id, path, tracking_uri, into=folder)
        return pd.read_csv(local, float_precision="round_trip") if local is not None and local.is_file() else None


def run_config(run_id: str, tracking_uri: str | None = None) -> dict:
    """The resolved config a run logged (config.yaml)."""
    with tempfile.TemporaryDirectory(prefix="combomap-") as folder:
        path = download_artifact(run_id, "config.yaml", tracking_uri, into=folder)
        if path is None:
            raise FileNotFoundError(f"run {run_id} has no config.yaml artifact")
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


@dataclass(frozen=True)
class RunConfig:
    """What a job's MLflow run records of its config and where the run goes: the resolved config (plain values,
    logged as params and as config.yaml) and the logger group's store and experiment
    (combomap.config.run.run_config builds it from a composed config)."""

    resolved: Mapping[str, Any]
    experiment_name: str = "combomap"
    tracking_uri: str | None = None
    store_dir: str | None = None
    yaml: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, resolved: Mapping[str, Any]) -> "RunConfig":
        """From plain resolved values (its `logger` entry, when there is one, says where the run goes)."""
        logger = resolved.get("logger") or {}
        job = {"job": str(resolved["task_name"])} if resolved.get("task_name") else {}
        return cls(dict(resolved), str(logger.get("experiment_name") or "combomap"), logger.get("tracking_uri"),
                   logger.get("store_dir"), OmegaConf.to_yaml(OmegaConf.create(dict(resolved))), job)


def open_store(config: RunConfig) -> str:
    """Check the job's store and point MLflow at it: jobs call it before their data loads, so a store that is not
    one ends the job in one line before any work (mlflow_run checks it again at no cost)."""
    return configure(config.tracking_uri, config.store_dir)


def _run_exists(run_id: str) -> bool:
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        return False
    return True


@contextlib.contextmanager
def mlflow_run(
    config: RunConfig,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
    run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start a run, log the resolved config once (params + config.yaml), always end it.

    A nested run becomes a child of the active run (e.g. one per fold net). `run_id` reopens an earlier run
    (a resumed training) instead; its params are already logged. A top-level run first makes SIGTERM/SIGINT
    raise combomap.signals.Terminated (so the run ends KILLED) and closes stale runs of dead processes.
    """
    previous_handlers = signals.install() if not nested else {}
    try:
        if not nested:
            configure(config.tracking_uri, config.store_dir)
            runs.close_stale_runs()
        with _started_run(config, run_name, tags, nested, run_id) as run:
            yield run
    finally:
        signals.restore(previous_handlers)


@contextlib.contextmanager
def _started_run(
    config: RunConfig, run_name: str | None, tags: Mapping[str, str] | None, nested: bool, run_id: str | None,
) -> Iterator[mlflow.ActiveRun]:
    """The MLflow part of mlflow_run: open (or reopen) the run, log the config, end it with the job's outcome."""
    experiment_name = config.experiment_name
    parent = mlflow.active_run() if nested else None
    # A child lives in its parent's experiment (MLflow would put it in "Default").
    experiment_id = parent.info.experiment_id if parent is not None else ensure_experiment(experiment_name)
    params, local = run_params(config.resolved)
    # the job's own tags (job, overrides, multirun, sweep) mark its top-level run only: `tags.job = 'stack'` finds jobs
    launch = {} if nested else {**sweep_tags(config.resolved), **dict(config.tags)}
    run_tags = {**launch, **code_tags(), **local, **dict(tags or {}), **runs.process_tags()}
    if run_id is not None and not _run_exists(run_id):
        log.warning("MLflow run %s is not in %s: the resumed training logs to a new run", run_id, mlflow.get_tracking_uri())
        run_id = None
    if run_id is not None:
        run = mlflow.start_run(run_id=run_id, nested=nested)
        mlflow.set_tags(run_tags)
    else:
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=nested, tags=run_tags)
    try:
        if run_id is None:
            items = list(params.items())
            for start in range(0, len(items), 100):
                mlflow.log_params(dict(items[start : start + 100]))
            mlflow.log_text(config.yaml, "config.yaml")
        yield run
    except KeyboardInterrupt:  # SIGINT, SIGTERM (combomap.signals.Terminated)
        _end_run("KILLED")
        raise
    except BaseException:
        _end_run("FAILED")
        raise
    else:
        _end_run("FINISHED")
        if not nested:
            log.info("MLflow run %s (%s) in %s; in `mlflow ui` open %s", run.info.run_name, run.info.run_id,
                     experiment_name, runs_view(experiment_id))


def _end_run(status: str, attempts: int = 5) -> None:
    """mlflow.end_run, retried while SQLite is locked by a reader (the MLflow UI, a poller, a parallel job), or by
    this process's own connection that a signal interrupted mid-write (collected, so that it rolls back): the run's
    final status must not be lost to a moment of contention."""
    for attempt in range(attempts):
        try:
            mlflow.end_run(status=status)
            return
        except MlflowException as error:
            if "database is locked" not in str(error) or attempt == attempts - 1:
                raise
            log.warning("MLflow store busy (database is locked); ending the run as %s again", status)
            gc.collect()
            time.sleep(0.5 * 2**attempt)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log finite scalar metrics; NaN (e.g. nothing scored) is skipped, not stored."""
    clean = {k: float(v) for k, v in metrics.items() if v is not None and float(v) == float(v)}
    if clean:
        with signals.deferred():  # a stop during the write would leave the store locked
            mlflow.log_metrics(clean, step=step)
