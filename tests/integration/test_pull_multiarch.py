"""Multi-platform pulls (issue: OCI layouts and multi-arch images, digests byte for byte).

The index is built and pushed by skopeo (``multiarch`` fixture): amd64 and arm64 children
plus a buildx-style attestation entry.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.fixtures.containerd import Containerd
from tests.fixtures.multiarch import MultiArch
from tests.fixtures.podman import Podman
from tests.fixtures.registry import MakeRegistry
from tests.fixtures.tools import skopeo, umoci
from tests.helpers import sneaker

pytestmark = pytest.mark.integration


def _sha(data: str | bytes) -> str:
    return "sha256:" + hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def test_all_platforms_keep_the_index_byte_for_byte(
    tmp_path: Path, env: Mapping[str, str], multiarch: MultiArch, make_registry: MakeRegistry
) -> None:
    archive = tmp_path / "multi.tar"
    out = sneaker(
        "pull", "--format", "oci", "--platform", "all", multiarch.ref, "-o", archive, env=env
    )
    assert multiarch.index_digest in out.stdout
    assert "rewritten" not in out.stdout
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for digest in (
        multiarch.index_digest,
        multiarch.amd64_digest,
        multiarch.arm64_digest,
        multiarch.attestation_digest,
    ):
        assert "blobs/sha256/" + digest.split(":")[1] in names

    # skopeo pushes it back with the same index digest
    target = make_registry()
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci-archive:{archive}:{multiarch.tag}",
        f"docker://{target.host}/back/multi:1",
    )
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{target.host}/back/multi:1"
    ).stdout
    assert _sha(raw) == multiarch.index_digest


def test_all_platforms_layout_reads_in_umoci_skopeo_and_ctr(
    tmp_path: Path,
    env: Mapping[str, str],
    multiarch: MultiArch,
    containerd: Containerd,
    podman: Podman,
) -> None:
    layout = tmp_path / "layout"
    sneaker(
        "pull",
        "-q",
        "--format",
        "oci",
        "--platform",
        "all",
        multiarch.ref,
        "-o",
        f"{layout}/",
        env=env,
    )
    raw = skopeo("inspect", "--raw", f"oci:{layout}:{multiarch.tag}").stdout
    assert _sha(raw) == multiarch.index_digest
    archive = tmp_path / "multi.tar"
    sneaker(
        "pull", "-q", "--format", "oci", "--platform", "all", multiarch.ref, "-o", archive, env=env
    )
    containerd.import_archive(archive, "--all-platforms")
    assert multiarch.ref in containerd.image_names()

    single = tmp_path / "amd64"
    sneaker(
        "pull",
        "-q",
        "--format",
        "oci",
        "--platform",
        "linux/amd64",
        multiarch.ref,
        "-o",
        f"{single}/",
        env=env,
    )
    bundle = tmp_path / "bundle"
    umoci("unpack", "--image", f"{single}:{multiarch.tag}", str(bundle))
    assert (bundle / "rootfs").is_dir()
    amd64_tar = tmp_path / "amd64.tar"
    sneaker(
        "pull",
        "-q",
        "--format",
        "oci",
        "--platform",
        "linux/amd64",
        multiarch.ref,
        "-o",
        amd64_tar,
        env=env,
    )
    assert podman.load(amd64_tar)


def test_platform_list_rewrites_the_index_and_says_so(
    tmp_path: Path, env: Mapping[str, str], multiarch: MultiArch
) -> None:
    layout = tmp_path / "two"
    out = sneaker(
        "pull",
        "--format",
        "oci",
        "--platform",
        "linux/arm64,linux/amd64",
        multiarch.ref,
        "-o",
        f"{layout}/",
        env=env,
    )
    assert "index rewritten" in out.stdout
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] != multiarch.index_digest
    blob = layout / "blobs" / "sha256" / entry["digest"].split(":")[1]
    child_index = json.loads(blob.read_bytes())
    assert [m["digest"] for m in child_index["manifests"]] == [
        multiarch.amd64_digest,
        multiarch.arm64_digest,
    ]


def test_single_platform_docker_archive_never_picks_attestations(
    tmp_path: Path, env: Mapping[str, str], multiarch: MultiArch, podman: Podman
) -> None:
    out = tmp_path / "arm.tar"
    result = sneaker("pull", "--platform", "linux/arm64", multiarch.ref, "-o", out, env=env)
    assert "linux/arm64" in result.stdout
    with tarfile.open(out) as tar:
        handle = tar.extractfile("index.json")
        assert handle is not None
        index = json.load(handle)
    assert index["manifests"][0]["digest"] == multiarch.arm64_digest
    assert podman.load(out)

    missing = sneaker(
        "pull",
        "-q",
        "--platform",
        "linux/s390x",
        multiarch.ref,
        "-o",
        tmp_path / "none.tar",
        env=env,
        check=False,
    )
    assert missing.returncode == 5
    assert missing.stderr.splitlines() == [
        f"error: {multiarch.ref} has no image for platform linux/s390x",
        "hint: available platforms: linux/amd64, linux/arm64/v8; choose one with --platform",
    ]
    several = sneaker(
        "pull",
        "--platform",
        "linux/arm64,linux/amd64",
        multiarch.ref,
        "-o",
        tmp_path / "several.tar",
        env=env,
        check=False,
    )
    assert several.returncode == 2
    assert "hint: use --format oci" in several.stderr


def test_inspect_remote_and_archive_agree(
    tmp_path: Path, env: Mapping[str, str], multiarch: MultiArch
) -> None:
    remote = json.loads(sneaker("inspect", "--json", multiarch.ref, env=env).stdout)
    (image,) = remote["images"]
    assert image["digest"] == multiarch.index_digest
    assert image["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    attest = [m for m in image["manifests"] if m["attestation"]]
    assert [m["digest"] for m in attest] == [multiarch.attestation_digest]

    archive = tmp_path / "multi.tar"
    sneaker(
        "pull", "-q", "--format", "oci", "--platform", "all", multiarch.ref, "-o", archive, env=env
    )
    local = json.loads(sneaker("inspect", "--json", archive, env=env).stdout)
    assert local["kind"] == "oci-archive"
    assert local["images"][0]["manifests"] == image["manifests"]
    text = sneaker("inspect", multiarch.ref, env=env).stdout
    assert "linux/arm64" in text
    assert multiarch.index_digest in text
