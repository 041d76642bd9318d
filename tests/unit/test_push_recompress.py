"""Deterministic gzip of uncompressed layers and the manifest rewrite (layers/recompress.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from sneaker.errors import IntegrityError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Index, Manifest, parse_manifest
from sneaker.layers.recompress import (
    gzip_layer_to_dir,
    gzip_stream,
    needs_compression,
    rewrite_index,
    rewrite_manifest,
)


def _sha(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def _layer_bytes(size: int = 3 * 1024 * 1024 + 17) -> bytes:
    # compressible but not trivial: repeated pseudo-random blocks
    block = os.urandom(4096)
    return (block * (size // len(block) + 1))[:size]


def _gzip(data: bytes, **kw: object) -> tuple[bytes, Digest, int]:
    out = io.BytesIO()
    digest, size = gzip_stream(io.BytesIO(data), out, **kw)  # type: ignore[arg-type]
    return out.getvalue(), digest, size


def test_gzip_is_deterministic_and_valid() -> None:
    data = _layer_bytes()
    first, digest1, size1 = _gzip(data)
    second, digest2, size2 = _gzip(data)
    assert first == second
    assert digest1 == digest2 == _sha(first)
    assert size1 == size2 == len(first)
    assert gzip.decompress(first) == data
    # fixed header: no name, mtime 0, OS unknown
    assert first[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_gzip_of_empty_input() -> None:
    out, digest, size = _gzip(b"")
    assert gzip.decompress(out) == b""
    assert digest == _sha(out)
    assert size == len(out)


def test_gzip_checks_uncompressed_digest_and_size() -> None:
    data = b"some tar bytes" * 100
    _gzip(data, expected=_sha(data), expected_size=len(data))
    with pytest.raises(IntegrityError, match="digest mismatch"):
        _gzip(data, expected=_sha(b"other"), expected_size=len(data))
    with pytest.raises(IntegrityError, match="declares"):
        _gzip(data, expected=_sha(data), expected_size=len(data) + 1)
    with pytest.raises(IntegrityError, match="more data"):
        _gzip(data, expected=_sha(data), expected_size=len(data) - 1)


def test_gzip_layer_to_dir(tmp_path: Path) -> None:
    data = _layer_bytes(200_000)
    desc = Descriptor(mt.DOCKER_LAYER_TAR, _sha(data), len(data))
    assert needs_compression(desc)
    layer = gzip_layer_to_dir(io.BytesIO(data), desc, tmp_path / "gz")
    blob = layer.path.read_bytes()
    assert layer.descriptor.media_type == mt.DOCKER_LAYER
    assert layer.descriptor.digest == _sha(blob)
    assert layer.descriptor.size == len(blob)
    assert layer.uncompressed_digest == desc.digest
    assert gzip.decompress(blob) == data
    assert [p.name for p in (tmp_path / "gz").iterdir()] == [layer.path.name]


def test_gzip_layer_to_dir_leaves_nothing_on_mismatch(tmp_path: Path) -> None:
    data = b"x" * 1000
    desc = Descriptor(mt.DOCKER_LAYER_TAR, _sha(b"y"), len(data))
    with pytest.raises(IntegrityError):
        gzip_layer_to_dir(io.BytesIO(data), desc, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_only_legacy_uncompressed_layers_are_compressed() -> None:
    digest = _sha(b"")
    assert not needs_compression(Descriptor(mt.DOCKER_LAYER, digest, 0))
    assert not needs_compression(Descriptor(mt.OCI_LAYER_GZIP, digest, 0))
    assert not needs_compression(Descriptor(mt.OCI_LAYER, digest, 0))
    # an uncompressed OCI layer only when the reader synthesised the manifest
    assert needs_compression(Descriptor(mt.OCI_LAYER, digest, 0), synthesised=True)
    assert not needs_compression(Descriptor(mt.OCI_LAYER_GZIP, digest, 0), synthesised=True)


def _manifest(layers: list[tuple[str, bytes]]) -> Manifest:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG, "size": 3, "digest": str(_sha(b"cfg"))},
        "layers": [
            {"mediaType": kind, "size": len(data), "digest": str(_sha(data))}
            for kind, data in layers
        ],
    }
    parsed = parse_manifest(json.dumps(doc).encode())
    assert isinstance(parsed, Manifest)
    return parsed


def test_rewrite_manifest_replaces_only_named_layers() -> None:
    manifest = _manifest([(mt.DOCKER_LAYER_TAR, b"a"), (mt.DOCKER_LAYER, b"b")])
    new = Descriptor(mt.DOCKER_LAYER, _sha(b"gz-a"), 4)
    rewritten = rewrite_manifest(manifest, {_sha(b"a"): new})
    assert rewritten.layers[0] == new
    assert rewritten.layers[1] == manifest.layers[1]
    assert rewritten.config == manifest.config
    assert rewritten.media_type == mt.DOCKER_MANIFEST
    assert rewritten.digest != manifest.digest
    # deterministic
    assert rewrite_manifest(manifest, {_sha(b"a"): new}).raw == rewritten.raw
    # key order of the original document is kept
    assert list(json.loads(rewritten.raw)) == list(json.loads(manifest.raw))


def test_rewrite_manifest_without_matches_is_identity() -> None:
    manifest = _manifest([(mt.DOCKER_LAYER, b"b")])
    assert rewrite_manifest(manifest, {}) is manifest


def test_rewrite_index_points_at_new_children() -> None:
    child = _manifest([(mt.DOCKER_LAYER_TAR, b"a")])
    other = _manifest([(mt.DOCKER_LAYER, b"b")])
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [
            {
                "mediaType": mt.DOCKER_MANIFEST,
                "size": len(child.raw),
                "digest": str(child.digest),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": mt.DOCKER_MANIFEST,
                "size": len(other.raw),
                "digest": str(other.digest),
                "platform": {"os": "linux", "architecture": "arm64"},
            },
        ],
    }
    index = parse_manifest(json.dumps(doc).encode())
    assert isinstance(index, Index)
    new_child = rewrite_manifest(child, {_sha(b"a"): Descriptor(mt.DOCKER_LAYER, _sha(b"z"), 1)})
    rewritten = rewrite_index(index, {child.digest: new_child.descriptor})
    assert rewritten.manifests[0].digest == new_child.digest
    assert rewritten.manifests[0].size == len(new_child.raw)
    assert rewritten.manifests[0].platform == index.manifests[0].platform
    assert rewritten.manifests[1] == index.manifests[1]
    assert rewrite_index(index, {}) is index
