"""QA fixes of unpack, verify and the delta messages (each checked at the CLI where it shows).

- unpack: a device-node warning is printed once; ``--image`` matches as docker does;
  several images without ``--image`` say how to choose; DEST that is a file is an
  ``error:`` line.
- verify: an archive that cannot be opened exits 8 with the reader's own error;
  problems are listed once, then counted; a failed blob is marked so in the
  progress; no space before the colon; a damaged part of a split set is named.
- delta refusals name the base, and do not claim inspect needs a full archive.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sneaker.archive import open_archive, write_oci_layout
from sneaker.archive.delta import DeltaMarker, delta_refusal
from sneaker.archive.split import part_path
from sneaker.cli.main import main
from sneaker.errors import ArchiveError, NotFound, UsageError
from sneaker.verbs.unpack import choose_record, unpack
from sneaker.verbs.verify import verify, verify_archive
from tests.unit.test_archive_common import Blobs, make_record
from tests.unit.test_verify import REF, Layout, layer_digest, sha, single


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "layout")


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


# --------------------------------------------------------------------------- unpack


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

    class Messages:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def start(self, key: str, label: str, total: int) -> None: ...
        def advance(self, key: str, amount: int) -> None: ...
        def reset(self, key: str, done: int) -> None: ...
        def finish(self, key: str, note: str = "") -> None: ...
        def close(self) -> None: ...

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


# --------------------------------------------------------------------------- verify


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

    class Notes:
        def __init__(self) -> None:
            self.labels: dict[str, str] = {}
            self.notes: dict[str, str] = {}

        def start(self, key: str, label: str, total: int) -> None:
            self.labels[key] = label

        def advance(self, key: str, amount: int) -> None: ...
        def reset(self, key: str, done: int) -> None: ...
        def message(self, text: str) -> None: ...
        def close(self) -> None: ...

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


# --------------------------------------------------------------------------- delta wording


def test_delta_refusal_names_the_base_and_not_a_placeholder() -> None:
    with_base = delta_refusal("d.tar", DeltaMarker({}, ("archive v1.tar",)))
    assert with_base.message.endswith(
        "push it onto a registry that holds the images of its base (archive v1.tar)"
    )
    without = delta_refusal("d.tar", DeltaMarker({}, ()))
    assert without.message.endswith("the images of the base archive this delta was made from")
    for error in (with_base, without):
        assert "OLD" not in error.message
        assert error.hint is not None
        assert "inspect need" not in error.hint
        assert "inspect reads a delta" in error.hint


def test_docker_format_refusal_has_no_placeholder() -> None:
    from sneaker.archive.delta import docker_format_refusal

    hint = docker_format_refusal().hint
    assert hint is not None
    assert "OLD" not in hint


def test_json_output_of_a_failing_verify_is_still_json(
    layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = single(layout)
    layout.flip(layer_digest(layout, manifest))
    code = main(["verify", "--json", str(layout.root)])
    captured = capsys.readouterr()
    assert code == 7
    assert len(json.loads(captured.out)["problems"]) == 1
