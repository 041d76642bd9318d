"""sneaker.archive.slots: a planned tar filled in place gives the bytes of the streamed tar."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sneaker.archive import slots
from sneaker.archive.docker_archive import docker_archive_plan, write_docker_archive
from sneaker.archive.oci_layout import oci_archive_plan, write_oci_layout
from sneaker.archive.slots import SlottedTar, slotted_tar
from sneaker.archive.tar import FileSink
from sneaker.errors import IntegrityError, Interrupted
from sneaker.imageset import ImageRecord
from sneaker.model import Descriptor
from tests.unit.test_archive_common import Blobs, make_record


def images(blobs: Blobs) -> list[ImageRecord]:
    # layers of a few hundred kB, so blobs span many 512-byte blocks and odd sizes
    rng = random.Random(7)
    shared = {"bin/tool": rng.randbytes(300_001)}
    return [
        make_record(blobs, "ubuntu:22.04", [shared, {"etc/os": rng.randbytes(123_457)}]),
        make_record(blobs, "ghcr.io/o/app:v1", [shared, {"app": rng.randbytes(99)}], oci=True),
    ]


def layers(records: list[ImageRecord]) -> list[Descriptor]:
    seen: dict[object, Descriptor] = {}
    for record in records:
        for desc in record.blobs():
            seen.setdefault(desc.digest, desc)
    return list(seen.values())


def fill_in_pieces(archive: SlottedTar, blobs: Blobs, desc: Descriptor, piece: int) -> None:
    """As a download does: pieces written at their positions, then done."""
    slot = archive.slot(desc)
    assert slot is not None
    data = blobs.data[desc.digest]
    for position in range(0, len(data), piece):
        slot.write_at(position, data[position : position + piece])
    slot.done()


def test_blobs_filled_from_threads_in_any_order_give_the_streamed_bytes(tmp_path: Path) -> None:
    blobs = Blobs()
    records = images(blobs)
    streamed = tmp_path / "streamed.tar"
    write_docker_archive(records, blobs, streamed)

    out = tmp_path / "slotted.tar"
    descs = layers(records)
    random.Random(1).shuffle(descs)
    with slotted_tar(docker_archive_plan(records), out) as archive:
        assert archive is not None
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda d: fill_in_pieces(archive, blobs, d, 65_536), descs))
        archive.fill(blobs)  # the configs, which no download wrote
    assert out.read_bytes() == streamed.read_bytes()


def test_fill_copies_every_blob_not_yet_in_place(tmp_path: Path) -> None:
    blobs = Blobs(directory=tmp_path / "files")
    blobs.directory.mkdir()  # type: ignore[union-attr]
    records = images(blobs)
    streamed = tmp_path / "streamed.tar"
    write_oci_layout(records, blobs, streamed, as_tar=True)
    out = tmp_path / "slotted.tar"
    with slotted_tar(oci_archive_plan(records), out) as archive:
        assert archive is not None
        first = layers(records)[0]
        fill_in_pieces(archive, blobs, first, 1 << 20)
        assert first not in archive.missing()
        assert len(archive.missing()) > 1
        archive.fill(blobs)  # from files: copied inside the kernel
        assert archive.missing() == []
    assert out.read_bytes() == streamed.read_bytes()


def test_a_blob_never_written_fails_and_leaves_nothing(tmp_path: Path) -> None:
    blobs = Blobs()
    records = images(blobs)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    missing = layers(records)[-1]

    def all_but_one() -> None:
        with slotted_tar(docker_archive_plan(records), out_dir / "x.tar") as archive:
            assert archive is not None
            for desc in layers(records)[:-1]:
                fill_in_pieces(archive, blobs, desc, 1 << 20)
            for record in records:
                for manifest in record.manifests():
                    fill_in_pieces(archive, blobs, manifest.config, 1 << 20)

    with pytest.raises(IntegrityError, match=f"blob {missing.digest} was never written"):
        all_but_one()
    assert list(out_dir.iterdir()) == []


def test_slots_refuse_bytes_beyond_the_blob_and_writes_after_close(tmp_path: Path) -> None:
    blobs = Blobs()
    records = images(blobs)
    desc = layers(records)[0]

    def write_late() -> None:
        with slotted_tar(docker_archive_plan(records), tmp_path / "x.tar") as archive:
            assert archive is not None
            slot = archive.slot(desc)
            assert slot is not None
            with pytest.raises(IntegrityError, match="more data than its slot holds"):
                slot.write_at(desc.size - 10, b"x" * 11)
            archive.close()
            slot.write_at(0, b"late")

    with pytest.raises(Interrupted):  # a late write after a failure never reaches the file
        write_late()
    assert not (tmp_path / "x.tar").exists()
    wrong_size = Descriptor(desc.media_type, desc.digest, desc.size + 1)
    with slotted_tar(docker_archive_plan(records), tmp_path / "y.tar") as archive:
        assert archive is not None
        assert archive.slot(wrong_size) is None
        archive.fill(blobs)


def test_without_sparse_files_nothing_is_written_and_the_caller_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = Blobs()
    records = images(blobs)
    monkeypatch.setattr(slots, "_keeps_holes", lambda directory: False)
    with slotted_tar(docker_archive_plan(records), tmp_path / "x.tar") as archive:
        assert archive is None
    assert list(tmp_path.iterdir()) == []


def test_this_filesystem_keeps_holes(tmp_path: Path) -> None:
    # the test machines' temporary directories are on ext4/tmpfs: the fast path is the one tested
    assert slots._keeps_holes(tmp_path)


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_positional_copy_with_and_without_copy_file_range(
    tmp_path: Path, kernel_copy: bool
) -> None:
    source = tmp_path / "src"
    data = random.Random(3).randbytes(3 * (1 << 20) + 17)
    source.write_bytes(data)
    target = tmp_path / "dst"
    target.write_bytes(b"A" * 100)
    src_fd = os.open(source, os.O_RDONLY)
    dst_fd = os.open(target, os.O_WRONLY)
    try:
        sink = FileSink(dst_fd)
        sink._copy_file_range = kernel_copy and sink._copy_file_range
        sink.copy_from_fd(src_fd, 5, len(data) - 5, at=50)
        assert os.lseek(dst_fd, 0, os.SEEK_CUR) == 0  # the file position stays
    finally:
        os.close(dst_fd)
    assert target.read_bytes()[:50] == b"A" * 50
    assert target.read_bytes()[50:] == data[5:]
    other = os.open(tmp_path / "other", os.O_WRONLY | os.O_CREAT)
    try:
        sink = FileSink(other)
        sink._copy_file_range = kernel_copy and sink._copy_file_range
        with pytest.raises(IntegrityError, match="ended 1 bytes early"):
            sink.copy_from_fd(src_fd, 0, len(data) + 1, at=7)
    finally:
        os.close(other)
        os.close(src_fd)
