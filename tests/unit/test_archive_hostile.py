"""open_archive refuses hostile or broken archives (ArchiveError, UnsafePath), extracts nothing."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sneaker.archive import open_archive, write_oci_layout
from sneaker.archive.reader import walk_children
from sneaker.errors import (
    ArchiveError,
    IntegrityError,
    NotFound,
    SneakerError,
    UnsafePath,
    UnsupportedError,
    UsageError,
)
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Index, Manifest, parse_manifest
from tests.unit.test_archive_common import Blobs, dumps, make_record

Member = tuple[str, bytes] | tarfile.TarInfo


def build_tar(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def good_layout(tmp_path: Path) -> dict[str, bytes]:
    """The members of a valid one-image OCI archive, by name."""
    blobs = Blobs()
    record = make_record(blobs, "app:1", oci=True)
    write_oci_layout([record], blobs, tmp_path / "good.tar", as_tar=True)
    out: dict[str, bytes] = {}
    with tarfile.open(tmp_path / "good.tar") as tar:
        for info in tar.getmembers():
            fh = tar.extractfile(info)
            if fh is not None:
                out[info.name] = fh.read()
    return out


def variant(tmp_path: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    members = good_layout(tmp_path)
    change(members)
    return build_tar(tmp_path / "bad.tar", list(members.items()))


def index_of(members: dict[str, bytes]) -> dict[str, object]:
    doc: dict[str, object] = json.loads(members["index.json"])
    return doc


def refused(path: Path, error: type[SneakerError], match: str) -> None:
    before = set(os.listdir(path.parent))
    with pytest.raises(error, match=match):
        open_archive(path)
    assert set(os.listdir(path.parent)) == before  # nothing extracted


def test_good_layout_opens(tmp_path: Path) -> None:
    path = variant(tmp_path, lambda m: None)
    with open_archive(path) as archive:
        assert archive.format == "oci-archive"
        assert len(archive.records) == 1


@pytest.mark.parametrize(
    ("members", "error", "match"),
    [
        ([("/etc/passwd", b"x")], UnsafePath, "absolute name"),
        ([("../escape", b"x")], UnsafePath, r"'\.\.'"),
        ([("blobs/../../escape", b"x")], UnsafePath, r"'\.\.'"),
        ([link("evil", "/etc/shadow")], UnsafePath, "absolute path"),
        ([link("a/evil", "../../etc/shadow")], UnsafePath, "leads out"),
        ([link("evil", "../x", tarfile.LNKTYPE)], UnsafePath, r"'\.\.'"),
        ([("index.json", b"{}"), ("index.json", b"{}")], ArchiveError, "appears twice"),
        ([("./index.json", b"{}"), ("index.json", b"{}")], ArchiveError, "appears twice"),
    ],
)
def test_hostile_member_names(
    tmp_path: Path, members: list[Member], error: type[SneakerError], match: str
) -> None:
    refused(build_tar(tmp_path / "t.tar", members), error, match)


def test_device_members_are_refused(tmp_path: Path) -> None:
    dev = tarfile.TarInfo("dev/sda")
    dev.type = tarfile.BLKTYPE
    refused(build_tar(tmp_path / "t.tar", [dev]), ArchiveError, "device")


def test_link_loops_are_refused(tmp_path: Path) -> None:
    members: list[Member] = [
        link("index.json", "a.json"),
        link("a.json", "b.json"),
        link("b.json", "a.json"),
    ]
    refused(build_tar(tmp_path / "t.tar", members), ArchiveError, "circle")


def test_index_json_pointing_at_a_missing_blob(tmp_path: Path) -> None:
    def change(m: dict[str, bytes]) -> None:
        doc = index_of(m)
        entry = doc["manifests"][0]  # type: ignore[index]
        del m[f"blobs/sha256/{Digest.parse(entry['digest']).hex}"]

    refused(variant(tmp_path, change), ArchiveError, "index.json points at .* missing")


def test_manifest_needing_a_missing_layer(tmp_path: Path) -> None:
    def change(m: dict[str, bytes]) -> None:
        entry = index_of(m)["manifests"][0]  # type: ignore[index]
        manifest = json.loads(m[f"blobs/sha256/{Digest.parse(entry['digest']).hex}"])
        del m[f"blobs/sha256/{Digest.parse(manifest['layers'][0]['digest']).hex}"]

    refused(variant(tmp_path, change), ArchiveError, "needs blob .* missing")


def test_manifest_whose_bytes_do_not_match_its_digest(tmp_path: Path) -> None:
    def change(m: dict[str, bytes]) -> None:
        entry = index_of(m)["manifests"][0]  # type: ignore[index]
        name = f"blobs/sha256/{Digest.parse(entry['digest']).hex}"
        m[name] = m[name].replace(b'"schemaVersion":2', b'"schemaVersion": 2')

    refused(variant(tmp_path, change), IntegrityError, "digest mismatch")


@pytest.mark.parametrize("name", ["index.json", "oci-layout"])
def test_malformed_json(tmp_path: Path, name: str) -> None:
    def change(m: dict[str, bytes]) -> None:
        m[name] = b'{"manifests": ['

    refused(variant(tmp_path, change), ArchiveError, f"{name} is not valid JSON")


def test_deeply_nested_json_is_malformed_not_a_crash(tmp_path: Path) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["index.json"] = b"[" * 100_000 + b"]" * 100_000

    refused(variant(tmp_path, change), ArchiveError, "index.json")


def test_index_json_of_the_wrong_shape(tmp_path: Path) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["index.json"] = b'{"manifests": {"not": "a list"}}'

    refused(variant(tmp_path, change), ArchiveError, "'manifests' list")

    def bad_entry(m: dict[str, bytes]) -> None:
        m["index.json"] = b'{"manifests": [{"digest": "sha256:nothex", "size": 1}]}'

    refused(variant(tmp_path, bad_entry), ArchiveError, "manifests\\[0\\]")


def test_oversized_index_json(tmp_path: Path) -> None:
    def change(m: dict[str, bytes]) -> None:
        doc = index_of(m)
        doc["annotations"] = {"padding": "x" * (4 * 1024 * 1024)}
        m["index.json"] = json.dumps(doc).encode()

    refused(variant(tmp_path, change), ArchiveError, "larger than the 4 MiB limit")


def test_oversized_manifest(tmp_path: Path) -> None:
    big = dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [],
            "annotations": {"pad": "x" * (4 * 1024 * 1024)},
        }
    )
    digest = Digest.of_bytes(big)

    def change(m: dict[str, bytes]) -> None:
        m[f"blobs/sha256/{digest.hex}"] = big
        doc = index_of(m)
        doc["manifests"] = [{"mediaType": mt.OCI_INDEX, "digest": str(digest), "size": len(big)}]
        m["index.json"] = json.dumps(doc).encode()

    refused(variant(tmp_path, change), ArchiveError, "larger than the 4 MiB limit")


def test_malformed_manifest_blob(tmp_path: Path) -> None:
    bad = b'{"schemaVersion": 2, "mediaType": "' + mt.OCI_MANIFEST.encode() + b'", "layers": ['
    digest = Digest.of_bytes(bad)

    def change(m: dict[str, bytes]) -> None:
        m[f"blobs/sha256/{digest.hex}"] = bad
        m["index.json"] = dumps(
            {"manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": str(digest), "size": len(bad)}]}
        )

    refused(variant(tmp_path, change), ArchiveError, "not valid JSON")


def chain_of_indexes(depth: int) -> dict[str, bytes]:
    """index_0 -> index_1 -> ... -> index_depth (empty); blobs by member name."""
    members: dict[str, bytes] = {}
    child: dict[str, object] | None = None
    for _ in range(depth + 1):
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [child] if child else []}
        raw = dumps(doc)
        digest = Digest.of_bytes(raw)
        members[f"blobs/sha256/{digest.hex}"] = raw
        child = {"mediaType": mt.OCI_INDEX, "digest": str(digest), "size": len(raw)}
    members["index.json"] = dumps({"schemaVersion": 2, "manifests": [child]})
    members["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
    return members


def test_indexes_nested_too_deep(tmp_path: Path) -> None:
    ok = build_tar(tmp_path / "ok.tar", list(chain_of_indexes(5).items()))
    with open_archive(ok) as archive:
        assert len(archive.records[0].children) == 5
    deep = build_tar(tmp_path / "deep.tar", list(chain_of_indexes(12).items()))
    refused(deep, ArchiveError, "nest more than")


def test_index_loop_is_refused() -> None:
    # A real loop needs a sha256 collision, so the loader here lies about digests.
    def index(name: str, child: str) -> Index:
        digest = Digest.of_bytes(child.encode())
        raw = dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_INDEX,
                "manifests": [{"mediaType": mt.OCI_INDEX, "digest": str(digest), "size": 1}],
                "annotations": {"name": name},
            }
        )
        node = parse_manifest(raw)
        assert isinstance(node, Index)
        return node

    a, b = index("A", "B"), index("B", "A")
    by_digest = {Digest.of_bytes(b"A"): a, Digest.of_bytes(b"B"): b}

    class Fake(Index):
        @property
        def digest(self) -> Digest:
            return Digest.of_bytes(b"A")

    root = Fake(a.raw, a.media_type, a.manifests, a.annotations)

    def load(desc: Descriptor) -> Manifest | Index | None:
        return by_digest[desc.digest]

    with pytest.raises(ArchiveError, match="loop"):
        walk_children(root, load)


def test_index_children_may_be_absent_and_shared_ones_load_once(tmp_path: Path) -> None:
    members = chain_of_indexes(1)
    doc = json.loads(members["index.json"])
    missing = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of_bytes(b"gone")), "size": 4}
    top = dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [doc["manifests"][0], doc["manifests"][0], missing],
        }
    )
    members[f"blobs/sha256/{Digest.of_bytes(top).hex}"] = top
    members["index.json"] = dumps(
        {
            "manifests": [
                {"mediaType": mt.OCI_INDEX, "digest": str(Digest.of_bytes(top)), "size": len(top)}
            ]
        }
    )
    with open_archive(build_tar(tmp_path / "t.tar", list(members.items()))) as archive:
        assert len(archive.records[0].children) == 2


def test_not_a_tar_and_compressed_tars(tmp_path: Path) -> None:
    (tmp_path / "text").write_bytes(b"hello, this is not a tar archive at all" * 20)
    refused(tmp_path / "text", ArchiveError, "not a tar archive")
    (tmp_path / "empty").write_bytes(b"")
    refused(tmp_path / "empty", ArchiveError, "not a tar archive")
    good = variant(tmp_path, lambda m: None)
    (tmp_path / "g.tar.gz").write_bytes(gzip.compress(good.read_bytes()))
    with pytest.raises(UnsupportedError) as err:
        open_archive(tmp_path / "g.tar.gz")
    assert "gunzip" in (err.value.hint or "")
    build_tar(tmp_path / "other.tar", [("readme.txt", b"hi")])
    refused(tmp_path / "other.tar", ArchiveError, "not an image archive")
    with pytest.raises(UsageError, match=r"absent\.tar: no such file or directory"):
        open_archive(tmp_path / "absent.tar")


def test_truncated_archive(tmp_path: Path) -> None:
    good = variant(tmp_path, lambda m: None)
    data = good.read_bytes()
    with tarfile.open(good) as tar:
        cuts = [info.offset_data + info.size // 2 for info in tar.getmembers() if info.size > 1]
    assert cuts
    for cut in cuts:
        (tmp_path / "cut.tar").write_bytes(data[:cut])
        with pytest.raises(ArchiveError):
            open_archive(tmp_path / "cut.tar")


def test_unknown_layout_version(tmp_path: Path) -> None:
    def change(m: dict[str, bytes]) -> None:
        m["oci-layout"] = b'{"imageLayoutVersion": "2.0.0"}'

    refused(variant(tmp_path, change), UnsupportedError, "2.0.0")


def test_layout_directory_symlink_out(tmp_path: Path) -> None:
    blobs = Blobs()
    record = make_record(blobs, "a:1")
    layout = tmp_path / "layout"
    write_oci_layout([record], blobs, layout, as_tar=False)
    secret = tmp_path / "secret"
    secret.write_bytes(b"top secret")
    config = layout / "blobs" / "sha256" / record.root.config.digest.hex  # type: ignore[union-attr]
    config.unlink()
    config.symlink_to(secret)
    with pytest.raises(UnsafePath, match="outside"):
        open_archive(layout)


def test_open_blob_of_an_absent_or_wrongly_sized_blob(tmp_path: Path) -> None:
    good = variant(tmp_path, lambda m: None)
    with open_archive(good) as archive:
        desc = next(archive.records[0].blobs())
        with pytest.raises(NotFound):
            archive.open_blob(Descriptor(mt.OCI_LAYER, Digest.of_bytes(b"?"), 1))
        assert not archive.has_blob(Digest.of_bytes(b"?"))
        assert archive.blob_size(Digest.of_bytes(b"?")) is None
        with pytest.raises(IntegrityError):
            archive.open_blob(Descriptor(desc.media_type, desc.digest, desc.size + 1))


def test_manifest_json_paths_outside_or_missing(tmp_path: Path) -> None:
    def outside(m: dict[str, bytes]) -> None:
        m["manifest.json"] = dumps([{"Config": "../../etc/passwd", "RepoTags": [], "Layers": []}])

    refused(variant(tmp_path, outside), UnsafePath, r"'\.\.'")

    def absolute(m: dict[str, bytes]) -> None:
        m["manifest.json"] = dumps([{"Config": "/etc/passwd", "RepoTags": [], "Layers": []}])

    refused(variant(tmp_path, absolute), UnsafePath, "absolute")

    def missing(m: dict[str, bytes]) -> None:
        m["manifest.json"] = dumps([{"Config": "nope.json", "RepoTags": [], "Layers": []}])

    refused(variant(tmp_path, missing), ArchiveError, "not in the archive")

    def not_a_list(m: dict[str, bytes]) -> None:
        m["manifest.json"] = b'{"Config": 1}'

    refused(variant(tmp_path, not_a_list), ArchiveError, "not a list")


def test_a_tar_of_zero_blocks_is_no_image_archive(tmp_path: Path) -> None:
    """A tar that starts with its end block has no members, on every Python (3.10's
    tarfile would seek to offset -1 after it)."""
    path = tmp_path / "zeros.tar"
    path.write_bytes(bytes(10240))
    with pytest.raises(ArchiveError, match=r"neither index\.json nor manifest\.json"):
        open_archive(path)
