"""sneaker.archive writers, read back with open_archive: structure, names, determinism, safety."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

from sneaker.archive import open_archive, write_docker_archive, write_oci_layout
from sneaker.archive.oci_layout import merge_index_entries
from sneaker.archive.tar import TarWriter, _header
from sneaker.errors import IntegrityError, UsageError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Index, Manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from tests.unit.test_archive_common import (
    Blobs,
    make_index,
    make_manifest,
    make_record,
    tar_json,
    tar_members,
)

IMAGE_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"


def two_images(blobs: Blobs) -> list[ImageRecord]:
    shared = {"bin/tool": b"shared layer"}
    return [
        make_record(blobs, "ubuntu:22.04", [shared, {"etc/os": b"ubuntu"}]),
        make_record(blobs, "ghcr.io/o/app:v1", [shared, {"app": b"app"}], oci=True),
    ]


def read_all(stream: BinaryIO) -> bytes:
    with stream as fh:
        return fh.read()


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


# -- docker archive ----------------------------------------------------------------


def test_docker_archive_layout_and_metadata(tmp_path: Path) -> None:
    blobs = Blobs()
    records = two_images(blobs)
    out = tmp_path / "images.tar"
    assert write_docker_archive(records, blobs, out) == [out]

    names = tar_members(out)
    blob_names = [n for n in names if n.startswith("blobs/sha256/")]
    assert names[:2] == ["blobs", "blobs/sha256"]
    with tarfile.open(out) as tar:
        sizes = {m.name: m.size for m in tar}
    # smallest first (the order parallel downloads finish in), then by digest
    assert names[2 : 2 + len(blob_names)] == sorted(blob_names, key=lambda n: (sizes[n], n))
    assert names[2 + len(blob_names) :] == [
        "index.json",
        "manifest.json",
        "oci-layout",
        "repositories",
    ]
    # each blob once: 2 manifests + 2 configs + 3 distinct layers (one shared)
    assert len(blob_names) == len(set(blob_names)) == 7

    ubuntu, app = (r.root for r in records)
    assert isinstance(ubuntu, Manifest)
    assert isinstance(app, Manifest)
    assert tar_json(out, "manifest.json") == [
        {
            "Config": f"blobs/sha256/{ubuntu.config.digest.hex}",
            "RepoTags": ["ubuntu:22.04"],
            "Layers": [f"blobs/sha256/{d.digest.hex}" for d in ubuntu.layers],
        },
        {
            "Config": f"blobs/sha256/{app.config.digest.hex}",
            "RepoTags": ["ghcr.io/o/app:v1"],
            "Layers": [f"blobs/sha256/{d.digest.hex}" for d in app.layers],
        },
    ]
    assert tar_json(out, "repositories") == {
        "ubuntu": {"22.04": ubuntu.layers[-1].digest.hex},
        "ghcr.io/o/app": {"v1": app.layers[-1].digest.hex},
    }
    assert tar_json(out, "oci-layout") == {"imageLayoutVersion": "1.0.0"}
    index = tar_json(out, "index.json")
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == mt.OCI_INDEX
    assert [m["annotations"] for m in index["manifests"]] == [
        {IMAGE_NAME: "docker.io/library/ubuntu:22.04", REF_NAME: "22.04"},
        {IMAGE_NAME: "ghcr.io/o/app:v1", REF_NAME: "v1"},
    ]
    assert index["manifests"][0]["digest"] == str(ubuntu.digest)
    assert index["manifests"][1]["mediaType"] == mt.OCI_MANIFEST

    with tarfile.open(out) as tar:
        for info in tar.getmembers():
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
            assert info.mode == (0o755 if info.isdir() else 0o644)
    assert out.stat().st_size % 512 == 0


def test_docker_archive_reads_back(tmp_path: Path) -> None:
    blobs = Blobs()
    records = two_images(blobs)
    out = tmp_path / "images.tar"
    write_docker_archive(records, blobs, out)
    with open_archive(out) as archive:
        assert archive.format == "docker-archive"
        assert [r.reference for r in archive.records] == [r.reference for r in records]
        assert [r.root for r in archive.records] == [r.root for r in records]
        assert archive.names == ["docker.io/library/ubuntu:22.04", "ghcr.io/o/app:v1"]
        for record in records:
            for desc in record.blobs():
                assert archive.has_blob(desc.digest)
                assert archive.blob_size(desc.digest) == desc.size
                assert archive.blob_path(desc) is None
                assert read_all(archive.open_blob(desc)) == blobs.data[desc.digest]


def test_same_image_two_tags_shares_one_manifest_entry(tmp_path: Path) -> None:
    blobs = Blobs()
    record = make_record(blobs, "ubuntu:22.04")
    other = ImageRecord(parse_reference("ubuntu:jammy"), record.root)
    out = tmp_path / "a.tar"
    write_docker_archive([record, other], blobs, out)
    manifest = tar_json(out, "manifest.json")
    assert len(manifest) == 1
    assert manifest[0]["RepoTags"] == ["ubuntu:22.04", "ubuntu:jammy"]
    assert len(tar_json(out, "index.json")["manifests"]) == 2
    assert set(tar_json(out, "repositories")["ubuntu"]) == {"22.04", "jammy"}
    with open_archive(out) as archive:
        assert [str(r.reference) for r in archive.records] == [
            "docker.io/library/ubuntu:22.04",
            "docker.io/library/ubuntu:jammy",
        ]


def test_digest_only_reference(tmp_path: Path) -> None:
    blobs = Blobs()
    record = make_record(blobs, None)
    ref = parse_reference(f"quay.io/x/y@{record.root.digest}")
    out = tmp_path / "a.tar"
    write_docker_archive([ImageRecord(ref, record.root)], blobs, out)
    assert tar_json(out, "manifest.json")[0]["RepoTags"] == []
    assert tar_json(out, "repositories") == {}
    entry = tar_json(out, "index.json")["manifests"][0]
    assert entry["annotations"] == {IMAGE_NAME: f"quay.io/x/y@{record.root.digest}"}
    with open_archive(out) as archive:
        assert archive.records[0].reference == ref
        assert not archive.records[0].rewritten


def test_unnamed_record(tmp_path: Path) -> None:
    blobs = Blobs()
    record = make_record(blobs, None)
    out = tmp_path / "a.tar"
    write_docker_archive([record], blobs, out)
    assert "annotations" not in tar_json(out, "index.json")["manifests"][0]
    with open_archive(out) as archive:
        assert archive.records[0].reference is None
        assert archive.names == [None]


def test_docker_archive_refuses_an_index(tmp_path: Path) -> None:
    blobs = Blobs()
    a = make_manifest(blobs, [{"a": b"a"}])
    b = make_manifest(blobs, [{"b": b"b"}], arch="arm64")
    with pytest.raises(UsageError) as err:
        write_docker_archive([make_index("multi:1", [a, b])], blobs, tmp_path / "a.tar")
    assert "--format oci" in (err.value.hint or "")
    assert list(tmp_path.iterdir()) == []


def test_one_name_two_images_is_refused(tmp_path: Path) -> None:
    blobs = Blobs()
    a = make_record(blobs, "app:1", [{"a": b"a"}])
    b = make_record(blobs, "app:1", [{"b": b"b"}])
    with pytest.raises(UsageError, match="two different images"):
        write_docker_archive([a, b], blobs, tmp_path / "a.tar")
    with pytest.raises(UsageError, match="two different images"):
        write_oci_layout([a, b], blobs, tmp_path / "o.tar", as_tar=True)
    with pytest.raises(UsageError):
        write_docker_archive([], blobs, tmp_path / "a.tar")


def test_deterministic_bytes(tmp_path: Path) -> None:
    blobs = Blobs()
    records = two_images(blobs)
    outputs = []
    for i in range(2):
        out = tmp_path / f"d{i}.tar"
        write_docker_archive(records, blobs, out)
        outputs.append(out.read_bytes())
        out = tmp_path / f"o{i}.tar"
        write_oci_layout(records, blobs, out, as_tar=True)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[2]
    assert outputs[1] == outputs[3]


def test_fast_path_from_local_files_gives_same_bytes(tmp_path: Path) -> None:
    streamed = Blobs()
    records = two_images(streamed)
    (tmp_path / "files").mkdir()
    local = Blobs(directory=tmp_path / "files")
    for data in streamed.data.values():
        local.add(data)
    write_docker_archive(records, streamed, tmp_path / "a.tar")
    write_docker_archive(records, local, tmp_path / "b.tar")
    assert local.opened == []  # every blob came through blob_path
    assert streamed.opened
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


# -- failures leave nothing behind ---------------------------------------------------


def test_corrupt_blob_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    blobs = Blobs()
    records = two_images(blobs)
    layer = records[0].root.layers[0]  # type: ignore[union-attr]
    body = blobs.data[layer.digest]
    blobs.data[layer.digest] = body[:-1] + bytes([body[-1] ^ 0xFF])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(IntegrityError, match="digest mismatch"):
        write_docker_archive(records, blobs, out_dir / "a.tar")
    with pytest.raises(IntegrityError, match="digest mismatch"):
        write_oci_layout(records, blobs, out_dir / "layout", as_tar=False)
    assert not (out_dir / "a.tar").exists()
    assert no_temp_files(out_dir)
    assert not (out_dir / "layout" / "index.json").exists()


@pytest.mark.parametrize("extra", [-1, 5])
def test_short_and_long_blobs_are_refused(tmp_path: Path, extra: int) -> None:
    blobs = Blobs()
    records = two_images(blobs)
    config = records[0].root.config  # type: ignore[union-attr]
    body = blobs.data[config.digest]
    blobs.data[config.digest] = body[:extra] if extra < 0 else body + b"x" * extra
    with pytest.raises(IntegrityError, match="bytes"):
        write_docker_archive(records, blobs, tmp_path / "a.tar")
    assert list(tmp_path.iterdir()) == []


def test_local_file_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    blobs = Blobs(directory=tmp_path / "files")
    records = two_images(blobs)
    config = records[0].root.config  # type: ignore[union-attr]
    (tmp_path / "files" / config.digest.hex).write_bytes(b"{}")
    with pytest.raises(IntegrityError, match="declares"):
        write_docker_archive(records, blobs, tmp_path / "a.tar")
    assert not (tmp_path / "a.tar").exists()
    assert no_temp_files(tmp_path)


class Interrupting(Blobs):
    """Raises KeyboardInterrupt after handing out some blobs."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[BinaryIO]:
        if self.after == 0:
            raise KeyboardInterrupt
        self.after -= 1
        yield io.BytesIO(self.data[desc.digest])


def test_interrupted_write_leaves_no_file(tmp_path: Path) -> None:
    blobs = Interrupting(after=2)
    records = two_images(blobs)
    (tmp_path / "old.tar").write_bytes(b"previous archive")
    with pytest.raises(KeyboardInterrupt):
        write_docker_archive(records, blobs, tmp_path / "old.tar")
    assert (tmp_path / "old.tar").read_bytes() == b"previous archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.tar"]


# -- OCI archive and layout ------------------------------------------------------------


def test_oci_archive_with_index_root(tmp_path: Path) -> None:
    blobs = Blobs()
    a = make_manifest(blobs, [{"a": b"a"}], oci=True)
    b = make_manifest(blobs, [{"b": b"b"}], oci=True, arch="arm64")
    multi = make_index("registry.example:5000/multi:1", [a, b], ["amd64", "arm64"])
    single = make_record(blobs, "single:2", oci=True)
    out = tmp_path / "oci.tar"
    write_oci_layout([multi, single], blobs, out, as_tar=True)
    names = tar_members(out)
    assert "manifest.json" not in names
    assert names[-2:] == ["index.json", "oci-layout"]
    for digest in (multi.root.digest, a.digest, b.digest):
        assert f"blobs/sha256/{digest.hex}" in names
    with open_archive(out) as archive:
        assert archive.format == "oci-archive"
        got = archive.records[0]
        assert isinstance(got.root, Index)
        assert got.root.raw == multi.root.raw
        assert dict(got.children) == dict(multi.children)
        assert str(got.reference) == "registry.example:5000/multi:1"
        assert archive.records[1].root == single.root
        for desc in (*a.blobs, *b.blobs):
            assert read_all(archive.open_blob(desc)) == blobs.data[desc.digest]


def test_oci_layout_directory_round_trip(tmp_path: Path) -> None:
    blobs = Blobs()
    records = two_images(blobs)
    out = tmp_path / "layout"
    assert write_oci_layout(records, blobs, out, as_tar=False) == [out]
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    with open_archive(out) as archive:
        assert archive.format == "oci-layout"
        assert [r.root for r in archive.records] == [r.root for r in records]
        for record in records:
            for desc in record.blobs():
                path = archive.blob_path(desc)
                assert path == out / "blobs" / "sha256" / desc.digest.hex
                assert path.read_bytes() == blobs.data[desc.digest]
    assert no_temp_files(out)
    # a directory layout is a tar's content exactly: same files, same bytes
    write_oci_layout(records, blobs, tmp_path / "l.tar", as_tar=True)
    with tarfile.open(tmp_path / "l.tar") as tar:
        for info in tar.getmembers():
            if info.isfile():
                fh = tar.extractfile(info)
                assert fh is not None
                assert (out / info.name).read_bytes() == fh.read()


def test_oci_layout_directory_skips_present_blobs_and_merges_index(tmp_path: Path) -> None:
    blobs = Blobs()
    first = make_record(blobs, "ubuntu:22.04", [{"shared": b"s"}, {"a": b"a"}])
    out = tmp_path / "layout"
    write_oci_layout([first], blobs, out, as_tar=False)
    index_path = out / "index.json"
    foreign = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": str(first.root.digest),
        "size": len(first.root.raw),
        "annotations": {REF_NAME: "kept-by-someone-else"},
    }
    doc = json.loads(index_path.read_text())
    doc["manifests"].append(foreign)
    doc["annotations"] = {"custom": "kept"}
    index_path.write_text(json.dumps(doc))
    shared_layer = out / "blobs" / "sha256" / first.root.layers[0].digest.hex  # type: ignore[union-attr]
    before = shared_layer.stat()

    second = make_record(blobs, "alpine:3", [{"shared": b"s"}, {"b": b"b"}])
    blobs.opened.clear()
    write_oci_layout([second], blobs, out, as_tar=False)
    assert shared_layer.stat().st_ino == before.st_ino  # present: not rewritten
    assert first.root.layers[0].digest not in blobs.opened  # type: ignore[union-attr]
    doc = json.loads(index_path.read_text())
    assert doc["annotations"] == {"custom": "kept"}
    assert [m["annotations"] for m in doc["manifests"]] == [
        {IMAGE_NAME: "docker.io/library/ubuntu:22.04", REF_NAME: "22.04"},
        {REF_NAME: "kept-by-someone-else"},
        {IMAGE_NAME: "docker.io/library/alpine:3", REF_NAME: "3"},
    ]

    # the same name again, with other content: replaced, not duplicated
    newer = make_record(blobs, "ubuntu:22.04", [{"new": b"n"}])
    write_oci_layout([newer], blobs, out, as_tar=False)
    doc = json.loads(index_path.read_text())
    names = [m["annotations"].get(IMAGE_NAME) for m in doc["manifests"]]
    assert names == [None, "docker.io/library/alpine:3", "docker.io/library/ubuntu:22.04"]
    assert doc["manifests"][-1]["digest"] == str(newer.root.digest)
    with open_archive(out) as archive:
        assert len(archive.records) == 3
        assert archive.names[0] == "kept-by-someone-else"
        assert archive.records[0].reference is None  # a bare tag names no repository


def test_oci_layout_rewrites_a_damaged_blob_of_the_wrong_size(tmp_path: Path) -> None:
    blobs = Blobs()
    record = make_record(blobs, "a:1")
    out = tmp_path / "layout"
    write_oci_layout([record], blobs, out, as_tar=False)
    config = out / "blobs" / "sha256" / record.root.config.digest.hex  # type: ignore[union-attr]
    config.write_bytes(b"short")
    write_oci_layout([record], blobs, out, as_tar=False)
    assert config.read_bytes() == blobs.data[record.root.config.digest]  # type: ignore[union-attr]


def test_oci_layout_directory_refusals(tmp_path: Path) -> None:
    blobs = Blobs()
    record = make_record(blobs, "a:1")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an OCI image layout"):
        write_oci_layout([record], blobs, busy, as_tar=False)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    with pytest.raises(UsageError, match="--split"):
        write_oci_layout([record], blobs, tmp_path / "d", as_tar=False, split=1000)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        write_oci_layout([record], blobs, tmp_path / "file", as_tar=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    write_oci_layout([record], blobs, empty, as_tar=False)
    assert (empty / "index.json").exists()


def test_merge_index_entries_rules() -> None:
    def entry(digest: str, **ann: str) -> dict[str, object]:
        e: dict[str, object] = {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": 1}
        if ann:
            e["annotations"] = {k.replace("_", "."): v for k, v in ann.items()}
        return e

    old = [
        {"digest": "d1", "annotations": {IMAGE_NAME: "docker.io/library/a:1", REF_NAME: "1"}},
        {"digest": "d2", "annotations": {REF_NAME: "1"}},  # ref name only: replaced by ref
        {"digest": "d3", "annotations": {IMAGE_NAME: "docker.io/library/b:1", REF_NAME: "1"}},
        {"digest": "d4"},  # unnamed, kept
    ]
    new = [{"digest": "d9", "annotations": {IMAGE_NAME: "docker.io/library/a:1", REF_NAME: "1"}}]
    merged = merge_index_entries(old, new)
    assert [e["digest"] for e in merged] == ["d3", "d4", "d9"]
    assert entry("x")["digest"] == "x"


# -- reading an archive and writing it again ---------------------------------------------


def test_archive_source_feeds_the_writers(tmp_path: Path) -> None:
    blobs = Blobs()
    records = two_images(blobs)
    first = tmp_path / "first.tar"
    write_oci_layout(records, blobs, first, as_tar=True)
    with open_archive(first) as archive:
        write_docker_archive(archive.records, archive, tmp_path / "second.tar")
        write_oci_layout(archive.records, archive, tmp_path / "layout", as_tar=False)
    with open_archive(tmp_path / "layout") as layout:
        write_oci_layout(layout.records, layout, tmp_path / "third.tar", as_tar=True)
    assert (tmp_path / "third.tar").read_bytes() == first.read_bytes()
    with open_archive(tmp_path / "second.tar") as archive:
        assert [r.root for r in archive.records] == [r.root for r in records]


def test_big_member_header_uses_pax_size() -> None:
    header = _header("blobs/sha256/" + "a" * 64, 9 * 1024**3, tarfile.REGTYPE)
    assert len(header) > 512
    assert b"size=9663676416" in header


def test_tar_writer_pads_members(tmp_path: Path) -> None:
    chunks: list[bytes] = []

    class Sink:
        def write(self, data: bytes | bytearray | memoryview) -> int:
            chunks.append(bytes(data))
            return len(data)

        def copy_from_fd(self, fd: int, offset: int, count: int) -> None:
            chunks.append(os.pread(fd, count, offset))

    writer = TarWriter(Sink())
    writer.add_bytes("a.json", b"{}")
    writer.finish()
    data = b"".join(chunks)
    assert len(data) == 512 + 512 + 1024
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        fh = tar.extractfile("a.json")
        assert fh is not None
        assert fh.read() == b"{}"


def test_digest_helper_is_sorted() -> None:
    digests = sorted([Digest.of_bytes(b"b"), Digest.of_bytes(b"a")])
    assert digests[0].hex < digests[1].hex


def read_extent(place: tuple[Path, int] | None, size: int) -> bytes:
    assert place is not None
    with place[0].open("rb") as fh:
        fh.seek(place[1])
        return fh.read(size)


def test_blob_extent_points_into_the_tar_and_the_layout(tmp_path: Path) -> None:
    blobs = Blobs()
    records = two_images(blobs)
    write_docker_archive(records, blobs, tmp_path / "a.tar")
    write_oci_layout(records, blobs, tmp_path / "layout", as_tar=False)
    for path in (tmp_path / "a.tar", tmp_path / "layout"):
        with open_archive(path) as archive:
            for record in records:
                for desc in (record.root.descriptor, *record.blobs()):
                    place = archive.blob_extent(desc)
                    assert read_extent(place, desc.size) == read_all(archive.open_blob(desc))
                    wrong = Descriptor(desc.media_type, desc.digest, desc.size + 1)
                    assert archive.blob_extent(wrong) is None
            absent = Descriptor(mt.OCI_LAYER, Digest.of_bytes(b"absent"), 6)
            assert archive.blob_extent(absent) is None


def test_blob_extent_in_split_parts(tmp_path: Path) -> None:
    blobs = Blobs()
    records = two_images(blobs)
    write_docker_archive(records, blobs, tmp_path / "a.tar", split=600)
    whole, straddling = 0, 0
    with open_archive(tmp_path / "a.tar") as archive:
        for record in records:
            for desc in record.blobs():
                place = archive.blob_extent(desc)
                if place is None:
                    straddling += 1
                    continue
                whole += 1
                assert place[0].name.startswith("a.tar.0")
                with archive.open_blob(desc) as fh:
                    assert read_extent(place, desc.size) == fh.read()
    assert whole
    assert straddling


@pytest.mark.parametrize("split", [None, 1000])
def test_concurrent_reads(tmp_path: Path, split: int | None) -> None:
    blobs = Blobs()
    records = [
        make_record(blobs, f"img:{i}", [{"f": os.urandom(5000 + i)}, {"g": bytes([i]) * 3000}])
        for i in range(6)
    ]
    write_docker_archive(records, blobs, tmp_path / "a.tar", split=split)
    descs = [d for r in records for d in r.blobs()] * 8
    with open_archive(tmp_path / "a.tar") as archive:

        def read(desc: Descriptor) -> bool:
            with archive.open_blob(desc) as fh:
                out = bytearray()
                while chunk := fh.read(777):
                    out += chunk
            return bytes(out) == blobs.data[desc.digest]

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(read, descs))
