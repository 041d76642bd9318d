"""unpack and absolute symlinks inside the rootfs, against docker itself.

Debian and Ubuntu base images hold ``var/run -> /run``; a later layer may still
write ``var/run/foo.pid``. docker applies a layer onto its parent's rootfs in a
chroot there: the absolute link means ``ROOTFS/run``. sneaker must do the same,
and match ``docker export`` of a container of the image file by file.

The reference is a dockerd with the ``vfs`` storage driver (the session's when
it runs vfs, else one of this module's own): vfs applies each layer onto a copy
of its parent's rootfs, as containerd and podman do. overlay2 instead extracts
each layer into an empty directory of its own, so there the later layer's
``var/run`` directory hides the link (overlayfs), a driver artefact.

The image: a docker build (busybox, then ``var/run -> /run`` and ``lib -> usr/lib``),
then a layer tar added verbatim by umoci (docker build would write through the
links and record ``run/foo.pid`` instead), made a docker archive by skopeo and
loaded into docker for the reference rootfs.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.docker import DockerDaemon, start_docker
from tests.fixtures.tools import skopeo, umoci
from tests.helpers import sneaker
from tests.integration.test_unpack_docker import (
    _added_by_docker,
    _parent_of_added,
    docker_export,
    snapshot,
)

pytestmark = pytest.mark.integration

BASE_TAG = "sneaker-test/chroot-base:1"
IMAGE_TAG = "sneaker-test/chroot:2"

BASE_DOCKERFILE = r"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "\
set -e; \
/bin/busybox mkdir -p /run /var /usr/lib; \
/bin/busybox ln -s /run /var/run; \
/bin/busybox ln -s usr/lib /lib"]
ENTRYPOINT ["/bin/busybox"]
"""


def _layer_two() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("var/run/foo.pid", b"42\n"), ("lib/x", b"x\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def vfs_docker(docker: DockerDaemon) -> Iterator[DockerDaemon]:
    """A dockerd applying layers as docker does on vfs: the session's, or one of our own."""
    if docker.storage_driver == "vfs":
        yield docker
        return
    own = start_docker(storage_driver="vfs")
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="module")
def chroot_archive(
    vfs_docker: DockerDaemon, busybox: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    docker = vfs_docker
    work = tmp_path_factory.mktemp("chroot")
    ctx = work / "ctx"
    ctx.mkdir()
    shutil.copy2(busybox, ctx / "busybox")
    (ctx / "busybox").chmod(0o755)
    (ctx / "Dockerfile").write_text(BASE_DOCKERFILE)
    docker.run("build", "--network", "none", "-t", BASE_TAG, str(ctx))

    layout = work / "layout"
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{BASE_TAG}", f"oci:{layout}:base",
    )  # fmt: skip
    layer = work / "layer2.tar"
    layer.write_bytes(_layer_two())
    umoci("raw", "add-layer", "--image", f"{layout}:base", "--tag", "two", str(layer))
    archive = work / "chroot.tar"
    skopeo("copy", f"oci:{layout}:two", f"docker-archive:{archive}:{IMAGE_TAG}")
    docker.run("load", "-i", str(archive))
    return archive


def test_unpack_resolves_absolute_symlinks_inside_the_rootfs_like_docker(
    vfs_docker: DockerDaemon, chroot_archive: Path, tmp_path: Path
) -> None:
    rootfs = tmp_path / "rootfs"
    result = sneaker("unpack", "-q", chroot_archive, rootfs, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    exported = docker_export(vfs_docker, IMAGE_TAG, tmp_path / "export")
    ours, our_links = snapshot(rootfs)
    theirs, their_links = snapshot(exported)
    theirs = {
        rel: entry
        for rel, entry in theirs.items()
        if not _added_by_docker(rel) and not (_parent_of_added(rel) and rel not in ours)
    }
    assert sorted(ours) == sorted(theirs)
    different = {rel: (ours[rel], theirs[rel]) for rel in ours if ours[rel] != theirs[rel]}
    assert different == {}
    assert our_links == their_links
    # what the comparison is about: written through the links, the links kept verbatim
    assert ours["var/run"].target == "/run"
    assert ours["lib"].target == "usr/lib"
    assert (rootfs / "run/foo.pid").read_bytes() == b"42\n"
    assert (rootfs / "usr/lib/x").read_bytes() == b"x\n"
