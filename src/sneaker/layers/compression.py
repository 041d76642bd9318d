"""Which compression a stream's first bytes show: the one sniffer for layers and archives.

gzip (``1f 8b``), zstd (``28 b5 2f fd``, or a skippable frame first: magic
``0x184D2A50`` to ``0x184D2A5F``, little-endian, which zstd's format allows
before the data frame), xz (``fd 37 7a 58 5a 00``) and bzip2 (``BZh``).
Layers are sniffed rather than trusted to their media type (docker labels plain
tars as gzip); the archive reader sniffs both an archive file (it must be a plain
tar) and the layers of a ``docker save`` archive. Pure logic, no I/O.
"""

from __future__ import annotations

__all__ = ["SNIFF_BYTES", "sniff_compression"]

#: how many leading bytes :func:`sniff_compression` needs to tell every codec apart.
SNIFF_BYTES = 6

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)


def _is_zstd_skippable(head: bytes) -> bool:
    return len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and 0x50 <= head[0] <= 0x5F


def sniff_compression(head: bytes) -> str | None:
    """``gzip``, ``zstd``, ``xz`` or ``bzip2`` by the first bytes of a stream; None for
    anything else (a plain tar). Give it at least :data:`SNIFF_BYTES` bytes when there are."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if _is_zstd_skippable(head):
        return "zstd"
    return None
