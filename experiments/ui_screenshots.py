"""Screenshots of the MLflow UI on a combomap store, to check docs/sweeps.md's walkthrough (Looking at runs) against what MLflow shows.

    python experiments/ui_screenshots.py                            # ./mlruns -> docs/img/mlflow_*.png
    python experiments/ui_screenshots.py --store /tmp/run/mlruns --out /tmp/shots --only runs compare

Starts `mlflow ui` on the store (the command in README and docs/sweeps.md) on a free loopback port, finds the two
newest finished combomap-stack runs and the newest registered model, and drives headless Chromium through the
DevTools protocol (on loopback too) to capture: the home page (GenAI, as a first visit opens), the experiment, the
runs table of combomap's shared view (the headline metric columns, widened so names and overrides show), the newest
run's overview and artifacts (ablation.csv previewed), the experiment's logged models, the two runs compared with
every "Show diff only" switched on, and the registered model with its newest version. Both servers are stopped
(process groups) whatever happens. Needs a Chromium binary (`apt-get install chromium`); the project does not.
PNGs are reduced to a 64-colour palette when Pillow is present (a page is then well under 100 KB).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import mlflow

from combomap.tracking import runs_view

READY_TIMEOUT_S = 90.0
PAGE_TIMEOUT_S = 30.0  # until a page shows what it should
SETTLE_S = 2.0  # after that (and after a click), for the rest to render
COMMAND_TIMEOUT_S = 60.0
MAX_MESSAGE_BYTES = 64 * 2**20  # a screenshot comes back base64-encoded in one message
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# MLflow 3.x's UI has a GenAI / Model training toggle (top left; remembered by the browser, GenAI on a first
# visit); this URL parameter selects Model training, where experiments open on their runs.
WORKFLOW_PARAM = "workflowType=machine_learning"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ui(store: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
               "--default-artifact-root", str(store / "artifacts"), "-h", "127.0.0.1", "-p", str(port), "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mlflow ui exited with {server.returncode}:\n{server.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    stop(server)
    raise SystemExit(f"mlflow ui not ready after {READY_TIMEOUT_S} s")


def stop(process: subprocess.Popen) -> None:
    """A server or browser and its children (started in its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@dataclass(frozen=True)
class Page:
    """One screenshot: where to go, what must be on the page before it is taken (a JS expression), what to click
    first (JS), which table columns to widen by dragging their header's edge (`widen`: CSS selector of a header cell,
    pixels) and the window size when not the default."""

    name: str
    fragment: str
    ready: str = "true"
    action: str | None = None
    widen: tuple[tuple[str, int], ...] = ()
    size: tuple[int, int] | None = None


def has_text(text: str) -> str:
    """JS: the page's visible text contains `text` (MLflow renders after the load event)."""
    return f"document.body !== null && document.body.innerText.includes({json.dumps(text)})"


def click_text(text: str) -> str:
    """JS: click the innermost element whose whole visible text is `text`; how many were clicked (0 or 1)."""
    return f"""(() => {{
  const hits = [...document.querySelectorAll('body *')].filter(e => (e.innerText || '').trim() === {json.dumps(text)});
  if (hits.length) hits[hits.length - 1].click();
  return hits.length ? 1 : 0;
}})()"""


# MLflow 3's Assistant side panel takes a third of the window on every page: its "Close" button is the one next to
# "New Chat" (the browser then remembers it closed).
CLOSE_ASSISTANT = """(() => {
  const chat = [...document.querySelectorAll('button[aria-label="New Chat"]')];
  const close = chat.flatMap(b => [...b.parentElement.querySelectorAll('button[aria-label="Close"]')]);
  close.forEach(b => b.click());
  return close.length;
})()"""
# The comparison: its plots folded away, every "Show diff only" switch (parameters, metrics, tags) on.
SHOW_DIFF_ONLY = """(() => {
  const plots = [...document.querySelectorAll('[role="button"]')].filter(e => e.innerText.trim() === 'Visualizations');
  plots.forEach(e => e.click());
  const switches = [...document.querySelectorAll('[aria-label*="Show diff only"]')]
    .filter(e => e.getAttribute('aria-checked') !== 'true');
  switches.forEach(e => e.click());
  return plots.length + switches.length;
})()"""
# The runs table's columns that MLflow cuts short: the run name, the headline metrics' digits, the overrides.
RUNS_WIDEN = tuple((f'.ag-header-cell[col-id="{column}"]', pixels) for column, pixels in (
    ("attributes.`Run Name`", 80), ("metrics.`final_sign_acc`", 40), ("metrics.`average_sign_acc`", 40),
    ("tags.`overrides`", 420)))


def compare_fragment(experiment_id: str, run_ids: list[str]) -> str:
    """MLflow's comparison page of runs (its URL holds the ids as JSON lists)."""
    runs, experiments = (quote(json.dumps(ids, separators=(",", ":"))) for ids in (run_ids, [experiment_id]))
    return f"#/compare-runs?runs={runs}&experiments={experiments}&{WORKFLOW_PARAM}"


def page_list(experiment_id: str, runs: list[tuple[str, str]], model: str | None = None,
              version: str | None = None) -> list[Page]:
    """The pages docs/sweeps.md walks through: `runs` are the newest finished stack runs (id, name), newest first;
    the comparison needs two, the registry pages a registered `model` (and its newest `version`)."""
    base, (run, name) = f"#/experiments/{experiment_id}", runs[0]
    training = f"?{WORKFLOW_PARAM}"
    targets = [
        Page("home", "#/", has_text("Experiments")),  # as a first visit shows it: the GenAI side of the toggle
        Page("experiment", f"{base}{training}", has_text(name)),
        Page("runs", runs_view(experiment_id), has_text("final_sign_acc"), widen=RUNS_WIDEN, size=(2200, 900)),
        Page("run", f"{base}/runs/{run}{training}", has_text(name)),
        Page("artifacts", f"{base}/runs/{run}/artifacts{training}", has_text("ablation.csv"),
             click_text("ablation.csv")),
        Page("models", f"{base}/models{training}", has_text("model")),
    ]
    if len(runs) >= 2:
        targets.append(Page("compare", compare_fragment(experiment_id, [run_id for run_id, _ in runs[:2]]),
                            has_text("Show diff only"), SHOW_DIFF_ONLY, size=(1500, 1300)))
    if model is not None:
        targets.append(Page("registered_model", f"#/models/{quote(model)}{training}", has_text("Version")))
        if version is not None:
            targets.append(Page("model_version", f"#/models/{quote(model)}/versions/{version}{training}",
                                has_text("final_sign_acc")))
    return targets


def pages(store: Path, experiment: str, model: str | None = None) -> list[Page]:
    """page_list on a store: the two newest finished combomap-stack runs of `experiment` and the registered
    model `model` (default: the most recently updated one, if any)."""
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} in {store} (run combomap-stack first)")
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED' and tags.job = 'stack'",
                              order_by=["attributes.start_time DESC"], max_results=2)
    if not runs:
        raise SystemExit(f"no finished combomap-stack run in {experiment!r}")
    if model is None:
        registered = client.search_registered_models(order_by=["last_updated_timestamp DESC"], max_results=1)
        model = registered[0].name if registered else None
    versions = client.search_model_versions(f"name = '{model}'", order_by=["version_number DESC"],
                                            max_results=1) if model is not None else []
    return page_list(found.experiment_id, [(r.info.run_id, r.info.run_name) for r in runs], model,
                     versions[0].version if versions else None)


def cdp_message(message_id: int, method: str, params: dict | None = None) -> str:
    """A DevTools protocol command as sent on the page's websocket."""
    return json.dumps({"id": message_id, "method": method, "params": params or {}})


def mouse_event(kind: str, x: float, y: float) -> dict:
    """Input.dispatchMouseEvent's parameters, the left button held from press to release."""
    return {"type": kind, "x": x, "y": y, "button": "left", "buttons": 0 if kind == "mouseReleased" else 1,
            "clickCount": 1}


def drag_steps(x: float, dx: float) -> list[tuple[str, float]]:
    """(event type, x) of a drag by dx: press, two moves (ag-grid resizes on moves), release."""
    return [("mousePressed", x), ("mouseMoved", x + dx / 2), ("mouseMoved", x + dx), ("mouseReleased", x + dx)]


def right_edge(selector: str) -> str:
    """JS: [x, y] just inside the right edge of the first element matching `selector` (where a table header's
    resize handle is), or null."""
    return f"""(() => {{
  const e = document.querySelector({json.dumps(selector)});
  if (!e) return null;
  const r = e.getBoundingClientRect();
  return [r.right - 2, r.top + r.height / 2];
}})()"""


def viewport(width: int, height: int) -> dict:
    return {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}


def parse_size(size: str) -> tuple[int, int]:
    width, _, height = size.partition(",")
    try:
        return int(width), int(height)
    except ValueError:
        raise SystemExit(f"--size: expected WIDTH,HEIGHT in pixels, got {size!r}") from None


def start_browser(browser: str, port: int, profile: Path) -> tuple[subprocess.Popen, str]:
    """Headless Chromium with its DevTools endpoint on loopback; (process, the blank page's websocket URL)."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
               "about:blank"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{browser} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as answer:
                targets = json.load(answer)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            time.sleep(0.3)
            continue
        page = next((t for t in targets if t.get("type") == "page"), None)
        if page is not None:
            return process, page["webSocketDebuggerUrl"]
        time.sleep(0.3)
    stop(process)
    raise SystemExit(f"{browser}: no DevTools page after {READY_TIMEOUT_S} s")


class DevTools:
    """Commands over one page's DevTools websocket (events are read and dropped)."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.next_id = 0

    async def send(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        await self.connection.write_message(cdp_message(self.next_id, method, params))
        while True:
            raw = await asyncio.wait_for(self.connection.read_message(), COMMAND_TIMEOUT_S)
            if raw is None:
                raise SystemExit(f"DevTools connection closed during {method}")
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise SystemExit(f"DevTools {method}: {answer['error']}")
                return answer.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.evaluate(expression):
                return True
            await asyncio.sleep(0.5)
        return False

    async def drag(self, start: tuple[float, float], dx: float) -> None:
        """A mouse drag to the right (a column header's resize edge)."""
        x, y = start
        for kind, at in drag_steps(x, dx):
            await self.send("Input.dispatchMouseEvent", mouse_event(kind, at, y))

    async def capture(self, url: str, page: Page, size: tuple[int, int]) -> bytes:
        await self.send("Emulation.setDeviceMetricsOverride", viewport(*(page.size or size)))
        await self.send("Page.navigate", {"url": url})
        if not await self.wait_for(page.ready, PAGE_TIMEOUT_S):
            print(f"warning: {page.name}: not ready after {PAGE_TIMEOUT_S} s ({page.ready})", file=sys.stderr)
        await asyncio.sleep(SETTLE_S)
        if await self.evaluate(CLOSE_ASSISTANT):
            await asyncio.sleep(SETTLE_S)
        if page.action is not None:
            if not await self.evaluate(page.action):
                print(f"warning: {page.name}: nothing to click", file=sys.stderr)
            await asyncio.sleep(SETTLE_S)
        for selector, pixels in page.widen:
            edge = await self.evaluate(right_edge(selector))
            if edge is None:
                print(f"warning: {page.name}: no {selector}", file=sys.stderr)
                continue
            await self.drag(tuple(edge), pixels)
            await asyncio.sleep(SETTLE_S / 4)
        if page.widen:  # the mouse out of the table, with the tooltip it opened
            await self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 0, "y": 0})
            await asyncio.sleep(SETTLE_S)
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(shot["data"])


async def capture_all(websocket_url: str, server: str, targets: list[Page], size: tuple[int, int], out: Path) -> None:
    from tornado.websocket import websocket_connect  # tornado comes with dask's distributed

    connection = await websocket_connect(websocket_url, max_message_size=MAX_MESSAGE_BYTES)
    try:
        tools = DevTools(connection)
        await tools.send("Page.enable")
        for page in targets:
            path = out / f"mlflow_{page.name}.png"
            path.write_bytes(await tools.capture(f"{server}/{page.fragment}", page, size))
            shrink(path)
            print(f"{path} ({path.stat().st_size // 1024} KB): {page.fragment}")
    finally:
        connection.close()


def shrink(path: Path, colors: int = 64) -> None:
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=colors)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="mlruns", help="the store folder (mlflow.db + artifacts/); default ./mlruns")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img"))
    parser.add_argument("--experiment", default="combomap-stack")
    parser.add_argument("--model", default=None, help="registered model to show (default: the newest)")
    parser.add_argument("--browser", default=None, help=f"Chromium binary (default: the first of {BROWSERS} found)")
    parser.add_argument("--size", default="2000,1100", help="window size WIDTH,HEIGHT")
    parser.add_argument("--only", nargs="*", default=None, help="page names to capture (default: all)")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    browser = args.browser or next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("no Chromium found: apt-get install chromium (or pass --browser)")
    store, out = Path(args.store).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = [p for p in pages(store, args.experiment, args.model) if args.only is None or p.name in args.only]
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="ui-shots-") as profile:
        try:
            port = free_port()
            processes.append(start_ui(store, port))
            chromium, websocket_url = start_browser(browser, free_port(), Path(profile))
            processes.append(chromium)
            asyncio.run(capture_all(websocket_url, f"http://127.0.0.1:{port}", targets, size, out))
        finally:
            for process in reversed(processes):
                stop(process)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
