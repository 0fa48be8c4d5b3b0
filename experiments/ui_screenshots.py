"""Screenshots of the MLflow UI on a combomap store, to check docs/sweeps.md's walkthrough (Looking at runs) against what MLflow shows.

    python experiments/ui_screenshots.py                            # ./mlruns -> docs/img/mlflow_*.png
    python experiments/ui_screenshots.py --store /tmp/run/mlruns --out /tmp/shots --browser chromium

Starts `mlflow ui` on the store (the command in README and docs/sweeps.md) on a free loopback port, finds the newest
finished combomap-stack run, and has headless Chromium capture: the home page, the experiment (which
should open on its runs table: combomap types its experiments as model training), the run's overview,
its artifacts (the report files, ablation.csv previewed as a table) and the experiment's logged models (the pyfunc
model "model"). Needs a Chromium binary (`apt-get install chromium`); the project itself does not.
PNGs are reduced to a 64-colour palette when Pillow is present (a page is then well under 200 KB).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow

from combomap.tracking import runs_view

READY_TIMEOUT_S = 90.0
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


def stop(server: subprocess.Popen) -> None:
    """The UI and its workers (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def pages(store: Path, experiment: str) -> dict[str, str]:
    """name -> URL fragment of the pages docs/sweeps.md walks through."""
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} in {store} (run combomap-stack first)")
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED' and tags.job = 'stack'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SystemExit(f"no finished combomap-stack run in {experiment!r}")
    base, run = f"#/experiments/{found.experiment_id}", runs[0].info.run_id
    training = f"?{WORKFLOW_PARAM}"
    return {
        "home": "#/",  # as a first visit shows it: the GenAI side of the toggle
        "experiment": f"{base}{training}",
        "runs": runs_view(found.experiment_id),
        "run": f"{base}/runs/{run}{training}",
        "artifacts": f"{base}/runs/{run}/artifacts{training}",
        "models": f"{base}/models{training}",
    }


def screenshot(browser: str, url: str, path: Path, size: str) -> None:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={size}",
               "--virtual-time-budget=20000", f"--screenshot={path}", url]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


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
    parser.add_argument("--browser", default=None, help=f"Chromium binary (default: the first of {BROWSERS} found)")
    parser.add_argument("--size", default="1400,900", help="window size WIDTH,HEIGHT")
    args = parser.parse_args(argv)
    browser = args.browser or next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("no Chromium found: apt-get install chromium (or pass --browser)")
    store, out = Path(args.store).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = pages(store, args.experiment)
    port = free_port()
    server = start_ui(store, port)
    try:
        for name, fragment in targets.items():
            path = out / f"mlflow_{name}.png"
            screenshot(browser, f"http://127.0.0.1:{port}/{fragment}", path, args.size)
            shrink(path)
            print(f"{path} ({path.stat().st_size // 1024} KB): {fragment}")
    finally:
        stop(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
