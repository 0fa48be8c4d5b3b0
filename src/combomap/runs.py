"""MLflow runs whose process is gone: find them and mark them KILLED (`combomap-runs`, and every job's start).

A run records the host, pid and process start time of the job that opened it (tags combomap.host,
combomap.pid, combomap.pid_start). A RUNNING run is stale when it was opened on this host and its pid is not
alive, or is alive with another start time (the pid was reused). Runs of other hosts, or without these tags,
are never closed automatically; `combomap-runs close RUN_ID` closes one by hand.

    combomap-runs list                 # RUNNING runs and whether their process is alive
    combomap-runs close-stale          # mark the stale ones KILLED (--dry-run: only say which)
    combomap-runs close RUN_ID ...     # mark these runs KILLED whatever their host
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import mlflow
from mlflow.entities import Run, RunStatus
from mlflow.tracking import MlflowClient

from combomap import signals
from combomap.data.atomic import pid_alive
from combomap.store import configure

log = logging.getLogger(__name__)

HOST_TAG, PID_TAG, START_TAG, CLOSED_TAG = "combomap.host", "combomap.pid", "combomap.pid_start", "combomap.closed_by"


def process_start(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (Linux /proc), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name before ")" may hold spaces


def process_tags() -> dict[str, str]:
    """Tags that let a later job tell whether this run's process still exists."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    start = process_start(os.getpid())
    if start is not None:
        tags[START_TAG] = start
    return tags


def process_state(host: str | None, pid: str | int | None, start: str | None) -> str:
    """"alive", "stale" (that process of this host is gone, or its pid was reused) or "unknown" (another host)."""
    if host != socket.gethostname() or not str(pid or "").isdigit():
        return "unknown"
    if not pid_alive(int(pid)):
        return "stale"
    current = process_start(int(pid))
    if start is not None and current is not None and start != current:
        return "stale"  # the pid now belongs to another process
    return "alive"


def liveness(run: Run) -> str:
    """process_state of the job that opened `run` (from its tags)."""
    tags = run.data.tags
    return process_state(tags.get(HOST_TAG), tags.get(PID_TAG), tags.get(START_TAG))


def running_runs(client: MlflowClient) -> list[Run]:
    """Every RUNNING run of every experiment in the store."""
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    if not experiment_ids:
        return []
    return list(client.search_runs(experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=50000))


def close_runs(client: MlflowClient, runs: Sequence[Run], reason: str) -> list[str]:
    """Mark `runs` KILLED (end time now) with a tag that says why; returns their ids."""
    closed = []
    for run in runs:
        client.set_tag(run.info.run_id, CLOSED_TAG, reason)
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED), end_time=int(time.time() * 1000))
        closed.append(run.info.run_id)
    return closed


def close_stale_runs(client: MlflowClient | None = None) -> list[str]:
    """Mark the stale RUNNING runs of this host KILLED; called at the start of every job."""
    client = client or MlflowClient()
    stale = [run for run in running_runs(client) if liveness(run) == "stale"]
    closed = close_runs(client, stale, "stale: its process is gone")
    for run in stale:
        log.warning("MLflow run %s (%s, pid %s) was RUNNING but its process is gone: marked KILLED",
                    run.info.run_id, run.info.run_name, run.data.tags.get(PID_TAG))
    return closed


def _describe(run: Run) -> str:
    tags = run.data.tags
    return (f"{run.info.run_id}  {liveness(run):7s}  {run.info.run_name or '-'}  host {tags.get(HOST_TAG, '?')} "
            f"pid {tags.get(PID_TAG, '?')}  started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run.info.start_time / 1000))}")


def main(argv: Sequence[str] | None = None) -> int:
    """combomap-runs list | close-stale [--dry-run] | close RUN_ID..."""
    parser = argparse.ArgumentParser(prog="combomap-runs", description="List and close MLflow runs whose process is gone.")
    parser.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else mlruns/ of the project)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="RUNNING runs and whether their process is alive, stale or unknown")
    stale = commands.add_parser("close-stale", help="mark RUNNING runs whose process (on this host) is gone KILLED")
    stale.add_argument("--dry-run", action="store_true", help="only list what would be closed")
    close = commands.add_parser("close", help="mark the given runs KILLED (e.g. of a machine that is gone)")
    close.add_argument("run_ids", nargs="+")
    args = parser.parse_args(argv)
    signals.install()
    try:
        configure(args.tracking_uri, origin="--tracking-uri", write=args.command != "list")
        client = MlflowClient()
        if args.command == "list":
            runs = running_runs(client)
            for run in runs:
                print(_describe(run))
            print(f"{len(runs)} RUNNING run(s)")
        elif args.command == "close-stale":
            runs = [run for run in running_runs(client) if liveness(run) == "stale"]
            for run in runs:
                print(("would close " if args.dry_run else "closed ") + _describe(run))
            if not args.dry_run:
                close_runs(client, runs, "combomap-runs close-stale: its process is gone")
            print(f"{len(runs)} stale run(s)" + (" (dry run: nothing changed)" if args.dry_run else " marked KILLED"))
        else:
            runs = []
            for run_id in args.run_ids:
                try:
                    runs.append(client.get_run(run_id))
                except Exception as error:  # MlflowException: no such run
                    raise ValueError(f"no run {run_id!r} in {mlflow.get_tracking_uri()}") from error
            not_running = [r.info.run_id for r in runs if r.info.status != "RUNNING"]
            if not_running:
                raise ValueError(f"run(s) {not_running} are not RUNNING; nothing changed")
            close_runs(client, runs, "combomap-runs close")
            print(f"{len(runs)} run(s) marked KILLED")
    except ValueError as error:
        print(f"combomap-runs: error: {error}", file=sys.stderr)
        return 2
    except signals.Terminated as stop:
        print(f"combomap-runs: {stop}", file=sys.stderr)
        return 128 + stop.signum
    return 0


def console() -> None:
    """Entry point of the combomap-runs console script."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.exit(main())
