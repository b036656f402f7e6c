"""Advisory file locks (flock) that say who holds them, for writers sharing one workspace.

A lock file holds its owner's pid and host while the lock is held and is removed on release, so
a workspace shows no lock files when nothing runs. The kernel releases a killed owner's lock, so
a lock that can be taken proves that whatever its owner left behind is stale.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock: process id and host name (unknown fields are 0 / '')."""

    pid: int = 0
    host: str = ""

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}" if self.pid else "another process"


class LockBusyError(PipelineError):
    """The lock is held by another writer and the caller chose not to wait."""

    def __init__(self, path: Path, owner: LockOwner) -> None:
        super().__init__(f"{path} is held by {owner.describe()}")
        self.path, self.owner = path, owner


def read_owner(path: Path) -> LockOwner:
    """The owner recorded in a lock file (LockOwner() if it is gone or unreadable)."""
    try:
        data = json.loads(path.read_text() or "{}")
        return LockOwner(int(data.get("pid", 0)), str(data.get("host", "")))
    except (OSError, ValueError, TypeError):
        return LockOwner()


def held_by(path: Path) -> LockOwner | None:
    """The owner of the lock at `path` if a live process holds it, else None (never blocks)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_owner(path)
    finally:
        os.close(fd)
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


@contextmanager
def exclusive_lock(path: Path, *, wait: bool = True,
                   on_wait: Callable[[LockOwner], None] | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on `path` for the block; yields True if another writer had to finish first.

    With `wait=False` a held lock raises LockBusyError at once. `on_wait(owner)` is called once
    before blocking.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                raise LockBusyError(path, read_owner(path)) from None
            if on_wait is not None and not waited:
                on_wait(read_owner(path))
            waited = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(fd, path):  # the previous owner may have removed the file we waited on
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        yield waited
    finally:
        path.unlink(missing_ok=True)  # while still held: a waiter re-checks the path and retries
        os.close(fd)
