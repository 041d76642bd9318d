"""``sneaker push`` of archives written by real tools, checked by real tools.

Archives come from ``docker save`` (docker 20.10: the legacy format), ``skopeo
copy`` (oci-archive and docker-archive) and ``podman save``; what sneaker pushed
is read back with ``docker pull`` + ``docker run``, ``podman pull`` and
``skopeo inspect``. Registries are seeded (for the mount test) with skopeo only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sneaker.errors import UsageError
from sneaker.registry.options import RegistryOptions
from sneaker.verbs.push import push
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.images import BuiltImages
from tests.fixtures.multiarch import MultiArch
from tests.fixtures.podman import Podman
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import inspect_args, seed, src_args
from tests.fixtures.tools import skopeo
from tests.helpers import run

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Archives:
    """Archives of ``built_images.app`` written by real tools."""

    docker_save: Path  # docker 20.10 `docker save` (legacy layout, uncompressed layers)
    two_tags: Path  # docker save of one image under two names (sneaker-test/app:1, other/app:1)
    oci_archive: Path  # skopeo copy docker-daemon: -> oci-archive:
    oci_digest: str  # the manifest digest skopeo recorded in oci_archive
    skopeo_docker: Path  # skopeo copy docker-daemon: -> docker-archive:


@pytest.fixture(scope="module")
def archives(
    docker: DockerDaemon, built_images: BuiltImages, tmp_path_factory: pytest.TempPathFactory
) -> Archives:
    root = tmp_path_factory.mktemp("push-archives")
    app = built_images.app
    docker_save = docker.save(root / "docker-save.tar", app)
    docker.run("tag", app, "other/app:1")
    try:
        two_tags = docker.save(root / "two-tags.tar", app, "other/app:1")
    finally:
        docker.run("rmi", "other/app:1")
    oci_archive = root / "skopeo-oci.tar"
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{app}", f"oci-archive:{oci_archive}:{app}",
    )  # fmt: skip
    oci_digest = json.loads(skopeo("inspect", f"oci-archive:{oci_archive}").stdout)["Digest"]
    skopeo_docker = root / "skopeo-docker.tar"
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{app}", f"docker-archive:{skopeo_docker}:{app}",
    )  # fmt: skip
    return Archives(docker_save, two_tags, oci_archive, oci_digest, skopeo_docker)


def _registry_digest(info: RegistryInfo, repo_ref: str) -> str:
    out = skopeo("inspect", *inspect_args(info), f"docker://{info.ref(repo_ref)}").stdout
    digest: str = json.loads(out)["Digest"]
    return digest


def _docker_runs(docker: DockerDaemon, ref: str, expected: str) -> None:
    """``docker pull`` REF, run it without network, compare its output; untag afterwards."""
    docker.run("pull", ref)
    try:
        out = docker.run("run", "--rm", "--network", "none", ref).stdout.strip()
        assert out == expected
    finally:
        docker.run("rmi", ref, check=False)


def _plain() -> RegistryOptions:
    return RegistryOptions(retries=1)


def test_docker_save_legacy_is_compressed_deterministically(
    docker: DockerDaemon,
    built_images: BuiltImages,
    podman: Podman,
    archives: Archives,
    make_registry: Callable[..., RegistryInfo],
) -> None:
    first = make_registry()
    second = make_registry()
    one = push(archives.docker_save, f"{first.host}/mirror", options=_plain())
    two = push(archives.docker_save, f"{second.host}/mirror", options=_plain())
    (image,) = one.images
    assert image.target == f"{first.host}/mirror/sneaker-test/app:1"
    assert image.recompressed
    assert image.uploaded > 0
    assert image.skipped == 0
    # same archive, same digests, whichever registry
    assert two.images[0].digest == image.digest
    assert _registry_digest(first, "mirror/sneaker-test/app:1") == image.digest
    assert _registry_digest(second, "mirror/sneaker-test/app:1") == image.digest
    raw = json.loads(
        skopeo("inspect", "--raw", *inspect_args(first), f"docker://{image.target}").stdout
    )
    assert {layer["mediaType"] for layer in raw["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }

    # pushed again: every blob is there already, the manifest is the same
    again = push(archives.docker_save, f"{first.host}/mirror", options=_plain(), jobs=2)
    assert again.uploaded == 0
    assert again.mounted == 0
    assert again.images[0].skipped == image.uploaded
    assert again.images[0].digest == image.digest

    # podman checks every layer against the config's diff_ids while pulling
    podman.run("pull", "--tls-verify=false", image.target)
    _docker_runs(docker, image.target, built_images.app_output)


def test_skopeo_oci_archive_keeps_its_digest(
    docker: DockerDaemon, built_images: BuiltImages, archives: Archives, registry: RegistryInfo
) -> None:
    target = f"{registry.host}/push-oci/app:1"
    result = push(archives.oci_archive, target, options=_plain())
    (image,) = result.images
    assert not image.recompressed
    assert image.digest == archives.oci_digest
    assert image.target == target
    assert _registry_digest(registry, "push-oci/app:1") == archives.oci_digest
    _docker_runs(docker, target, built_images.app_output)


def test_skopeo_oci_layout_directory(
    archives: Archives, registry: RegistryInfo, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    skopeo("copy", f"oci-archive:{archives.oci_archive}", f"oci:{layout}:app")
    recorded = json.loads(skopeo("inspect", f"oci:{layout}:app").stdout)["Digest"]
    # the layout names the image "app" only (no repository): a full TARGET is needed
    (image,) = push(layout, registry.ref("push-layout/app:2"), options=_plain()).images
    assert image.digest == recorded
    assert _registry_digest(registry, "push-layout/app:2") == recorded


def test_index_with_children_and_attestation(
    multiarch: MultiArch, registry: RegistryInfo, tmp_path: Path
) -> None:
    archive = tmp_path / "multi.tar"
    skopeo(
        "copy", "--all", "--preserve-digests", *src_args(registry),
        f"docker://{multiarch.ref}", f"oci-archive:{archive}:multi",
    )  # fmt: skip
    target = registry.ref("push-multi/app:1")
    (image,) = push(archive, target, options=_plain()).images
    assert image.digest == multiarch.index_digest
    # the registry accepted the index only because its children were there first
    assert _registry_digest(registry, "push-multi/app:1") == multiarch.index_digest
    for child in (multiarch.amd64_digest, multiarch.arm64_digest, multiarch.attestation_digest):
        raw = skopeo(
            "inspect",
            "--raw",
            *inspect_args(registry),
            f"docker://{registry.host}/push-multi/app@{child}",
        ).stdout
        assert json.loads(raw)["schemaVersion"] == 2


def test_skopeo_docker_archive(
    docker: DockerDaemon, built_images: BuiltImages, archives: Archives, registry: RegistryInfo
) -> None:
    result = push(archives.skopeo_docker, f"{registry.host}/push-skopeo", options=_plain())
    (image,) = result.images
    assert image.target == f"{registry.host}/push-skopeo/sneaker-test/app:1"
    assert _registry_digest(registry, "push-skopeo/sneaker-test/app:1") == image.digest
    _docker_runs(docker, image.target, built_images.app_output)


def test_podman_save_both_formats(
    docker: DockerDaemon,
    built_images: BuiltImages,
    podman: Podman,
    archives: Archives,
    registry: RegistryInfo,
    tmp_path: Path,
) -> None:
    loaded = podman.load(archives.docker_save)
    assert loaded, "podman load reported no image"
    name = loaded[0]
    oci = tmp_path / "podman-oci.tar"
    podman.run("save", "--format", "oci-archive", "-o", str(oci), name)
    legacy = tmp_path / "podman-docker.tar"
    podman.run("save", "-o", str(legacy), name)

    oci_target = f"{registry.host}/push-podman/oci:1"
    (oci_image,) = push(oci, oci_target, options=_plain()).images
    recorded = json.loads(skopeo("inspect", f"oci-archive:{oci}").stdout)["Digest"]
    assert oci_image.digest == recorded
    assert _registry_digest(registry, "push-podman/oci:1") == recorded
    _docker_runs(docker, oci_target, built_images.app_output)

    legacy_target = f"{registry.host}/push-podman/legacy:1"
    (legacy_image,) = push(legacy, legacy_target, options=_plain()).images
    assert _registry_digest(registry, "push-podman/legacy:1") == legacy_image.digest
    _docker_runs(docker, legacy_target, built_images.app_output)


def test_mount_across_repositories(
    docker: DockerDaemon, built_images: BuiltImages, archives: Archives, registry: RegistryInfo
) -> None:
    # one run, two names for one image: the second repository mounts from the first
    result = push(archives.two_tags, f"{registry.host}/push-mount", options=_plain())
    by_target = {i.target: i for i in result.images}
    first = by_target[f"{registry.host}/push-mount/sneaker-test/app:1"]
    other = by_target[f"{registry.host}/push-mount/other/app:1"]
    assert first.uploaded > 0
    assert other.mounted == first.uploaded
    assert other.uploaded == 0
    assert first.digest == other.digest
    assert _registry_digest(registry, "push-mount/other/app:1") == other.digest

    # the archive names its source repository on this registry: mount from there
    named = registry.ref("push-origin/app:1")
    # (as OCI, like the archive, so that the config blob is the same too)
    seed(registry, built_images.app, "push-origin/app:1", daemon=docker, extra=("--format", "oci"))
    oci = archives.oci_archive.with_name("named-oci.tar")
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{built_images.app}", f"oci-archive:{oci}:{named}",
    )  # fmt: skip
    moved = push(oci, f"{registry.host}/push-moved/app:1", options=_plain())
    (image,) = moved.images
    manifest = json.loads(skopeo("inspect", "--raw", f"oci-archive:{oci}").stdout)
    assert image.uploaded == 0
    assert image.mounted == 1 + len(manifest["layers"])
    _docker_runs(docker, image.target, built_images.app_output)


def test_chunked_upload(
    docker: DockerDaemon,
    built_images: BuiltImages,
    archives: Archives,
    make_registry: Callable[..., RegistryInfo],
) -> None:
    info = make_registry()
    chunk = 128 * 1024
    result = push(
        archives.oci_archive, info.ref("chunked/app:1"), options=_plain(), chunk_size=chunk
    )
    assert result.images[0].digest == archives.oci_digest
    logs = "".join(
        p.read_text(errors="replace") for p in info.storage.parent.glob("registry-*.log")
    )
    patches = logs.count('"PATCH /v2/chunked/app/blobs/uploads/')
    assert patches > 2, "no chunked upload seen in the registry's access log"
    _docker_runs(docker, info.ref("chunked/app:1"), built_images.app_output)


def test_tagged_target_for_many_images_is_refused(
    archives: Archives, registry: RegistryInfo
) -> None:
    with pytest.raises(UsageError) as info:
        push(archives.two_tags, registry.ref("one/name:1"), options=_plain())
    assert "holds 2" in info.value.message
    assert info.value.hint is not None
    assert f"{registry.host}/one" in info.value.hint


def test_cli_push_json_and_summary(archives: Archives, registry: RegistryInfo) -> None:
    target = registry.ref("push-cli/app:1")
    proc = run(
        [sys.executable, "-m", "sneaker", "push", "--json", "-j", "2",
         str(archives.oci_archive), target],
    )  # fmt: skip
    data = json.loads(proc.stdout)
    assert data["images"][0]["target"] == target
    assert data["images"][0]["digest"] == archives.oci_digest
    assert data["format"] == "oci-archive"
    again = run([sys.executable, "-m", "sneaker", "push", "-q", str(archives.oci_archive), target])
    assert again.stdout.strip() == (
        f"pushed {target} {archives.oci_digest}: 0 blobs uploaded, "
        f"{data['images'][0]['blobs']['uploaded']} already there, 0 mounted"
    )
    refused = run(
        [sys.executable, "-m", "sneaker", "push", str(archives.two_tags), target], check=False
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: TARGET ")
    assert "hint: give a registry or registry/prefix" in refused.stderr
