"""Which MLflow store the jobs write to, and whether it is one: the tracking URI (`logger.tracking_uri`, else
`MLFLOW_TRACKING_URI`, else sqlite:///<store_dir>/mlflow.db, store_dir defaulting to ./mlruns of the working
directory). Below both combomap.runs and combomap.tracking, which point MLflow at the store before they touch a run.

A store is checked once per process, before anything is written to it: an SQLite file must be an SQLite database
(header, size, `PRAGMA quick_check`, read through a read-only connection, so a damaged file is never touched) holding
MLflow's tables or none; a new one is created only in a folder that can hold it; a tracking server must answer as
one, at once (MLflow's own client would retry for minutes). A store that fails is a StoreError: one line naming the
store and the setting it came from, and what to do.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import mlflow

from combomap.errors import UserError
from combomap.paths import default_store_dir

# Env var the notebook and the reports read the store from (else MLFLOW_TRACKING_URI, else ./mlruns).
STORE_ENV = "COMBOMAP_MLFLOW_URI"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
SQLITE_HEADER = b"SQLite format 3\x00"
MLFLOW_TABLES = ("experiments", "runs")
HTTP_PROBE_TIMEOUT_S = 10
MLFLOW_SCHEMES = "sqlite:///PATH.db, http(s)://HOST:PORT, postgresql://, mysql://, mssql:// or databricks"


class StoreError(UserError):
    """A tracking or study store that is not what its setting says: not a database, damaged, of another program,
    in a folder that cannot hold it, or a server that does not answer."""


@dataclass(frozen=True)
class Store:
    """A tracking URI and the setting that named it (what an error tells the user to change)."""

    uri: str
    origin: str
    make_folder: bool = False  # the project's own store folder (logger.store_dir, ./mlruns) is created when missing
    change: str = ""  # the setting to change, when not the origin

    @property
    def setting(self) -> str:
        return self.change or self.origin

    def error(self, problem: str, fix: str) -> StoreError:
        return StoreError(f"MLflow store {redact(self.uri)} ({self.origin}) {problem}: {fix}")


def redact(uri: str) -> str:
    """The URI without its password (messages and results files are shared)."""
    if "@" not in uri:
        return uri
    from sqlalchemy.engine import make_url

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except Exception:  # not a database URL (http://user:pass@host): drop the credentials
        scheme, _, rest = uri.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def default_tracking_uri(store_dir: Path | str | None = None) -> str:
    """sqlite:///<store_dir>/mlflow.db, absolute; store_dir defaults to ./mlruns (combomap.paths.default_store_dir)."""
    return f"sqlite:///{Path(store_dir or default_store_dir()).resolve() / 'mlflow.db'}"


def resolve(tracking_uri: str | None = None, store_dir: Path | str | None = None,
            origin: str = "logger.tracking_uri") -> Store:
    """The store a job uses: tracking_uri (named `origin`), else $MLFLOW_TRACKING_URI, else <store_dir>/mlflow.db."""
    if tracking_uri:
        named = next((env for env in (STORE_ENV, TRACKING_ENV) if os.environ.get(env) == tracking_uri), origin)
        return Store(str(tracking_uri), named, make_folder=tracking_uri == default_tracking_uri(store_dir))
    if os.environ.get(TRACKING_ENV):
        return Store(os.environ[TRACKING_ENV], TRACKING_ENV)
    if store_dir:
        return Store(default_tracking_uri(store_dir), "logger.store_dir", make_folder=True)
    return Store(default_tracking_uri(), "the default store", make_folder=True, change=TRACKING_ENV)


_CHECKED: set[tuple[str, bool]] = set()


def checked(tracking_uri: str | None = None, store_dir: Path | str | None = None, *,
            origin: str = "logger.tracking_uri", write: bool = True, create: bool = True) -> str:
    """The configured store's URI, checked once per process (StoreError when it is not a usable MLflow store).

    write=False: a reader (reports, `combomap-runs list`), which accepts a store it cannot write. create=False: a
    missing SQLite store is left for the jobs to create (a sweeper checks its jobs' store without making one)."""
    store = resolve(tracking_uri, store_dir, origin)
    if (store.uri, True) not in _CHECKED and (store.uri, write) not in _CHECKED:
        check(store, write, create)
        if create:
            _CHECKED.add((store.uri, write))
    return store.uri


def configure(tracking_uri: str | None = None, store_dir: Path | str | None = None, *,
              origin: str = "logger.tracking_uri", write: bool = True) -> str:
    """Check the configured store and point MLflow at it; returns its URI."""
    uri = checked(tracking_uri, store_dir, origin=origin, write=write)
    mlflow.set_tracking_uri(uri)
    return uri


def check(store: Store, write: bool = True, create: bool = True) -> None:
    """Raise StoreError when `store` is not an MLflow store this process can use; a new SQLite store is created
    (unless create=False)."""
    scheme = store.uri.partition("://")[0].lower() if "://" in store.uri else ""
    if scheme == "sqlite":
        _check_sqlite_store(store, write, create)
    elif scheme in ("http", "https"):
        _check_server(store)
    else:
        _open(store)


def _sqlite_path(uri: str) -> Path | None:
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return None if database in (None, "", ":memory:") else Path(database).expanduser()


def absolute_sqlite_uri(uri: str | None) -> str | None:
    """A SQLite URL with a relative (or ~) file made absolute against the working directory, so that what is written
    names the same database from any directory; any other URL (or one that does not parse) as given."""
    if uri is None or not uri.startswith("sqlite:"):
        return uri
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(uri)
        path = _sqlite_path(uri)
    except Exception:  # not a URL: the store's check says so in one line
        return uri
    if path is None or parsed.database.startswith("file:") or str(path) == parsed.database and path.is_absolute():
        return uri
    return parsed.set(database=str(path.resolve())).render_as_string(hide_password=False)


def _check_sqlite_store(store: Store, write: bool, create: bool) -> None:
    path = _sqlite_path(store.uri)
    if path is None:
        _open(store)
        return
    if not create and not path.exists():
        return
    fresh = check_sqlite_file(path, name=f"MLflow store {redact(store.uri)} ({store.origin})", setting=store.setting,
                              kind="an MLflow store", tables=MLFLOW_TABLES, write=write, make_folder=store.make_folder)
    if create or not fresh:
        _open_sqlite_store(store, path, fresh)


def check_sqlite_file(path: Path, *, name: str, setting: str, kind: str, tables: Collection[str], write: bool,
                      make_folder: bool) -> bool:
    """Raise StoreError ("<name> <problem>: <what to do>") unless `path` is an SQLite database holding any of
    `tables` (or no table at all), or a file that can be created; reads only, never writes into the file.
    Returns whether the store is new (missing, empty or without tables)."""
    folder = path.parent
    content_fix = f"point {setting} at {kind}, or move {path.name} away to start a new one there"
    place_fix = f"point {setting} at a writable place"

    def error(problem: str, fix: str = content_fix) -> StoreError:
        return StoreError(f"{name} {problem}: {fix}")

    if not path.exists():
        if path.is_symlink():
            raise error(f"is a link to {os.readlink(path)}, which does not exist", place_fix)
        if not folder.is_dir():
            if folder.exists() or not make_folder:
                what = "is not a folder" if folder.exists() else "does not exist"
                raise error(f"cannot be created: its folder {folder} {what}", f"create it, or {place_fix}")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as failure:
                raise error(f"cannot be created: its folder {folder} cannot be made ({failure.strerror or failure})",
                            place_fix) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise error(f"cannot be created: its folder {folder} is read-only", place_fix)
        return True
    if path.is_dir():
        raise error("is a folder, not an SQLite file", f"give {setting} the path of a database file")
    if not path.is_file():
        raise error("is not a regular file")
    if not os.access(path, os.R_OK):
        raise error("cannot be read (permission denied)", f"make it readable, or point {setting} elsewhere")
    if write and not (os.access(path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)):
        where = path if not os.access(path, os.W_OK) else folder
        raise error(f"is read-only ({where}) and this command writes to it", f"make it writable, or {place_fix}")
    if path.stat().st_size == 0:
        return True
    with open(path, "rb") as handle:
        if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise error("is not an SQLite database (its first bytes are not the SQLite header)")
    found = _sqlite_tables(path, error)
    if not found:
        return True
    if not set(tables) & set(found):
        shown = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
        raise error(f"is an SQLite database of another program (tables {shown}), not {kind}")
    return False


def _sqlite_tables(path: Path, error: Callable[..., StoreError]) -> list[str]:
    """The database's tables, after `PRAGMA quick_check` and a size check, through a read-only connection whose read
    transaction keeps writers from changing the file meanwhile."""
    try:
        connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error as failure:
        raise error(f"cannot be opened ({failure})") from None
    try:
        connection.execute("BEGIN")
        names = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        truncated = _truncated(path)
        if truncated:
            raise error(f"is truncated ({truncated})")
        report = [row[0] for row in connection.execute("PRAGMA quick_check(3)")]
        if report != ["ok"]:
            detail = " ".join(" ".join(report).split())
            raise error(f"is damaged (SQLite quick_check: {detail[:200]})")
        return names
    except sqlite3.DatabaseError as failure:
        truncated = _truncated(path)
        raise error(f"is truncated ({truncated})" if truncated else f"is damaged ({failure})") from None
    finally:
        connection.close()


def _truncated(path: Path) -> str:
    """Why the file is shorter than its header says ("" when it is not): SQLite reads such a file without a word
    until it reaches a missing page."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    size = path.stat().st_size
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if len(header) < 100 or page_size < 512:
        return f"{size} bytes, shorter than its header"
    pages = int.from_bytes(header[28:32], "big")
    size_valid = pages > 0 and header[24:28] == header[92:96]
    if size % page_size or (size_valid and size < pages * page_size):
        expected = pages * page_size if size_valid else (size // page_size + 1) * page_size
        return f"{size} of {expected} bytes"
    return ""


def _open(store: Store) -> None:
    """Ask MLflow for one experiment: any failure (unknown scheme, old schema, a database that refuses) is one line."""
    from mlflow.tracking import MlflowClient
    from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException

    try:
        MlflowClient(store.uri).search_experiments(max_results=1)
    except UnsupportedModelRegistryStoreURIException:
        scheme = store.uri.partition("://")[0] if "://" in store.uri else store.uri
        raise store.error(f"has a scheme MLflow does not know ({scheme!r})",
                          f"give {store.setting} as {MLFLOW_SCHEMES}") from None
    except Exception as failure:  # MlflowException, SQLAlchemyError, OSError: the store refuses
        raise store.error(f"cannot be opened ({_first_line(failure)})",
                          f"repair it as the reason says, or point {store.setting} at another store") from None


def _open_sqlite_store(store: Store, path: Path, fresh: bool) -> None:
    """Open (for a new store: create and migrate) an SQLite store under a file lock beside it: parallel jobs on a
    new store (hydra/launcher=joblib) otherwise race in MLflow's schema migrations and all but one fail. A store
    that exists in a folder this process cannot write (a reader's) is opened without the lock."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        _open(store)
        return
    try:
        lock = open(path.parent / ".mlflow-db.lock", "w")
    except OSError as failure:
        if not fresh:
            _open(store)
            return
        raise store.error(f"cannot be created in {path.parent} ({failure.strerror or failure})",
                          f"point {store.setting} at a writable place") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _open(store)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_server(store: Store) -> None:
    """One request, no retries, a short timeout: a tracking server that is down or is not one is a line now."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    fix = f"start it (`mlflow server --host HOST --port PORT`) or point {store.setting} at a running one"
    try:
        response = http_request(get_default_host_creds(store.uri), "/api/2.0/mlflow/experiments/search", "POST",
                                max_retries=0, timeout=HTTP_PROBE_TIMEOUT_S, raise_on_status=False,
                                json={"max_results": 1})
    except Exception as failure:  # requests' ConnectionError / Timeout, MlflowException
        raise store.error(f"does not answer ({_connection_problem(failure)})", fix) from None
    if response.status_code in (401, 403):
        raise store.error(f"refuses the credentials (HTTP {response.status_code})",
                          "set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN")
    try:
        answer = response.json() if response.status_code == 200 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise store.error(f"answers, but not as an MLflow tracking server (HTTP {response.status_code})", fix)


def _connection_problem(error: BaseException) -> str:
    """"Connection refused", "no answer within 10 s", ...: the reason under requests' and MLflow's wrapping."""
    text = str(error)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found[1].strip()
    if "timed out" in text.lower() or "timeout" in type(error).__name__.lower():
        return f"no answer within {HTTP_PROBE_TIMEOUT_S} s"
    return _first_line(error)[:200]


def _first_line(error: BaseException) -> str:
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
