"""sneaker.layers.apply: decompression (sniffed codecs, bomb bound) and diff_ids."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import tarfile

import pytest

from sneaker.errors import IntegrityError, UnsupportedError
from sneaker.image import mediatypes as mt
from sneaker.layers.apply import LayerLimits, diff_id_of, open_layer_stream


def small_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"hello layer\n" * 100
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


TAR = small_tar()
TAR_DIFF_ID = "sha256:" + hashlib.sha256(TAR).hexdigest()


@pytest.mark.parametrize(
    ("compress", "media_type"),
    [
        (lambda b: b, mt.OCI_LAYER),
        (gzip.compress, mt.OCI_LAYER_GZIP),
        (gzip.compress, mt.OCI_LAYER),  # the media type lies: sniffing wins
        (lambda b: b, mt.DOCKER_LAYER),  # docker save: plain tars labelled gzip
        (lzma.compress, ""),
        (bz2.compress, ""),
        (lambda b: gzip.compress(b[:700]) + gzip.compress(b[700:]), mt.OCI_LAYER_GZIP),
    ],
    ids=["plain", "gzip", "gzip-mislabelled", "plain-labelled-gzip", "xz", "bzip2", "multi-gz"],
)
def test_codecs_are_sniffed(compress: object, media_type: str) -> None:
    assert callable(compress)
    blob: bytes = compress(TAR)
    digest, size = diff_id_of(io.BytesIO(blob), media_type, compressed_size=len(blob))
    assert (str(digest), size) == (TAR_DIFF_ID, len(TAR))
    with tarfile.open(fileobj=open_layer_stream(io.BytesIO(blob), media_type), mode="r|") as tar:
        assert [m.name for m in tar] == ["hello.txt"]


def test_encrypted_layer_is_unsupported() -> None:
    with pytest.raises(UnsupportedError, match="encrypted"):
        open_layer_stream(io.BytesIO(TAR), mt.OCI_LAYER_GZIP + "+encrypted")


def test_gzip_bomb_stops_at_the_ratio_cap() -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))  # ~8 KiB that expands 1000-fold
    limits = LayerLimits(ratio=64, floor=1024, absolute=1 << 40)
    with pytest.raises(IntegrityError, match=r"^layer x: expands to more than \d+ bytes") as info:
        diff_id_of(
            io.BytesIO(bomb),
            mt.OCI_LAYER_GZIP,
            compressed_size=len(bomb),
            limits=limits,
            what="layer x",
        )
    assert str(64 * len(bomb)) in str(info.value)
    assert info.value.hint is not None
    assert "decompression bomb" in info.value.hint


def test_absolute_cap_applies_without_a_known_size() -> None:
    bomb = gzip.compress(b"\0" * 100_000)
    with pytest.raises(IntegrityError, match="expands to more than 50000 bytes"):
        diff_id_of(io.BytesIO(bomb), limits=LayerLimits(absolute=50_000))


def test_cap_is_never_below_the_floor() -> None:
    blob = gzip.compress(b"\0" * 100_000)
    digest, size = diff_id_of(
        io.BytesIO(blob), compressed_size=len(blob), limits=LayerLimits(ratio=1, floor=100_000)
    )
    assert size == 100_000
    assert digest.hex == hashlib.sha256(b"\0" * 100_000).hexdigest()


def test_limits_cap_for() -> None:
    limits = LayerLimits(ratio=10, floor=100, absolute=1000)
    assert limits.cap_for(None) == 1000
    assert limits.cap_for(5) == 100
    assert limits.cap_for(50) == 500
    assert limits.cap_for(500) == 1000


@pytest.mark.parametrize("cut", ["truncated", "flipped"])
def test_damaged_gzip_is_an_integrity_error(cut: str) -> None:
    blob = bytearray(gzip.compress(TAR))
    if cut == "truncated":
        blob = blob[: len(blob) // 2]
    else:
        blob[-6] ^= 0xFF  # the CRC or length trailer
    with pytest.raises(IntegrityError, match=r"^layer: damaged gzip data"):
        diff_id_of(io.BytesIO(bytes(blob)), mt.OCI_LAYER_GZIP)


def test_empty_blob_has_the_empty_diff_id() -> None:
    digest, size = diff_id_of(io.BytesIO(b""), mt.OCI_LAYER)
    assert size == 0
    assert digest.hex == hashlib.sha256(b"").hexdigest()
