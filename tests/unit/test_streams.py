"""The shared stream wrappers (util/streams.py) and the content check (image/digest.py)."""

from __future__ import annotations

import errno
import hashlib
import io
import os

import pytest

from sneaker.errors import IntegrityError
from sneaker.image.digest import ContentCheck, Digest
from sneaker.util.streams import HashingReader, PositionalReader, Prefixed

DATA = bytes(range(256)) * 40


class _Bytes(PositionalReader):
    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = data
        self.size = len(data)

    def read_at(self, buf: memoryview, offset: int) -> int:
        piece = self._data[offset : offset + len(buf)]
        buf[: len(piece)] = piece
        return len(piece)


def test_a_positional_reader_reads_and_seeks_like_a_file() -> None:
    reader = io.BufferedReader(_Bytes(DATA), 1000)
    assert reader.read(10) == DATA[:10]
    assert reader.seek(-5, os.SEEK_END) == len(DATA) - 5
    assert reader.read() == DATA[-5:]
    assert reader.seek(100) == 100
    assert reader.seek(20, os.SEEK_CUR) == 120
    assert reader.read(3) == DATA[120:123]
    raw = _Bytes(DATA)
    with pytest.raises(OSError, match="negative seek position") as info:
        raw.seek(-1)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(ValueError, match="invalid whence"):
        raw.seek(0, 7)


def test_prefixed_gives_back_the_sniffed_bytes_first() -> None:
    stream = io.BytesIO(DATA)
    head = stream.read(6)
    assert io.BufferedReader(Prefixed(head, stream)).read() == DATA


def test_hashing_reader_counts_hashes_and_reports() -> None:
    seen: list[int] = []
    reader = HashingReader(io.BytesIO(DATA), hashlib.sha256(), seen.append)
    assert reader.read(100) == DATA[:100]
    reader.drain(1000)
    assert reader.count == len(DATA) == sum(seen)
    assert reader.hasher.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_content_check_messages() -> None:
    digest = Digest.of_bytes(DATA)
    check = ContentCheck(digest, len(DATA), what="blob b")
    check.update(DATA)
    check.check()
    with pytest.raises(IntegrityError, match=r"^blob b: more data than the \d+ bytes"):
        check.add(1)
    short = ContentCheck(digest, len(DATA), what="blob b")
    short.update(DATA[:-1])
    with pytest.raises(IntegrityError, match=rf"^blob b: got {len(DATA) - 1} bytes, descriptor"):
        short.check()
    wrong = ContentCheck(Digest.of_bytes(b"other"), None, what="blob b")
    wrong.update(DATA)
    with pytest.raises(
        IntegrityError, match=f"^digest mismatch for blob b: content hashes to {digest}$"
    ):
        wrong.check()


def test_content_check_without_a_digest_checks_the_size_only() -> None:
    check = ContentCheck(None, 3, what="layer")
    assert check.hasher is None
    check.update(b"abc")
    check.check()
