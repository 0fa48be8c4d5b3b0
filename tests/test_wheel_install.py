"""A wheel built from the checkout works without the checkout: configs ship inside it, jobs write under the
working directory (./outputs, ./mlruns), nothing is written into the installed package.

Offline and fast: the wheel is built by setuptools' PEP 517 backend from a copy of the sources, installed with
--no-deps into a new venv, and the new venv sees the running environment's site-packages for the dependencies
through a plain .pth line. Site-packages added that way is not a site dir, so its .pth files (the editable
install's pointer to src/) are not processed: only the wheel provides `combomap`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import mlflow
import pytest

from combomap.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from tests import REPO_ROOT

pytestmark = pytest.mark.wheel

BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "conf", "src")
COMMAND_TIMEOUT_S = 240


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path / "dist"
    build = f"from setuptools import build_meta; print(build_meta.build_wheel({str(dist)!r}))"
    done = subprocess.run([sys.executable, "-c", build], cwd=source, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return dist / done.stdout.strip().splitlines()[-1]


def _venv_with_wheel(tmp_path: Path, wheel: Path) -> Path:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_combomap_test_deps.pth").write_text("".join(f"{path}\n" for path in sorted(deps)))
    return env_dir


def _clean_env() -> dict[str, str]:
    """No route back to the checkout or the tests' store."""
    dropped = {"PYTHONPATH", "COMBOMAP_ROOT", "MLFLOW_TRACKING_URI", "COMBOMAP_MLFLOW_URI", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in dropped}


def _run(command: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=COMMAND_TIMEOUT_S)
    assert process.returncode == 0, f"{process.args} exited {process.returncode}:\n{output[-4000:]}"
    return output


def test_wheel_runs_from_an_empty_directory(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    env_dir = _venv_with_wheel(tmp_path, wheel)
    bin_dir = env_dir / "bin"
    work = tmp_path / "work"
    work.mkdir()

    where = _finish(_run([str(bin_dir / "python"), "-c",
                          "import sys, combomap, combomap.paths as p; print(combomap.__file__); print(p.CONF_DIR); "
                          "print(*sys.path, sep='\\n')"], work)).splitlines()
    package_file, conf_dir, search_path = Path(where[0]), Path(where[1]), where[2:]
    assert env_dir in package_file.parents  # the wheel's copy, not the checkout's src/
    assert conf_dir == package_file.parent / "conf" and (conf_dir / "stack.yaml").is_file()
    assert not [p for p in search_path if p and Path(p).resolve() == (REPO_ROOT / "src").resolve()]

    _finish(_run([str(bin_dir / "combomap-data"), "data.preset=tiny", "out=data", "format=npy"], work))
    assert (work / "data" / "y.npy").is_file()
    genes = (work / "data" / "genes.txt").read_text().split()[:40]
    (work / "signature.csv").write_text("".join(f"{gene},{(i % 3 - 1) * 1.5}\n" for i, gene in enumerate(genes)))

    # both open the new ./mlruns store at once: one creates it, the other waits on its lock
    evaluate = _run([str(bin_dir / "combomap-evaluate"), "data=npy", "data.dir=data", "plots=false"], work)
    query = _run([str(bin_dir / "combomap-query"), "library.preset=tiny", "library.n_drugs=20",
                  "signature=signature.csv", "pairs.top_k=10"], work)
    _finish(evaluate)
    _finish(query)

    assert sorted(p.name for p in work.iterdir()) == ["data", "mlruns", "outputs", "signature.csv"]
    assert list((work / "outputs" / "evaluate" / "runs").glob("*/results.csv"))
    assert list((work / "outputs" / "query" / "runs").glob("*/drugs.csv"))
    client = mlflow.MlflowClient(f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    for name in ("combomap-evaluate", "combomap-query"):
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None and experiment.tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND
        runs = client.search_runs([experiment.experiment_id])
        assert [r.info.status for r in runs] == ["FINISHED"]
        assert Path(runs[0].info.artifact_uri.removeprefix("file://")).is_relative_to(work / "mlruns" / "artifacts")
    assert not list(package_file.parent.rglob("mlruns")) and not list(package_file.parent.rglob("outputs"))
