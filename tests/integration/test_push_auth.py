"""``sneaker push`` to registries that want credentials: token auth, TLS + basic auth, refusals.

The archive is a ``skopeo copy`` of the test app to an OCI archive, so the
digest the registry reports must be the one skopeo recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sneaker.errors import AuthError
from sneaker.registry.options import RegistryOptions
from sneaker.verbs.push import push
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.images import BuiltImages
from tests.fixtures.registry import RegistryInfo, TokenRegistryInfo
from tests.fixtures.seeding import inspect_args
from tests.fixtures.tools import skopeo
from tests.helpers import run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def oci_archive(
    docker: DockerDaemon, built_images: BuiltImages, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """An OCI archive of the small test image (by skopeo) and the digest skopeo recorded."""
    path = tmp_path_factory.mktemp("push-auth") / "small-oci.tar"
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{built_images.small}", f"oci-archive:{path}:{built_images.small}",
    )  # fmt: skip
    digest: str = json.loads(skopeo("inspect", f"oci-archive:{path}").stdout)["Digest"]
    return path, digest


@pytest.fixture
def no_docker_config(tmp_path: Path) -> Path:
    """An empty docker config directory: no credentials of this machine are used."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    return directory


def _registry_digest(info: RegistryInfo, repo_ref: str) -> str:
    out = skopeo("inspect", *inspect_args(info), f"docker://{info.ref(repo_ref)}").stdout
    digest: str = json.loads(out)["Digest"]
    return digest


def test_push_with_token_auth(
    token_registry: TokenRegistryInfo, oci_archive: tuple[Path, str], no_docker_config: Path
) -> None:
    path, digest = oci_archive
    options = RegistryOptions(
        username=token_registry.username,
        password=token_registry.password,
        docker_config=no_docker_config,
        retries=1,
    )
    result = push(path, token_registry.ref("private/push-token:1"), options=options)
    assert result.images[0].digest == digest
    assert result.uploaded > 0
    assert _registry_digest(token_registry, "private/push-token:1") == digest
    # the token asked for carried push on that repository
    assert any(
        entry.get("name") == "private/push-token" and "push" in entry.get("actions", [])
        for access in token_registry.server.issued
        for entry in access
    )


def test_refused_credentials(
    token_registry: TokenRegistryInfo, oci_archive: tuple[Path, str], no_docker_config: Path
) -> None:
    path, _ = oci_archive
    wrong = RegistryOptions(
        username=token_registry.username,
        password="not-the-password",
        docker_config=no_docker_config,
        retries=0,
    )
    with pytest.raises(AuthError) as info:
        push(path, token_registry.ref("private/push-refused:1"), options=wrong)
    text = str(info.value)
    assert "\n" not in text
    assert "not-the-password" not in text
    assert token_registry.username is not None
    assert token_registry.username in text or token_registry.host in text

    anonymous = RegistryOptions(docker_config=no_docker_config, retries=0)
    with pytest.raises(AuthError) as info:
        push(path, token_registry.ref("private/push-refused:1"), options=anonymous)
    assert "authentication required" in str(info.value)
    assert info.value.hint is not None


def test_cli_push_with_password_stdin(
    token_registry: TokenRegistryInfo, oci_archive: tuple[Path, str], no_docker_config: Path
) -> None:
    path, digest = oci_archive
    target = token_registry.ref("private/push-cli:1")
    assert token_registry.username is not None
    assert token_registry.password is not None
    env = {"DOCKER_CONFIG": str(no_docker_config)}
    argv = [sys.executable, "-m", "sneaker", "push", "-q", "--retries", "1", str(path), target]
    proc = run(
        [*argv[:4], "-u", token_registry.username, "--password-stdin", *argv[4:]],
        input=token_registry.password + "\n",
        env=env,
    )
    assert proc.stdout.startswith(f"pushed {target} {digest}: ")
    assert _registry_digest(token_registry, "private/push-cli:1") == digest

    refused = run(
        [*argv[:4], "-u", token_registry.username, "--password-stdin", *argv[4:]],
        input="wrong-password\n",
        env=env,
        check=False,
    )
    assert refused.returncode == AuthError.exit_code
    lines = refused.stderr.strip().splitlines()
    assert lines[0].startswith("error: ")
    assert "wrong-password" not in refused.stderr
    assert len(lines) <= 2


def test_push_to_tls_registry_with_ca_cert(
    tls_registry: RegistryInfo, oci_archive: tuple[Path, str], no_docker_config: Path
) -> None:
    path, digest = oci_archive
    options = RegistryOptions(
        ca_cert=tls_registry.ca_cert,
        username=tls_registry.username,
        password=tls_registry.password,
        docker_config=no_docker_config,
        retries=1,
    )
    result = push(path, f"{tls_registry.host}/tls-push", options=options, jobs=1)
    (image,) = result.images
    assert image.target == f"{tls_registry.host}/tls-push/sneaker-test/small:1"
    assert image.digest == digest
    assert _registry_digest(tls_registry, "tls-push/sneaker-test/small:1") == digest
