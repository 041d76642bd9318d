"""sneaker.verbs.verify on hand-built OCI layouts, damaged in every way it must report.

The layouts are written blob by blob here (:class:`Layout`); the unpack unit tests
reuse them. Each is read three ways: as a directory and as a tar by
:func:`sneaker.archive.open_archive`, and by :class:`DirSource`, a minimal lenient
reader of just what ``verify`` and ``unpack`` use. ``open_archive`` refuses some
damage while opening (a missing blob, a size that differs, a damaged manifest):
those cases are checked through DirSource, and through :func:`verify_archive`,
which turns the refusal into one problem line. At the CLI: an archive that cannot
be opened exits 8, problems are listed once then counted, a failed blob is marked
so in the progress, a damaged part of a split set is named, ``--json`` stays JSON.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from sneaker.archive import open_archive, write_oci_layout
from sneaker.archive.split import part_path
from sneaker.cli.main import main
from sneaker.errors import ArchiveError, NotFound, VerificationFailed
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Index, Manifest, parse_manifest
from sneaker.image.records import ImageRecord, ImageSource
from sneaker.image.reference import parse_reference
from sneaker.layers.apply import LayerLimits
from sneaker.util.progress import NullProgress
from sneaker.verbs.verify import verify, verify_archive, verify_or_raise
from tests.unit.test_archive_common import Blobs, make_record


def layer_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    """Writes an OCI image layout by hand: blobs, manifests, indexes, index.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.entries: list[dict[str, Any]] = []

    def path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.partition(":")[2]

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        self.path(sha(data)).write_bytes(data)
        return {"mediaType": media_type, "digest": sha(data), "size": len(data)}

    def image(
        self,
        layers: list[dict[str, bytes]],
        *,
        arch: str = "amd64",
        diff_ids: list[str] | None = None,
        config_bytes: bytes | None = None,
        size_delta: int = 0,
        tars: list[bytes] | None = None,
        compress: Callable[[bytes], bytes] | None = None,
        layer_type: str = mt.OCI_LAYER_GZIP,
    ) -> dict[str, Any]:
        """An image manifest of gzip layers (``tars`` as they are, or ``layers`` of files);
        ``compress`` and ``layer_type`` for another codec."""
        tars = tars if tars is not None else [layer_tar(files) for files in layers]
        squeeze = compress or (lambda t: gzip.compress(t, mtime=0))
        layer_descs = [self.blob(squeeze(t), layer_type) for t in tars]
        if size_delta:
            layer_descs[-1] = {**layer_descs[-1], "size": layer_descs[-1]["size"] + size_delta}
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(t) for t in tars]},
        }
        raw_config = config_bytes if config_bytes is not None else json.dumps(config).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": self.blob(raw_config, mt.OCI_CONFIG),
            "layers": layer_descs,
        }
        return self.blob(json.dumps(manifest).encode(), mt.OCI_MANIFEST)

    def index(self, children: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
        """An image index of (descriptor, platform) pairs; returns its descriptor."""
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [{**desc, "platform": plat} for desc, plat in children],
        }
        return self.blob(json.dumps(doc).encode(), mt.OCI_INDEX)

    def name(self, desc: dict[str, Any], reference: str) -> None:
        tag = reference.rpartition(":")[2]
        annotations = {
            "io.containerd.image.name": reference,
            "org.opencontainers.image.ref.name": tag,
        }
        self.entries.append({**desc, "annotations": annotations})
        self.write_index()

    def write_index(self) -> None:
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": self.entries}
        (self.root / "index.json").write_text(json.dumps(doc))

    # -- damage -----------------------------------------------------------------------------

    def manifest_doc(self, desc: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.path(desc["digest"]).read_bytes())
        return doc

    def flip(self, digest: str, offset: int = -10) -> None:
        path = self.path(digest)
        data = bytearray(path.read_bytes())
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))

    def truncate(self, digest: str, keep: int) -> None:
        path = self.path(digest)
        path.write_bytes(path.read_bytes()[:keep])

    def remove(self, digest: str) -> None:
        self.path(digest).unlink()


class DirSource:
    """Reads a :class:`Layout` directory the way an archive reader hands it over: an
    :class:`~sneaker.image.records.ImageSource`."""

    format = "oci-layout"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.records: list[ImageRecord] = []
        self.names: list[str | None] = []
        index = json.loads((root / "index.json").read_bytes())
        for entry in index["manifests"]:
            desc = Descriptor.from_json(entry)
            root_node = self._parse(desc)
            assert root_node is not None, "a damaged root is not what these tests are about"
            children: dict[Digest, Manifest | Index] = {}
            if isinstance(root_node, Index):
                for child_desc in root_node.manifests:
                    child = self._parse(child_desc)
                    if child is not None:
                        children[child_desc.digest] = child
            name = entry.get("annotations", {}).get("io.containerd.image.name")
            reference = parse_reference(name) if name else None
            self.records.append(ImageRecord(reference, root_node, children))
            self.names.append(name)

    def _path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def _parse(self, desc: Descriptor) -> Manifest | Index | None:
        try:
            raw = self._path(desc.digest).read_bytes()
            return parse_manifest(raw, desc.media_type, expected=desc.digest)
        except (OSError, Exception):
            return None

    def has_blob(self, digest: Digest) -> bool:
        return self._path(digest).is_file()

    def blob_size(self, digest: Digest) -> int | None:
        path = self._path(digest)
        return path.stat().st_size if path.is_file() else None

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[BinaryIO]:
        path = self._path(desc.digest)
        if not path.is_file():
            raise NotFound(f"blob {desc.digest} is not in the layout")
        with path.open("rb") as stream:
            yield stream

    def blob_path(self, desc: Descriptor) -> Path | None:
        path = self._path(desc.digest)
        return path if path.is_file() else None


def tar_of(root: Path) -> Path:
    out = root.with_suffix(".tar")
    with tarfile.open(out, "w") as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return out


def open_source(root: Path, kind: str) -> ImageSource:
    """``kind``: ``dir`` (DirSource), ``layout`` or ``tar`` (open_archive)."""
    if kind == "dir":
        return DirSource(root)
    if kind == "layout":
        return open_archive(root)
    return open_archive(tar_of(root))


ALL_READERS = pytest.mark.parametrize("kind", ["dir", "layout", "tar"])
REF = "docker.io/library/app:1"


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "layout")


def single(layout: Layout, **kwargs: Any) -> dict[str, Any]:
    desc = layout.image([{"a.txt": b"alpha"}, {"b.txt": b"beta" * 100}], **kwargs)
    layout.name(desc, REF)
    return desc


def layer_digest(layout: Layout, manifest: dict[str, Any], index: int = -1) -> str:
    digest: str = layout.manifest_doc(manifest)["layers"][index]["digest"]
    return digest


@ALL_READERS
def test_intact_layout_has_no_problems(layout: Layout, kind: str) -> None:
    single(layout)
    source = open_source(layout.root, kind)
    assert verify(source) == []
    assert verify(source, deep=True) == []
    verify_or_raise(source, deep=True)


@ALL_READERS
def test_flipped_byte_in_a_layer(layout: Layout, kind: str) -> None:
    layer = layer_digest(layout, single(layout))
    layout.flip(layer)
    actual = sha(layout.path(layer).read_bytes())
    assert verify(open_source(layout.root, kind), deep=True) == [
        f"{REF}: layer {layer}: digest mismatch (content hashes to {actual})"
    ]


@ALL_READERS
def test_flipped_byte_in_a_config(layout: Layout, kind: str) -> None:
    config = layout.manifest_doc(single(layout))["config"]["digest"]
    layout.flip(config, offset=3)
    actual = sha(layout.path(config).read_bytes())
    assert verify(open_source(layout.root, kind)) == [
        f"{REF}: config {config}: digest mismatch (content hashes to {actual})"
    ]


def test_truncated_layer(layout: Layout) -> None:
    layer = layer_digest(layout, single(layout))
    size = layout.path(layer).stat().st_size
    layout.truncate(layer, 20)
    assert verify(DirSource(layout.root)) == [
        f"{REF}: layer {layer}: size 20, descriptor says {size}"
    ]


def test_missing_layer_and_config(layout: Layout) -> None:
    manifest = single(layout)
    doc = layout.manifest_doc(manifest)
    layer, config = doc["layers"][0]["digest"], doc["config"]["digest"]
    layout.remove(layer)
    layout.remove(config)
    assert verify(DirSource(layout.root), deep=True) == [
        f"{REF}: config {config}: blob missing",
        f"{REF}: layer {layer}: blob missing",
    ]


def test_wrong_size_in_the_descriptor(layout: Layout) -> None:
    manifest = single(layout, size_delta=3)
    layer = layer_digest(layout, manifest)
    size = layout.path(layer).stat().st_size
    assert verify(DirSource(layout.root)) == [
        f"{REF}: layer {layer}: size {size}, descriptor says {size + 3}"
    ]


@pytest.mark.parametrize("damage", ["truncate", "size"])
def test_damage_refused_at_open_is_one_problem_line(layout: Layout, damage: str) -> None:
    manifest = single(layout, size_delta=3 if damage == "size" else 0)
    layer = layer_digest(layout, manifest)
    if damage == "truncate":
        layout.truncate(layer, 20)
    (line,) = verify_archive(layout.root)
    assert line.startswith(f"{layout.root}: ")
    assert layer in line


@ALL_READERS
def test_wrong_diff_id_is_found_only_when_deep(layout: Layout, kind: str) -> None:
    wrong = sha(b"not the layer")
    good = sha(layer_tar({"a.txt": b"alpha"}))
    manifest = single(layout, diff_ids=[good, wrong])
    layer = layer_digest(layout, manifest)
    actual = sha(layer_tar({"b.txt": b"beta" * 100}))
    source = open_source(layout.root, kind)
    assert verify(source) == []
    assert verify(source, deep=True) == [
        f"{REF}: layer {layer}: uncompressed content hashes to {actual}, "
        f"rootfs.diff_ids[1] says {wrong}"
    ]
    with pytest.raises(VerificationFailed, match=r"^1 problem found: ") as info:
        verify_or_raise(source, deep=True)
    assert info.value.problems == verify(source, deep=True)


@ALL_READERS
def test_config_that_is_not_json(layout: Layout, kind: str) -> None:
    manifest = single(layout, config_bytes=b"{not json")
    config = layout.manifest_doc(manifest)["config"]["digest"]
    (line,) = verify(open_source(layout.root, kind), deep=True)
    assert line.startswith(f"{REF}: config {config}: not valid JSON (")


@ALL_READERS
def test_config_with_too_few_diff_ids(layout: Layout, kind: str) -> None:
    manifest = single(layout, diff_ids=[sha(b"one")])
    config = layout.manifest_doc(manifest)["config"]["digest"]
    assert verify(open_source(layout.root, kind), deep=True) == [
        f"{REF}: config {config}: rootfs.diff_ids lists 1 layers, the manifest has 2"
    ]


@ALL_READERS
def test_config_without_rootfs(layout: Layout, kind: str) -> None:
    manifest = single(layout, config_bytes=b'{"os": "linux", "architecture": "amd64"}')
    config = layout.manifest_doc(manifest)["config"]["digest"]
    assert verify(open_source(layout.root, kind)) == [
        f"{REF}: config {config}: rootfs.diff_ids is missing"
    ]


@ALL_READERS
def test_deep_reports_a_layer_that_expands_too_far(layout: Layout, kind: str) -> None:
    manifest = layout.image([{"zeros": b"\0" * 200_000}])
    layout.name(manifest, REF)
    layer = layer_digest(layout, manifest)
    limits = LayerLimits(ratio=2, floor=1000, absolute=1 << 30)
    (line,) = verify(open_source(layout.root, kind), deep=True, limits=limits)
    assert line.startswith(f"{REF}: layer {layer}: expands to more than 1000 bytes")


def multi(layout: Layout) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    amd = layout.image([{"f": b"amd64"}], arch="amd64")
    arm = layout.image([{"f": b"arm64"}], arch="arm64")
    index = layout.index(
        [
            (amd, {"os": "linux", "architecture": "amd64"}),
            (arm, {"os": "linux", "architecture": "arm64"}),
        ]
    )
    layout.name(index, REF)
    return index, amd, arm


@ALL_READERS
def test_intact_multi_platform_index(layout: Layout, kind: str) -> None:
    multi(layout)
    assert verify(open_source(layout.root, kind), deep=True) == []


@ALL_READERS
def test_index_child_missing(layout: Layout, kind: str) -> None:
    _index, amd, _arm = multi(layout)
    layout.remove(amd["digest"])
    assert verify(open_source(layout.root, kind)) == [
        f"{REF} (linux/amd64): manifest {amd['digest']}: blob missing"
    ]


def test_index_child_damaged(layout: Layout) -> None:
    _index, _amd, arm = multi(layout)
    layout.flip(arm["digest"], offset=5)
    actual = sha(layout.path(arm["digest"]).read_bytes())
    assert verify(DirSource(layout.root)) == [
        f"{REF} (linux/arm64): manifest {arm['digest']}: digest mismatch "
        f"(content hashes to {actual})"
    ]
    (line,) = verify_archive(layout.root)
    assert arm["digest"] in line


@ALL_READERS
def test_problem_in_one_platform_names_it(layout: Layout, kind: str) -> None:
    _index, _amd, arm = multi(layout)
    layer = layer_digest(layout, arm)
    layout.flip(layer)
    actual = sha(layout.path(layer).read_bytes())
    assert verify(open_source(layout.root, kind)) == [
        f"{REF} (linux/arm64): layer {layer}: digest mismatch (content hashes to {actual})"
    ]


@ALL_READERS
def test_shared_blob_is_reported_for_each_image(layout: Layout, kind: str) -> None:
    first = single(layout)
    layout.name(first, "docker.io/library/app:2")
    layer = layer_digest(layout, first, 0)
    layout.flip(layer)
    actual = sha(layout.path(layer).read_bytes())
    assert verify(open_source(layout.root, kind)) == [
        f"{REF}: layer {layer}: digest mismatch (content hashes to {actual})",
        f"docker.io/library/app:2: layer {layer}: digest mismatch (content hashes to {actual})",
    ]


def test_every_problem_is_listed(layout: Layout) -> None:
    manifest = single(layout, diff_ids=[sha(b"x"), sha(b"y")])
    doc = layout.manifest_doc(manifest)
    first, second = doc["layers"][0]["digest"], doc["layers"][1]["digest"]
    layout.remove(first)
    actual = sha(layer_tar({"b.txt": b"beta" * 100}))
    problems = verify(DirSource(layout.root), deep=True)
    assert problems == [
        f"{REF}: layer {first}: blob missing",
        f"{REF}: layer {second}: uncompressed content hashes to {actual}, "
        f"rootfs.diff_ids[1] says {sha(b'y')}",
    ]
    with pytest.raises(VerificationFailed, match=r"^2 problems found: ") as info:
        verify_or_raise(DirSource(layout.root), deep=True)
    assert info.value.problems == problems


def test_unnamed_image_is_numbered(layout: Layout) -> None:
    desc = layout.image([{"f": b"x"}])
    layout.entries.append(desc)
    layout.write_index()
    layer = layer_digest(layout, desc)
    layout.flip(layer)
    (line,) = verify(DirSource(layout.root))
    assert line.startswith(f"image 1: layer {layer}: digest mismatch")


# -- at the CLI: unreadable archives, problems once then counted, failed blobs, split sets --


def _truncated_tar(path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 2000
        tar.addfile(info, io.BytesIO(b"[" + b" " * 1998 + b"]"))
    path.write_bytes(buffer.getvalue()[:1000])


def _tar_of(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


UNREADABLE: dict[str, Callable[[Path], object]] = {
    "empty-dir": lambda p: p.mkdir(),
    "text": lambda p: p.write_text("hello, not an archive\n"),
    "empty": lambda p: p.write_bytes(b""),
    "random": lambda p: p.write_bytes(os.urandom(4096)),
    "truncated": _truncated_tar,
    "bad-manifest": lambda p: _tar_of(p, {"manifest.json": b"{not json"}),
    "bad-index": lambda p: _tar_of(
        p, {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": b"[1,"}
    ),
    "dotdot": lambda p: _tar_of(p, {"../evil": b"x"}),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_verify_of_an_unreadable_archive_exits_8_like_every_verb(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / kind
    UNREADABLE[kind](path)
    with pytest.raises(ArchiveError) as opened:
        open_archive(path)
    code = main(["verify", "-q", str(path)])
    captured = capsys.readouterr()
    assert code == 8
    assert captured.out == ""
    assert captured.err.splitlines()[0] == f"error: {opened.value.message}"
    assert main(["inspect", str(path)]) == 8  # the same as another verb
    with pytest.raises(ArchiveError):
        verify_archive(path)


def test_verify_of_a_missing_blob_is_the_readers_error(layout: Layout) -> None:
    manifest = single(layout)
    layout.remove(layer_digest(layout, manifest))
    with pytest.raises(ArchiveError, match=r"which is missing$"):
        verify_archive(layout.root)


def test_verify_lists_problems_once_then_counts_them(
    layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = single(layout)
    layer = layer_digest(layout, manifest)
    layout.flip(layer)
    actual = sha(layout.path(layer).read_bytes())
    code = main(["verify", "-q", str(layout.root)])
    captured = capsys.readouterr()
    assert code == 7
    problem = f"{REF}: layer {layer}: digest mismatch (content hashes to {actual})"
    assert captured.out.splitlines() == [f"problem: {problem}"]
    assert captured.err.splitlines() == [f"error: 1 problem found in {layout.root}"]


def test_verify_progress_marks_a_failed_blob(layout: Layout) -> None:
    manifest = single(layout)
    layer = layer_digest(layout, manifest)
    layout.flip(layer)

    class Notes(NullProgress):
        def __init__(self) -> None:
            self.labels: dict[str, str] = {}
            self.notes: dict[str, str] = {}

        def start(self, key: str, label: str, total: int) -> None:
            self.labels[key] = label

        def finish(self, key: str, note: str = "") -> None:
            self.notes[self.labels[key]] = note

    progress = Notes()
    with open_archive(layout.root) as source:
        assert len(verify(source, progress=progress)) == 1
    short = layer.partition(":")[2][:12]
    failed = {label: note for label, note in progress.notes.items() if note}
    assert len(progress.notes) == 3  # manifest's config and two layers
    assert list(failed) == [label for label in progress.notes if short in label]
    assert set(failed.values()) == {"FAILED"}


def _split_archive(tmp_path: Path) -> Path:
    blobs = Blobs()
    record = make_record(
        blobs, "reg.example/team/app:1", [{"big": os.urandom(6000)}, {"b": b"b"}], oci=True
    )
    out = tmp_path / "app.tar"
    write_oci_layout([record], blobs, out, as_tar=True, split=4096)
    return out


def test_verify_names_the_damaged_part_of_a_split_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _split_archive(tmp_path)
    assert verify_archive(out) == []
    damaged = part_path(out, 1)
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    problems = verify_archive(out)
    assert problems[0].startswith("app.tar.001: checksum mismatch (content hashes to sha256:")
    assert "app.tar.sha256 says sha256:" in problems[0]
    assert not any(p.startswith("app.tar.000") for p in problems)
    code = main(["verify", "-q", str(out)])
    captured = capsys.readouterr()
    assert code == 7
    assert captured.out.splitlines()[0] == f"problem: {problems[0]}"


def test_verify_of_a_split_set_whose_join_is_unreadable_still_names_the_part(
    tmp_path: Path,
) -> None:
    out = _split_archive(tmp_path)
    first = part_path(out, 0)
    first.write_bytes(b"\xff" * first.stat().st_size)  # the tar headers are gone
    problems = verify_archive(out)
    assert problems[0].startswith("app.tar.000: checksum mismatch")
    assert problems[-1].startswith(f"{out}: ")


def test_json_output_of_a_failing_verify_is_still_json(
    layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = single(layout)
    layout.flip(layer_digest(layout, manifest))
    code = main(["verify", "--json", str(layout.root)])
    captured = capsys.readouterr()
    assert code == 7
    assert len(json.loads(captured.out)["problems"]) == 1
