"""Which MLflow store the jobs write to, created once per process: the tracking URI (`MLFLOW_TRACKING_URI`, else
sqlite:///<store_dir>/mlflow.db, store_dir defaulting to ./mlruns of the working directory). Below both
combomap.runs and combomap.tracking, which point MLflow at the store before they touch a run."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

from combomap.paths import default_store_dir


def default_tracking_uri(store_dir: Path | str | None = None) -> str:
    """sqlite:///<store_dir>/mlflow.db, absolute; store_dir defaults to ./mlruns (combomap.paths.default_store_dir)."""
    return f"sqlite:///{Path(store_dir or default_store_dir()).resolve() / 'mlflow.db'}"


def configure(tracking_uri: str | None = None, store_dir: Path | str | None = None) -> str:
    """Point MLflow at the configured store (env var wins over the default local store)."""
    store = Path(store_dir) if store_dir else default_store_dir()
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(store)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        _create_sqlite_store_once(uri)
    mlflow.set_tracking_uri(uri)
    return uri


_READY_STORES: set[str] = set()


def _create_sqlite_store_once(uri: str) -> None:
    """Create (migrate) a SQLite store under a file lock, once per process: parallel jobs on a new store
    (hydra/launcher=joblib) otherwise race in MLflow's schema migrations and all but one fail."""
    if uri in _READY_STORES:
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    from mlflow.tracking import MlflowClient

    with open(Path(uri.removeprefix("sqlite:///")).parent / ".mlflow-db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(uri).search_experiments(max_results=1)  # the store is cached by MLflow per URI
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _READY_STORES.add(uri)
