"""Digests and the verifying writer."""

from __future__ import annotations

import io

import pytest

from sneaker.errors import IntegrityError, InvalidDigest
from sneaker.image.digest import Digest, DigestingWriter


def test_parse_and_str() -> None:
    d = Digest.of_bytes(b"hello")
    assert Digest.parse(str(d)) == d
    assert d.short == d.hex[:12]
    Digest.parse("sha512:" + "0" * 128)


@pytest.mark.parametrize(
    "text", ["sha256", "sha256:", ":abc", "sha256:" + "A" * 64, "sha256:" + "0" * 63, "md5:00"]
)
def test_malformed(text: str) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(text)


def test_writer_checks_digest_and_size() -> None:
    data = b"x" * 1000
    out = io.BytesIO()
    w = DigestingWriter(out, Digest.of_bytes(data), len(data))
    w.write(data[:500])
    w.write(data[500:])
    w.check()
    assert out.getvalue() == data

    w = DigestingWriter(io.BytesIO(), Digest.of_bytes(data), len(data))
    w.write(b"y" * 1000)
    with pytest.raises(IntegrityError, match="digest mismatch"):
        w.check()

    w = DigestingWriter(io.BytesIO(), Digest.of_bytes(data), len(data))
    with pytest.raises(IntegrityError, match="more data than the 1000 bytes"):
        w.write(b"x" * 1001)

    w = DigestingWriter(io.BytesIO(), Digest.of_bytes(data), len(data))
    w.write(b"x" * 10)
    with pytest.raises(IntegrityError, match="got 10 bytes, descriptor declares 1000"):
        w.check()
