"""Temporary names never pass NAME_MAX, errors name the user's file, and the temporary files
a killed run left are removed by the next run into the same directory (only sneaker's own,
only when their owner is gone). The kill -9 of a real pull is in
tests/integration/test_killed_runs.py.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sneaker.archive import write_docker_archive, write_oci_layout
from sneaker.archive.tar import FileSink
from sneaker.errors import DiskFull, UsageError
from sneaker.util import tempfiles
from sneaker.util.tempfiles import (
    NAME_MAX,
    is_temp_name,
    remove_stale,
    temp_name,
    temporary_directory,
)
from tests.unit.test_archive_common import Blobs, make_record


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def stale_name(final: str, pid: int, *, host: str = "", boot: str = "") -> str:
    """A temporary name as process ``pid`` (of ``host``, in ``boot``) would have made it."""
    host = host or tempfiles._host_tag()
    boot = boot or tempfiles._boot_tag()
    return f".{final}.sneaker-{pid}-{host}-{boot}-abcdef.tmp"


@pytest.mark.parametrize("char", ["a", "é", "€", "😀"], ids=["ascii", "2-byte", "3-byte", "4-byte"])
def test_temporary_names_stay_within_name_max(tmp_path: Path, char: str) -> None:
    width = len(char.encode())
    for length in (1, 100, 200, 240, 250, 255):
        final = tmp_path / (char * max(1, length // width))
        temp = temp_name(final)
        raw = os.fsencode(temp.name)
        assert len(raw) <= NAME_MAX
        raw.decode("utf-8")  # never cut inside a character
        assert temp.parent == tmp_path
        assert is_temp_name(temp.name)
        assert temp.name.startswith(f".{char}")
        assert temp.name.endswith(".tmp")
        assert f".sneaker-{os.getpid()}-" in temp.name
    assert temp_name(tmp_path / "x") != temp_name(tmp_path / "x")


def test_a_255_byte_output_name_is_written(tmp_path: Path) -> None:
    blobs = Blobs()
    out = tmp_path / ("n" * 251 + ".tar")
    assert len(out.name) == 255
    assert write_docker_archive([make_record(blobs, "app:1")], blobs, out) == [out]
    assert os.listdir(tmp_path) == [out.name]
    split = tmp_path / "parts" / ("p" * 248)  # p...p.sha256 is 255 bytes
    split.parent.mkdir()
    written = write_docker_archive([make_record(blobs, "app:1")], blobs, split, split=4096)
    assert written[-1].name == f"{split.name}.sha256"
    assert sorted(os.listdir(split.parent)) == sorted(p.name for p in written)


def test_a_name_too_long_is_refused_before_any_work(tmp_path: Path) -> None:
    blobs = Blobs()
    out = tmp_path / ("n" * 252 + ".tar")
    with pytest.raises(UsageError) as info:
        write_docker_archive([make_record(blobs, "app:1")], blobs, out)
    assert info.value.message == (
        f"cannot write {out}: its name is 256 bytes long, and file names in {tmp_path} "
        "hold at most 255"
    )
    split = tmp_path / ("p" * 249)
    with pytest.raises(UsageError, match=r"the name 'p+\.sha256' is 256 bytes long"):
        write_docker_archive([make_record(blobs, "app:1")], blobs, split, split=4096)
    assert os.listdir(tmp_path) == []


def test_a_failed_write_names_the_output_not_its_temporary_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = Blobs()
    record = make_record(blobs, "app:1")
    real_write = FileSink.write
    calls = []

    def fill_up(self: FileSink, data: bytes | bytearray | memoryview) -> int:
        calls.append(len(data))
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(FileSink, "write", fill_up)
    out = tmp_path / "app.tar"
    with pytest.raises(DiskFull) as info:
        write_docker_archive([record], blobs, out)
    assert info.value.message.startswith(f"cannot write {out}: no space left on the device (about ")
    assert ".tmp" not in info.value.message
    assert info.value.path == str(out)
    assert info.value.needed is not None
    assert info.value.needed > sum(d.size for d in record.blobs())
    assert os.listdir(tmp_path) == []


def test_stale_temporary_files_of_dead_owners_are_removed(tmp_path: Path) -> None:
    dead = dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": stale_name("app.tar", dead),
            "dead-dir": stale_name("rootfs", dead),
            "earlier-boot": stale_name("app.tar", live.pid, boot="123456"),
            "live": stale_name("app.tar", live.pid),
            "mine": stale_name("app.tar", os.getpid()),
            "other-host": stale_name("app.tar", dead, host="654321"),
            "old-style": ".app.tar.0123abcd.tmp",
            "not-hidden": f"app.tar.sneaker-{dead}-abcdef-abcdef-abcdef.tmp",
            "someone-elses": "notes.tmp",
        }
        for key, name in names.items():
            if key == "dead-dir":
                tree = tmp_path / name / "bin"
                tree.mkdir(parents=True)
                (tree / "busybox").write_bytes(b"x")
                tree.chmod(0o500)  # a read-only directory, as unpack leaves some
            else:
                (tmp_path / name).write_bytes(b"x")
        removed = remove_stale(tmp_path)
        left = sorted(os.listdir(tmp_path))
    finally:
        live.kill()
        live.wait()
    gone = {"dead", "dead-dir", "earlier-boot"}
    assert sorted(p.name for p in removed) == sorted(names[k] for k in gone)
    assert left == sorted(v for k, v in names.items() if k not in gone)


def test_the_next_write_into_the_directory_removes_them(tmp_path: Path) -> None:
    dead = dead_pid()
    blobs = Blobs()
    record = make_record(blobs, "app:1")
    leftover = tmp_path / stale_name("app.tar", dead)
    leftover.write_bytes(b"half an archive")
    write_docker_archive([record], blobs, tmp_path / "other.tar")
    assert sorted(os.listdir(tmp_path)) == ["other.tar"]

    layout = tmp_path / "layout"
    write_oci_layout([record], blobs, layout, as_tar=False)
    blob_dir = layout / "blobs" / "sha256"
    half = blob_dir / stale_name("0" * 64, dead)
    half.write_bytes(b"half a blob")
    marker = layout / stale_name("index.json", dead)
    marker.write_bytes(b"{")
    write_oci_layout([record], blobs, layout, as_tar=False)
    assert not half.exists()
    assert not marker.exists()


def test_work_directories_are_private_and_replace_those_of_killed_runs(tmp_path: Path) -> None:
    """push's work directory (compressed legacy layers) and --no-cache's cache."""
    stale = tmp_path / stale_name("sneaker-push", dead_pid())
    stale.mkdir()
    (stale / "sha256-0123.gz").write_bytes(b"half a layer")
    with temporary_directory(tmp_path, "sneaker-push") as work:
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
        assert is_temp_name(work.name)
        assert work.name.startswith(".sneaker-push.sneaker-")
        assert not stale.exists()
        (work / "layer.gz").write_bytes(b"x")
    assert os.listdir(tmp_path) == []
