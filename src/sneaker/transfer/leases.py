"""Which blobs running sneaker processes use, so that ``cache prune`` leaves them alone.

A process that reads the cache holds a *lease*: ``leases/ID.lock``, locked for
as long as the process uses the cache, and ``leases/ID``, the digests it
uses, one a line, appended as it goes. A digest goes in before the process
looks for its blob, under the blob's own lock (see
:meth:`sneaker.transfer.cache.BlobCache.reuse`); a prune takes the same lock
before it reads the leases and removes the blob. So either the prune sees the
digest and keeps the blob, or the process finds the blob gone and downloads
it again: a blob a running pull holds, or is about to copy or link, is never
removed under it.

A lease whose lock nobody holds belongs to a process that ended (or was
killed): it protects nothing, and the next prune removes it.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..image.digest import Digest
from .filelocks import FileLock, make_lock

__all__ = ["Lease", "LeaseScan", "scan_leases"]

_LOCK = ".lock"


class Lease:
    """This process's lease on a cache, taken on first use and given up by :meth:`close`."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._mutex = threading.Lock()
        self._recorded: set[Digest] = set()
        self._lock: FileLock | None = None
        self._path: Path | None = None
        self._fd: int | None = None

    def add(self, digest: Digest) -> None:
        """Record that this process uses ``digest`` (once; one small append)."""
        with self._mutex:
            if digest in self._recorded:
                return
            if self._fd is None:
                self._open()
            assert self._fd is not None
            os.write(self._fd, f"{digest}\n".encode())
            self._recorded.add(digest)

    def _open(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        while True:
            path = self._directory / f"{os.getpid()}-{secrets.token_hex(8)}"
            lock = make_lock(path.with_name(path.name + _LOCK))
            # a prune may hold a lock file between its creation and its lock: another name
            if lock.try_acquire():
                break
        # the digests go in only once the lock is held (a prune reads them as live then)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(path, flags, 0o644)
        self._lock, self._path = lock, path

    def close(self) -> None:
        """Give the lease up: the blobs it named may be pruned again."""
        with self._mutex:
            if self._fd is None or self._path is None or self._lock is None:
                return
            os.close(self._fd)
            self._path.unlink(missing_ok=True)
            self._path.with_name(self._path.name + _LOCK).unlink(missing_ok=True)
            self._lock.release()
            self._fd = self._path = self._lock = None
            self._recorded.clear()


@dataclass
class LeaseScan:
    """What the leases of a cache say: how many processes use it, and which digests."""

    live: int = 0
    digests: set[str] = field(default_factory=set)
    removed: int = 0


def scan_leases(directory: Path, *, remove_dead: bool = False) -> LeaseScan:
    """The digests live leases name; with ``remove_dead``, dead leases are removed."""
    scan = LeaseScan()
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return scan
    locks = {name[: -len(_LOCK)] for name in names if name.endswith(_LOCK)}
    for name in sorted(locks):
        lock = make_lock(directory / f"{name}{_LOCK}")
        if not lock.try_acquire():
            scan.live += 1
            scan.digests.update(_read_digests(directory / name))
            continue
        try:
            if remove_dead:
                (directory / name).unlink(missing_ok=True)
                (directory / f"{name}{_LOCK}").unlink(missing_ok=True)
                scan.removed += 1
        finally:
            lock.release()
    if remove_dead:
        for name in names:
            # a list of digests whose lock file is gone (its owner made the lock file first)
            if not name.endswith(_LOCK) and not (directory / f"{name}{_LOCK}").exists():
                (directory / name).unlink(missing_ok=True)
    return scan


def _read_digests(path: Path) -> set[str]:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return set()
    lines = text.split("\n")
    return {line for line in lines[:-1] if line}  # the last piece may be half written
