"""Stores that are not what their setting claims: an MLflow store (MLFLOW_TRACKING_URI, logger.tracking_uri,
logger.store_dir, COMBOMAP_MLFLOW_URI, --tracking-uri), the Optuna storage of a sweep (hydra.sweeper.storage) and a
Dask scheduler (engine.address). Each ends in exit 2 and one stderr line naming the store and what to do, before
any data loads or any run opens, and nothing is written into the store: its bytes hash the same after.

Services are the test's own, on 127.0.0.1 only. The commands run in-process, as in test_bad_inputs.py.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pytest

from combomap import runs, store
from combomap.store import StoreError
from combomap.tracking import download_artifact, load_runs
from tests.cli.test_bad_inputs import SIM_LIBRARY, TINY, run_command
from tests.mlflow_template import new_store, run_statuses

SWEEP = ["-m", "hparams_search=mlp_optuna", "hydra.sweeper.n_trials=1", TINY]
QUERY = ["signature={tmp}/query.csv", *SIM_LIBRARY]
SIGNATURE = "gene,value\n" + "".join(f"GENE{g:05d},{(g % 7) - 3}.5\n" for g in range(300))  # the tiny library's genes


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real, empty MLflow store and a real Optuna storage with three trials, to copy and damage."""
    root = tmp_path_factory.mktemp("stores")
    study = optuna.create_study(study_name="real", storage=f"sqlite:///{root / 'optuna.db'}")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    del study
    return {"mlflow": new_store(root / "mlruns") / "mlflow.db", "optuna": root / "optuna.db"}


# --- bad stores: setup(originals, tmp) -> the path whose bytes must not change ----------------------------------


Setup = Callable[[dict[str, Path], Path], Path]


def random_bytes(name: str) -> Setup:
    def setup(originals: dict[str, Path], tmp: Path) -> Path:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(np.random.default_rng(3).bytes(50_000))
        return tmp / name
    return setup


def truncated(kind: str, name: str) -> Setup:
    def setup(originals: dict[str, Path], tmp: Path) -> Path:
        data = originals[kind].read_bytes()
        (tmp / name).write_bytes(data[: len(data) // 2])
        return tmp / name
    return setup


def damaged_page(kind: str, name: str) -> Setup:
    """A copy with one page in the middle overwritten by random bytes (a bad sector, a torn write)."""
    def setup(originals: dict[str, Path], tmp: Path) -> Path:
        data = bytearray(originals[kind].read_bytes())
        middle = len(data) // 2 // 4096 * 4096
        data[middle : middle + 4096] = np.random.default_rng(5).bytes(4096)
        (tmp / name).write_bytes(bytes(data))
        return tmp / name
    return setup


def copy_of(kind: str, name: str) -> Setup:
    """A healthy store of the OTHER program (an Optuna storage given as the MLflow store, and the reverse)."""
    def setup(originals: dict[str, Path], tmp: Path) -> Path:
        shutil.copyfile(originals[kind], tmp / name)
        return tmp / name
    return setup


def a_folder(relative: str) -> Setup:
    def setup(originals: dict[str, Path], tmp: Path) -> Path:
        (tmp / relative).mkdir(parents=True)
        (tmp / relative / "notes.txt").write_text("a folder where the database should be\n")
        return tmp / relative
    return setup


def missing_folder(originals: dict[str, Path], tmp: Path) -> Path:
    return tmp / "no_such_folder"


def read_only_folder(originals: dict[str, Path], tmp: Path) -> Path:
    (tmp / "locked").mkdir()
    (tmp / "locked").chmod(0o555)
    return tmp / "locked"


def nothing(originals: dict[str, Path], tmp: Path) -> Path:
    return tmp / "untouched"


def fingerprint(path: Path) -> object:
    """The bytes of a file, or of every file under a folder, as hashes (None: nothing there)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        return {str(p.relative_to(path)): fingerprint(p) for p in sorted(path.rglob("*"))}
    return None


# --- services of the test's own, on 127.0.0.1 ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A port bound but not listening: a connection is refused at once."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"<html>not here</html>")

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web_server() -> Iterator[int]:
    """An HTTP server that is not an MLflow tracking server (404 on every path)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def junk_server() -> Iterator[int]:
    """A TCP server that answers every connection with bytes that are not Dask's protocol."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                try:
                    connection.sendall(b"SSH-2.0-junk\r\n" * 64)
                    connection.recv(1024)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


# --- the table -----------------------------------------------------------------------------------------------------


@dataclass
class StoreCase:
    id: str
    command: str  # a combomap-<command> console entry, or "runs" (combomap-runs)
    args: list[str]
    names: list[str]  # the error line contains each ({tmp}, {port} filled in)
    setup: Setup = nothing
    env: dict[str, str] = field(default_factory=dict)  # "" unsets
    skip_as_root: bool = False


MLFLOW_ENV = "MLFLOW_TRACKING_URI"
STORE_DIR_ONLY = {MLFLOW_ENV: ""}  # logger.store_dir decides only without the variable

CASES = [
    # the MLflow store of every job that logs
    StoreCase("mlflow-random-bytes-evaluate", "evaluate", [TINY],
              ["sqlite:///{tmp}/junk.db", MLFLOW_ENV, "not an SQLite"], random_bytes("junk.db"),
              env={MLFLOW_ENV: "sqlite:///{tmp}/junk.db"}),
    StoreCase("mlflow-truncated-train", "train", [TINY, "logger.tracking_uri=sqlite:///{tmp}/cut.db"],
              ["{tmp}/cut.db", "logger.tracking_uri", "truncated"], truncated("mlflow", "cut.db")),
    StoreCase("mlflow-damaged-page-query", "query", QUERY, ["{tmp}/torn.db", MLFLOW_ENV, "damaged"],
              damaged_page("mlflow", "torn.db"), env={MLFLOW_ENV: "sqlite:///{tmp}/torn.db"}),
    StoreCase("mlflow-folder-stack", "stack", [TINY, "logger.store_dir={tmp}/store"],
              ["{tmp}/store/mlflow.db", "logger.store_dir", "is a folder"], a_folder("store/mlflow.db"),
              env=STORE_DIR_ONLY),
    StoreCase("mlflow-optuna-db-evaluate", "evaluate", [TINY], ["{tmp}/optuna.db", "another program", "studies"],
              copy_of("optuna", "optuna.db"), env={MLFLOW_ENV: "sqlite:///{tmp}/optuna.db"}),
    StoreCase("mlflow-missing-folder-query", "query",
              [*QUERY, "logger.tracking_uri=sqlite:///{tmp}/no_such_folder/m.db"],
              ["{tmp}/no_such_folder", "does not exist", "logger.tracking_uri"], missing_folder),
    StoreCase("mlflow-read-only-folder-stack", "stack", [TINY, "logger.store_dir={tmp}/locked"],
              ["{tmp}/locked", "read-only", "logger.store_dir"], read_only_folder, env=STORE_DIR_ONLY,
              skip_as_root=True),
    StoreCase("mlflow-store-dir-unmakeable-train", "train", [TINY, "logger.store_dir=/proc/combomap-nope/mlruns"],
              ["/proc/combomap-nope/mlruns", "cannot be made", "logger.store_dir"], env=STORE_DIR_ONLY),
    StoreCase("mlflow-unknown-scheme-interactions", "interactions", [TINY, "logger.tracking_uri=bogus://x"],
              ["bogus://x", "logger.tracking_uri", "'bogus'"]),
    StoreCase("mlflow-nothing-listens-evaluate", "evaluate", [TINY], ["http://127.0.0.1:{port}", "Connection refused"],
              env={MLFLOW_ENV: "http://127.0.0.1:{closed_port}"}),
    StoreCase("mlflow-not-a-server-train", "train", [TINY, "logger.tracking_uri=http://127.0.0.1:{web_port}"],
              ["http://127.0.0.1:{web_port}", "not as an MLflow tracking server", "HTTP 404"]),
    # combomap-runs
    StoreCase("runs-list-random-bytes", "runs", ["--tracking-uri", "sqlite:///{tmp}/junk.db", "list"],
              ["{tmp}/junk.db", "--tracking-uri", "not an SQLite"], random_bytes("junk.db")),
    StoreCase("runs-default-store-random-bytes", "runs", ["list"],
              ["{tmp}/root/mlruns/mlflow.db (the default store)", f"point {MLFLOW_ENV} at"],
              random_bytes("root/mlruns/mlflow.db"), env={MLFLOW_ENV: "", "COMBOMAP_ROOT": "{tmp}/root"}),
    StoreCase("runs-close-stale-truncated", "runs", ["close-stale"], ["{tmp}/cut.db", MLFLOW_ENV, "truncated"],
              truncated("mlflow", "cut.db"), env={MLFLOW_ENV: "sqlite:///{tmp}/cut.db"}),
    # a sweep: its trials' MLflow store, then its Optuna storage, before any trial
    StoreCase("sweep-mlflow-random-bytes", "train", [*SWEEP, "hydra.sweeper.storage=sqlite:///{tmp}/optuna.db"],
              ["{tmp}/junk.db", MLFLOW_ENV, "not an SQLite"], random_bytes("junk.db"),
              env={MLFLOW_ENV: "sqlite:///{tmp}/junk.db"}),
    StoreCase("optuna-random-bytes", "train", [*SWEEP, "hydra.sweeper.storage=sqlite:///{tmp}/optuna.db"],
              ["hydra.sweeper.storage=sqlite:///{tmp}/optuna.db", "not an SQLite"], random_bytes("optuna.db")),
    StoreCase("optuna-damaged-page", "train", [*SWEEP, "hydra.sweeper.storage=sqlite:///{tmp}/optuna.db"],
              ["hydra.sweeper.storage=sqlite:///{tmp}/optuna.db", "damaged"], damaged_page("optuna", "optuna.db")),
    StoreCase("optuna-truncated", "stack", [*SWEEP[:1], "hparams_search=stacker_optuna", "hydra.sweeper.n_trials=1",
                                           TINY, "hydra.sweeper.storage=sqlite:///{tmp}/optuna.db"],
              ["hydra.sweeper.storage=sqlite:///{tmp}/optuna.db", "truncated"], truncated("optuna", "optuna.db")),
    StoreCase("optuna-folder", "train", [*SWEEP, "hydra.sweeper.storage=sqlite:///{tmp}/optuna.db"],
              ["hydra.sweeper.storage=sqlite:///{tmp}/optuna.db", "is a folder"], a_folder("optuna.db")),
    StoreCase("optuna-mlflow-db", "train", [*SWEEP, "hydra.sweeper.storage=sqlite:///{tmp}/mlflow.db"],
              ["hydra.sweeper.storage", "another program", "alembic_version"], copy_of("mlflow", "mlflow.db")),
    StoreCase("optuna-unknown-scheme", "train", [*SWEEP, "hydra.sweeper.storage=bogus://x"],
              ["hydra.sweeper.storage=bogus://x", "sqlite:///PATH/optuna.db"]),
    # a Dask address where something else answers
    StoreCase("dask-not-a-scheduler", "query", [*QUERY, "engine=dask", "engine.address=tcp://127.0.0.1:{junk_port}",
                                                "engine.connect_timeout_s=5"],
              ["engine.address=tcp://127.0.0.1:{junk_port}", "not as a Dask scheduler"]),
]


def _fill(text: str, tmp: Path, ports: dict[str, int]) -> str:
    return text.format(tmp=tmp, **ports, port=ports["closed_port"])


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_store_ends_in_one_line(case: StoreCase, originals: dict[str, Path], tmp_path: Path, mlflow_store: Path,
                                   closed_port: int, web_server: int, junk_server: int,
                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    if case.skip_as_root and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ports = {"closed_port": closed_port, "web_port": web_server, "junk_port": junk_server}
    monkeypatch.setattr(store, "_CHECKED", set())  # each case checks its store afresh
    target = case.setup(originals, tmp_path)
    before = fingerprint(target)
    (tmp_path / "query.csv").write_text(SIGNATURE)
    for name, value in case.env.items():
        if value:
            monkeypatch.setenv(name, _fill(value, tmp_path, ports))
        else:
            monkeypatch.delenv(name)
    args = [_fill(arg, tmp_path, ports) for arg in case.args]
    if case.command == "runs":
        capsys.readouterr()
        status, err = runs.main(args), capsys.readouterr().err
    else:
        args.append(f"hydra.sweep.dir={tmp_path / 'sweep'}" if "-m" in args else f"hydra.run.dir={tmp_path / 'run'}")
        status, err = run_command(case.command, args, monkeypatch, capsys)

    assert status == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"combomap-{case.command}: error: "), err
    for name in case.names:
        assert _fill(name, tmp_path, ports) in err, err
    assert fingerprint(target) == before
    assert run_statuses(mlflow_store) == []


def test_readers_name_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reports' and the notebook's readers: one StoreError naming the variable, the file untouched."""
    monkeypatch.setattr(store, "_CHECKED", set())
    junk = random_bytes("junk.db")({}, tmp_path)
    before = fingerprint(junk)
    monkeypatch.setenv("COMBOMAP_MLFLOW_URI", f"sqlite:///{junk}")
    with pytest.raises(StoreError, match=r"junk\.db \(COMBOMAP_MLFLOW_URI\) is not an SQLite database"):
        load_runs("combomap-stack")
    with pytest.raises(StoreError, match="COMBOMAP_MLFLOW_URI"):
        download_artifact("0" * 32, "ablation.csv")
    assert fingerprint(junk) == before


def test_a_store_is_created_only_where_it_can_be(originals: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's own store folder (logger.store_dir) is made when missing; an explicit URI's folder is not (as
    SQLite); a store cut by a single byte is refused; an empty file is a new store."""
    monkeypatch.setattr(store, "_CHECKED", set())
    monkeypatch.delenv(MLFLOW_ENV, raising=False)
    new = tmp_path / "made" / "mlruns" / "mlflow.db"
    assert store.check_sqlite_file(new, name="store", setting="logger.store_dir", kind="an MLflow store",
                                   tables=store.MLFLOW_TABLES, write=True, make_folder=True)  # new: to be created
    assert new.parent.is_dir() and not new.exists()
    with pytest.raises(StoreError, match="no_such_folder does not exist"):
        store.checked(f"sqlite:///{tmp_path / 'no_such_folder' / 'mlflow.db'}")
    assert not (tmp_path / "no_such_folder").exists()
    data = originals["mlflow"].read_bytes()
    (tmp_path / "short.db").write_bytes(data[:-1])
    with pytest.raises(StoreError, match=r"truncated \(\d+ of \d+ bytes\)"):
        store.checked(f"sqlite:///{tmp_path / 'short.db'}")
    (tmp_path / "empty.db").write_bytes(b"")
    assert store.checked(f"sqlite:///{tmp_path / 'empty.db'}", create=False)  # accepted, left for the job to create
    assert (tmp_path / "empty.db").stat().st_size == 0


def test_console_script_runs(tmp_path: Path) -> None:
    """The real combomap-runs console script on a bogus scheme: one line, exit 2."""
    env = {**os.environ, MLFLOW_ENV: "bogus://x"}
    done = subprocess.run([str(Path(sys.executable).parent / "combomap-runs"), "list"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("combomap-runs: error: MLflow store bogus://x (MLFLOW_TRACKING_URI)")
