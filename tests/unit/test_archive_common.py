"""Builders shared by the ``sneaker.archive`` unit tests: small images and blob sources.

Images are made in memory (real gzip layer tars, configs with matching
diff_ids, Docker or OCI manifests, indexes), so the writers and the reader
are tested without any server.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from sneaker.errors import NotFound
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Index, Manifest, parse_manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed, deterministic layer tar holding ``files``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class Blobs:
    """A :class:`BlobSource` over bytes in memory, optionally also as files (``blob_path``)."""

    data: dict[Digest, bytes] = field(default_factory=dict)
    directory: Path | None = None
    opened: list[Digest] = field(default_factory=list)

    def add(self, data: bytes) -> Digest:
        digest = Digest.of_bytes(data)
        self.data[digest] = data
        if self.directory is not None:
            (self.directory / digest.hex).write_bytes(data)
        return digest

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[BinaryIO]:
        if desc.digest not in self.data:
            raise NotFound(f"no blob {desc.digest}")
        self.opened.append(desc.digest)
        yield io.BytesIO(self.data[desc.digest])

    def blob_path(self, desc: Descriptor) -> Path | None:
        if self.directory is None or desc.digest not in self.data:
            return None
        return self.directory / desc.digest.hex


def make_manifest(
    blobs: Blobs,
    layers: list[Mapping[str, bytes]],
    *,
    oci: bool = False,
    arch: str = "amd64",
    compress: bool = True,
) -> Manifest:
    """A manifest with a config and one layer per mapping of file names to contents."""
    layer_descs = []
    diff_ids = []
    for files in layers:
        raw = layer_tar(files)
        diff_ids.append(str(Digest.of_bytes(raw)))
        body = gzipped(raw) if compress else raw
        digest = blobs.add(body)
        if oci:
            kind = mt.OCI_LAYER_GZIP if compress else mt.OCI_LAYER
        else:
            kind = mt.DOCKER_LAYER if compress else "application/vnd.docker.image.rootfs.diff.tar"
        layer_descs.append({"mediaType": kind, "size": len(body), "digest": str(digest)})
    config = dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    )
    config_digest = blobs.add(config)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        "config": {
            "mediaType": mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG,
            "size": len(config),
            "digest": str(config_digest),
        },
        "layers": layer_descs,
    }
    manifest = parse_manifest(dumps(doc))
    assert isinstance(manifest, Manifest)
    return manifest


def make_record(
    blobs: Blobs,
    name: str | None,
    layers: list[Mapping[str, bytes]] | None = None,
    **kwargs: Any,
) -> ImageRecord:
    manifest = make_manifest(
        blobs, layers or [{"etc/hostname": name.encode() if name else b"x"}], **kwargs
    )
    ref = parse_reference(name) if name else None
    return ImageRecord(ref, manifest)


def make_index(
    name: str | None, manifests: list[Manifest], arches: list[str] | None = None
) -> ImageRecord:
    """An OCI index over ``manifests`` (platform linux/<arch> each)."""
    arches = arches or [f"arch{i}" for i in range(len(manifests))]
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": m.media_type,
                "size": len(m.raw),
                "digest": str(m.digest),
                "platform": {"os": "linux", "architecture": arch},
            }
            for m, arch in zip(manifests, arches, strict=True)
        ],
    }
    index = parse_manifest(dumps(doc))
    assert isinstance(index, Index)
    ref = parse_reference(name) if name else None
    return ImageRecord(ref, index, {m.digest: m for m in manifests})


def tar_members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def tar_json(path: Path, member: str) -> Any:
    with tarfile.open(path) as tar:
        fh = tar.extractfile(member)
        assert fh is not None
        return json.load(fh)


# -- the builders themselves ----------------------------------------------------


def test_make_record_is_consistent() -> None:
    blobs = Blobs()
    record = make_record(blobs, "ubuntu:22.04", [{"a": b"1"}, {"b": b"2"}])
    assert isinstance(record.root, Manifest)
    assert len(record.root.layers) == 2
    for desc in record.root.blobs:
        assert Digest.of_bytes(blobs.data[desc.digest]) == desc.digest
        assert len(blobs.data[desc.digest]) == desc.size
    config = json.loads(blobs.data[record.root.config.digest])
    for layer, diff_id in zip(record.root.layers, config["rootfs"]["diff_ids"], strict=True):
        assert str(Digest.of_bytes(gzip.decompress(blobs.data[layer.digest]))) == diff_id


def test_blobs_refuses_unknown_digest() -> None:
    blobs = Blobs()
    desc = Descriptor(mt.DOCKER_LAYER, Digest.of_bytes(b"nope"), 4)
    with pytest.raises(NotFound), blobs.open_blob(desc):
        pass
