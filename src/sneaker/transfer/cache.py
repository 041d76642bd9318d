"""A content-addressed blob cache shared by every image and every output format.

Layout under the root::

    blobs/sha256/<hex>          complete, verified blobs (never written in place)
    partial/sha256/<hex>        an interrupted download, resumed on the next run
    partial/sha256/<hex>.json   what the server said about it (validator for If-Range),
                                written once a download has more than a chunk on disk
    locks/sha256/<hex>.lock     one lock per digest, so two sneaker processes never
                                download the same blob into the same partial file
    verified/sha256/<hex>       what the blob's file looked like when its content was
                                last checked; its own mtime is the blob's last use
    leases/<id>, <id>.lock      the digests each running sneaker process uses

A blob only appears under ``blobs/`` by an atomic rename after its digest and
size were checked, so readers never see a half-written file.

A blob is used again only once it is known to be right (:meth:`BlobCache.reuse`):
by its verified record when the file is untouched since it was checked
(:mod:`sneaker.transfer.verified` says what that catches), else by hashing it
whole. A damaged blob is removed, with a warning, and downloaded again: it never
reaches an archive. ``sneaker cache prune`` removes only blobs no running process
holds (:mod:`sneaker.transfer.leases`, :mod:`sneaker.transfer.housekeeping`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import IntegrityError, Interrupted, NotFound
from ..image.digest import ContentCheck, Digest
from ..image.model import Descriptor
from ..util.oserrors import reporting
from ..util.tempfiles import temporary_directory
from .filelocks import make_lock
from .leases import Lease
from .verified import VerifiedRecord, settle, write_record

__all__ = [
    "RESUMES",
    "BlobCache",
    "CacheDamageWarning",
    "PartialState",
    "default_cache_dir",
    "hash_file",
]

#: what a rerun keeps of downloads (said when the disk is full)
RESUMES = "the blobs already downloaded are kept in the cache, and partial ones resume"

#: how often a wait for a blob lock held elsewhere tries again (and looks at the cancel event)
_LOCK_POLL = 0.05
_HASH_CHUNK = 1 << 20


class CacheDamageWarning(UserWarning):
    """A cached blob did not match its digest or size: it was removed (and is fetched again)."""


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

    #: the directories beside ``blobs/`` that only the cache's own work needs
    BOOKKEEPING = ("locks", "partial", "verified", "leases")

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: set[Path] = set()  # directories known to exist (saves a syscall per blob)
        self._lease = Lease(root / "leases")

    def __enter__(self) -> BlobCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the blobs this process used: a prune may remove them from now on."""
        self._lease.close()

    def _ensure_dir(self, directory: Path) -> None:
        if directory not in self._made:
            directory.mkdir(parents=True, exist_ok=True)
            self._made.add(directory)

    @classmethod
    @contextmanager
    def temporary(cls, parent: Path | None = None) -> Iterator[BlobCache]:
        """A throw-away cache (``--no-cache``), removed when the block ends; one a killed
        run left in ``parent`` is removed first (see :mod:`sneaker.util.tempfiles`)."""
        where = parent or Path(tempfile.gettempdir())
        with temporary_directory(where, "sneaker-blobs") as tmp, cls(tmp) as cache:
            yield cache

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
        """A file of the right size is there (its content unchecked: see :meth:`reuse`)."""
        try:
            return self.path(desc.digest).stat().st_size == desc.size
        except FileNotFoundError:
            return False

    def record_path(self, digest: Digest) -> Path:
        return self.root / "verified" / digest.algorithm / digest.hex

    def reuse(self, desc: Descriptor) -> bool:
        """Is the cached blob ``desc`` right, to be used as it is? Hold its lock (:meth:`locked`).

        The digest goes into this process's lease first: no prune removes the blob
        from now until :meth:`close`. A blob whose file is untouched since it
        was verified is taken at once (and its last use noted); any other is hashed
        whole. A damaged one (another size or another digest) is removed with a
        :class:`CacheDamageWarning`: False, as for a blob that is not there.
        """
        self._lease.add(desc.digest)
        path = self.path(desc.digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        record_path = self.record_path(desc.digest)
        if st.st_size == desc.size:
            record = VerifiedRecord.read(record_path)
            if record is not None and record.matches(st):
                _touch(record_path)
                return True
            try:
                hash_file(path, desc)
            except IntegrityError as exc:
                self._remove_damaged(desc, path, str(exc))
                return False
            self._ensure_dir(record_path.parent)
            write_record(record_path, st)
            return True
        self._remove_damaged(
            desc, path, f"{path} holds {st.st_size} bytes, its descriptor declares {desc.size}"
        )
        return False

    def _remove_damaged(self, desc: Descriptor, path: Path, what: str) -> None:
        path.unlink(missing_ok=True)
        self.record_path(desc.digest).unlink(missing_ok=True)
        warnings.warn(
            f"the cached blob {desc.digest} was damaged ({what}): removed, downloading it again",
            CacheDamageWarning,
            stacklevel=3,
        )

    def lock_path(self, digest: Digest) -> Path:
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
        lock = make_lock(self.lock_path(digest))
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
        """Move a verified partial download to its final name (atomic rename), with its
        verified record. Only for bytes just checked against ``digest``."""
        final = self.path(digest)
        partial = self.partial_path(digest)
        self._ensure_dir(final.parent)
        settle(partial)
        os.replace(partial, final)
        self.forget_validator(digest)
        record_path = self.record_path(digest)
        self._ensure_dir(record_path.parent)
        write_record(record_path, os.stat(final))
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


def hash_file(path: Path, desc: Descriptor) -> None:
    """Check the file at ``path`` against ``desc``: :class:`IntegrityError` when it differs."""
    check = ContentCheck(desc.digest, desc.size, what=f"blob {desc.digest}")
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            check.update(view[:n])
    check.check()


def _touch(path: Path) -> None:
    """Note a use: the record's modification time is now."""
    with contextlib.suppress(OSError):  # a read-only cache still serves its blobs
        os.utime(path)
