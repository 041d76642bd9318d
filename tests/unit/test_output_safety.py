"""Outputs never replace what they must not: special files, symlinks, ``-``, their own inputs.

Every writer goes through :func:`sneaker.archive.tar.check_output_path` before any
work; ``inventory`` (and ``pull``, through the lead's call) also through
:func:`sneaker.archive.tar.refuse_overwriting_inputs`. Nothing here ever opens a
real device for writing: the device case is only ever looked at (``/dev/null``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sneaker.archive import open_archive, write_docker_archive, write_oci_layout
from sneaker.archive.split import SplitWriter, part_path
from sneaker.archive.tar import check_output_path, refuse_overwriting_inputs
from sneaker.cli.main import main
from sneaker.errors import UsageError
from sneaker.image.inventory import Inventory
from sneaker.image.records import ImageRecord
from sneaker.verbs.inventory import inventory, write_inventory
from tests.unit.test_archive_common import Blobs, make_record


@pytest.fixture
def image() -> tuple[list[ImageRecord], Blobs]:
    blobs = Blobs()
    return [make_record(blobs, "reg.example/team/app:1", oci=True)], blobs


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    # a short directory: a socket path has a 108-byte limit
    directory = Path(tempfile.mkdtemp(prefix="snk-sock-"))
    path = directory / "s"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        yield path
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


def _mode(path: Path) -> int:
    return os.lstat(path).st_mode


# --------------------------------------------------------------------------- the check


def test_special_files_are_refused(fifo: Path, unix_socket: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=rf"^cannot write {fifo}: it is a named pipe \(fifo\)$"):
        check_output_path(fifo)
    with pytest.raises(UsageError, match=r": it is a socket$"):
        check_output_path(unix_socket)
    with pytest.raises(UsageError, match=rf"^cannot write {tmp_path}: it is a directory$"):
        check_output_path(tmp_path)
    if Path("/dev/null").exists() and stat.S_ISCHR(_mode(Path("/dev/null"))):
        with pytest.raises(UsageError, match=r"^cannot write /dev/null: it is a character device"):
            check_output_path(Path("/dev/null"))
    assert stat.S_ISFIFO(_mode(fifo))
    assert stat.S_ISSOCK(_mode(unix_socket))


def test_dash_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^cannot write -: ") as info:
        check_output_path("-")
    assert info.value.hint == "name a file with -o FILE"


def test_a_symlink_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "real.tar"
    target.write_bytes(b"old")
    link = tmp_path / "link.tar"
    link.symlink_to("real.tar")
    assert check_output_path(link) == target.resolve()
    dangling = tmp_path / "dangling.tar"
    dangling.symlink_to("new.tar")
    assert check_output_path(dangling) == (tmp_path / "new.tar").resolve()
    to_fifo = tmp_path / "to-fifo"
    os.mkfifo(tmp_path / "fifo2")
    to_fifo.symlink_to("fifo2")
    with pytest.raises(UsageError, match=rf"^cannot write {to_fifo}: it is a named pipe"):
        check_output_path(to_fifo)
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    with pytest.raises(UsageError, match=r"symlink loop"):
        check_output_path(loop)


def test_regular_and_new_files_pass_unchanged(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "new.tar") == tmp_path / "new.tar"
    (tmp_path / "old.tar").write_bytes(b"x")
    assert check_output_path(tmp_path / "old.tar") == tmp_path / "old.tar"
    assert check_output_path(tmp_path, directory=True) == tmp_path
    assert check_output_path(tmp_path / "new/deeper", directory=True) == tmp_path / "new/deeper"
    with pytest.raises(UsageError, match=r"it is a regular file$"):
        check_output_path(tmp_path / "old.tar", directory=True)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "nowhere" / "x.tar"
    with pytest.raises(
        UsageError, match=rf"^cannot write {out}: directory {out.parent} does not exist$"
    ):
        check_output_path(out)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UsageError, match=r"file is not a directory$"):
        check_output_path(tmp_path / "file" / "x.tar")


_AS_NOBODY = """
import os, sys
sys.path[:0] = sys.argv[2:]
from sneaker.archive.tar import check_output_path
from sneaker.errors import UsageError
os.setgid(65534)
os.setuid(65534)
try:
    check_output_path(sys.argv[1])
except UsageError as exc:
    print(exc.message)
"""


def test_unwritable_directory_is_refused() -> None:
    # pytest's own temporary directories are private to root: nobody could not reach them.
    directory = Path(tempfile.mkdtemp(prefix="snk-ro-"))
    try:
        directory.chmod(0o555)
        out = directory / "x.tar"
        if os.geteuid() == 0:  # root writes anywhere: ask as nobody
            src = Path(__file__).resolve().parents[2] / "src"
            result = subprocess.run(
                [sys.executable, "-c", _AS_NOBODY, str(out), str(src)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            message = result.stdout.strip()
        else:
            with pytest.raises(UsageError) as info:
                check_output_path(out)
            message = info.value.message
        assert message == f"cannot write {out}: directory {directory} is not writable"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- the writers


@pytest.mark.parametrize("writer", ["docker", "oci", "docker-split", "oci-split"])
def test_writers_refuse_a_fifo_and_a_socket_and_leave_them(
    writer: str, fifo: Path, unix_socket: Path, image: tuple[list[ImageRecord], Blobs]
) -> None:
    records, blobs = image
    split = 1 << 20 if writer.endswith("-split") else None

    def write(target: Path) -> None:
        if writer.startswith("docker"):
            write_docker_archive(records, blobs, target, split=split)
        else:
            write_oci_layout(records, blobs, target, as_tar=True, split=split)

    for target in (fifo, unix_socket):
        with pytest.raises(UsageError, match=rf"^cannot write {target}: it is a "):
            write(target)
        assert blobs.opened == []  # refused before any work
    assert stat.S_ISFIFO(_mode(fifo))
    assert stat.S_ISSOCK(_mode(unix_socket))
    assert sorted(p.name for p in fifo.parent.iterdir()) == ["fifo"]


@pytest.mark.parametrize("split", [None, 1 << 20])
def test_writers_write_through_a_symlink(
    split: int | None, tmp_path: Path, image: tuple[list[ImageRecord], Blobs]
) -> None:
    records, blobs = image
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    link = tmp_path / "link.tar"
    link.symlink_to(real_dir / "app.tar")
    written = write_docker_archive(records, blobs, link, split=split)
    assert link.is_symlink()
    assert os.readlink(link) == str(real_dir / "app.tar")
    if split is None:
        assert written == [(real_dir / "app.tar").resolve()]
        with open_archive(link) as source:
            assert [str(r.reference) for r in source.records] == ["reg.example/team/app:1"]
    else:
        assert part_path((real_dir / "app.tar").resolve(), 0) in written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.tar", "real"]


def test_split_writer_refuses_a_special_file_at_a_part_name(fifo: Path, tmp_path: Path) -> None:
    base = tmp_path / "out.tar"
    os.mkfifo(part_path(base, 2))
    with pytest.raises(UsageError, match=r"cannot write .*out\.tar\.002: it is a named pipe"):
        SplitWriter(base, 100)
    (tmp_path / "out2.tar.sha256").mkdir()
    with pytest.raises(UsageError, match=r"out2\.tar\.sha256: it is a directory"):
        SplitWriter(tmp_path / "out2.tar", 100)


def test_cli_pull_output_checks_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # inventory is the CLI writer owned here: -o - and -o FIFO are error lines, nothing written
    blobs = Blobs()
    archive = tmp_path / "a_1.tar"
    write_docker_archive([make_record(blobs, "reg.example/a:1")], blobs, archive)
    os.mkfifo(tmp_path / "fifo")
    for output in ("-", str(tmp_path / "fifo")):
        code = main(["inventory", "-q", str(archive), "-o", output])
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith(f"error: cannot write {output}: ")
    assert not (tmp_path / "-").exists()
    assert stat.S_ISFIFO(_mode(tmp_path / "fifo"))


def test_write_inventory_refuses_a_fifo_and_writes_through_a_link(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError, match=r"it is a named pipe"):
        write_inventory(Inventory(["x"]), tmp_path / "fifo")
    (tmp_path / "link.json").symlink_to("real.json")
    write_inventory(Inventory(["x"]), tmp_path / "link.json")
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_bytes())["sources"] == ["x"]


# --------------------------------------------------------------------------- own inputs


def _archive(tmp_path: Path, name: str = "a_1.tar", split: int | None = None) -> Path:
    blobs = Blobs()
    out = tmp_path / name
    write_docker_archive([make_record(blobs, "reg.example/a:1")], blobs, out, split=split)
    return out


def test_inventory_never_replaces_its_own_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = _archive(tmp_path)
    before = archive.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(["inventory", "-q", "../a_1.tar", "-o", "../a_1.tar"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: cannot write ../a_1.tar: it would replace the input ../a_1.tar")
    assert archive.read_bytes() == before
    with pytest.raises(UsageError, match=r"would replace the input"):
        inventory([str(archive)], tmp_path / "." / "a_1.tar")
    link = tmp_path / "link.tar"
    link.symlink_to(archive)
    with pytest.raises(UsageError, match=r"would replace the input"):
        inventory([str(archive)], link)
    assert archive.read_bytes() == before


def test_refuse_overwriting_inputs(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    refuse_overwriting_inputs(tmp_path / "other.tar", [archive])  # fine
    for output in (archive, tmp_path / "sub" / ".." / "a_1.tar"):
        with pytest.raises(UsageError, match=r"would replace the input"):
            refuse_overwriting_inputs(output, [archive])
    hard = tmp_path / "hard.tar"
    os.link(archive, hard)
    with pytest.raises(UsageError, match=r"would replace the input"):
        refuse_overwriting_inputs(hard, [archive])
    # a split set: its parts and checksum are inputs too, and a split output's names count
    split = _archive(tmp_path, "s.tar", split=2048)
    assert part_path(split, 1).exists()
    for output in (split, part_path(split, 1), tmp_path / "s.tar.sha256"):
        with pytest.raises(UsageError, match=r"would replace the input"):
            refuse_overwriting_inputs(output, [split])
    (tmp_path / "b.000").write_bytes(b"an input that only looks like a part")
    with pytest.raises(UsageError, match=r"would replace the input"):  # -o b --split ...
        refuse_overwriting_inputs(tmp_path / "b", [tmp_path / "b.000"])
    # a layout directory: nothing may be written inside it
    layout = tmp_path / "layout"
    layout.mkdir()
    with pytest.raises(UsageError, match=r"it is inside the input"):
        refuse_overwriting_inputs(layout / "index.json", [layout])
    with pytest.raises(UsageError, match=r"would replace the input"):
        refuse_overwriting_inputs(layout, [layout])
