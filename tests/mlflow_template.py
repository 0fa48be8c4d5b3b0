"""Fresh MLflow stores in milliseconds: migrate one empty SQLite store per session, copy it per test.

Creating a SQLite store runs MLflow's schema migrations, about 7 s of mostly fsync on these machines;
a copy of an already migrated, empty store behaves like a new one.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=None)
def _template_db() -> Path:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = Path(tempfile.mkdtemp(prefix="combomap-mlflow-template-"))
    atexit.register(shutil.rmtree, folder, True)
    db = folder / "mlflow.db"
    store = SqlAlchemyStore(f"sqlite:///{db}", (folder / "artifacts").as_uri())
    store.engine.dispose()
    return db


def new_store(store_dir: Path) -> Path:
    """An empty, migrated store at store_dir/mlflow.db (artifacts go to store_dir/artifacts)."""
    store_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_db(), store_dir / "mlflow.db")
    return store_dir


def run_statuses(store_dir: Path) -> list[str]:
    """The status of every run in the store at store_dir/mlflow.db ([] when it has no experiment)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store_dir / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [run.info.status for run in client.search_runs(experiments)] if experiments else []
