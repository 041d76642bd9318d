"""Stream wrappers that several layers share, each written once.

* :class:`Prefixed`: bytes already read from a stream (to sniff its format) put
  back in front of the rest.
* :class:`PositionalReader`: a read-only, seekable file over a positional read
  (``pread``): a member's bytes inside an archive, the parts of a split archive.
  Reading never moves a shared file offset, so several threads may read one file.
* :class:`HashingReader`: counts and hashes what passes through it (and reports
  progress), for a check once the reader is drained.

Checking bytes against what a descriptor promises (size and digest) is
``image.digest.ContentCheck`` (and ``DigestingWriter``), next to the digest it
needs. Wrappers that look alike but do another job stay with their one user and
say why in their docstrings: ``layers.apply._Bounded`` caps what a decompressor
may produce (a bomb guard), ``registry.client._ChunkReader`` is one request's
exact slice of an upload with a hash state that rewinds for a retry,
``verbs.push._ProgressReader`` reports and cancels an upload and resets its
progress on a rewind.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["HashingReader", "PositionalReader", "Prefixed", "Readable"]


class Readable(Protocol):
    """Anything with a binary ``read``: a file, a blob stream, a decompressor."""

    def read(self, size: int = -1, /) -> bytes: ...


class Prefixed(io.RawIOBase):
    """A stream that first returns ``prefix`` (bytes already read to sniff), then ``rest``."""

    def __init__(self, prefix: bytes, rest: Readable) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(view))
        if not data:
            return 0
        view[: len(data)] = data
        return len(data)


class PositionalReader(io.RawIOBase):
    """A read-only, seekable file of ``size`` bytes whose reads go through :meth:`read_at`.

    A subclass sets ``size`` and implements ``read_at(buf, offset)``: fill
    ``buf`` from ``offset`` as far as the data goes and return the count
    (0 at the end). The position is this object's own.
    """

    size: int
    _pos: int = 0

    def read_at(self, buf: memoryview, offset: int) -> int:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.read_at(memoryview(b).cast("B"), self._pos)
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos


class HashingReader:
    """A reader that hashes and counts what passes through it (and reports progress).

    ``hasher`` is a hashlib object (``Digest.hasher()``); ``on_read`` is told the
    size of each piece read. :meth:`drain` reads the rest, so trailing bytes count.
    """

    def __init__(
        self, inner: Readable, hasher: Any, on_read: Callable[[int], None] | None = None
    ) -> None:
        self._inner = inner
        self.hasher = hasher
        self.count = 0
        self._on_read = on_read

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        if data:
            self.hasher.update(data)
            self.count += len(data)
            if self._on_read is not None:
                self._on_read(len(data))
        return data

    def drain(self, chunk: int = 1 << 20) -> None:
        while self.read(chunk):
            pass
