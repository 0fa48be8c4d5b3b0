"""combomap.progress: bars on a terminal, plain log lines elsewhere, nothing with progress=false (real tiny jobs)."""

from __future__ import annotations

import io
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import combomap.jobs.query as query_job
from combomap import progress
from combomap.data.library_io import write_library_npy
from combomap.jobs import stack as stack_job
from combomap.models.latent import select_basis
from tests.models.test_latent import _dataset_with_programs
from tests.query.helpers import small_library

TINY_STACK = [
    "data.preset=tiny",
    "model.hidden_sizes=[8]",
    "trainer.max_epochs=2",
    "stacker.max_depth=3",
    "stacker.n_threads=1",
    "stacking.cv.n_folds=3",
    "stacking.plots=false",
    "stacking.feature_sets={avg:[d1,d2],nets:[net_pred,d1,d2]}",
    "stacking.final=nets",
]
# one task of each kind the stack and the query report: fold-net epochs, stacker CV folds, the final fit, pair blocks
TASKS = ("fold0 epoch", "fold1 epoch", "stacker CV avg fold", "stacker CV nets fold", "final model fit (stack_nets)",
         "scoring the ablation table", "logging the final model", "query pairs")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    progress.configure(True)


def _run_jobs(compose_cfg, tmp_path: Path, setting: str) -> None:
    stack_job.run(compose_cfg("stack", [*TINY_STACK, f"progress={setting}"]))
    library = small_library(n_drugs=12, n_genes=30, seed=21)
    library_dir = write_library_npy(library, tmp_path / "library")
    query = tmp_path / "query.tsv"
    query.write_text("".join(f"{g}\t{v!r}\n" for g, v in zip(library.genes, np.nan_to_num(library.effects[3]).tolist())))
    query_job.run(compose_cfg("query", ["library=npy", f"library.dir={library_dir}", f"signature={query}",
                                        f"progress={setting}"]))


def _progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "combomap.progress"]


@pytest.mark.parametrize("terminal,setting", [(True, "true"), (False, "true"), (True, "false")])
def test_bars_on_a_terminal_log_lines_elsewhere_nothing_when_off(compose_cfg, tmp_path, monkeypatch, caplog,
                                                                  terminal: bool, setting: str) -> None:
    stderr = FakeTerminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("TERM", raising=False)
    caplog.set_level(logging.INFO, logger="combomap.progress")
    _run_jobs(compose_cfg, tmp_path, setting)
    bars, lines = stderr.getvalue(), _progress_lines(caplog)
    if setting == "false":
        assert not lines and not any(task in bars for task in TASKS)
    elif terminal:
        assert not lines
        for task in TASKS:
            assert task in bars, task
        assert "\r" in bars  # redrawn in place
    else:
        assert not any(task in bars for task in TASKS)
        assert "fold0 epoch 2/2, " in "\n".join(lines)
        for task in TASKS:
            assert any(line.startswith(task) for line in lines), (task, lines)
        assert "query pairs 66/66 pairs" in "\n".join(lines)


class ZeroWidthTerminal(FakeTerminal):
    """A terminal that reports 0 columns (as under `script` or some CI runners)."""

    def fileno(self) -> int:
        return 2


def test_a_terminal_without_a_width_gets_log_lines_not_a_zero_width_bar(monkeypatch) -> None:
    monkeypatch.setattr(sys, "stderr", ZeroWidthTerminal())
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setattr("os.get_terminal_size", lambda fd: os.terminal_size((0, 0)))
    assert progress.mode() == progress.LOG
    monkeypatch.setattr("os.get_terminal_size", lambda fd: os.terminal_size((100, 30)))
    assert progress.mode() == progress.BAR
    monkeypatch.setenv("TERM", "dumb")
    assert progress.mode() == progress.LOG
    monkeypatch.delenv("TERM")
    monkeypatch.setattr("os.get_terminal_size", lambda fd: os.terminal_size((0, 0)))
    monkeypatch.setenv("COLUMNS", "80")  # an explicit width wins
    assert progress.mode() == progress.BAR
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or file: log lines whatever COLUMNS says
    assert progress.mode() == progress.LOG


def test_log_lines_are_rate_bounded_but_the_last_step_is_always_reported(monkeypatch, caplog) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    clock = iter([0.0, 1.0, 2.0, 12.5, 13.0, 14.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="combomap.progress")
    progress.configure({"progress": True})
    assert list(progress.track(range(4), "stacker CV avg fold")) == [0, 1, 2, 3]
    # starts at t=0; steps end at 1, 2 (too soon), 12.5 (>= 10 s since the last line), 13 (the last step)
    assert _progress_lines(caplog) == ["stacker CV avg fold 3/4, 12 s, ~4 s left", "stacker CV avg fold 4/4, 13 s"]


def test_basis_selection_reports_each_fit_and_candidate(monkeypatch, caplog) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    caplog.set_level(logging.INFO, logger="combomap.progress")
    data, _ = _dataset_with_programs()
    select_basis(data, ranks=[2, 4], ridges=[1.0, 10.0], n_folds=3)
    lines = [line for line in _progress_lines(caplog) if line.startswith("gene-program basis selection")]
    # 3 fold fits + 2 ranks x 2 ridges scored; the last step is always reported
    assert lines and lines[-1].startswith("gene-program basis selection 7/7 fits")
