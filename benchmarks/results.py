"""The one place the figures quoted in README.md and docs/ come from: benchmarks/results/<bench>.json.

Every benchmark ends with `record(bench, figures, command)`; the docs quote a figure next to its command with a
marker `<!-- fig:<bench>.<key> -->` right before the number, and tests/test_figures.py checks that each tagged
number equals the file's value (to the digits shown), so a re-measurement that changes a figure fails until the
docs are updated. Each file also says what machine measured it and how busy it was.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What measured the figures: processor, cores this process may use, load, Python."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    processor = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"processor": processor, "cores": cores, "load_1min": load, "platform": platform.platform(),
            "python": sys.version.split()[0]}


def record(bench: str, figures: dict[str, Any], command: str, note: str = "") -> Path:
    """Write benchmarks/results/<bench>.json (replacing the previous measurement) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{bench}.json"
    payload = {"bench": bench, "command": command, "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": machine(), "note": note, "figures": figures}
    path.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
    print(f"figures written to {path}")
    return path


def load(bench: str) -> dict[str, Any]:
    return json.loads((RESULTS_DIR / f"{bench}.json").read_text())
