"""COMBOMAP_ROOT set but empty (or blank) is the working directory, as if unset, never the filesystem's root."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from combomap.config.registry import register
from combomap.paths import CONF_DIR, ROOT_ENV, default_store_dir


def _where(job: str) -> tuple[str, str, str]:
    """(paths.root_dir, logger.store_dir, hydra.run.dir) of the composed job config."""
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=job, return_hydra_config=True)
        return str(cfg.paths.root_dir), str(cfg.logger.store_dir), str(cfg.hydra.run.dir)
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_root_is_the_working_directory(value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ROOT_ENV, value)
    monkeypatch.chdir(tmp_path)
    root, store, run_dir = _where("train")
    assert (root, store) == (".", "./mlruns")
    assert run_dir.startswith("./outputs/train/runs/")
    assert default_store_dir() == tmp_path / "mlruns"


def test_a_root_moves_outputs_and_the_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "elsewhere"))
    root, store, run_dir = _where("evaluate")
    assert (root, store) == (str(tmp_path / "elsewhere"), f"{tmp_path / 'elsewhere'}/mlruns")
    assert run_dir.startswith(f"{tmp_path / 'elsewhere'}/outputs/evaluate/runs/")
    assert default_store_dir() == tmp_path / "elsewhere" / "mlruns"


def test_unset_is_the_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert _where("query")[:2] == (".", "./mlruns")
    assert default_store_dir() == tmp_path / "mlruns"
