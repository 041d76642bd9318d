"""``-o -``: an archive streamed to standard output, in order, and what is refused.

Standard output is pointed (``sys.stdout``) at a regular file, a pipe, a pipe whose
reader is gone, or a terminal (a pty). Streamed archives are compared byte for byte
with the same archive written to a file: the writers are deterministic, so any
difference (or a seek, which a pipe refuses) shows. Pulling into the real
``docker load`` and ``podman load`` is tests/integration/test_pull_stdout.py.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sneaker.archive import write_docker_archive, write_oci_layout
from sneaker.archive.tar import check_archive_output, refuse_overwriting_inputs
from sneaker.cli.main import main
from sneaker.errors import SneakerError, UsageError
from sneaker.image.records import ImageRecord
from tests.unit.test_archive_common import Blobs, make_record

Writer = Callable[[list[ImageRecord], Blobs, Path], object]
WRITERS: dict[str, Writer] = {
    "docker": lambda records, blobs, out: write_docker_archive(records, blobs, out),
    "oci": lambda records, blobs, out: write_oci_layout(records, blobs, out, as_tar=True),
}


@pytest.fixture
def stdout_to(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Point ``sys.stdout`` at a file descriptor for the rest of the test."""

    def point(fd: int) -> None:
        stream = io.TextIOWrapper(os.fdopen(fd, "wb", closefd=False))
        monkeypatch.setattr(sys, "stdout", stream)

    return point


def _images(tmp_path: Path, *, files: bool) -> tuple[list[ImageRecord], Blobs]:
    """Two images sharing nothing; with ``files`` the blobs are files too (kernel copies)."""
    directory = tmp_path / "blobs" if files else None
    if directory is not None:
        directory.mkdir()
    blobs = Blobs(directory=directory)
    big = {"opt/big": os.urandom(3 << 20)}
    records = [
        make_record(blobs, "reg.example/team/app:1", [big, {"etc/a": b"a"}]),
        make_record(blobs, "reg.example/team/tool:2", [{"bin/tool": b"t" * 5000}]),
    ]
    return records, blobs


@pytest.mark.parametrize("files", [True, False], ids=["kernel-copies", "streamed-blobs"])
@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_to_a_file_on_stdout_byte_for_byte(
    tmp_path: Path, stdout_to: Callable[[int], None], fmt: str, files: bool
) -> None:
    records, blobs = _images(tmp_path, files=files)
    WRITERS[fmt](records, blobs, tmp_path / "reference.tar")
    with open(tmp_path / "redirected", "wb") as target:
        stdout_to(target.fileno())
        written = WRITERS[fmt](records, blobs, Path("-"))
    assert written == [Path("-")]
    assert (tmp_path / "redirected").read_bytes() == (tmp_path / "reference.tar").read_bytes()
    assert not (tmp_path / "-").exists()
    assert not [p for p in Path.cwd().iterdir() if p.name.startswith(".-")]


@pytest.mark.parametrize("files", [True, False], ids=["kernel-copies", "streamed-blobs"])
def test_into_a_pipe_in_order(
    tmp_path: Path, stdout_to: Callable[[int], None], files: bool
) -> None:
    records, blobs = _images(tmp_path, files=files)
    write_docker_archive(records, blobs, tmp_path / "reference.tar")
    read_end, write_end = os.pipe()
    received = bytearray()

    def drain() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            while chunk := pipe.read(1 << 16):
                received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        stdout_to(write_end)
        write_docker_archive(records, blobs, Path("-"))
    finally:
        os.close(write_end)
        reader.join(30)
    # a pipe cannot seek: the same bytes arrived, so they were written in order, once
    assert bytes(received) == (tmp_path / "reference.tar").read_bytes()


def test_a_reader_that_goes_away_is_one_error(
    tmp_path: Path, stdout_to: Callable[[int], None]
) -> None:
    records, blobs = _images(tmp_path, files=True)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        stdout_to(write_end)
        with pytest.raises(SneakerError, match="standard output was closed before the archive"):
            write_docker_archive(records, blobs, Path("-"))
    finally:
        os.close(write_end)


@pytest.fixture
def terminal() -> Iterator[int]:
    """The terminal end of a pty."""
    controller, terminal_end = os.openpty()
    try:
        yield terminal_end
    finally:
        os.close(terminal_end)
        os.close(controller)


def test_a_terminal_is_refused(
    tmp_path: Path,
    terminal: int,
    stdout_to: Callable[[int], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    stdout_to(terminal)  # here: capsys takes sys.stdout once the test starts
    with pytest.raises(UsageError, match="refusing to write an archive to a terminal") as info:
        check_archive_output("-")
    assert info.value.hint is not None
    assert "| docker load" in info.value.hint
    # through the CLI: refused before anything is resolved (the registry does not exist)
    for argv in (
        ["pull", "registry.invalid/team/app:1", "-o", "-"],
        ["assemble", str(tmp_path / "no-plan"), "-o", "-"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: refusing to write an archive to a terminal (-o -)\n"), argv


def test_split_json_and_a_layout_are_refused_with_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="--split writes its parts to files"):
        check_archive_output("-", split=1 << 30)
    with pytest.raises(UsageError, match="an OCI layout directory cannot go to standard output"):
        check_archive_output("-", directory=True)
    for argv, expected in (
        (["pull", "registry.invalid/a:1", "-o", "-", "--split", "1G"], "--split writes its parts"),
        (["assemble", str(tmp_path), "-o", "-", "--split", "1G"], "--split writes its parts"),
        (["pull", "registry.invalid/a:1", "-o", "-", "--json"], "--json and -o - both write"),
        (["assemble", str(tmp_path), "-o", "-", "--json"], "--json and -o - both write"),
    ):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith(f"error: {expected}"), argv


def test_stdout_replaces_no_input(tmp_path: Path) -> None:
    # `-f -` reads the image list from standard input: writing standard output is fine
    refuse_overwriting_inputs("-", ["-", tmp_path])
    (tmp_path / "-").write_text("a file named -")
    refuse_overwriting_inputs("-", [tmp_path / "-"])
