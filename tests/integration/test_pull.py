"""``sneaker pull`` against real registries; the archives are proven by real loaders.

Images are built by docker and pushed by skopeo or docker (the ``seeded`` fixture);
what sneaker writes must ``docker load`` and run, ``podman load``, ``ctr import``,
and read back in skopeo with the registry's digests.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.fixtures.containerd import Containerd
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.images import BuiltImages
from tests.fixtures.podman import Podman
from tests.fixtures.registry import RegistryInfo, TokenRegistryInfo
from tests.fixtures.seeding import Seeded
from tests.fixtures.tools import skopeo
from tests.helpers import sneaker

pytestmark = pytest.mark.integration


def _members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def _json_member(archive: Path, name: str) -> object:
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return json.loads(handle.read())


def test_pull_loads_and_runs_in_docker(
    tmp_path: Path,
    env: Mapping[str, str],
    seeded: Seeded,
    docker: DockerDaemon,
    built_images: BuiltImages,
) -> None:
    out = tmp_path / "app.tar"
    result = sneaker("pull", seeded.app.ref, "-o", out, env=env)
    assert result.stdout.splitlines()[0].startswith(f"wrote {out} (docker archive, ")
    assert f"{seeded.app.ref} linux/amd64 {seeded.app.digest}" in result.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".app.tar")]

    tag = f"{seeded.app.ref}"
    docker.run("rmi", "-f", tag, check=False)
    loaded = docker.run("load", "-i", str(out)).stdout
    assert f"Loaded image: {tag}" in loaded
    assert docker.image_id(tag) == seeded.app.config_digest
    ran = docker.run("run", "--rm", "--network", "none", tag)
    assert ran.stdout.strip() == built_images.app_output


def test_archive_layout_matches_docker_save(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded
) -> None:
    out = tmp_path / "app.tar"
    sneaker("pull", "-q", seeded.app.ref, "-o", out, env=env)
    names = _members(out)
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= set(names)
    assert len(names) == len(set(names))
    index = _json_member(out, "index.json")
    assert isinstance(index, dict)
    (entry,) = index["manifests"]
    assert entry["digest"] == seeded.app.digest
    assert entry["annotations"] == {
        "io.containerd.image.name": seeded.app.ref,
        "org.opencontainers.image.ref.name": seeded.app.tag,
    }
    manifest = _json_member(out, "manifest.json")
    assert isinstance(manifest, list)
    assert manifest[0]["RepoTags"] == [seeded.app.ref]
    assert manifest[0]["Config"] == "blobs/sha256/" + seeded.app.config_digest.split(":")[1]
    for layer in manifest[0]["Layers"]:
        assert layer in names
    # the manifest blob is the registry's, byte for byte
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{seeded.app.ref}").stdout
    with tarfile.open(out) as tar:
        handle = tar.extractfile("blobs/sha256/" + seeded.app.digest.split(":")[1])
        assert handle is not None
        assert handle.read() == raw.encode()


def test_podman_ctr_and_skopeo_read_the_archive(
    tmp_path: Path,
    env: Mapping[str, str],
    seeded: Seeded,
    podman: Podman,
    containerd: Containerd,
) -> None:
    out = tmp_path / "app.tar"
    sneaker("pull", "-q", seeded.app.ref, "-o", out, env=env)
    assert seeded.app.ref in podman.load(out)
    config = json.loads(skopeo("inspect", "--config", "--raw", f"docker-archive:{out}").stdout)
    assert config["rootfs"]["type"] == "layers"
    inspected = json.loads(skopeo("inspect", f"docker-archive:{out}").stdout)
    assert len(inspected["Layers"]) == len(config["rootfs"]["diff_ids"])
    raw_config = skopeo("inspect", "--config", "--raw", f"docker-archive:{out}").stdout.encode()
    import hashlib

    assert "sha256:" + hashlib.sha256(raw_config).hexdigest() == seeded.app.config_digest
    containerd.import_archive(out)
    assert seeded.app.ref in containerd.image_names()


def test_docker_pushed_image_and_digest_reference(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded, docker: DockerDaemon
) -> None:
    out = tmp_path / "pinned.tar"
    sneaker("pull", "-q", seeded.pushed.digest_ref, "-o", out, env=env)
    index = _json_member(out, "index.json")
    assert isinstance(index, dict)
    assert index["manifests"][0]["digest"] == seeded.pushed.digest
    loaded = docker.run("load", "-i", str(out)).stdout
    assert "Loaded image" in loaded


def test_default_output_name_and_several_images(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded, docker: DockerDaemon
) -> None:
    sneaker("pull", "-q", seeded.small.ref, env=env, cwd=tmp_path)
    assert (tmp_path / "small_1.tar").is_file()

    bundle = tmp_path / "bundle.tar"
    sneaker(
        "pull", "-q", seeded.app.ref, seeded.small.ref, seeded.pushed.ref, "-o", bundle, env=env
    )
    names = _members(bundle)
    assert len(names) == len(set(names)), "each blob is stored once"
    manifest = _json_member(bundle, "manifest.json")
    assert isinstance(manifest, list)
    assert sorted(t for m in manifest for t in m["RepoTags"]) == sorted(
        [seeded.app.ref, seeded.small.ref, seeded.pushed.ref]
    )
    loaded = docker.run("load", "-i", str(bundle)).stdout
    for ref in (seeded.app.ref, seeded.small.ref, seeded.pushed.ref):
        assert f"Loaded image: {ref}" in loaded


def test_oci_layout_and_archive_keep_docker_manifests(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded, containerd: Containerd
) -> None:
    """A Docker schema 2 manifest stays one in an OCI layout: byte for byte, never converted.

    (skopeo 1.9 and umoci 0.4 only read OCI-typed manifests from layouts; they are
    exercised on the OCI-typed multi-arch image below. containerd reads both.)
    """
    layout = tmp_path / "layout"
    sneaker("pull", "-q", "--format", "oci", seeded.app.ref, "-o", f"{layout}/", env=env)
    assert (layout / "oci-layout").is_file()
    assert not (layout / "manifest.json").exists()
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == seeded.app.digest
    blob = layout / "blobs" / "sha256" / seeded.app.digest.split(":")[1]
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{seeded.app.ref}").stdout
    assert blob.read_bytes() == raw.encode()
    # layers are hard links of the cache's files (same filesystem): no bytes copied
    config_hex = seeded.app.config_digest.split(":")[1]
    cached = Path(env["SNEAKER_CACHE_DIR"]) / "blobs" / "sha256" / config_hex
    in_layout = layout / "blobs" / "sha256" / config_hex
    assert in_layout.stat().st_ino == cached.stat().st_ino
    assert in_layout.read_bytes() == cached.read_bytes()

    archive = tmp_path / "app-oci.tar"
    sneaker("pull", "-q", "--format", "oci", seeded.app.ref, "-o", archive, env=env)
    names = _members(archive)
    assert "manifest.json" not in names
    assert "blobs/sha256/" + seeded.app.digest.split(":")[1] in names
    containerd.import_archive(archive)
    assert seeded.app.ref in containerd.image_names()


def test_token_auth_public_anonymous_private_refused(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded, token_registry: TokenRegistryInfo
) -> None:
    sneaker("pull", "-q", seeded.token_public.ref, "-o", tmp_path / "public.tar", env=env)
    assert (tmp_path / "public.tar").is_file()

    refused = sneaker(
        "pull", "-q", seeded.token_private.ref, "-o", tmp_path / "private.tar", env=env, check=False
    )
    assert refused.returncode == 4
    host = token_registry.host
    assert refused.stderr.splitlines() == [
        f"error: authentication required for repository private/app on {host}",
        f"hint: run 'sneaker login {host}' or pass --username with --password-stdin "
        "(or the repository does not exist)",
    ]
    assert not (tmp_path / "private.tar").exists()

    assert token_registry.password is not None
    sneaker(
        "pull",
        "-q",
        seeded.token_private.ref,
        "-o",
        tmp_path / "private.tar",
        "--username",
        token_registry.username or "",
        "--password-stdin",
        input=token_registry.password + "\n",
        env=env,
    )
    assert (tmp_path / "private.tar").is_file()

    wrong = sneaker(
        "pull",
        "-q",
        seeded.token_private.ref,
        "-o",
        tmp_path / "wrong.tar",
        "--username",
        token_registry.username or "",
        "--password-stdin",
        input="not-the-password\n",
        env=env,
        check=False,
    )
    assert wrong.returncode == 4
    assert "not-the-password" not in wrong.stderr + wrong.stdout
    assert wrong.stderr.splitlines() == [
        f"error: access denied: the token service at {token_registry.realm} refused the "
        f"credentials of user '{token_registry.username}' for {host} (from command line)",
        f"hint: check the password, or run 'sneaker login {host}' again",
    ]
    assert not (tmp_path / "wrong.tar").exists()


def test_tls_registry_needs_its_ca(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded, tls_registry: RegistryInfo
) -> None:
    assert tls_registry.ca_cert is not None
    assert tls_registry.password is not None
    creds = ["--username", tls_registry.username or "", "--password-stdin"]
    failed = sneaker(
        "pull",
        "-q",
        seeded.tls.ref,
        "-o",
        tmp_path / "x.tar",
        *creds,
        input=tls_registry.password + "\n",
        env=env,
        check=False,
    )
    assert failed.returncode == 6
    assert failed.stderr.splitlines() == [
        f"error: TLS handshake with {tls_registry.host} failed: certificate verify failed: "
        "unable to get local issuer certificate",
        "hint: pass --ca-cert FILE, put the registry's CA in certs.d/HOST/ca.crt, "
        "or (only on a trusted network) use --insecure",
    ]
    sneaker(
        "pull",
        "-q",
        seeded.tls.ref,
        "-o",
        tmp_path / "x.tar",
        "--ca-cert",
        tls_registry.ca_cert,
        *creds,
        input=tls_registry.password + "\n",
        env=env,
    )
    assert (tmp_path / "x.tar").is_file()


def test_not_found_errors_are_one_line(
    tmp_path: Path, env: Mapping[str, str], registry: RegistryInfo, seeded: Seeded
) -> None:
    missing_tag = sneaker(
        "pull",
        "-q",
        f"{registry.host}/test/app:nope",
        "-o",
        tmp_path / "a.tar",
        env=env,
        check=False,
    )
    assert missing_tag.returncode == 5
    assert missing_tag.stderr == f"error: tag nope not found in {registry.host}/test/app\n"

    missing_repo = sneaker(
        "pull", "-q", f"{registry.host}/no/such:1", "-o", tmp_path / "b.tar", env=env, check=False
    )
    assert missing_repo.returncode == 5
    # distribution answers MANIFEST_UNKNOWN (not NAME_UNKNOWN) for a repository it lacks
    assert missing_repo.stderr == f"error: tag 1 not found in {registry.host}/no/such\n"
    assert not list(tmp_path.glob("*.tar"))


def test_python_api(tmp_path: Path, seeded: Seeded) -> None:
    import sneaker as api

    result = api.pull([seeded.app.ref], tmp_path / "api.tar", cache_dir=tmp_path / "cache")
    assert result.output == tmp_path / "api.tar"
    assert result.images[0].digest == seeded.app.digest
    assert result.images[0].platforms == ("linux/amd64",)
    manifest = _json_member(tmp_path / "api.tar", "manifest.json")
    assert isinstance(manifest, list)
    blobs = len(manifest[0]["Layers"]) + 1  # layers and the config
    assert result.stats.downloaded == blobs
    again = api.pull([seeded.app.ref], tmp_path / "api2.tar", cache_dir=tmp_path / "cache")
    assert again.stats.downloaded == 0
    assert again.stats.cached == blobs
    assert (tmp_path / "api.tar").read_bytes() == (tmp_path / "api2.tar").read_bytes()


def test_wrong_platform_fails_before_any_layer_is_downloaded(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded
) -> None:
    failed = sneaker(
        "pull",
        "-q",
        "--platform",
        "linux/s390x",
        seeded.app.ref,
        "-o",
        tmp_path / "x.tar",
        env=env,
        check=False,
    )
    assert failed.returncode == 5
    assert failed.stderr.splitlines() == [
        f"error: {seeded.app.ref} is a single-platform image for linux/amd64, not linux/s390x",
        "hint: ask for it with --platform linux/amd64",
    ]
    cached = sorted(p.name for p in (Path(env["SNEAKER_CACHE_DIR"]) / "blobs" / "sha256").iterdir())
    assert cached == [seeded.app.config_digest.split(":")[1]]
    assert not (tmp_path / "x.tar").exists()
