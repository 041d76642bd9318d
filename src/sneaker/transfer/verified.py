"""What a cached blob's file looked like when its content was last checked.

The cache trusts a blob it has hashed before only while its file is the one it
hashed and nothing has written to it since: same size, same inode, same
modification time. A record holding those three is written when the blob's
content is verified (while it downloads, or by hashing it whole), in
``verified/ALGORITHM/HEX``; the record's own modification time says when the
blob was last used. Any other state of the file (no record, or a file that
differs from it) means hashing the file again before it is used.

What this catches, and what not:

* a write to the file through the file system (a flipped byte, an appended or
  cut tail, an editor, ``dd conv=notrunc``, a layout hard-linked to the cache
  and modified in place): the kernel sets the modification time to the time of
  the write. The blob's time is set 10 s back when it is committed, so a write
  in the same timestamp tick as the download's last one still moves it; a
  record is never written for a file modified less than 2 s before (a later
  write could land in the same tick), so it is hashed again next time instead;
* a file replaced by another (a restore, ``cp`` over a new name): other inode;
* a file whose size changed: other size, whatever its times say.

It does **not** catch damage below the file system: bit rot, a disk or
controller that returns other bytes than were written, or a file put back with
its old modification time on purpose (``touch -d``, ``utime``). Those change
no metadata; only hashing every blob on every use catches them, which
``sneaker cache verify`` does on demand (and costs, on every pull, what
benchmarks/README.md measures). The change time (ctime) is not in the record:
a hard link (an OCI layout written from the cache) and its removal change it
without touching the content, and would make every blob linked once hashed on
every later use.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SETTLE_NS", "VerifiedRecord", "settle", "write_record"]

#: a committed blob's modification time is set this far back (coarser than any file
#: system's timestamps: FAT's are 2 s), so that any later write moves it
SETTLE_NS = 10 * 1_000_000_000
#: a file modified less than this long ago may be written again in the same timestamp tick
_RACY_NS = 2 * 1_000_000_000
_VERSION = 1


@dataclass(frozen=True)
class VerifiedRecord:
    size: int
    inode: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> VerifiedRecord:
        return cls(st.st_size, st.st_ino, st.st_mtime_ns)

    @classmethod
    def read(cls, path: Path) -> VerifiedRecord | None:
        """The record at ``path``; None when there is none or it cannot be read."""
        try:
            doc = json.loads(path.read_bytes()[:4096])
            record = cls(int(doc["size"]), int(doc["inode"]), int(doc["mtime_ns"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return record if doc.get("v") == _VERSION else None

    def matches(self, st: os.stat_result) -> bool:
        return self == VerifiedRecord.of(st)


def settle(path: Path) -> None:
    """Set the modification time of ``path`` (a file just written and verified) 10 s back.

    Where that is refused, the file keeps its time and gets no record (too recent).
    """
    now = time.time_ns()
    with contextlib.suppress(OSError):
        os.utime(path, ns=(now, now - SETTLE_NS))


def write_record(path: Path, st: os.stat_result) -> bool:
    """Record ``st`` (the stat of a file whose content was just verified) at ``path``.

    False, writing nothing, when the file was modified too recently for its
    modification time to tell a later write apart.
    """
    if time.time_ns() - st.st_mtime_ns < _RACY_NS:
        return False
    record = VerifiedRecord.of(st)
    doc = {"v": _VERSION, "size": record.size, "inode": record.inode, "mtime_ns": record.mtime_ns}
    try:
        path.write_text(json.dumps(doc))
    except OSError:
        return False  # no record: the blob is hashed again next time
    return True
