"""A combomap job logging to a real `mlflow server` on loopback, and combomap's readers reading it back: what the
server holds is what the job wrote to its output folder (metrics, config, artifacts)."""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from combomap.evaluation.report import table_metrics
from combomap.jobs import evaluate
from combomap.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, artifact_table, flatten, load_runs, run_config
from tests import servers
from tests.conftest import compose_config
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


@pytest.fixture()
def server_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """http://127.0.0.1:<port> of an `mlflow server` with its own empty store, proxying artifacts."""
    store = new_store(tmp_path / "server")
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
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # only the job's config names the store
    server = servers.start(command, cwd=tmp_path, env=dict(os.environ))
    try:
        servers.wait_ready(f"{base}/health", server)
        yield base
    finally:
        servers.stop(server)


def test_evaluate_job_logs_its_outputs_to_the_server(server_url: str, tmp_path: Path) -> None:
    cfg = compose_config(
        "evaluate", ["data.preset=tiny", "plots=false", f"logger.tracking_uri={server_url}"], tmp_path / "out"
    )
    returned = evaluate.run(cfg)
    out_dir = Path(cfg.paths.output_dir)
    table = pd.read_csv(out_dir / "results.csv", float_precision="round_trip")

    experiment = json.loads(_get(server_url, "/api/2.0/mlflow/experiments/get-by-name",
                                 experiment_name="combomap-evaluate"))["experiment"]  # fmt: skip
    assert {t["key"]: t["value"] for t in experiment["tags"]}[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    runs = _post(server_url, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert len(runs) == 1
    run = runs[0]
    run_id = run["info"]["run_id"]
    assert (run["info"]["run_name"], run["info"]["status"]) == ("evaluate-tiny-s0", "FINISHED")
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert (tags["job"], tags["n_combos"], tags["n_genes"]) == ("evaluate", "12", "300")

    # every finite metric of the table on disk, under its "<model>/<metric>" name, with the same value
    logged = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    finite = {key: value for key, value in table_metrics(table).items() if value == value}
    finite["average_sign_acc"] = finite["average/sign_acc"]  # the headline column of the runs table
    assert logged == finite
    assert logged == {key: value for key, value in returned.items() if value == value}
    assert {"average/sign_acc", "additive/l2_top20", "interaction/spearman_median"} <= set(logged)
    assert len(finite) < len(table_metrics(table))  # the no_change baseline's NaN correlations are not logged

    # the resolved config, once as params (the run's own paths as tags) and once as config.yaml
    resolved = OmegaConf.to_container(cfg, resolve=True)
    paths = {key: value for key, value in flatten(resolved).items() if key.startswith("paths.")}
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {
        key: value for key, value in flatten(resolved).items() if key not in paths}
    assert paths and {key: tags[key] for key in paths} == paths
    assert run_config(run_id, tracking_uri=server_url) == resolved

    # artifacts through the server's proxy are the job's files byte for byte; the table reads back exactly
    listed = json.loads(_get(server_url, "/api/2.0/mlflow/artifacts/list", run_id=run_id))["files"]
    assert sorted(f["path"] for f in listed) == ["accuracy_by_effect.csv", "config.yaml", "results.csv", "results.md"]
    for name in ("results.csv", "results.md", "accuracy_by_effect.csv"):
        proxied = f"/api/2.0/mlflow-artifacts/artifacts/{experiment['experiment_id']}/{run_id}/artifacts/{name}"
        served = _get(server_url, proxied)
        assert served == (out_dir / name).read_bytes(), name
    pd.testing.assert_frame_equal(artifact_table(run_id, "results.csv", tracking_uri=server_url), table)

    found = load_runs("combomap-evaluate", tracking_uri=server_url)
    assert list(found["run_id"]) == [run_id]
    assert found["metrics.average/sign_acc"].iloc[0] == table.set_index("model").loc["average", "sign_acc"]
