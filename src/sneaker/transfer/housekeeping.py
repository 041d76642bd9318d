"""What a blob cache holds, and removing from it what no running sneaker process uses.

``sneaker cache info``, ``prune`` and ``verify`` (:mod:`sneaker.verbs.cache`) stand on
it. A *use* of a blob is a run (``pull``, ``unpack`` of a registry image) that took it
from the cache, checked, or downloaded it into the cache; the last one is the modification
time of the blob's verified record (:mod:`sneaker.transfer.verified`), or of the blob
itself when it has none. A partial download's last use is its last write.

Removing is safe while other sneaker processes use the cache: each file is removed
only under its digest's lock (a download or a check in progress holds it, so that
file is skipped), and only when no live lease names it (:mod:`sneaker.transfer.leases`):
a blob a running pull has taken, or is about to copy or link, stays.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import IntegrityError, InvalidDigest
from ..image.digest import Digest
from ..image.model import Descriptor
from .cache import BlobCache, hash_file
from .filelocks import FileLock, make_lock
from .leases import scan_leases
from .verified import write_record

__all__ = ["CacheContents", "CachedFile", "Removal", "remove", "survey", "verify_blobs"]

#: files locked (and so held open) at once while removing
_BATCH = 256


@dataclass(frozen=True)
class CachedFile:
    """A complete blob (``kind`` ``"blob"``) or a partial download (``"partial"``)."""

    kind: str
    digest: Digest
    size: int
    last_use: float


@dataclass
class CacheContents:
    blobs: list[CachedFile] = field(default_factory=list)
    partials: list[CachedFile] = field(default_factory=list)
    lock_files: int = 0
    #: sneaker processes using the cache now (live leases)
    users: int = 0

    @property
    def files(self) -> list[CachedFile]:
        return [*self.blobs, *self.partials]


def _digests_in(directory: Path, suffix: str = "") -> Iterator[tuple[Digest, Path]]:
    """``ALGORITHM/HEX<suffix>`` files under ``directory`` (anything else is not sneaker's:
    left alone)."""
    try:
        algorithms = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for algorithm in algorithms:
        if not algorithm.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(algorithm.path):
            if not entry.name.endswith(suffix) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                digest = Digest.parse(
                    f"{algorithm.name}:{entry.name[: len(entry.name) - len(suffix)]}"
                )
            except InvalidDigest:
                continue
            yield digest, Path(entry.path)


def _last_use(cache: BlobCache, kind: str, digest: Digest) -> float | None:
    """When the file was last used; None when it is gone."""
    try:
        if kind == "partial":
            return cache.partial_path(digest).stat().st_mtime
        try:
            return cache.record_path(digest).stat().st_mtime
        except FileNotFoundError:
            return cache.path(digest).stat().st_mtime
    except FileNotFoundError:
        return None


def survey(cache: BlobCache) -> CacheContents:
    """Every blob and partial download in ``cache``, with its size and last use."""
    contents = CacheContents()
    for kind, directory, found in (
        ("blob", cache.root / "blobs", contents.blobs),
        ("partial", cache.root / "partial", contents.partials),
    ):
        for digest, path in _digests_in(directory):
            last_use = _last_use(cache, kind, digest)
            if last_use is None:
                continue  # gone meanwhile
            with contextlib.suppress(FileNotFoundError):
                found.append(CachedFile(kind, digest, path.stat().st_size, last_use))
    contents.lock_files = sum(1 for _ in _lock_files(cache))
    contents.users = scan_leases(cache.root / "leases").live
    return contents


def _lock_files(cache: BlobCache) -> Iterator[tuple[Digest, Path]]:
    return _digests_in(cache.root / "locks", ".lock")


@dataclass
class Removal:
    """What :func:`remove` did: removed, or kept because a running process uses it."""

    removed: list[CachedFile] = field(default_factory=list)
    in_use: list[CachedFile] = field(default_factory=list)
    lock_files: int = 0
    leases: int = 0


def _held(
    cache: BlobCache, files: Sequence[CachedFile]
) -> tuple[list[tuple[CachedFile, FileLock]], list[CachedFile]]:
    """The locks of ``files`` that nobody holds, taken; the files whose lock is busy."""
    held: list[tuple[CachedFile, FileLock]] = []
    busy: list[CachedFile] = []
    for item in files:
        lock = make_lock(cache.lock_path(item.digest))
        if lock.try_acquire():
            held.append((item, lock))
        else:
            busy.append(item)
    return held, busy


def _under_locks(
    cache: BlobCache,
    files: Sequence[CachedFile],
    act: Callable[[CachedFile, set[str]], bool],
) -> list[CachedFile]:
    """Call ``act(file, leased digests)`` for each of ``files`` whose lock is free, with
    the lock held and the leases read after taking it; the files whose lock was busy."""
    busy: list[CachedFile] = []
    for start in range(0, len(files), _BATCH):
        held, skipped = _held(cache, files[start : start + _BATCH])
        busy.extend(skipped)
        try:
            leased = scan_leases(cache.root / "leases").digests  # read with the locks held
            for item, _ in held:
                if not act(item, leased):
                    busy.append(item)
        finally:
            for _, lock in held:
                lock.release()
    return busy


def remove(cache: BlobCache, files: Sequence[CachedFile]) -> Removal:
    """Remove ``files`` but those a running process uses; then the lock files and
    verified records nothing needs any more, and the leases of processes that ended."""
    removal = Removal()

    def remove_one(item: CachedFile, leased: set[str]) -> bool:
        if str(item.digest) in leased or _last_use(cache, item.kind, item.digest) != item.last_use:
            return False  # held by a running process, or used since the survey
        if item.kind == "blob":
            cache.path(item.digest).unlink(missing_ok=True)
            cache.record_path(item.digest).unlink(missing_ok=True)
        else:
            cache.discard_partial(item.digest)
        removal.removed.append(item)
        return True

    removal.in_use = _under_locks(cache, files, remove_one)
    removal.lock_files = _remove_unneeded_lock_files(cache)
    _remove_orphan_records(cache)
    removal.leases = scan_leases(cache.root / "leases", remove_dead=True).removed
    return removal


def _remove_unneeded_lock_files(cache: BlobCache) -> int:
    """Lock files of digests with neither a blob nor a partial download (nobody holding them)."""
    removed = 0
    for digest, path in _lock_files(cache):
        if cache.path(digest).exists() or cache.partial_path(digest).exists():
            continue
        lock = make_lock(path)
        if not lock.try_acquire():
            continue
        try:
            path.unlink(missing_ok=True)  # a locker that opened it meanwhile locks a new one
            removed += 1
        finally:
            lock.release()
    return removed


def _remove_orphan_records(cache: BlobCache) -> None:
    for digest, path in _digests_in(cache.root / "verified"):
        if not cache.path(digest).exists():
            path.unlink(missing_ok=True)


@dataclass
class Damage:
    file: CachedFile
    problem: str
    removed: bool


def verify_blobs(
    cache: BlobCache, blobs: Sequence[CachedFile], on_checked: Callable[[CachedFile], None]
) -> list[Damage]:
    """Hash each of ``blobs`` (under its lock); a damaged one is removed unless a running
    process holds it. ``on_checked`` is told of each blob checked. A right one gets a
    fresh verified record (its last use unchanged: a check is no use)."""
    damage: list[Damage] = []
    for item in blobs:
        with cache.locked(item.digest):
            path = cache.path(item.digest)
            try:
                before = os.stat(path)
            except FileNotFoundError:
                continue  # removed meanwhile
            desc = Descriptor("application/octet-stream", item.digest, item.size)
            try:
                hash_file(path, desc)
            except IntegrityError as exc:
                leased = str(item.digest) in scan_leases(cache.root / "leases").digests
                if not leased:
                    path.unlink(missing_ok=True)
                    cache.record_path(item.digest).unlink(missing_ok=True)
                damage.append(Damage(item, str(exc), removed=not leased))
            else:
                record = cache.record_path(item.digest)
                record.parent.mkdir(parents=True, exist_ok=True)
                if write_record(record, before):  # checked now, but not used: its time stays
                    os.utime(record, (item.last_use, item.last_use))
        on_checked(item)
    return damage
