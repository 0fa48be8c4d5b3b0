"""A real `mlflow server` on loopback serves a store laid out like the project's (runs, metrics, artifacts)."""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import pytest

from combomap.tracking import configure, ensure_experiment
from tests import servers
from tests.mlflow_template import new_store

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


def test_mlflow_server_serves_runs_metrics_and_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = new_store(tmp_path / "mlruns")  # an empty, already migrated SQLite store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    experiment_id, run_ids = _make_store(store)

    port = servers.free_port()
    if port is None:
        pytest.skip("cannot bind a port on 127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination", str(store / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    server = servers.start(command, cwd=tmp_path, env=env)
    try:
        servers.wait_ready(f"{base}/health", server)

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
        servers.stop(server)
