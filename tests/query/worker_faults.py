"""A worker crash on demand, for the Dask tests: a worker plugin (registered by the test, so production code has
no hook) whose first task to start executing kills its worker process."""

from __future__ import annotations

import os

from distributed.diagnostics.plugin import WorkerPlugin


class KillFirstTask(WorkerPlugin):
    """Armed while `marker` does not exist: the first task to start executing on any worker creates it (holding the
    worker's pid) and ends that worker process at once (os._exit), as a crash mid-query would. Creating the marker
    is atomic, so exactly one worker dies per arming."""

    name = "kill-first-task"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if finish != "executing" or os.path.exists(self.marker):
            return
        try:
            handle = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(handle, str(os.getpid()).encode())
        os.close(handle)
        os._exit(17)
