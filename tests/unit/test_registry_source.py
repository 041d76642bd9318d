"""The registry as an ImageSource (``transfer/source.py``), on a registry in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sneaker.errors import NotFound
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Manifest
from sneaker.image.reference import parse_reference
from sneaker.image.selection import PlatformRequest
from sneaker.registry.client import RegistryClient
from sneaker.transfer.cache import BlobCache
from sneaker.transfer.source import RegistrySource, resolve_images
from tests.fixtures.memory_registry import MemoryRegistry

HOST = "registry.example"
REPO = "team/app"
CONFIG = json.dumps(
    {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
).encode()
LAYER = bytes(range(256)) * 5000  # 1.28 MB: more than one chunk


def _registry() -> MemoryRegistry:
    registry = MemoryRegistry(HOST)
    config = registry.put_blob(REPO, CONFIG)
    layer = registry.put_blob(REPO, LAYER)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": len(CONFIG),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer,
                "size": len(LAYER),
            }
        ],
    }
    raw = json.dumps(manifest).encode()
    registry.put_manifest(REPO, "1", raw, "application/vnd.oci.image.manifest.v1+json")
    return registry


def _source(registry: MemoryRegistry, cache: BlobCache | None) -> RegistrySource:
    client = RegistryClient(HOST, transport=registry)
    ref = parse_reference(f"{HOST}/{REPO}:1")
    return resolve_images([ref], lambda _: client, PlatformRequest(), cache=cache)


def _layer(source: RegistrySource) -> Descriptor:
    root = source.records[0].root
    assert isinstance(root, Manifest)
    return root.layers[0]


def test_records_names_and_blobs_straight_from_the_registry() -> None:
    registry = _registry()
    source = _source(registry, None)
    assert source.names == [f"{HOST}/{REPO}:1"]
    layer = _layer(source)
    assert source.has_blob(layer.digest)
    assert source.blob_size(layer.digest) == len(LAYER)
    assert not source.has_blob(Digest.of_bytes(b"not in any image"))
    assert source.blob_path(layer) is None
    with source.open_blob(layer) as stream:
        assert stream.read(10) == LAYER[:10]
        assert stream.read() == LAYER[10:]
    assert registry.calls("GET")[-1] == f"GET /v2/{REPO}/blobs/{layer.digest}"


def test_with_a_cache_a_blob_is_downloaded_into_it_once(tmp_path: Path) -> None:
    registry = _registry()
    source = _source(registry, BlobCache(tmp_path / "cache"))
    layer = _layer(source)
    assert source.blob_path(layer) is None
    for _ in range(2):
        with source.open_blob(layer) as stream:
            assert stream.read() == LAYER
    path = source.blob_path(layer)
    assert path is not None
    assert path.read_bytes() == LAYER
    gets = [c for c in registry.calls("GET") if c.endswith(str(layer.digest))]
    assert len(gets) == 1


def test_fetch_downloads_every_blob_and_jobs_split_configs_from_layers(tmp_path: Path) -> None:
    registry = _registry()
    source = _source(registry, BlobCache(tmp_path / "cache"))
    config = source.records[0].root
    assert isinstance(config, Manifest)
    assert [j.desc for j in source.jobs(configs=True)] == [config.config]
    assert [j.desc for j in source.jobs(configs=False)] == list(config.layers)
    stats = source.fetch(parallel=2)
    assert (stats.downloaded, stats.cached) == (2, 0)
    assert all(source.blob_path(d) is not None for d in config.blobs)


def test_a_blob_no_image_names_is_not_found() -> None:
    source = _source(_registry(), None)
    stranger = Descriptor("application/octet-stream", Digest.of_bytes(b"x"), 1)
    with pytest.raises(NotFound), source.open_blob(stranger):
        pass
