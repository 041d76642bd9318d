"""A planned tar written in place: each blob goes into its slot, in any order, from any thread.

A docker archive written while its layers download would otherwise wait for
them in the tar's order and copy each one out of the cache after it lands:
the copy of the last (and largest) layer then starts only when the download
is over. With every size known up front (:class:`~sneaker.archive.tar.TarPlan`),
the archive is laid out at once instead: headers and small members are written,
the file is extended to its full size, and each blob's bytes go to their place
as they arrive (a download writes each chunk to the cache and to its slot: see
:class:`sneaker.fetch.BlobTee`). The bytes are those of the streamed tar.

This needs positional writes (``os.pwrite``) and a filesystem that leaves
holes in a file extended by ``ftruncate``: FAT and exFAT fill them with zeros
when extended, which on a USB stick would write the archive twice.
:func:`slotted_tar` probes for both and yields None where either is missing;
the caller then streams the tar in order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..digest import Digest
from ..errors import IntegrityError, Interrupted
from ..imageset import BlobSource
from ..model import Descriptor
from .split import remove_split_set
from .tar import FileSink, TarPlan, atomic_file, check_output_path, copy_blob, pwrite_all

__all__ = ["BlobSlot", "SlottedTar", "slotted_tar"]

#: how far the probe extends the new file to see whether it stays sparse
_PROBE = 1 << 20


class SlottedTar:
    """A :class:`TarPlan` in an open file, waiting for its blobs.

    :meth:`slot` gives the writer of one blob's place (for a download to fill
    while it runs); :meth:`fill` copies every blob not yet in place from a
    :class:`BlobSource`. Writes after :meth:`close` are refused, so a download
    that outlives a failed pull never writes into a file descriptor that may
    have been reused.
    """

    def __init__(self, plan: TarPlan, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._closed = False
        self._slots = {desc.digest: BlobSlot(self, offset, desc) for offset, desc in plan.blobs()}

    def slot(self, desc: Descriptor) -> BlobSlot | None:
        """The slot of blob ``desc``, or None when the archive holds no such blob."""
        slot = self._slots.get(desc.digest)
        return slot if slot is not None and slot.desc.size == desc.size else None

    def missing(self) -> list[Descriptor]:
        """Blobs whose slot is not yet complete, in tar order."""
        return [slot.desc for slot in self._slots.values() if not slot.complete]

    def fill(self, blobs: BlobSource) -> None:
        """Copy (and check) every blob not yet in place from ``blobs``."""
        for desc in self.missing():
            slot = self._slots[desc.digest]
            copy_blob(blobs, desc, _SlotSink(slot))
            slot.done()

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _pwrite(self, data: bytes | bytearray | memoryview, position: int) -> None:
        with self._lock:
            if self._closed:
                raise Interrupted("the archive being written was closed")
            pwrite_all(self._fd, memoryview(data).cast("B"), position)

    def _copy(self, fd: int, count: int, position: int) -> None:
        """Copy the first ``count`` bytes of ``fd`` to ``position``."""
        with self._lock:
            if self._closed:
                raise Interrupted("the archive being written was closed")
            FileSink(self._fd).copy_from_fd(fd, 0, count, at=position)


class BlobSlot:
    """Where one blob goes in a :class:`SlottedTar`; implements :class:`sneaker.fetch.BlobTee`."""

    def __init__(self, tar: SlottedTar, offset: int, desc: Descriptor) -> None:
        self._tar = tar
        self.offset = offset
        self.desc = desc
        self.complete = False

    @property
    def digest(self) -> Digest:
        return self.desc.digest

    def write_at(self, position: int, data: bytes | bytearray | memoryview) -> None:
        """Bytes ``position`` onwards of the blob."""
        if position + len(data) > self.desc.size:
            raise IntegrityError(f"blob {self.desc.digest}: more data than its slot holds")
        self._tar._pwrite(data, self.offset + position)

    def copy_from(self, fd: int, count: int) -> None:
        """The blob's first ``count`` bytes, from the start of file ``fd``."""
        if count > self.desc.size:
            raise IntegrityError(f"blob {self.desc.digest}: more data than its slot holds")
        self._tar._copy(fd, count, self.offset)

    def done(self) -> None:
        """Every byte is in place and the blob was verified."""
        self.complete = True


class _SlotSink:
    """A :class:`~sneaker.archive.tar.Sink` writing one slot from its start, in order."""

    def __init__(self, slot: BlobSlot) -> None:
        self._slot = slot
        self._position = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._slot.write_at(self._position, data)
        self._position += len(data)
        return len(data)

    def copy_from_fd(self, fd: int, offset: int, count: int) -> None:
        if offset != 0 or self._position != 0:
            raise ValueError("a slot copies a whole file from its start")
        self._slot.copy_from(fd, count)
        self._position = count


def _keeps_holes(directory: Path) -> bool:
    """Whether a file extended by ``ftruncate`` in ``directory`` stays sparse (no zeros
    written to disk), probed with a small anonymous temporary file."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=directory) as probe:
            os.ftruncate(probe.fileno(), _PROBE)
            return getattr(os.fstat(probe.fileno()), "st_blocks", None) == 0
    except OSError:
        return False


@contextmanager
def slotted_tar(plan: TarPlan, out: Path) -> Iterator[SlottedTar | None]:
    """``plan`` laid out in a temporary file renamed to ``out`` when the block succeeds.

    Yields None (and writes nothing) where positional writes or sparse files
    are not available: stream the tar instead. Headers and small members are
    written first; the block must put every blob in place (through the slots
    and :meth:`SlottedTar.fill`), else :class:`IntegrityError` is raised and
    nothing is left. As with a streamed archive, ``out`` is checked first and
    an earlier split set of that name is removed once ``out`` is complete.
    """
    out = check_output_path(out)
    if not hasattr(os, "pwrite") or not _keeps_holes(out.parent):
        yield None
        return
    with atomic_file(out) as sink:
        for entry in plan.entries:
            start = entry.offset - len(entry.header)
            data = entry.header if isinstance(entry.data, Descriptor) else entry.header + entry.data
            os.pwrite(sink.fd, data, start)
        os.ftruncate(sink.fd, plan.size)
        tar = SlottedTar(plan, sink.fd)
        try:
            yield tar
            missing = tar.missing()
            if missing:
                raise IntegrityError(f"blob {missing[0].digest} was never written into {out}")
        finally:
            tar.close()
    remove_split_set(out)
