"""An ``OSError`` as a :class:`~sneaker.errors.FileError` naming the path and the operation.

Every place that reads or writes local files (archive and layout writers, split parts,
the blob cache, unpack, plan and inventory files, archive readers) converts through
:func:`file_error` or :func:`reporting`; the CLI converts whatever still escapes the
same way. A full disk (ENOSPC) or quota (EDQUOT) is a :class:`~sneaker.errors.DiskFull`
saying how much was needed when the writer knows it, how much is free, and, where the
work is kept, that running the command again resumes it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DiskFull, FileError
from .progress import human_size

__all__ = ["file_error", "free_space", "is_file_error", "reporting", "resumable"]

_AGAIN = "free some space there (or write somewhere else) and run the command again"
_DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def free_space(path: Path | str) -> int | None:
    """Bytes an unprivileged user may still write on the file system holding ``path``."""
    where = Path(path)
    while True:
        try:
            st = os.statvfs(where)
        except (FileNotFoundError, NotADirectoryError):
            if where.parent == where:
                return None
            where = where.parent
            continue
        except (OSError, AttributeError):  # no statvfs (Windows), or unreadable
            return None
        return st.f_bavail * st.f_frsize


def is_file_error(exc: BaseException) -> bool:
    """An ``OSError`` about a file (not a socket, a TLS session or a timeout)."""
    if not isinstance(exc, OSError) or isinstance(exc, (ConnectionError, TimeoutError)):
        return False
    return type(exc).__module__ not in ("ssl", "socket")


def file_error(
    exc: OSError,
    operation: str,
    path: Path | str | None = None,
    *,
    needed: int | None = None,
    resumes: str = "",
) -> FileError:
    """The error to raise for ``exc``, met while doing ``operation`` (``write``...) to ``path``.

    ``path`` is the name the user knows (the output, not its temporary name); without
    it, the error's own file name. ``needed`` (bytes) and ``resumes`` (what a rerun
    keeps) are said when the disk is full.
    """
    if path is None and exc.filename is not None:
        path = os.fsdecode(exc.filename)
    where = str(path) if path is not None else ""
    target = f" {where}" if where else " a file"
    if exc.errno in _DISK_FULL:
        quota = exc.errno != errno.ENOSPC
        facts = [f"about {human_size(needed)} needed"] if needed is not None else []
        free = None if quota or not where else free_space(where)
        if free is not None:
            facts.append(f"{human_size(free)} free")
        detail = f" ({', '.join(facts)})" if facts else ""
        what = "over the disk quota" if quota else "no space left on the device"
        hint = _AGAIN
        return DiskFull(
            f"cannot {operation}{target}: {what}{detail}",
            path=where,
            needed=needed,
            hint=f"{hint}: {resumes}" if resumes else hint,
        )
    return FileError(f"cannot {operation}{target}: {_reason(exc)}", path=where)


@contextmanager
def reporting(
    operation: str,
    path: Path | str,
    *,
    needed: Callable[[], int | None] | None = None,
    resumes: str = "",
) -> Iterator[None]:
    """Raise a :class:`FileError` for any file ``OSError`` the block raises (see
    :func:`file_error`; ``needed`` is asked only when the disk is full). A
    :class:`DiskFull` raised inside (by a write the block made) gets ``needed`` and
    ``resumes`` when it has neither, and keeps the path it names."""
    try:
        yield
    except DiskFull as exc:
        cause = exc.__cause__
        if exc.needed is not None or not isinstance(cause, OSError) or needed is None:
            raise
        raise file_error(cause, "write", exc.path, needed=needed(), resumes=resumes) from cause
    except OSError as exc:
        if not is_file_error(exc):
            raise
        size = needed() if needed is not None and exc.errno in _DISK_FULL else None
        raise file_error(exc, operation, path, needed=size, resumes=resumes) from exc


@contextmanager
def resumable(note: str) -> Iterator[None]:
    """A :class:`DiskFull` raised in the block says ``note`` (what a rerun keeps)."""
    try:
        yield
    except DiskFull as exc:
        hint = exc.hint or ""
        if note not in hint:
            exc.hint = f"{hint}{': ' if hint == _AGAIN else '; '}{note}" if hint else note
        raise
