"""Choosing manifests from an index for a platform request."""

from __future__ import annotations

import json

import pytest

from sneaker.errors import NoMatchingPlatform
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Index, parse_manifest
from sneaker.image.platform import Platform, parse_platform
from sneaker.image.selection import PlatformRequest, build_subset_index, select_manifests


def _entry(n: int, platform: dict[str, str] | None, annotations: dict[str, str] | None = None):
    entry: dict[str, object] = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": f"sha256:{n:064x}",
        "size": 100 + n,
    }
    if platform is not None:
        entry["platform"] = platform
    if annotations:
        entry["annotations"] = annotations
    return entry


def _index() -> Index:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            _entry(1, {"os": "linux", "architecture": "amd64"}),
            _entry(2, {"os": "linux", "architecture": "arm", "variant": "v6"}),
            _entry(3, {"os": "linux", "architecture": "arm", "variant": "v7"}),
            _entry(4, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
            _entry(
                5,
                {"os": "unknown", "architecture": "unknown"},
                {"vnd.docker.reference.type": "attestation-manifest"},
            ),
        ],
    }
    parsed = parse_manifest(json.dumps(doc).encode())
    assert isinstance(parsed, Index)
    return parsed


def _digests(descs: list) -> list[int]:  # type: ignore[type-arg]
    return [int(d.digest.hex, 16) for d in descs]


def test_single_platform_and_variants() -> None:
    index = _index()
    req = PlatformRequest((parse_platform("linux/arm64"),))
    assert _digests(select_manifests(index, req, name="x")) == [4]
    req = PlatformRequest((parse_platform("linux/arm/v7"),))
    assert _digests(select_manifests(index, req, name="x")) == [3]
    req = PlatformRequest((parse_platform("linux/arm"),))
    assert _digests(select_manifests(index, req, name="x")) == [3]


def test_list_keeps_index_order_and_all_keeps_attestations() -> None:
    index = _index()
    req = PlatformRequest((parse_platform("linux/arm64"), parse_platform("linux/amd64")))
    assert _digests(select_manifests(index, req, name="x")) == [1, 4]
    assert _digests(select_manifests(index, PlatformRequest(all=True), name="x")) == [1, 2, 3, 4, 5]


def test_attestations_never_chosen_and_error_lists_platforms() -> None:
    index = _index()
    with pytest.raises(NoMatchingPlatform) as info:
        select_manifests(index, PlatformRequest((Platform("unknown", "unknown"),)), name="app:1")
    assert str(info.value) == "app:1 has no image for platform unknown/unknown"
    assert info.value.hint == (
        "available platforms: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8; "
        "choose one with --platform"
    )


def test_subset_index_is_rewritten_and_parses() -> None:
    index = _index()
    keep = [index.manifests[0], index.manifests[3]]
    subset = build_subset_index(index, keep)
    reparsed = parse_manifest(subset.raw)
    assert isinstance(reparsed, Index)
    assert [d.digest for d in reparsed.manifests] == [d.digest for d in keep]
    assert subset.digest == Digest.of_bytes(subset.raw)
    assert subset.digest != index.digest
