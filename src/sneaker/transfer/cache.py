"""A content-addressed blob cache shared by every image and every output format.

Layout under the root::

    blobs/sha256/<hex>          complete, verified blobs (never written in place)
    partial/sha256/<hex>        an interrupted download, resumed on the next run
    partial/sha256/<hex>.json   what the server said about it (validator for If-Range),
                                written once a download has more than a chunk on disk
    locks/sha256/<hex>.lock     one lock per digest, so two sneaker processes never
                                download the same blob into the same partial file

A blob only appears under ``blobs/`` by an atomic rename after its digest and
size were checked, so readers never see a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import Interrupted, NotFound
from ..image.digest import Digest
from ..image.model import Descriptor
from ..util.oserrors import reporting
from ..util.tempfiles import temporary_directory

__all__ = ["RESUMES", "BlobCache", "PartialState", "default_cache_dir"]

#: what a rerun keeps of downloads (said when the disk is full)
RESUMES = "the blobs already downloaded are kept in the cache, and partial ones resume"

#: how often a wait for a blob lock held elsewhere tries again (and looks at the cancel event)
_LOCK_POLL = 0.05

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class _FlockLock:
    """An exclusive ``flock`` on a lock file, held through its open descriptor."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class _PortableLock:
    """The same through ``filelock``, where there is no ``flock`` (Windows)."""

    def __init__(self, path: Path) -> None:
        from filelock import FileLock

        self._lock = FileLock(str(path))

    def try_acquire(self) -> bool:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        self._lock.release()


def default_cache_dir() -> Path:
    """``$SNEAKER_CACHE_DIR``, else the user cache directory (``~/.cache/sneaker`` on Linux)."""
    env = os.environ.get("SNEAKER_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sneaker", appauthor=False))


@dataclass
class PartialState:
    """What is on disk of an interrupted download."""

    path: Path
    size: int
    validator: str | None


class BlobCache:
    """Blobs by digest on the local disk; implements :class:`sneaker.image.records.BlobSource`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: set[Path] = set()  # directories known to exist (saves a syscall per blob)

    def _ensure_dir(self, directory: Path) -> None:
        if directory not in self._made:
            directory.mkdir(parents=True, exist_ok=True)
            self._made.add(directory)

    @classmethod
    @contextmanager
    def temporary(cls, parent: Path | None = None) -> Iterator[BlobCache]:
        """A throw-away cache (``--no-cache``), removed when the block ends; one a killed
        run left in ``parent`` is removed first (see :mod:`sneaker.util.tempfiles`)."""
        with temporary_directory(parent or Path(tempfile.gettempdir()), "sneaker-blobs") as tmp:
            yield cls(tmp)

    def reporting(self, desc: Descriptor) -> AbstractContextManager[None]:
        """File errors while fetching ``desc`` as a FileError naming its partial file; a
        full disk says what the blob still needs, and that a rerun resumes."""

        def needed() -> int:
            partial = self.partial(desc.digest)
            return desc.size - (partial.size if partial is not None else 0)

        return reporting("write", self.partial_path(desc.digest), needed=needed, resumes=RESUMES)

    def path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def has(self, desc: Descriptor) -> bool:
        try:
            return self.path(desc.digest).stat().st_size == desc.size
        except FileNotFoundError:
            return False

    def _lock_path(self, digest: Digest) -> Path:
        lock_path = self.root / "locks" / digest.algorithm / f"{digest.hex}.lock"
        self._ensure_dir(lock_path.parent)
        return lock_path

    @contextmanager
    def locked(
        self,
        digest: Digest,
        *,
        cancel: threading.Event | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Iterator[None]:
        """Hold the lock of ``digest`` for the block, waiting while another process has it.

        ``on_wait`` is called once if the lock is busy; ``cancel`` (when set) ends
        the wait with :class:`Interrupted`. The lock is an OS file lock: a process
        that dies (even by SIGKILL) releases it. On POSIX it is a bare ``flock``
        (a few microseconds, paid once per blob); elsewhere ``filelock`` does it.
        """
        path = self._lock_path(digest)
        lock = _FlockLock(path) if fcntl is not None else _PortableLock(path)
        waited = False
        while not lock.try_acquire():
            if cancel is not None and cancel.is_set():
                raise Interrupted("cancelled while waiting for a blob lock")
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            if cancel is not None:
                cancel.wait(_LOCK_POLL)
            else:
                time.sleep(_LOCK_POLL)
        try:
            yield
        finally:
            lock.release()

    # -- partial downloads -------------------------------------------------------------

    def partial_path(self, digest: Digest) -> Path:
        return self.root / "partial" / digest.algorithm / digest.hex

    def partial(self, digest: Digest) -> PartialState | None:
        path = self.partial_path(digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        validator = None
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            validator = meta.get("validator")
        except (OSError, ValueError, AttributeError):
            pass
        return PartialState(path, size, validator if isinstance(validator, str) else None)

    def open_partial(self, digest: Digest, *, resume: bool) -> BinaryIO:
        """The partial file for writing: kept (``resume``, positioned at 0) or emptied."""
        path = self.partial_path(digest)
        self._ensure_dir(path.parent)
        return path.open("r+b" if resume else "wb")

    def save_validator(self, digest: Digest, validator: str | None) -> None:
        """Remember the server's validator (``If-Range`` on resume) of a partial download."""
        meta = self.partial_path(digest).with_suffix(".json")
        self._ensure_dir(meta.parent)
        meta.write_text(json.dumps({"validator": validator}))

    def forget_validator(self, digest: Digest) -> None:
        self.partial_path(digest).with_suffix(".json").unlink(missing_ok=True)

    def discard_partial(self, digest: Digest) -> None:
        path = self.partial_path(digest)
        for p in (path, path.with_suffix(".json")):
            p.unlink(missing_ok=True)

    def commit_partial(self, digest: Digest) -> Path:
        """Move a verified partial download to its final name (atomic rename)."""
        final = self.path(digest)
        self._ensure_dir(final.parent)
        os.replace(self.partial_path(digest), final)
        self.forget_validator(digest)
        return final

    # -- BlobSource ----------------------------------------------------------------------

    def blob_path(self, desc: Descriptor) -> Path | None:
        return self.path(desc.digest) if self.has(desc) else None

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[BinaryIO]:
        try:
            handle = self.path(desc.digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"blob {desc.digest} is not in the cache at {self.root}") from None
        with handle:
            yield handle
