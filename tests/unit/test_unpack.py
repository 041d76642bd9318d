"""sneaker.verbs.unpack on hand-built OCI layouts: image and platform choice, checks, cleanup,
and what ``sneaker unpack`` prints (a warning once, how to choose among images, DEST errors)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from sneaker.archive import open_archive
from sneaker.cli.main import main
from sneaker.errors import (
    IntegrityError,
    NoMatchingPlatform,
    NotFound,
    UnsafePath,
    UsageError,
)
from sneaker.image.platform import Platform, host_platform
from sneaker.util.progress import NullProgress
from sneaker.verbs.unpack import choose_record, unpack
from tests.unit.test_verify import REF, DirSource, Layout, layer_tar, sha, single

OTHER_ARCH = "s390x" if host_platform().architecture != "s390x" else "ppc64le"


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "layout")


def files_of(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = path.read_bytes()
    return out


def two_layers(layout: Layout, reference: str = REF) -> dict[str, Any]:
    desc = layout.image(
        [
            {"etc/os-release": b"ID=test\n", "data/doomed": b"x", "data/kept": b"k"},
            {"data/.wh.doomed": b"", "app/run.sh": b"echo hi\n"},
        ]
    )
    layout.name(desc, reference)
    return desc


def test_unpack_applies_layers_in_order(layout: Layout, tmp_path: Path) -> None:
    manifest = two_layers(layout)
    dest = tmp_path / "rootfs"
    result = unpack(open_archive(layout.root), dest)
    assert files_of(dest) == {
        "app": "dir",
        "app/run.sh": b"echo hi\n",
        "data": "dir",
        "data/kept": b"k",
        "etc": "dir",
        "etc/os-release": b"ID=test\n",
    }
    assert result.reference == REF
    assert str(result.manifest) == manifest["digest"]
    assert result.platform == Platform("linux", "amd64")
    assert result.layers == 2
    assert (result.stats.files, result.stats.whiteouts) == (4, 1)
    assert oct(dest.stat().st_mode & 0o777) == oct(0o755)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_unpack_from_any_image_source(layout: Layout, tmp_path: Path) -> None:
    # not an archive reader: the tests' own ImageSource
    two_layers(layout)
    source = DirSource(layout.root)
    unpack(source, tmp_path / "rootfs", image=str(source.records[0].root.digest))
    assert (tmp_path / "rootfs/app/run.sh").read_bytes() == b"echo hi\n"


def test_unpack_into_an_existing_empty_directory(layout: Layout, tmp_path: Path) -> None:
    two_layers(layout)
    dest = tmp_path / "rootfs"
    dest.mkdir()
    unpack(open_archive(layout.root), dest)
    assert (dest / "etc/os-release").is_file()


def test_unpack_through_a_symlink_to_an_empty_directory(layout: Layout, tmp_path: Path) -> None:
    two_layers(layout)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    unpack(open_archive(layout.root), tmp_path / "link")
    assert (tmp_path / "real/app/run.sh").is_file()
    assert (tmp_path / "link").is_symlink()


def test_non_empty_destination_needs_force(layout: Layout, tmp_path: Path) -> None:
    two_layers(layout)
    dest = tmp_path / "rootfs"
    dest.mkdir()
    (dest / "mine").write_text("mine")
    with pytest.raises(UsageError, match=r"is not empty") as info:
        unpack(open_archive(layout.root), dest)
    assert info.value.hint is not None
    assert "--force" in info.value.hint
    unpack(open_archive(layout.root), dest, force=True)
    assert (dest / "mine").read_text() == "mine"
    assert (dest / "app/run.sh").is_file()


def test_destination_that_is_a_file_is_refused(layout: Layout, tmp_path: Path) -> None:
    two_layers(layout)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"file: it exists and is a file$"):
        unpack(open_archive(layout.root), tmp_path / "file", force=True)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError, match=r"fifo: it exists and is not a directory$"):
        unpack(open_archive(layout.root), tmp_path / "fifo")


def multi(layout: Layout, *, attestation_first: bool = True) -> dict[str, Any]:
    host = host_platform()
    mine = layout.image([{"arch": host.architecture.encode()}], arch=host.architecture)
    other = layout.image([{"arch": OTHER_ARCH.encode()}], arch=OTHER_ARCH)
    attestation = layout.image([{"sbom.json": b"{}"}], arch="unknown")
    entries = [
        (other, {"os": "linux", "architecture": OTHER_ARCH}),
        (mine, host.to_json()),
    ]
    unknown = (attestation, {"os": "unknown", "architecture": "unknown"})
    entries = [unknown, *entries] if attestation_first else [*entries, unknown]
    index = layout.index(entries)
    layout.name(index, REF)
    return index


def test_index_defaults_to_the_host_platform(layout: Layout, tmp_path: Path) -> None:
    multi(layout)
    result = unpack(open_archive(layout.root), tmp_path / "rootfs")
    assert (tmp_path / "rootfs/arch").read_bytes() == host_platform().architecture.encode()
    assert result.platform is not None
    assert result.platform.architecture == host_platform().architecture


def test_index_with_an_explicit_platform(layout: Layout, tmp_path: Path) -> None:
    multi(layout)
    unpack(open_archive(layout.root), tmp_path / "rootfs", platform=Platform("linux", OTHER_ARCH))
    assert (tmp_path / "rootfs/arch").read_bytes() == OTHER_ARCH.encode()


def test_no_matching_platform_lists_what_there_is(layout: Layout, tmp_path: Path) -> None:
    multi(layout)
    with pytest.raises(NoMatchingPlatform, match=r"has no image for platform linux/mips64le"):
        unpack(
            open_archive(layout.root), tmp_path / "rootfs", platform=Platform("linux", "mips64le")
        )
    assert not (tmp_path / "rootfs").exists()


def test_attestations_are_never_chosen(layout: Layout, tmp_path: Path) -> None:
    multi(layout)
    with pytest.raises(NoMatchingPlatform) as info:
        unpack(open_archive(layout.root), tmp_path / "x", platform=Platform("unknown", "unknown"))
    assert info.value.hint is not None
    assert "unknown/unknown" not in info.value.hint
    assert f"linux/{OTHER_ARCH}" in info.value.hint


def test_single_platform_image_checked_against_an_explicit_platform(
    layout: Layout, tmp_path: Path
) -> None:
    two_layers(layout)
    with pytest.raises(NoMatchingPlatform, match=r"single-platform image for linux/amd64"):
        unpack(open_archive(layout.root), tmp_path / "r", platform=Platform("linux", "riscv64"))


def test_missing_platform_manifest_is_not_found(layout: Layout, tmp_path: Path) -> None:
    multi(layout)
    index = layout.manifest_doc(layout.entries[0])
    mine = next(m for m in index["manifests"] if m["platform"] == host_platform().to_json())
    layout.remove(mine["digest"])
    with pytest.raises(NotFound, match=r"is not in the source"):
        unpack(open_archive(layout.root), tmp_path / "rootfs")


def test_archive_with_several_images_needs_a_name(layout: Layout, tmp_path: Path) -> None:
    two_layers(layout)
    other = layout.image([{"other": b"2"}])
    layout.name(other, "docker.io/library/other:2")
    source = open_archive(layout.root)
    with pytest.raises(UsageError, match=r"holds 2 images: docker.io/library/app:1, "):
        unpack(source, tmp_path / "a")
    unpack(source, tmp_path / "b", image="other:2")
    assert files_of(tmp_path / "b") == {"other": b"2"}
    unpack(source, tmp_path / "c", image=other["digest"])
    assert files_of(tmp_path / "c") == {"other": b"2"}
    unpack(source, tmp_path / "e", image=other["digest"].partition(":")[2][:12])
    assert files_of(tmp_path / "e") == {"other": b"2"}
    with pytest.raises(NotFound, match=r"no image 'nope:1' in the archive"):
        unpack(source, tmp_path / "d", image="nope:1")


def test_damaged_layer_leaves_nothing_behind(layout: Layout, tmp_path: Path) -> None:
    manifest = two_layers(layout)
    layer = layout.manifest_doc(manifest)["layers"][-1]["digest"]
    layout.flip(layer, offset=-5)  # the gzip trailer: content decodes, digest differs
    with pytest.raises(IntegrityError, match=rf"layer 2/2 {layer}"):
        unpack(DirSource(layout.root), tmp_path / "rootfs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout"]


def test_damage_that_breaks_the_gzip_is_reported_as_a_digest_mismatch(
    layout: Layout, tmp_path: Path
) -> None:
    manifest = two_layers(layout)
    layer = layout.manifest_doc(manifest)["layers"][0]["digest"]
    layout.flip(layer, offset=30)  # inside the deflate data
    actual = sha(layout.path(layer).read_bytes())
    with pytest.raises(IntegrityError, match=rf"layer 1/2 {layer}: digest mismatch") as info:
        unpack(open_archive(layout.root), tmp_path / "rootfs")
    assert str(info.value).endswith(f"(content hashes to {actual})")
    assert not (tmp_path / "rootfs").exists()


def test_wrong_diff_id_is_an_integrity_error(layout: Layout, tmp_path: Path) -> None:
    good = sha(layer_tar({"a": b"a"}))
    manifest = layout.image([{"a": b"a"}, {"b": b"b"}], diff_ids=[good, sha(b"wrong")])
    layout.name(manifest, REF)
    with pytest.raises(IntegrityError, match=r"layer 2/2 .*the config's diff_id is sha256:"):
        unpack(open_archive(layout.root), tmp_path / "rootfs")
    assert not (tmp_path / "rootfs").exists()


def hostile_tar(sentinel: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("a")
        link.type = tarfile.SYMTYPE
        link.linkname = "/"
        tar.addfile(link)
        data = b"pwned"
        evil = tarfile.TarInfo(f"a{sentinel}/pwned")
        evil.size = len(data)
        tar.addfile(evil, io.BytesIO(data))
    return buffer.getvalue()


def test_symlink_to_root_resolves_inside_the_destination(layout: Layout, tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    manifest = layout.image([], tars=[hostile_tar(sentinel)])
    layout.name(manifest, REF)
    unpack(open_archive(layout.root), tmp_path / "rootfs")
    assert list(sentinel.iterdir()) == []
    landed = tmp_path / "rootfs" / sentinel.relative_to("/") / "pwned"
    assert landed.read_bytes() == b"pwned"


def test_hostile_layer_is_refused_and_nothing_is_left(layout: Layout, tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        evil = tarfile.TarInfo("../sentinel/pwned")
        evil.size = 5
        tar.addfile(evil, io.BytesIO(b"pwned"))
    manifest = layout.image([], tars=[buffer.getvalue()])
    layout.name(manifest, REF)
    with pytest.raises(UnsafePath, match=r"^docker.io/library/app:1: layer 1/1 sha256:"):
        unpack(open_archive(layout.root), tmp_path / "rootfs")
    assert list(sentinel.iterdir()) == []
    assert not (tmp_path / "rootfs").exists()


def test_warnings_are_collected(layout: Layout, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        node = tarfile.TarInfo("dev/console")
        node.type = tarfile.CHRTYPE
        tar.addfile(node)
    manifest = layout.image([], tars=[buffer.getvalue()])
    layout.name(manifest, REF)
    seen: list[str] = []
    result = unpack(open_archive(layout.root), tmp_path / "rootfs", warn=seen.append)
    assert result.warnings == seen
    assert seen == [
        f"{REF}: layer 1/1 {layout.manifest_doc(manifest)['layers'][0]['digest']}: "
        "skipped device node 'dev/console'"
    ]
    assert result.to_json()["skipped"] == 1


# -- at the CLI: warnings once, --image matched as docker does, DEST that is a file ----------


def _device_layer() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        node = tarfile.TarInfo("dev/console")
        node.type = tarfile.CHRTYPE
        tar.addfile(node)
        data = b"hello"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_device_node_warning_is_printed_once(
    layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = layout.image([], tars=[_device_layer()])
    layout.name(manifest, REF)
    code = main(["unpack", str(layout.root), str(tmp_path / "rootfs")])  # no -q: progress on
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("skipped device node 'dev/console'") == 1
    assert (tmp_path / "rootfs/hello.txt").read_bytes() == b"hello"


def test_warnings_go_to_the_progress_when_no_warn_is_given(layout: Layout, tmp_path: Path) -> None:
    manifest = layout.image([], tars=[_device_layer()])
    layout.name(manifest, REF)

    class Messages(NullProgress):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def message(self, text: str) -> None:
            self.lines.append(text)

    progress = Messages()
    result = unpack(open_archive(layout.root), tmp_path / "rootfs", progress=progress)
    assert len(result.warnings) == 1
    assert progress.lines == [f"warning: {result.warnings[0]}"]


PORT_B = "127.0.0.1:5000/test/b:1"
PORT_A = "127.0.0.1:5000/test/a:latest"


def _named(layout: Layout, *references: str) -> dict[str, dict[str, Any]]:
    descs = {}
    for number, reference in enumerate(references):
        desc = layout.image([{"which": reference.encode(), "n": str(number).encode()}])
        layout.name(desc, reference)
        descs[reference] = desc
    return descs


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("127.0.0.1:5000/test/b", PORT_B),  # no tag: the one tag there is
        ("127.0.0.1:5000/test/b:1", PORT_B),
        ("test/b", PORT_B),  # no registry: a repository ending so
        ("test/b:1", PORT_B),
        ("b:1", PORT_B),
        ("b", PORT_B),
        ("a", PORT_A),
        ("test/a:latest", PORT_A),
    ],
)
def test_image_is_matched_like_docker(layout: Layout, image: str, expected: str) -> None:
    _named(layout, PORT_B, PORT_A)
    with open_archive(layout.root) as source:
        record = choose_record(source.records, image)
    assert str(record.reference) == expected


def test_image_matching_prefers_the_exact_name_and_latest(layout: Layout) -> None:
    _named(layout, "docker.io/library/app:1", "127.0.0.1:5000/library/app:1", PORT_A)
    with open_archive(layout.root) as source:
        records = source.records
        # normalised first: app:1 is docker.io/library/app:1, however others end
        assert str(choose_record(records, "app:1").reference) == "docker.io/library/app:1"
        assert str(choose_record(records, "a").reference) == PORT_A
        with pytest.raises(NotFound, match=r"no image 'b:1' in the archive"):
            choose_record(records, "b:1")


def test_image_without_tag_among_several_tags(layout: Layout) -> None:
    _named(layout, "127.0.0.1:5000/test/b:1", "127.0.0.1:5000/test/b:2")
    with open_archive(layout.root) as source:
        with pytest.raises(UsageError, match=r"'test/b' names several images") as info:
            choose_record(source.records, "test/b")
        assert info.value.hint is not None
        assert "--image NAME:TAG" in info.value.hint
        assert str(choose_record(source.records, "b:2").reference) == "127.0.0.1:5000/test/b:2"
    _named(layout, "127.0.0.1:5000/test/b:latest")
    with open_archive(layout.root) as source:
        found = choose_record(source.records, "test/b")
    assert str(found.reference) == "127.0.0.1:5000/test/b:latest"  # as docker defaults


def test_several_images_without_image_say_how_to_choose(
    layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _named(layout, PORT_B, PORT_A)
    code = main(["unpack", "-q", str(layout.root), str(tmp_path / "rootfs")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err == [
        f"error: the archive holds 2 images: {PORT_B}, {PORT_A}",
        "hint: choose one with --image NAME (a name as listed, its short form, or a digest)",
    ]
    assert main(["unpack", "-q", "--image", "b", str(layout.root), str(tmp_path / "b")]) == 0
    assert (tmp_path / "b/which").read_bytes() == PORT_B.encode()


def test_dest_that_is_a_file_is_an_error_line(
    layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    single(layout)
    archive = tmp_path / "a_1.tar"
    archive.write_bytes(b"x")
    code = main(["unpack", "-q", str(layout.root), str(archive)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0] == f"error: cannot unpack into {archive}: it exists and is a file"
    assert archive.read_bytes() == b"x"
