"""experiments/ui_screenshots.py: which pages it captures on a store (newest finished stack runs, the registered
model), the DevTools messages it sends, and, where Chromium is installed, its driver on a local page (the
"Show diff only" clicks, a column drag, a PNG back)."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import mlflow
import pytest

from combomap.tracking import ensure_experiment, runs_view
from tests import REPO_ROOT

spec = importlib.util.spec_from_file_location("ui_screenshots", REPO_ROOT / "experiments" / "ui_screenshots.py")
shots = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = shots  # its dataclass looks its module up
spec.loader.exec_module(shots)


def _query(fragment: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(fragment.removeprefix("#")).query)


def test_page_list_compares_the_two_runs_and_shows_the_registered_model() -> None:
    targets = {p.name: p for p in shots.page_list("7", [("new", "stack-a"), ("old", "stack-b")], "combo final", "3")}
    assert list(targets) == ["home", "experiment", "runs", "run", "artifacts", "models", "compare",
                             "registered_model", "model_version"]
    assert targets["runs"].fragment == runs_view("7")
    assert targets["run"].fragment.startswith("#/experiments/7/runs/new?")
    query = _query(unquote(targets["compare"].fragment))
    assert json.loads(query["runs"][0]) == ["new", "old"] and json.loads(query["experiments"][0]) == ["7"]
    assert targets["compare"].action == shots.SHOW_DIFF_ONLY
    assert targets["registered_model"].fragment.startswith("#/models/combo%20final?")
    assert targets["model_version"].fragment.startswith("#/models/combo%20final/versions/3?")
    assert all("workflowType=machine_learning" in p.fragment for name, p in targets.items() if name != "home")


def test_page_list_without_a_second_run_or_a_model() -> None:
    names = [p.name for p in shots.page_list("1", [("only", "stack-a")])]
    assert names == ["home", "experiment", "runs", "run", "artifacts", "models"]


def test_pages_on_a_store_pick_newest_finished_stack_runs_and_newest_version(mlflow_store: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_store / 'mlflow.db'}")  # an earlier test may have set another one
    experiment_id = ensure_experiment("combomap-stack")
    client = mlflow.MlflowClient()
    ids = {}
    for start, (name, job, status) in enumerate((("old", "stack", "FINISHED"), ("mid", "stack", "FINISHED"),
                                                  ("train", "train", "FINISHED"), ("new", "stack", "FINISHED"),
                                                  ("failed", "stack", "FAILED"))):
        run = client.create_run(experiment_id, start_time=1_000 + start, run_name=name, tags={"job": job})
        client.set_terminated(run.info.run_id, status=status)
        ids[name] = run.info.run_id
    client.create_registered_model("combomap-final")
    for _ in range(2):
        client.create_model_version("combomap-final", source=str(mlflow_store / "artifacts"), run_id=ids["new"])
    targets = {p.name: p for p in shots.pages(mlflow_store, "combomap-stack")}
    assert json.loads(_query(unquote(targets["compare"].fragment))["runs"][0]) == [ids["new"], ids["mid"]]
    assert targets["model_version"].fragment.startswith("#/models/combomap-final/versions/2?")
    with pytest.raises(SystemExit, match="no experiment 'other'"):
        shots.pages(mlflow_store, "other")
    mlflow.set_tracking_uri(None)


def test_devtools_messages() -> None:
    assert json.loads(shots.cdp_message(3, "Page.navigate", {"url": "http://127.0.0.1:1/"})) == {
        "id": 3, "method": "Page.navigate", "params": {"url": "http://127.0.0.1:1/"}}
    assert json.loads(shots.cdp_message(4, "Page.enable")) == {"id": 4, "method": "Page.enable", "params": {}}
    assert shots.drag_steps(100.0, 80) == [("mousePressed", 100.0), ("mouseMoved", 140.0), ("mouseMoved", 180.0),
                                           ("mouseReleased", 180.0)]
    assert shots.mouse_event("mousePressed", 1, 2)["buttons"] == 1
    assert shots.mouse_event("mouseReleased", 1, 2)["buttons"] == 0
    assert shots.viewport(2000, 900) == {"width": 2000, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    assert shots.parse_size("1500,1300") == (1500, 1300)
    with pytest.raises(SystemExit, match="WIDTH,HEIGHT"):
        shots.parse_size("1500x1300")


# Two switches like MLflow's (one already on), a table header like ag-grid's, resized by a drag on its right edge.
LOCAL_PAGE = """<html><body style="margin:0">
<button role="switch" aria-label="Show diff only" aria-checked="false"
  onclick="this.setAttribute('aria-checked', 'true')">params</button>
<button role="switch" aria-label="Show diff only" aria-checked="true"
  onclick="this.setAttribute('aria-checked', 'false')">metrics</button>
<div class="ag-header-cell" col-id="attributes.`Run Name`" style="position:absolute; top:100px; left:0; width:200px;
  height:30px; background:#ddd">Run Name</div>
<script>
  let from = null; const h = document.querySelector('.ag-header-cell');
  document.addEventListener('mousedown', e => { from = e.clientX; });
  document.addEventListener('mouseup', e => { h.style.width = (200 + e.clientX - from) + 'px'; });
</script></body></html>"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs a Chromium binary")
def test_devtools_driver_on_a_local_page(tmp_path: Path) -> None:
    from tornado.websocket import websocket_connect

    page_file = tmp_path / "page.html"
    page_file.write_text(LOCAL_PAGE)

    async def drive(websocket_url: str) -> tuple[list, float, bytes]:
        connection = await websocket_connect(websocket_url, max_message_size=shots.MAX_MESSAGE_BYTES)
        try:
            tools = shots.DevTools(connection)
            await tools.send("Page.enable")
            await tools.send("Emulation.setDeviceMetricsOverride", shots.viewport(400, 300))
            await tools.send("Page.navigate", {"url": page_file.as_uri()})
            assert await tools.wait_for(shots.has_text("Run Name"), 20)
            clicked = await tools.evaluate(shots.SHOW_DIFF_ONLY)
            states = await tools.evaluate(
                "[...document.querySelectorAll('[role=switch]')].map(e => e.getAttribute('aria-checked'))")
            assert clicked == 1
            edge = await tools.evaluate(shots.right_edge(shots.RUNS_WIDEN[0][0]))
            await tools.drag(tuple(edge), 80)
            width = await tools.evaluate("document.querySelector('.ag-header-cell').getBoundingClientRect().width")
            png = base64.b64decode((await tools.send("Page.captureScreenshot", {"format": "png"}))["data"])
            return states, width, png
        finally:
            connection.close()

    with tempfile.TemporaryDirectory(prefix="ui-shots-test-") as profile:
        browser, websocket_url = shots.start_browser("chromium", shots.free_port(), Path(profile))
        try:
            states, width, png = asyncio.run(drive(websocket_url))
        finally:
            shots.stop(browser)
    assert states == ["true", "true"]
    assert width == pytest.approx(280, abs=3)
    assert png.startswith(b"\x89PNG")
