"""All-or-nothing writes of a file or a directory of files, and recovery from a writer that was killed.

A writer stages its output beside the target (`.<name>.tmp-<host>-<pid>-<random>`) and renames it into place.
A directory that already exists is first renamed to `.<name>.old-<host>-<pid>-<random>`, so a crash between
the two renames leaves the previous data under that name and no target: `recover(target)` (called by every
writer and by the npy reader) renames it back, with a message, once the process that made it is gone.
Staging files and folders of dead writers are deleted by the same call. The host tag and the pid in the name
are what make a leftover "stale": nothing of a live process (or of another machine) is ever touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<tag>tmp|old)-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{12}$")


def host_tag() -> str:
    """Six hex digits naming this machine: a pid means something only on the host that wrote it."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sibling(target: Path, tag: str) -> Path:
    """A hidden name beside `target` that records this host and process (`tag`: tmp or old)."""
    return target.with_name(f".{target.name}.{tag}-{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def _leftovers(target: Path, tag: str) -> list[Path]:
    """Staging (tmp) or backup (old) entries of `target` left by dead processes of this host, newest first."""
    if not target.parent.is_dir():
        return []
    found = []
    for entry in target.parent.iterdir():
        match = _LEFTOVER.match(entry.name)
        if not match or match["name"] != target.name or match["tag"] != tag:
            continue
        if match["host"] == host_tag() and not pid_alive(int(match["pid"])):
            found.append(entry)
    return sorted(found, key=lambda path: path.lstat().st_mtime, reverse=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def recover(target: str | os.PathLike) -> None:
    """Undo what a killed writer of `target` left: restore its previous data, delete its staging copies.

    A backup (`.old-*`) with no target is renamed back to the target (the newest one, if several);
    backups beside an existing target and every stale staging entry are deleted.
    """
    target = Path(target).expanduser()
    try:
        backups = _leftovers(target, "old")
        if backups and not target.exists() and not target.is_symlink():
            os.rename(backups[0], target)
            log.warning("%s was missing after an interrupted overwrite: restored the previous data from %s",
                        target, backups[0].name)
            backups = backups[1:]
        for leftover in backups + _leftovers(target, "tmp"):
            _remove(leftover)
            log.info("removed %s, left behind by a killed writer", leftover)
    except OSError as error:  # e.g. a read-only folder: reading goes on, a write fails later with its own error
        log.warning("could not clean up after an interrupted write of %s: %s", target, error)


def swap_into_place(staging: Path, target: Path) -> None:
    """Rename the finished `staging` to `target`; an existing target is kept as a backup until the rename succeeded."""
    if not target.exists() and not target.is_symlink():
        os.rename(staging, target)
        return
    if not target.is_dir() or target.is_symlink():  # a file: one atomic replace
        os.replace(staging, target)
        return
    backup = sibling(target, "old")
    os.rename(target, backup)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(backup, target)
        raise
    _remove(backup)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; on success it replaces `target` as a whole, else it is removed.

    The caller checks whether replacing `target` is allowed before entering."""
    target = Path(target).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    staging = sibling(target, "tmp")
    try:
        staging.mkdir()
        yield staging
        swap_into_place(staging, target)
    except BaseException as error:
        _remove(staging)
        _name_the_target(error, staging, target)
        raise


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging path beside `target` to write; on success it replaces `target` in one rename, else it is removed."""
    target = Path(target).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    staging = sibling(target, "tmp")
    try:
        yield staging
        os.replace(staging, target)
    except BaseException as error:
        _remove(staging)
        _name_the_target(error, staging, target)
        raise


def _name_the_target(error: BaseException, staging: Path, target: Path) -> None:
    """An OSError of a staged write names what the user asked for: the target (a file of a staged folder by its
    final path), not the hidden staging name, nor nothing (a full disk's write error carries no file name)."""
    if not isinstance(error, OSError) or error.errno is None:  # OSError("some text"): not the system's
        return
    if error.filename2 is not None:  # a rename names both ends itself
        return
    if error.filename is None:
        error.filename = str(target)
        return
    try:
        inside = Path(os.fsdecode(error.filename)).relative_to(staging)
    except (TypeError, ValueError):  # a file elsewhere (e.g. an input being read): its own name is right
        return
    error.filename = str(target / inside) if inside.parts else str(target)
