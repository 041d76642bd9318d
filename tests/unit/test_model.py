"""Manifest and index parsing: raw bytes kept, limits and schema enforced."""

from __future__ import annotations

import json

import pytest

from sneaker.errors import IntegrityError, InvalidDigest, ManifestInvalid, UnsupportedError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import MAX_MANIFEST_BYTES, Index, Manifest, parse_manifest

CONFIG = {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "1" * 64, "size": 10}
LAYER = {"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "2" * 64, "size": 20}


def test_manifest_keeps_raw_bytes_and_digest() -> None:
    raw = b'{"schemaVersion":2, "mediaType":"%s","config":%s,"layers":[%s]}' % (
        mt.OCI_MANIFEST.encode(),
        json.dumps(CONFIG).encode(),
        json.dumps(LAYER).encode(),
    )
    parsed = parse_manifest(raw, expected=Digest.of_bytes(raw))
    assert isinstance(parsed, Manifest)
    assert parsed.raw == raw
    assert parsed.digest == Digest.of_bytes(raw)
    assert [str(d.digest) for d in parsed.blobs] == [CONFIG["digest"], LAYER["digest"]]


def test_media_type_sniffed_when_absent() -> None:
    raw = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert isinstance(parse_manifest(raw), Index)
    raw = json.dumps({"schemaVersion": 2, "config": CONFIG, "layers": []}).encode()
    assert isinstance(parse_manifest(raw), Manifest)


def test_digest_mismatch() -> None:
    raw = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    with pytest.raises(IntegrityError, match="digest mismatch for manifest"):
        parse_manifest(raw, expected=Digest.of_bytes(b"other"))


def test_schema1_refused_with_hint() -> None:
    raw = json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode()
    with pytest.raises(UnsupportedError) as info:
        parse_manifest(raw)
    assert "schema 1" in str(info.value)
    assert info.value.hint is not None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"schemaVersion": 2, "config": CONFIG, "layers": "x"}, "'layers' must be a list"),
        (
            {"schemaVersion": 2, "config": {"digest": "sha256:x", "size": 1}, "layers": []},
            "invalid digest",
        ),
        (
            {"schemaVersion": 2, "config": {**CONFIG, "size": -1}, "layers": []},
            "size must be a non-negative integer",
        ),
        ({"schemaVersion": 2, "config": {"size": 1}, "layers": []}, "missing 'digest'"),
        ({"schemaVersion": 3, "manifests": []}, "schemaVersion must be 2"),
    ],
)
def test_schema_violations(doc: dict[str, object], message: str) -> None:
    with pytest.raises((ManifestInvalid, InvalidDigest), match=message):
        parse_manifest(json.dumps(doc).encode())


def test_size_cap_and_bad_json() -> None:
    with pytest.raises(ManifestInvalid, match="larger than the 4 MiB limit"):
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(ManifestInvalid, match="not valid JSON"):
        parse_manifest(b"{nope")
    with pytest.raises(UnsupportedError, match="not an image"):
        parse_manifest(json.dumps({"schemaVersion": 2, "mediaType": "text/plain"}).encode())
