"""Local HTTP servers in tests (`mlflow server`, `mlflow models serve`): a free loopback port, waiting until a
server answers, and stopping it with its workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

READY_TIMEOUT_S = 120.0


def free_port() -> int | None:
    """A free port on 127.0.0.1, or None when no port can be bound there."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    except OSError:
        return None


def start(command: list[str], **kwargs) -> subprocess.Popen:
    """The server in its own process group (its workers die with it), output captured for error messages."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            **kwargs)


def wait_ready(url: str, server: subprocess.Popen, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until GET url answers 200; fails with the server's output when it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"{server.args[:4]} exited with {server.returncode}:\n{server.stdout.read()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"{server.args[:4]} not ready after {timeout_s} s")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after 15 s."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=5)
    except ProcessLookupError:
        pass
    if server.stdout:
        server.stdout.close()
