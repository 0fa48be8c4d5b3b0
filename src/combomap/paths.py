"""Where the project lives: configs, the local MLflow store, reports."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("COMBOMAP_ROOT", Path(__file__).resolve().parents[2]))
CONF_DIR = PROJECT_ROOT / "conf"
MLRUNS_DIR = PROJECT_ROOT / "mlruns"
REPORTS_DIR = PROJECT_ROOT / "experiments" / "reports"

# Configs resolve ${oc.env:COMBOMAP_ROOT}; set it once for every entry point and test.
os.environ.setdefault("COMBOMAP_ROOT", str(PROJECT_ROOT))
