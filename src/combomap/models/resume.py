"""Checkpoints of a combomap-train run and `resume=<path|auto>`: continue a killed run where it stopped.

A run with the checkpoint callback (conf/train.yaml `callbacks.checkpoint`) keeps Lightning checkpoints in
<run dir>/checkpoints/ (last.ckpt and the best by val/sign_acc) and, beside them, run.json: the MLflow run id,
a hash of the run's config and whether the run finished. `resume` then
- auto: takes the newest unfinished run of this task (outputs/<task>/runs/*) with the same config; none: a new run;
- a run directory or a .ckpt file in its checkpoints/: that run (its config must match, one-line error if not).
The resumed run writes into the original run directory and continues the same MLflow run. Checkpoints are
loaded with weights_only=True (tensors and plain values only) and only from a folder that holds run.json,
i.e. one that combomap-train wrote; a checkpoint is read once before anything is reopened, so a truncated or
corrupt one is a one-line error that leaves the run as it was. A training holds an exclusive lock on its run
directory (checkpoints/.lock) while it runs: a second training or resume of the same directory refuses in one line,
and resume=auto never picks a run that is still training.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from combomap.data.dataset import DataError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
RECORD_NAME = "run.json"
LAST_NAME = "last.ckpt"
LOCK_NAME = ".lock"
# Keys that may differ between a run and its resumption (where files go, how to resume).
NOT_HASHED = ("resume", "paths", "hydra")


class ResumeError(DataError):
    """`resume=` names something that cannot be resumed (not a combomap-train run, another config, finished)."""


@dataclass(frozen=True)
class ResumePoint:
    """Where a killed run left off: its run directory, last checkpoint and MLflow run id."""

    run_dir: Path
    checkpoint: Path
    run_id: str


def config_hash(resolved: dict[str, Any]) -> str:
    """Short hash of the resolved config (a plain dict) without paths and resume settings: equal hashes = the same
    training."""
    kept = {key: value for key, value in resolved.items() if key not in NOT_HASHED}
    if isinstance(kept.get("logger"), dict):  # the store's location follows paths.root_dir
        kept["logger"] = {k: v for k, v in kept["logger"].items() if k not in ("store_dir", "tracking_uri")}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_record(run_dir: Path, run_id: str, cfg_hash: str, finished: bool) -> None:
    """checkpoints/run.json: what `resume` needs to find and trust this run's checkpoints."""
    folder = run_dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = {"run_id": run_id, "config_hash": cfg_hash, "finished": finished}
    staging = folder / f".{RECORD_NAME}.tmp"
    staging.write_text(json.dumps(record, indent=1) + "\n")
    staging.replace(folder / RECORD_NAME)


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None


def _point(folder: Path, record: dict[str, Any], checkpoint: Path | None = None) -> ResumePoint:
    return ResumePoint(run_dir=folder.parent, checkpoint=checkpoint or folder / LAST_NAME, run_id=str(record["run_id"]))


def _auto(runs: Path, cfg_hash: str) -> ResumePoint | None:
    records = sorted(runs.glob(f"*/{CHECKPOINT_DIR}/{RECORD_NAME}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in records:
        record = _read_record(path.parent)
        if record and not record.get("finished") and record.get("config_hash") == cfg_hash and (path.parent / LAST_NAME).is_file():
            holder = lock_holder(path.parent.parent)
            if holder is not None:
                raise ResumeError(f"resume=auto: the unfinished run {path.parent.parent} is still training (process "
                                  f"{holder}); wait for it, or stop it and resume again")
            return _point(path.parent, record)
    return None


def verify_checkpoint(point: ResumePoint, given: str) -> None:
    """Read the checkpoint once (weights_only) before its run is reopened: a truncated or corrupt file is a
    ResumeError here, not a torch traceback after the MLflow run was reopened."""
    try:
        torch.load(point.checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ResumeError(f"resume={given}: checkpoint {point.checkpoint} cannot be read ({detail[:200]}); it is "
                          "truncated or corrupt: delete it and start a new run (the run it belongs to is untouched)") from None


def lock_holder(run_dir: Path) -> str | None:
    """The pid recorded by the training that holds `run_dir`'s lock, None when nobody holds it."""
    path = Path(run_dir) / CHECKPOINT_DIR / LOCK_NAME
    if not path.is_file():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "unknown"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` exclusively while a training writes into it (released by the OS if the process dies)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise ResumeError(f"{run_dir} is in use by another training (process {handle.read().strip() or 'unknown'}); "
                              "wait for it, or resume another run") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resume_point(setting: str | None, log_dir: Path, task_name: str, cfg_hash: str) -> ResumePoint | None:
    """The checkpoint that the `resume` setting asks for (auto: the newest unfinished run under
    <log_dir>/<task_name>/runs with the config hash `cfg_hash`), None for a new run; a ResumeError if it cannot be used."""
    if setting is None or str(setting) == "":
        return None
    if str(setting) == "auto":
        point = _auto(Path(log_dir) / task_name / "runs", cfg_hash)
        if point is None:
            log.warning("resume=auto: no unfinished run with this config under outputs/%s/runs; starting a new run", task_name)
        else:
            verify_checkpoint(point, "auto")
        return point
    given = Path(str(setting)).expanduser()
    checkpoint = given if given.suffix == ".ckpt" else None
    folder = given.parent if checkpoint else (given / CHECKPOINT_DIR if (given / CHECKPOINT_DIR).is_dir() else given)
    record = _read_record(folder)
    if record is None:
        raise ResumeError(f"resume={given}: no {CHECKPOINT_DIR}/{RECORD_NAME} there; give a run directory of combomap-train "
                          "(with checkpointing on) or resume=auto")
    if record.get("config_hash") != cfg_hash:
        raise ResumeError(f"resume={given}: that run had another config; resume with the same settings (only paths may differ)")
    if record.get("finished"):
        raise ResumeError(f"resume={given}: that run finished; nothing to resume")
    point = _point(folder, record, checkpoint)
    if not point.checkpoint.is_file():
        raise ResumeError(f"resume={given}: no checkpoint {point.checkpoint.name} yet (killed before the first one)")
    holder = lock_holder(point.run_dir)
    if holder is not None:
        raise ResumeError(f"resume={given}: that run is still training (process {holder})")
    verify_checkpoint(point, str(given))
    return point
