"""Exclusive locks between sneaker processes, held through a lock file.

On POSIX a bare ``flock`` on the file's open descriptor (a few microseconds);
elsewhere ``filelock``. Either way the operating system drops the lock of a
process that dies, even by SIGKILL, so a lock is never stale: a lock *file*
left behind is only a name, and ``sneaker cache prune`` removes those nobody
holds. Removing a lock file someone is about to lock is safe: a locker checks,
once it holds the lock, that the name still leads to the file it locked, and
starts over when it does not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileLock", "make_lock"]


class FileLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False (at once) when somebody does."""
        ...

    def release(self) -> None: ...


class _FlockLock:
    """An exclusive ``flock`` on a lock file, held through its open descriptor."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        while True:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            if self._still_named(fd):
                self._fd = fd
                return True
            os.close(fd)  # removed (or replaced) by a prune meanwhile: lock the new one

    def _still_named(self, fd: int) -> bool:
        try:
            named = os.stat(self._path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class _PortableLock:
    """The same through ``filelock``, where there is no ``flock`` (Windows)."""

    def __init__(self, path: Path) -> None:
        from filelock import FileLock as _Lock

        self._lock = _Lock(str(path))

    def try_acquire(self) -> bool:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        self._lock.release()


def make_lock(path: Path) -> _FlockLock | _PortableLock:
    """A lock on ``path`` (created when missing), not taken yet."""
    return _FlockLock(path) if fcntl is not None else _PortableLock(path)
