"""A real `mlflow server` on loopback serves a store laid out like the project's (runs, metrics, artifacts)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import pytest

from combomap.tracking import configure, ensure_experiment
from tests.mlflow_template import new_store

READY_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(base: str, endpoint: str, **query: str) -> bytes:
    url = f"{base}{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _make_store(store: Path) -> tuple[str, dict[str, str]]:
    """Two runs in the project's layout: sqlite db + artifacts/ beside it, made through the Python API."""
    configure(f"sqlite:///{store / 'mlflow.db'}")
    experiment_id = ensure_experiment("combomap-train")
    run_ids = {}
    for name, accuracy in (("run-a", 0.70), ("run-b", 0.75)):
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags={"sweep_study": "demo"}) as run:
            mlflow.log_param("model.hidden_units", 64)
            for epoch in range(3):
                mlflow.log_metric("val/sign_acc", accuracy + 0.01 * epoch, step=epoch)
            mlflow.log_text(f"report of {name}\n", "report.txt")
            run_ids[name] = run.info.run_id
    return experiment_id, run_ids


def _wait_ready(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow server exited with {server.returncode}:\n{server.stdout.read()}")
        try:
            if _get(base, "/health"):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"mlflow server not ready after {READY_TIMEOUT_S} s")


def test_mlflow_server_serves_runs_metrics_and_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = new_store(tmp_path / "mlruns")  # an empty, already migrated SQLite store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    experiment_id, run_ids = _make_store(store)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination", str(store / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: the uvicorn worker dies with it
    )  # fmt: skip
    try:
        _wait_ready(base, server)

        found = _post(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})["runs"]
        assert sorted(r["info"]["run_name"] for r in found) == ["run-a", "run-b"]

        tagged = _post(
            base,
            "/api/2.0/mlflow/runs/search",
            {"experiment_ids": [experiment_id], "filter": "tags.sweep_study = 'demo' and metrics.`val/sign_acc` > 0.76"},
        )["runs"]
        assert [r["info"]["run_name"] for r in tagged] == ["run-b"]

        run = json.loads(_get(base, "/api/2.0/mlflow/runs/get", run_id=run_ids["run-a"]))["run"]
        assert run["data"]["params"] == [{"key": "model.hidden_units", "value": "64"}]
        latest = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert latest["val/sign_acc"] == pytest.approx(0.72)

        history = json.loads(
            _get(base, "/api/2.0/mlflow/metrics/get-history", run_id=run_ids["run-b"], metric_key="val/sign_acc")
        )["metrics"]
        assert [(m["step"], round(m["value"], 6)) for m in history] == [(0, 0.75), (1, 0.76), (2, 0.77)]

        # Artifact through the run's own location and through the proxy rooted at --artifacts-destination.
        assert _get(base, "/get-artifact", path="report.txt", run_uuid=run_ids["run-a"]) == b"report of run-a\n"
        proxied = _get(base, f"/api/2.0/mlflow-artifacts/artifacts/{run_ids['run-b']}/artifacts/report.txt")
        assert proxied == b"report of run-b\n"
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)
        except ProcessLookupError:
            pass
        if server.stdout:
            server.stdout.close()
