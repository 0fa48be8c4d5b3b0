"""Where combomap reads its configs and where it writes, for a checkout and for an installed wheel alike.

Configs: the repository's top-level conf/ is the one copy. A checkout (editable install, `PYTHONPATH=src`)
reads it in place; a wheel carries a copy as package data, combomap/conf (setup.py copies it at build
time). Every entry point and test composes from CONF_DIR.

Outputs: relative to the working directory, never to the package (an installed package must not write
into site-packages): Hydra run dirs under ./outputs, the MLflow store in ./mlruns unless
MLFLOW_TRACKING_URI says otherwise. COMBOMAP_ROOT, when set and not empty, moves both (conf/paths/default.yaml).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "COMBOMAP_ROOT"  # optional: where outputs/ and mlruns/ go instead of the working directory
PACKAGE_DIR = Path(__file__).resolve().parent
CONF_MARKER = "stack.yaml"  # the main job's config: a folder holding it is a combomap conf/


def _find_conf_dir() -> Path:
    """The packaged copy when this is an installed wheel, else conf/ of the checkout this package sits in.

    With neither (a broken install), the packaged path: Hydra's "config directory not found" then names it."""
    packaged, checkout = PACKAGE_DIR / "conf", PACKAGE_DIR.parents[1] / "conf"
    return checkout if not (packaged / CONF_MARKER).is_file() and (checkout / CONF_MARKER).is_file() else packaged


CONF_DIR = _find_conf_dir()


def root_setting() -> str:
    """$COMBOMAP_ROOT, or "." (the working directory) when it is unset, empty or blank: `COMBOMAP_ROOT=` must not
    send outputs/ and mlruns/ to the filesystem's root. conf/paths/default.yaml reads it as ${combomap.root:}."""
    value = os.environ.get(ROOT_ENV, "")
    return value if value.strip() else "."


def default_store_dir() -> Path:
    """<working directory or $COMBOMAP_ROOT>/mlruns: the local MLflow store when MLFLOW_TRACKING_URI is not set
    (the same place as logger.store_dir of the configs). Read at call time: the working directory may change."""
    root = root_setting()
    return (Path.cwd() if root == "." else Path(root)) / "mlruns"


def file_label(path: str | os.PathLike) -> str:
    """A file's or folder's name without its extensions (korkut2015_rppa.csv.gz -> korkut2015_rppa): how run names and
    MLflow inputs name the data they read."""
    return Path(str(path)).name.split(".")[0]
