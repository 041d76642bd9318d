"""sneaker.archive against the real tools: docker load/run, podman load, ctr import, skopeo, umoci.

Images reach the writers without sneaker's pull: skopeo copies the test app
out of dockerd into an OCI layout, which sneaker's reader opens; docker 20.10's
own ``docker save`` (legacy format) and skopeo's/podman's docker-archive are
read the same way. A private, empty dockerd loads what sneaker writes, so every
layer really goes through ``docker load`` (decompression, diff_id checks).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sneaker.archive import open_archive, write_docker_archive, write_oci_layout
from sneaker.errors import UsageError
from sneaker.image.mediatypes import DOCKER_LAYER_TAR
from sneaker.image.model import Index, Manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from tests.fixtures.containerd import Containerd
from tests.fixtures.docker import DockerDaemon, start_docker
from tests.fixtures.images import BuiltImages
from tests.fixtures.multiarch import MultiArch
from tests.fixtures.podman import Podman
from tests.fixtures.tools import skopeo, umoci

pytestmark = pytest.mark.integration

DOCKER_NAME = "sneaker-test/roundtrip:docker"
OCI_NAME = "sneaker-test/roundtrip:oci"
LEGACY_NAME = "sneaker-test/roundtrip:legacy"


@pytest.fixture(scope="module")
def fresh_docker() -> Iterator[DockerDaemon]:
    """A second, empty dockerd: loading into it must bring every layer in."""
    daemon = start_docker()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def app_layout(
    docker: DockerDaemon, built_images: BuiltImages, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The test app copied out of dockerd by skopeo into an OCI layout (gzip layers)."""
    layout = tmp_path_factory.mktemp("app-layout") / "layout"
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{built_images.app}", f"oci:{layout}:1",
    )  # fmt: skip
    return layout


def app_record(layout: Path, name: str) -> ImageRecord:
    with open_archive(layout) as source:
        assert source.format == "oci-layout"
        assert source.names == ["1"]
        (record,) = source.records
    return dataclasses.replace(record, reference=parse_reference(name))


@pytest.fixture(scope="module")
def docker_archive(app_layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docker-archive") / "app.tar"
    with open_archive(app_layout) as source:
        write_docker_archive([app_record(app_layout, DOCKER_NAME)], source, out)
    return out


@pytest.fixture(scope="module")
def oci_archive(app_layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("oci-archive") / "app-oci.tar"
    with open_archive(app_layout) as source:
        write_oci_layout([app_record(app_layout, OCI_NAME)], source, out, as_tar=True)
    return out


def config_digest(layout_or_archive: Path) -> str:
    with open_archive(layout_or_archive) as source:
        root = source.records[0].root
        assert isinstance(root, Manifest)
        return str(root.config.digest)


# -- docker -------------------------------------------------------------------------


def test_docker_load_and_run(
    fresh_docker: DockerDaemon, docker_archive: Path, app_layout: Path, built_images: BuiltImages
) -> None:
    out = fresh_docker.run("load", "-i", str(docker_archive)).stdout
    assert f"Loaded image: {DOCKER_NAME}" in out
    # skopeo rewrote the config when it made the layout OCI: the image is that config
    assert fresh_docker.image_id(DOCKER_NAME) == config_digest(app_layout)
    run = fresh_docker.run("run", "--rm", "--network", "none", DOCKER_NAME)
    assert run.stdout.strip() == built_images.app_output


def test_docker_2010_save_read_back_and_rewritten(
    docker: DockerDaemon,
    fresh_docker: DockerDaemon,
    built_images: BuiltImages,
    tmp_path: Path,
) -> None:
    """docker 20.10's legacy save (with small, sharing a layer) -> sneaker -> docker load."""
    saved = docker.save(tmp_path / "saved.tar", built_images.app, built_images.small)
    with open_archive(saved) as source:
        assert source.format == "docker-legacy"
        by_name = {str(r.reference): r for r in source.records}
        app = by_name[f"docker.io/{built_images.app}"]
        assert f"docker.io/{built_images.small}" in by_name
        root = app.root
        assert isinstance(root, Manifest)
        assert str(root.config.digest) == built_images.app_id
        with source.open_blob(root.config) as fh:
            config = json.loads(fh.read())
        assert [str(d.digest) for d in root.layers] == config["rootfs"]["diff_ids"]
        assert {d.media_type for d in root.layers} == {DOCKER_LAYER_TAR}
        for layer in root.layers:
            with source.open_blob(layer) as fh:
                hasher = hashlib.sha256()
                while chunk := fh.read(1 << 20):
                    hasher.update(chunk)
            assert f"sha256:{hasher.hexdigest()}" == str(layer.digest)
        renamed = dataclasses.replace(app, reference=parse_reference(LEGACY_NAME))
        small = dataclasses.replace(
            by_name[f"docker.io/{built_images.small}"],
            reference=parse_reference(f"{LEGACY_NAME}-small"),
        )
        out = tmp_path / "rewritten.tar"
        write_docker_archive([renamed, small], source, out, split=1 << 20)
    parts = sorted(tmp_path.glob("rewritten.tar.[0-9][0-9][0-9]"))
    assert len(parts) > 1
    joined = b"".join(p.read_bytes() for p in parts)
    fresh_docker.run("load", input=joined)  # cat rewritten.tar.0* | docker load
    run = fresh_docker.run("run", "--rm", "--network", "none", LEGACY_NAME)
    assert run.stdout.strip() == built_images.app_output
    run = fresh_docker.run("run", "--rm", "--network", "none", f"{LEGACY_NAME}-small")
    assert run.stdout.strip() == "small"


# -- skopeo ---------------------------------------------------------------------------


def test_skopeo_reads_the_docker_archive(
    docker_archive: Path, app_layout: Path, tmp_path: Path
) -> None:
    raw = json.loads(skopeo("inspect", "--raw", f"docker-archive:{docker_archive}").stdout)
    assert raw["config"]["digest"] == config_digest(app_layout)
    # copying reads every layer and checks it against the config's diff_ids
    skopeo("copy", f"docker-archive:{docker_archive}", f"oci:{tmp_path / 'copy'}:x")


def test_skopeo_reads_the_oci_archive(oci_archive: Path, app_layout: Path, tmp_path: Path) -> None:
    with open_archive(app_layout) as source:
        manifest_digest = str(source.records[0].root.digest)
    raw = skopeo("inspect", "--raw", f"oci-archive:{oci_archive}:oci").stdout
    assert f"sha256:{hashlib.sha256(raw.encode()).hexdigest()}" == manifest_digest
    skopeo("copy", f"oci-archive:{oci_archive}:oci", f"oci:{tmp_path / 'copy'}:oci")
    with open_archive(tmp_path / "copy") as copied:
        assert str(copied.records[0].root.digest) == manifest_digest


def test_skopeo_and_oci_layout_directory(app_layout: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    with open_archive(app_layout) as source:
        write_oci_layout([app_record(app_layout, OCI_NAME)], source, layout, as_tar=False)
    raw = skopeo("inspect", "--raw", f"oci:{layout}:oci").stdout
    assert json.loads(raw)["config"]["digest"] == config_digest(app_layout)


def test_skopeo_docker_archive_is_read(
    docker: DockerDaemon, built_images: BuiltImages, tmp_path: Path
) -> None:
    out = tmp_path / "skopeo.tar"
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{built_images.app}", f"docker-archive:{out}:{built_images.app}",
    )  # fmt: skip
    with open_archive(out) as source:
        assert source.format == "docker-legacy"
        assert str(source.records[0].reference) == f"docker.io/{built_images.app}"
        root = source.records[0].root
        assert isinstance(root, Manifest)
        assert str(root.config.digest) == built_images.app_id
        for layer in root.layers:
            with source.open_blob(layer) as fh:
                assert hashlib.sha256(fh.read()).hexdigest() == layer.digest.hex


# -- podman ---------------------------------------------------------------------------


def test_podman_loads_both_archives(
    podman: Podman, docker_archive: Path, oci_archive: Path, app_layout: Path
) -> None:
    loaded = podman.load(docker_archive)
    assert any(DOCKER_NAME in name for name in loaded), loaded
    loaded = podman.load(oci_archive)
    assert any(OCI_NAME in name for name in loaded), loaded
    for name in (DOCKER_NAME, OCI_NAME):
        image_id = podman.run("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
        assert f"sha256:{image_id}" == config_digest(app_layout)


def test_podman_save_is_read(
    podman: Podman, docker_archive: Path, app_layout: Path, tmp_path: Path
) -> None:
    podman.load(docker_archive)
    for kind, fmt in (("docker-archive", "docker-legacy"), ("oci-archive", "oci-archive")):
        out = tmp_path / f"{kind}.tar"
        podman.run("save", "--format", kind, "-o", str(out), DOCKER_NAME)
        with open_archive(out) as source:
            assert source.format == fmt
            root = source.records[0].root
            assert isinstance(root, Manifest)
            assert str(root.config.digest) == config_digest(app_layout)
            for desc in root.blobs:
                with source.open_blob(desc) as fh:
                    assert hashlib.sha256(fh.read()).hexdigest() == desc.digest.hex


# -- containerd ----------------------------------------------------------------------


def test_ctr_imports_both_archives(
    containerd: Containerd, docker_archive: Path, oci_archive: Path
) -> None:
    containerd.import_archive(docker_archive)
    containerd.import_archive(oci_archive)
    names = containerd.image_names()
    assert f"docker.io/{DOCKER_NAME}" in names
    assert f"docker.io/{OCI_NAME}" in names
    check = containerd.ctr("images", "check").stdout
    for name in (DOCKER_NAME, OCI_NAME):
        line = next(x for x in check.splitlines() if x.startswith(f"docker.io/{name} "))
        assert "complete" in line


def test_ctr_imports_an_index(containerd: Containerd, multiarch: MultiArch, tmp_path: Path) -> None:
    with open_archive(multiarch.layout) as source:
        (record,) = [r for r in source.records if isinstance(r.root, Index)]
        assert str(record.root.digest) == multiarch.index_digest
        assert {str(d) for d in record.children} >= {
            multiarch.amd64_digest,
            multiarch.arm64_digest,
        }
        named = dataclasses.replace(record, reference=parse_reference("sneaker-test/multi:1"))
        out = tmp_path / "multi.tar"
        write_oci_layout([named], source, out, as_tar=True)
        with pytest.raises(UsageError, match="multi-platform"):
            write_docker_archive([named], source, tmp_path / "no.tar")
    containerd.import_archive(out, "--all-platforms")
    listing = containerd.ctr("images", "list").stdout
    line = next(x for x in listing.splitlines() if x.startswith("docker.io/sneaker-test/multi:1"))
    assert multiarch.index_digest in line
    raw = skopeo("inspect", "--raw", f"oci-archive:{out}:1").stdout
    assert f"sha256:{hashlib.sha256(raw.encode()).hexdigest()}" == multiarch.index_digest


# -- umoci ------------------------------------------------------------------------------


def test_umoci_unpacks_the_layout(app_layout: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    with open_archive(app_layout) as source:
        write_oci_layout([app_record(app_layout, OCI_NAME)], source, layout, as_tar=False)
    bundle = tmp_path / "bundle"
    umoci("unpack", "--image", f"{layout}:oci", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "app" / "run.sh").is_file()
    assert (rootfs / "data" / "late").read_text() == "from-layer-4"
    assert not (rootfs / "data" / "doomed.txt").exists()
    assert [p.name for p in (rootfs / "data" / "replaced").iterdir()] == ["new.txt"]
