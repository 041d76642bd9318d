"""sneaker.archive.split: sizes, parts and their checksums, and reading parts as one file."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from sneaker.archive import (
    open_archive,
    open_split,
    parse_size,
    write_docker_archive,
    write_oci_layout,
)
from sneaker.archive import split as split_module
from sneaker.archive.split import SplitWriter, part_path, split_parts
from sneaker.archive.tar import atomic_file
from sneaker.errors import ArchiveError, IntegrityError, UsageError
from tests.unit.test_archive_common import Blobs, make_record


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("123", 123),
        ("4G", 4 * 1024**3),
        ("4g", 4 * 1024**3),
        ("700M", 700 * 1024**2),
        ("1.5GiB", 1536 * 1024**2),
        ("2K", 2048),
        ("2KiB", 2048),
        ("1T", 1024**4),
        ("4.7GB", 4_700_000_000),
        ("100MB", 100_000_000),
        ("1kb", 1000),
        ("512B", 512),
        (" 8 M ", 8 * 1024**2),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "4X", "-1", "0", "1.2.3M", "4 G B", "0.0001K"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_split_writer_parts_and_checksums(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(10_500)
    base = tmp_path / "out.tar"
    stale = part_path(base, 20)
    stale.write_bytes(b"left from a longer archive")
    rng = random.Random(1)
    with SplitWriter(base, 1000) as writer:
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 2500)
            writer.write(data[pos : pos + step])
            pos += step
        assert writer.tell() == len(data)
    parts = [part_path(base, i) for i in range(11)]
    assert writer.parts == parts
    assert [p.stat().st_size for p in parts] == [1000] * 10 + [500]
    assert b"".join(p.read_bytes() for p in parts) == data
    assert not stale.exists()
    assert not base.exists()
    lines = (tmp_path / "out.tar.sha256").read_text().splitlines()
    # only the parts: `sha256sum -c out.tar.sha256` passes before they are joined
    assert lines == [f"{sha256(p.read_bytes())}  {p.name}" for p in parts]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in parts] + ["out.tar.sha256"]
    )


def test_split_writer_copy_from_fd(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(5000)
    source = tmp_path / "src"
    source.write_bytes(data)
    with SplitWriter(tmp_path / "o", 777) as writer:
        writer.write(b"head")
        fd = os.open(source, os.O_RDONLY)
        try:
            writer.copy_from_fd(fd, 100, 4000)
        finally:
            os.close(fd)
    joined = b"".join(p.read_bytes() for p in writer.parts)
    assert joined == b"head" + data[100:4100]
    assert max(p.stat().st_size for p in writer.parts) == 777


def test_split_writer_abort_leaves_nothing(tmp_path: Path) -> None:
    def fail() -> None:
        with SplitWriter(tmp_path / "o", 10) as writer:
            writer.write(b"x" * 55)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert list(tmp_path.iterdir()) == []


def test_split_writer_too_many_parts(tmp_path: Path) -> None:
    with (
        pytest.raises(UsageError, match="more than 1000 parts"),
        SplitWriter(tmp_path / "o", 1) as w,
    ):
        w.write(b"x" * 1001)
    assert list(tmp_path.iterdir()) == []


def test_empty_split_makes_one_empty_part(tmp_path: Path) -> None:
    with SplitWriter(tmp_path / "o", 10) as writer:
        pass
    assert writer.parts == [tmp_path / "o.000"]
    assert (tmp_path / "o.000").read_bytes() == b""


def test_split_reader(tmp_path: Path) -> None:
    data = random.Random(5).randbytes(3333)
    with SplitWriter(tmp_path / "o", 1000) as writer:
        writer.write(data)
    with open_split(tmp_path / "o") as reader:
        assert reader.size == len(data)
        assert reader.read() == data
        reader.seek(995)
        assert reader.read(10) == data[995:1005]
        reader.seek(-3, os.SEEK_END)
        assert reader.read() == data[-3:]
        assert reader.tell() == len(data)
        buf = bytearray(2100)
        assert reader.preadinto(memoryview(buf), 999) == 2100
        assert bytes(buf) == data[999:3099]
        assert reader.preadinto(memoryview(buf), 3000) == 333


def test_split_parts_uses_the_checksum_list(tmp_path: Path) -> None:
    with SplitWriter(tmp_path / "o", 10) as writer:
        writer.write(b"y" * 35)
    assert split_parts(tmp_path / "o") == writer.parts
    writer.parts[-1].unlink()
    with pytest.raises(ArchiveError, match=r"missing part\(s\) o\.003"):
        split_parts(tmp_path / "o")
    (tmp_path / "o.sha256").unlink()
    assert split_parts(tmp_path / "o") == writer.parts[:-1]
    assert split_parts(tmp_path / "nothing") is None
    with pytest.raises(ArchiveError):
        open_split(tmp_path / "nothing")


@pytest.mark.parametrize("kind", ["docker", "oci"])
def test_split_archive_round_trip(tmp_path: Path, kind: str) -> None:
    blobs = Blobs()
    records = [
        make_record(blobs, "a:1", [{"big": random.Random(1).randbytes(20_000)}]),
        make_record(blobs, "b:2", [{"f": b"small"}]),
    ]

    def write(out: Path, split: int | None) -> list[Path]:
        if kind == "docker":
            return write_docker_archive(records, blobs, out, split=split)
        return write_oci_layout(records, blobs, out, as_tar=True, split=split)

    write(tmp_path / "whole.tar", None)
    written = write(tmp_path / "parts.tar", 4096)
    parts = written[:-1]
    assert written[-1] == tmp_path / "parts.tar.sha256"
    assert all(p.stat().st_size <= 4096 for p in parts)
    assert b"".join(p.read_bytes() for p in parts) == (tmp_path / "whole.tar").read_bytes()
    assert not (tmp_path / "parts.tar").exists()
    for name in ("parts.tar", "parts.tar.000"):
        with open_archive(tmp_path / name) as archive:
            assert archive.path == tmp_path / "parts.tar"
            assert [r.root for r in archive.records] == [r.root for r in records]
            for record in records:
                for desc in record.blobs():
                    with archive.open_blob(desc) as fh:
                        assert fh.read() == blobs.data[desc.digest]


def test_whole_and_split_archives_replace_each_other(tmp_path: Path) -> None:
    blobs = Blobs()
    first = [make_record(blobs, "a:1", [{"big": random.Random(2).randbytes(9000)}])]
    second = [make_record(blobs, "b:1")]
    out = tmp_path / "x.tar"
    write_docker_archive(first, blobs, out)
    write_docker_archive(second, blobs, out, split=2048)
    assert not out.exists()
    with open_archive(out) as archive:
        assert [r.root for r in archive.records] == [r.root for r in second]
    write_docker_archive(first, blobs, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tar"]
    with open_archive(out) as archive:
        assert [r.root for r in archive.records] == [r.root for r in first]


def test_reading_without_preadv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(split_module, "_HAVE_PREADV", False)
    data = random.Random(9).randbytes(2500)
    with SplitWriter(tmp_path / "o", 1000) as writer:
        writer.write(data)
    with open_split(tmp_path / "o") as reader:
        assert reader.read() == data


@pytest.mark.parametrize("disable", [(), ("_copy_file_range",), ("_copy_file_range", "_sendfile")])
def test_file_sink_copy_fallbacks(tmp_path: Path, disable: tuple[str, ...]) -> None:
    data = random.Random(4).randbytes(3 * 1024 * 1024 + 17)
    (tmp_path / "src").write_bytes(data)
    fd = os.open(tmp_path / "src", os.O_RDONLY)
    try:
        with atomic_file(tmp_path / "dst") as sink:
            for name in disable:
                setattr(sink, name, False)
            sink.write(b"head")
            sink.copy_from_fd(fd, 5, len(data) - 5)
            with pytest.raises(IntegrityError, match="early"):
                sink.copy_from_fd(fd, len(data) - 3, 10)
    finally:
        os.close(fd)
    assert (tmp_path / "dst").read_bytes() == b"head" + data[5:] + data[-3:]


def test_named_media_sizes_fit_their_media() -> None:
    from sneaker.archive.split import parse_size

    assert parse_size("fat32") == 2**32 - 1  # FAT32 refuses a file of exactly 4 GiB
    assert parse_size("FAT32") < parse_size("4G")
    assert parse_size("cd") == 700 * 1024**2
    assert parse_size("dvd") == 4_700_000_000
    assert parse_size("bd") == 25_000_000_000


def test_a_checksum_file_with_a_line_for_the_joined_archive_is_still_read(
    tmp_path: Path,
) -> None:
    """sneaker once ended OUT.sha256 with a line for the joined archive; sets written so
    still open, and verify checks that line too."""
    from sneaker.archive import write_oci_layout
    from sneaker.verbs.verify import verify_archive

    blobs = Blobs()
    record = make_record(blobs, "reg.example/a:1", [{"f": os.urandom(5000)}], oci=True)
    out = tmp_path / "a.tar"
    write_oci_layout([record], blobs, out, as_tar=True, split=2048)
    parts = split_parts(out)
    assert parts is not None
    joined = b"".join(p.read_bytes() for p in parts)
    checksum = tmp_path / "a.tar.sha256"
    old_style = checksum.read_text() + f"{sha256(joined)}  a.tar\n"
    checksum.write_text(old_style)
    assert split_parts(out) == parts
    assert verify_archive(out) == []
    checksum.write_text(old_style.replace(sha256(joined), "0" * 64))
    assert verify_archive(out) == [
        f"a.tar: checksum mismatch of the joined parts (they hash to sha256:{sha256(joined)}, "
        f"a.tar.sha256 says sha256:{'0' * 64})"
    ]
