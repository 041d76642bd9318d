"""unpack against docker itself: the rootfs sneaker unpacks from ``docker save`` is, file by
file, what ``docker export`` gives for a container of the same image.

The app image (tests/fixtures/images.py) deletes files, replaces a directory
(opaque whiteout), has hardlinks, absolute and relative symlinks, and setuid,
setgid, sticky, 0600, 0000 and 0750 modes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from sneaker.archive import open_archive
from sneaker.image.platform import host_platform
from sneaker.verbs.unpack import unpack
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.images import BuiltImages

pytestmark = pytest.mark.integration

# What docker adds to every container (its init layer), not part of the image.
DOCKER_ADDS = frozenset(
    {
        ".dockerenv",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/mtab",
        "dev",
        "proc",
        "sys",
    }
)


@dataclass(frozen=True)
class Entry:
    kind: str
    mode: int
    uid: int
    gid: int
    size: int | None = None
    sha256: str | None = None
    target: str | None = None
    mtime: int | None = None


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "dir"),
        (stat.S_ISREG, "file"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
    ):
        if test(mode):
            return name
    return "other"


def snapshot(root: Path) -> tuple[dict[str, Entry], set[frozenset[str]]]:
    """Every path below ``root`` (not following links), and the groups of hardlinked files."""
    entries: dict[str, Entry] = {}
    inodes: dict[tuple[int, int], set[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            kind = _kind(st.st_mode)
            size = digest = target = mtime = None
            if kind == "file":
                size = st.st_size
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                mtime = int(st.st_mtime)
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), set()).add(rel)
            elif kind == "symlink":
                target = os.readlink(path)
            entries[rel] = Entry(
                kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, digest, target, mtime
            )
    groups = {frozenset(paths) for paths in inodes.values() if len(paths) > 1}
    return entries, groups


def _added_by_docker(rel: str) -> bool:
    return any(rel == p or rel.startswith(p + "/") for p in DOCKER_ADDS)


def _parent_of_added(rel: str) -> bool:
    return any(p.startswith(rel + "/") for p in DOCKER_ADDS)


def docker_export(docker: DockerDaemon, image: str, out: Path) -> Path:
    container = docker.run("create", image).stdout.strip()
    try:
        docker.run("export", "-o", str(out.with_suffix(".tar")), container)
    finally:
        docker.run("rm", "-f", container, check=False)
    out.mkdir()
    with tarfile.open(out.with_suffix(".tar")) as tar:
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extractall(out, filter="fully_trusted")  # our own image: keep every mode bit
        else:  # pragma: no cover - Python before 3.11.4 has no filters (and trusts anyway)
            tar.extractall(out)
    return out


@pytest.fixture(scope="module")
def saved_app(
    docker: DockerDaemon, built_images: BuiltImages, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("saved") / "app.tar"
    return docker.save(out, built_images.app)


def test_unpack_matches_docker_export(
    docker: DockerDaemon, built_images: BuiltImages, saved_app: Path, tmp_path: Path
) -> None:
    rootfs = tmp_path / "rootfs"
    warnings: list[str] = []
    with open_archive(saved_app) as source:
        result = unpack(source, rootfs, warn=warnings.append)
    assert warnings == []
    assert result.layers >= 4

    exported = docker_export(docker, built_images.app, tmp_path / "export")
    ours, our_links = snapshot(rootfs)
    theirs, their_links = snapshot(exported)
    theirs = {
        rel: entry
        for rel, entry in theirs.items()
        if not _added_by_docker(rel) and not (_parent_of_added(rel) and rel not in ours)
    }
    their_links = {g for g in their_links if not any(_added_by_docker(p) for p in g)}

    assert sorted(ours) == sorted(theirs)
    different = {rel: (ours[rel], theirs[rel]) for rel in ours if ours[rel] != theirs[rel]}
    assert different == {}
    assert our_links == their_links
    # The image's own edge cases are really there (so this comparison means something).
    assert {"data/part1", "data/part1.hardlink"} in our_links
    assert "data/doomed.txt" not in ours
    assert sorted(p for p in ours if p.startswith("data/replaced/")) == ["data/replaced/new.txt"]
    assert ours["data/modes/setuid"].mode == 0o4755
    assert ours["data/modes/none"].mode == 0
    assert ours["data/abs-link"].target == "/data/part1"


def test_unpack_with_the_images_platform(
    built_images: BuiltImages, saved_app: Path, tmp_path: Path
) -> None:
    with open_archive(saved_app) as source:
        result = unpack(source, tmp_path / "rootfs", platform=host_platform())
    assert result.platform is not None
    assert (tmp_path / "rootfs/app/run.sh").is_file()
