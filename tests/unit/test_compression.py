"""The one compression sniffer (layers/compression.py), and both of its readers agreeing."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
from pathlib import Path

import pytest
import zstandard

from sneaker.archive import open_archive
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Manifest
from sneaker.layers.apply import diff_id_of
from sneaker.layers.compression import SNIFF_BYTES, sniff_compression
from tests.unit.test_archive_common import dumps, layer_tar
from tests.unit.test_archive_legacy import LegacyTar, config_for

TAR = layer_tar({"etc/hello": b"hello"})


def _skippable(magic_low: int, payload: bytes = b"meta") -> bytes:
    """A zstd skippable frame: magic 0x184D2A5? (little-endian), length, payload."""
    return bytes([magic_low, 0x2A, 0x4D, 0x18]) + len(payload).to_bytes(4, "little") + payload


@pytest.mark.parametrize(
    ("data", "codec"),
    [
        (gzip.compress(TAR), "gzip"),
        (zstandard.ZstdCompressor().compress(TAR), "zstd"),
        (_skippable(0x50) + zstandard.ZstdCompressor().compress(TAR), "zstd"),
        (_skippable(0x5F) + zstandard.ZstdCompressor().compress(TAR), "zstd"),
        (lzma.compress(TAR), "xz"),
        (bz2.compress(TAR), "bzip2"),
        (TAR, None),
        (b"", None),
        (b"\x1f", None),  # too short to be gzip
        (bytes([0x4F, 0x2A, 0x4D, 0x18]), None),  # just below the skippable range
        (bytes([0x60, 0x2A, 0x4D, 0x18]), None),  # just above it
    ],
    ids=[
        "gzip",
        "zstd",
        "zstd-skippable-first",
        "zstd-skippable-last",
        "xz",
        "bzip2",
        "tar",
        "empty",
        "short",
        "below-skippable",
        "above-skippable",
    ],
)
def test_codecs_by_their_first_bytes(data: bytes, codec: str | None) -> None:
    assert sniff_compression(data[:SNIFF_BYTES]) == codec


def test_a_layer_opening_with_a_skippable_frame_is_zstd_to_the_layer_reader() -> None:
    blob = _skippable(0x5A) + zstandard.ZstdCompressor().compress(TAR)
    assert diff_id_of(io.BytesIO(blob)) == (Digest.of_bytes(TAR), len(TAR))


def test_a_docker_save_layer_opening_with_a_skippable_frame_is_zstd_to_the_archive_reader(
    tmp_path: Path,
) -> None:
    body = _skippable(0x50) + zstandard.ZstdCompressor().compress(TAR)
    config = config_for([TAR])
    config_name = "sha256:" + hashlib.sha256(config).hexdigest()
    tar = LegacyTar()
    tar.file(config_name, config)
    tar.file("layer.tar.zst", body)
    manifest = [{"Config": config_name, "RepoTags": None, "Layers": ["layer.tar.zst"]}]
    tar.file("manifest.json", dumps(manifest))
    with open_archive(tar.write(tmp_path / "zstd.tar")) as archive:
        root = archive.records[0].root
        assert isinstance(root, Manifest)
        layer = root.layers[0]
        assert layer.media_type == mt.OCI_LAYER_ZSTD
        assert layer.digest == Digest.of_bytes(body)
        with archive.open_blob(layer) as fh:
            assert fh.read() == body
