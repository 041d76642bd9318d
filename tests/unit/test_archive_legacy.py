"""Reading archives with manifest.json and no OCI layout: docker save (< 25), skopeo, podman."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from sneaker.archive import open_archive, write_docker_archive
from sneaker.errors import ArchiveError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Manifest
from tests.unit.test_archive_common import (
    Blobs,
    dumps,
    layer_tar,
    make_record,
    tar_json,
    tar_members,
)


def config_for(layers: list[bytes]) -> bytes:
    diff_ids = [f"sha256:{hashlib.sha256(raw).hexdigest()}" for raw in layers]
    return dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    )


class LegacyTar:
    def __init__(self) -> None:
        self.members: list[tarfile.TarInfo | tuple[str, bytes]] = []

    def file(self, name: str, data: bytes) -> None:
        self.members.append((name, data))

    def symlink(self, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        self.members.append(info)

    def write(self, path: Path) -> Path:
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
            for member in self.members:
                if isinstance(member, tarfile.TarInfo):
                    tar.addfile(member)
                else:
                    name, data = member
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    info.mtime = 1_700_000_000
                    tar.addfile(info, io.BytesIO(data))
        return path


LAYER_A = layer_tar({"bin/sh": b"#!shell", "etc/os-release": b"ID=test"})
LAYER_B = layer_tar({"app/run": b"run it"})


def docker_2010_archive(path: Path, repo_tags: list[str]) -> tuple[Path, bytes]:
    """What docker 20.10's ``docker save`` writes: ``<id>/layer.tar``, a repeated layer as
    a symlink to the first, ``<config hex>.json``, ``manifest.json``, ``repositories``."""
    layers = [LAYER_A, LAYER_B, LAYER_A]
    config = config_for(layers)
    config_hex = hashlib.sha256(config).hexdigest()
    ids = ["1" * 64, "2" * 64, "3" * 64]
    tar = LegacyTar()
    for layer_id, raw in zip(ids[:2], layers[:2], strict=True):
        tar.file(f"{layer_id}/VERSION", b"1.0")
        tar.file(f"{layer_id}/json", dumps({"id": layer_id}))
        tar.file(f"{layer_id}/layer.tar", raw)
    tar.file(f"{ids[2]}/VERSION", b"1.0")
    tar.symlink(f"{ids[2]}/layer.tar", f"../{ids[0]}/layer.tar")
    tar.file(f"{config_hex}.json", config)
    tar.file(
        "manifest.json",
        dumps(
            [
                {
                    "Config": f"{config_hex}.json",
                    "RepoTags": repo_tags,
                    "Layers": [f"{i}/layer.tar" for i in ids],
                }
            ]
        ),
    )
    tar.file("repositories", dumps({"app": {"1": ids[2]}}))
    return tar.write(path), config


def test_docker_2010_save_is_read_with_synthesised_manifests(tmp_path: Path) -> None:
    path, config = docker_2010_archive(tmp_path / "save.tar", ["app:1", "app:latest"])
    with open_archive(path) as archive:
        assert archive.format == "docker-legacy"
        assert [str(r.reference) for r in archive.records] == [
            "docker.io/library/app:1",
            "docker.io/library/app:latest",
        ]
        assert archive.names == ["app:1", "app:latest"]
        root = archive.records[0].root
        assert archive.records[1].root == root
        assert isinstance(root, Manifest)
        assert root.media_type == mt.DOCKER_MANIFEST
        assert root.config.media_type == mt.DOCKER_CONFIG
        assert root.config.digest == Digest.of_bytes(config)
        assert [d.media_type for d in root.layers] == [mt.DOCKER_LAYER_TAR] * 3
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        assert [str(d.digest) for d in root.layers] == diff_ids
        assert [d.size for d in root.layers] == [len(LAYER_A), len(LAYER_B), len(LAYER_A)]
        for desc, raw in zip(root.layers, [LAYER_A, LAYER_B, LAYER_A], strict=True):
            with archive.open_blob(desc) as fh:
                assert fh.read() == raw
        with archive.open_blob(root.config) as fh:
            assert fh.read() == config
        with archive.open_blob(root.descriptor) as fh:
            assert fh.read() == root.raw
        assert archive.has_blob(root.digest)
        assert archive.blob_path(root.layers[0]) is None

        # and it converts into a docker 25-style archive
        out = tmp_path / "new.tar"
        write_docker_archive(archive.records, archive, out)
    with open_archive(out) as again:
        assert again.format == "docker-archive"
        assert again.records[0].root == root
    assert tar_json(out, "manifest.json")[0]["RepoTags"] == ["app:1", "app:latest"]
    # the repeated layer is stored once
    assert len([n for n in tar_members(out) if n.startswith("blobs/sha256/")]) == 4


def test_skopeo_and_podman_docker_archive_shape(tmp_path: Path) -> None:
    """``<diff_id hex>.tar`` layers, ``<hex>.json`` config, legacy dirs linking to them."""
    layers = [LAYER_A, LAYER_B]
    config = config_for(layers)
    config_hex = hashlib.sha256(config).hexdigest()
    tar = LegacyTar()
    names = []
    for number, raw in enumerate(layers):
        hex_ = hashlib.sha256(raw).hexdigest()
        tar.file(f"{hex_}.tar", raw)
        legacy = f"{number + 4}" * 64
        tar.file(f"{legacy}/VERSION", b"1.0")
        tar.symlink(f"{legacy}/layer.tar", f"../{hex_}.tar")
        names.append(f"{hex_}.tar")
    tar.file(f"{config_hex}.json", config)
    tar.file(
        "manifest.json",
        dumps([{"Config": f"{config_hex}.json", "RepoTags": ["localhost/app:1"], "Layers": names}]),
    )
    with open_archive(tar.write(tmp_path / "skopeo.tar")) as archive:
        assert archive.format == "docker-legacy"
        assert str(archive.records[0].reference) == "localhost/app:1"
        root = archive.records[0].root
        assert isinstance(root, Manifest)
        for desc, raw in zip(root.layers, layers, strict=True):
            assert desc.digest == Digest.of_bytes(raw)
            with archive.open_blob(desc) as fh:
                assert fh.read() == raw


def test_compressed_layers_are_hashed(tmp_path: Path) -> None:
    raw = LAYER_A
    body = gzip.compress(raw, mtime=0)
    config = config_for([raw])
    tar = LegacyTar()
    tar.file("sha256:" + hashlib.sha256(config).hexdigest(), config)
    tar.file("layer.tar.gz", body)
    tar.file(
        "manifest.json",
        dumps(
            [
                {
                    "Config": "sha256:" + hashlib.sha256(config).hexdigest(),
                    "RepoTags": None,
                    "Layers": ["layer.tar.gz"],
                }
            ]
        ),
    )
    with open_archive(tar.write(tmp_path / "crane.tar")) as archive:
        record = archive.records[0]
        assert record.reference is None
        assert archive.names == [None]
        assert isinstance(record.root, Manifest)
        layer = record.root.layers[0]
        assert layer.media_type == mt.DOCKER_LAYER
        assert layer.digest == Digest.of_bytes(body)
        with archive.open_blob(layer) as fh:
            assert fh.read() == body


def test_extracted_docker_save_directory(tmp_path: Path) -> None:
    path, _ = docker_2010_archive(tmp_path / "save.tar", ["app:1"])
    out = tmp_path / "extracted"
    with tarfile.open(path) as tar:
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(out, filter="tar")
        else:  # pragma: no cover - Python without extraction filters
            tar.extractall(out)
    with open_archive(out) as archive:
        assert archive.format == "docker-legacy"
        root = archive.records[0].root
        assert isinstance(root, Manifest)
        blob = archive.blob_path(root.layers[0])
        assert blob is not None
        assert blob.read_bytes() == LAYER_A


def test_layer_count_must_match_diff_ids(tmp_path: Path) -> None:
    config = config_for([LAYER_A, LAYER_B])
    tar = LegacyTar()
    tar.file("c.json", config)
    tar.file("a/layer.tar", LAYER_A)
    tar.file("manifest.json", dumps([{"Config": "c.json", "Layers": ["a/layer.tar"]}]))
    with pytest.raises(ArchiveError, match="lists 1 layers, its config has 2"):
        open_archive(tar.write(tmp_path / "t.tar"))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"rootfs": {}}', "no rootfs.diff_ids"),
        (b'{"rootfs": {"diff_ids": ["sha256:zz"]}}', "invalid digest"),
    ],
)
def test_bad_configs(tmp_path: Path, config: bytes, match: str) -> None:
    tar = LegacyTar()
    tar.file("c.json", config)
    tar.file("manifest.json", dumps([{"Config": "c.json", "Layers": []}]))
    with pytest.raises(ArchiveError, match=match):
        open_archive(tar.write(tmp_path / "t.tar"))


def test_bad_repo_tag(tmp_path: Path) -> None:
    config = config_for([])
    tar = LegacyTar()
    tar.file("c.json", config)
    tar.file("manifest.json", dumps([{"Config": "c.json", "RepoTags": ["Bad Name"], "Layers": []}]))
    with pytest.raises(ArchiveError, match=r"manifest\.json"):
        open_archive(tar.write(tmp_path / "t.tar"))


def test_docker_25_archive_without_index_names_uses_repo_tags(tmp_path: Path) -> None:
    """docker 25 leaves index.json entries of untagged saves unnamed; manifest.json names them."""
    blobs = Blobs()
    record = make_record(blobs, None)
    out = tmp_path / "a.tar"
    write_docker_archive([record], blobs, out)
    members: dict[str, bytes] = {}
    with tarfile.open(out) as tar:
        for info in tar.getmembers():
            fh = tar.extractfile(info)
            if fh is not None:
                members[info.name] = fh.read()
    manifest = json.loads(members["manifest.json"])
    manifest[0]["RepoTags"] = ["app:1", "app:2"]
    members["manifest.json"] = dumps(manifest)
    tar_ = LegacyTar()
    for name, data in members.items():
        tar_.file(name, data)
    with open_archive(tar_.write(tmp_path / "b.tar")) as archive:
        assert archive.format == "docker-archive"
        assert [str(r.reference) for r in archive.records] == [
            "docker.io/library/app:1",
            "docker.io/library/app:2",
        ]
        assert archive.records[0].root == record.root
