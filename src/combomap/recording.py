"""What domain code reports for a job to record: metrics, tags, files, and one child record per sub-fit.

Domain code (training, the stacking pipeline) never calls MLflow: it receives a Recorder. Jobs pass an MLflow-backed
one (combomap.jobs.recording.MlflowRecorder); tests, notebooks and benchmarks get this base class, which records
nothing, so the same code runs with or without a tracking store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


class Recorder:
    """Records nothing; the interface every recorder implements."""

    run_id: str | None = None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Finite scalar metrics (NaN is skipped)."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """String tags of the current record."""

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """One file, optionally under a folder of the record."""

    def log_artifacts(self, directory: Path | str, artifact_path: str | None = None) -> None:
        """Every file of a folder."""

    @contextlib.contextmanager
    def child(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator["Recorder"]:
        """A record nested in this one (e.g. one per fold net), ended when the block ends."""
        yield Recorder()

    def lightning_logger(self) -> Any:
        """The Lightning logger writing per-epoch metrics into this record (False: none)."""
        return False
