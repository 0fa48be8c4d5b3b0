"""Build hook: the wheel carries the top-level conf/ as the package data combomap/conf.

conf/ at the repository root stays the one copy of the configs (editable installs and `PYTHONPATH=src` read
it there); a built wheel has no repository around it, so `build_py` copies conf/**/*.yaml into the built
package and `combomap.paths.CONF_DIR` finds them there. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONF_SOURCE = Path(__file__).resolve().parent / "conf"
CONF_TARGET = Path("combomap") / "conf"  # inside the build's package tree


class BuildPyWithConf(build_py):
    """build_py + the YAML files of conf/ copied to <build_lib>/combomap/conf (not in editable mode)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads conf/ in the checkout
        if not CONF_SOURCE.is_dir():
            raise FileNotFoundError(f"{CONF_SOURCE}: the configs are missing from the source tree")
        target = Path(self.build_lib) / CONF_TARGET
        shutil.rmtree(target, ignore_errors=True)
        for source in sorted(CONF_SOURCE.rglob("*.yaml")):
            destination = target / source.relative_to(CONF_SOURCE)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


setup(cmdclass={"build_py": BuildPyWithConf})
