"""A run's final status survives a moment of SQLite contention: ending it is retried while the store is locked."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from combomap import tracking


def _flaky(failures: list[str], calls: list[str]):
    def end_run(status: str) -> None:
        calls.append(status)
        if failures:
            raise MlflowException(failures.pop(0))
    return end_run


def test_ending_a_run_is_retried_while_the_store_is_locked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(tracking.mlflow, "end_run", _flaky(["(sqlite3.OperationalError) database is locked"] * 2, calls))
    monkeypatch.setattr(tracking.time, "sleep", lambda seconds: None)
    tracking._end_run("KILLED")
    assert calls == ["KILLED"] * 3


def test_other_errors_and_a_lock_that_stays_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(tracking.mlflow, "end_run", _flaky(["no such run"], calls))
    with pytest.raises(MlflowException, match="no such run"):
        tracking._end_run("FAILED")
    assert calls == ["FAILED"]
    calls.clear()
    monkeypatch.setattr(tracking.mlflow, "end_run", _flaky(["database is locked"] * 9, calls))
    monkeypatch.setattr(tracking.time, "sleep", lambda seconds: None)
    with pytest.raises(MlflowException, match="database is locked"):
        tracking._end_run("FINISHED", attempts=3)
    assert calls == ["FINISHED"] * 3
