"""Smoke tests for the test fixtures themselves, using only real peers (never sneaker).

They prove that every daemon and tool the integration tests rely on really
runs here, and that the seeded images look the way the other tests assume.
"""

from __future__ import annotations

import base64
import json
import tarfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.containerd import Containerd
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.images import BuiltImages
from tests.fixtures.multiarch import MultiArch
from tests.fixtures.podman import Podman
from tests.fixtures.registry import MakeRegistry, RegistryInfo, TokenRegistryInfo
from tests.fixtures.seeding import Seeded, inspect_args, seed
from tests.fixtures.tools import skopeo, umoci
from tests.helpers import http_request, http_status, in_ci, need

pytestmark = pytest.mark.integration

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def _request(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    method: str | None = None,
    info: RegistryInfo | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body)"""
    ctx = info.ssl_context() if info is not None else None
    return http_request(url, headers=headers, data=data, method=method, ssl_context=ctx)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _skopeo_digest(info: RegistryInfo, ref: str, *extra: str) -> str:
    out = skopeo("inspect", *inspect_args(info), *extra, f"docker://{ref}").stdout
    digest: str = json.loads(out)["Digest"]
    return digest


# -- helpers ------------------------------------------------------------------------------


def test_need_fails_under_ci_and_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "sneaker-no-such-tool-xyz"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        need(missing)
    monkeypatch.delenv("CI")
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception):
        need(missing)
    assert need("sh").startswith("/")


# -- registries ---------------------------------------------------------------------------


def test_plain_registry_serves_seeded_app(registry: RegistryInfo, seeded: Seeded) -> None:
    assert http_status(f"{registry.url}/v2/") == 200
    assert seeded.ref == f"{registry.host}/test/app:1"
    assert _skopeo_digest(registry, seeded.ref) == seeded.digest
    manifest = json.loads(
        skopeo("inspect", "--raw", *inspect_args(registry), f"docker://{seeded.ref}").stdout
    )
    assert manifest["config"]["digest"] == seeded.config_digest
    status, headers, _ = _request(
        f"{registry.url}/v2/test/app/manifests/1", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert status == 200
    assert headers["docker-content-digest"] == seeded.digest


def test_docker_push_and_skopeo_agree(
    registry: RegistryInfo, seeded: Seeded, built_images: BuiltImages
) -> None:
    assert _skopeo_digest(registry, seeded.pushed.ref) == seeded.pushed.digest
    # Both tools push the same image config: docker's image ID.
    assert seeded.pushed.config_digest == built_images.app_id
    assert seeded.config_digest == built_images.app_id
    assert _skopeo_digest(registry, seeded.small.ref) == seeded.small.digest


def test_make_registry_gives_empty_registry(
    make_registry: MakeRegistry, built_images: BuiltImages, docker: DockerDaemon
) -> None:
    fresh = make_registry()
    status, _, body = _request(f"{fresh.url}/v2/_catalog")
    assert status == 200
    assert json.loads(body)["repositories"] == []
    digest = seed(fresh, built_images.small, "fresh/small:1")
    assert _skopeo_digest(fresh, fresh.ref("fresh/small:1")) == digest
    status, _, body = _request(f"{fresh.url}/v2/_catalog")
    assert json.loads(body)["repositories"] == ["fresh/small"]


def test_tls_registry_needs_ca_and_credentials(tls_registry: RegistryInfo, seeded: Seeded) -> None:
    assert tls_registry.scheme == "https"
    assert tls_registry.host.startswith("localhost:")
    assert tls_registry.ca_cert is not None
    assert tls_registry.username is not None
    assert tls_registry.password is not None
    # Correct CA and credentials.
    assert _skopeo_digest(tls_registry, seeded.tls.ref) == seeded.tls.digest
    # Without credentials: 401 with a Basic challenge.
    status, headers, _ = _request(f"{tls_registry.url}/v2/", info=tls_registry)
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic ")
    # Wrong password: 401; right one: 200.
    bad = _basic(tls_registry.username, "wrong")
    assert (
        _request(f"{tls_registry.url}/v2/", headers={"Authorization": bad}, info=tls_registry)[0]
        == 401
    )
    good = _basic(tls_registry.username, tls_registry.password)
    assert (
        _request(f"{tls_registry.url}/v2/", headers={"Authorization": good}, info=tls_registry)[0]
        == 200
    )
    # Without the CA, TLS verification fails.
    result = skopeo(
        "inspect",
        "--creds",
        f"{tls_registry.username}:{tls_registry.password}",
        f"docker://{seeded.tls.ref}",
        check=False,
    )
    assert result.returncode != 0
    assert "certificate" in result.stderr


# -- token auth ---------------------------------------------------------------------------


def _challenge(info: TokenRegistryInfo, path: str) -> dict[str, str]:
    status, headers, _ = _request(f"{info.url}{path}", headers={"Accept": MANIFEST_ACCEPT})
    assert status == 401
    scheme, _, params = headers["www-authenticate"].partition(" ")
    assert scheme == "Bearer"
    parsed: dict[str, str] = {}
    for part in params.split('",'):
        key, _, value = part.partition("=")
        parsed[key.strip()] = value.strip().strip('"')
    return parsed


def _get_token(
    info: TokenRegistryInfo, scope: str, auth: tuple[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    query = urllib.parse.urlencode({"service": info.service, "scope": scope})
    headers = {"Authorization": _basic(*auth)} if auth else {}
    status, _, body = _request(f"{info.realm}?{query}", headers=headers)
    return status, json.loads(body)


def _manifest_status(info: TokenRegistryInfo, repo: str, token: str) -> tuple[int, str | None]:
    status, headers, _ = _request(
        f"{info.url}/v2/{repo}/manifests/1",
        headers={"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"},
    )
    return status, headers.get("docker-content-digest")


def test_token_registry_challenge_points_at_token_server(
    token_registry: TokenRegistryInfo, seeded: Seeded
) -> None:
    challenge = _challenge(token_registry, "/v2/public/app/manifests/1")
    assert challenge["realm"] == token_registry.realm
    assert challenge["service"] == token_registry.service
    assert challenge["scope"] == "repository:public/app:pull"


def test_token_anonymous_pull_public_only(
    token_registry: TokenRegistryInfo, seeded: Seeded
) -> None:
    server = token_registry.server
    server.clear_requests()
    status, body = _get_token(token_registry, "repository:public/app:pull")
    assert status == 200
    assert body["token"] == body["access_token"]
    assert _manifest_status(token_registry, "public/app", body["token"]) == (
        200,
        seeded.token_public.digest,
    )

    # Anonymous private pull: the token server grants nothing, the registry refuses.
    status, body = _get_token(token_registry, "repository:private/app:pull")
    assert status == 200
    assert server.issued[-1] == []
    assert _manifest_status(token_registry, "private/app", body["token"])[0] == 401

    # Anonymous push on public/: not granted either.
    _get_token(token_registry, "repository:public/app:pull,push")
    assert server.issued[-1] == [{"type": "repository", "name": "public/app", "actions": ["pull"]}]

    seen = [(r.method, r.path, r.had_auth) for r in server.requests]
    assert seen == [("GET", "/token", False)] * 3
    assert "scope=repository%3Apublic%2Fapp%3Apull" in server.requests[0].query

    # skopeo, anonymously, through the whole dance.
    assert _skopeo_digest(token_registry, seeded.token_public.ref) == seeded.token_public.digest
    refused = skopeo(
        "inspect", "--tls-verify=false", f"docker://{seeded.token_private.ref}", check=False
    )
    assert refused.returncode != 0


def test_token_credentials(token_registry: TokenRegistryInfo, seeded: Seeded) -> None:
    assert token_registry.username is not None
    assert token_registry.password is not None
    user = (token_registry.username, token_registry.password)
    status, body = _get_token(token_registry, "repository:private/app:pull,push", auth=user)
    assert status == 200
    assert token_registry.server.issued[-1] == [
        {"type": "repository", "name": "private/app", "actions": ["pull", "push"]}
    ]
    assert _manifest_status(token_registry, "private/app", body["token"]) == (
        200,
        seeded.token_private.digest,
    )
    assert token_registry.server.requests[-1].had_auth

    status, _ = _get_token(
        token_registry, "repository:private/app:pull", auth=(token_registry.username, "wrong")
    )
    assert status == 401

    assert _skopeo_digest(token_registry, seeded.token_private.ref) == seeded.token_private.digest


def test_token_oauth2_password_and_refresh(
    token_registry: TokenRegistryInfo, seeded: Seeded
) -> None:
    assert token_registry.username is not None
    assert token_registry.password is not None

    def post(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        status, _, body = _request(
            token_registry.realm, data=urllib.parse.urlencode(form).encode(), method="POST"
        )
        return status, json.loads(body)

    common = {
        "service": token_registry.service,
        "client_id": "sneaker-tests",
        "scope": "repository:private/app:pull",
    }
    status, body = post(
        {
            **common,
            "grant_type": "password",
            "username": token_registry.username,
            "password": "nope",
        }
    )
    assert status == 401
    status, body = post(
        {
            **common,
            "grant_type": "password",
            "username": token_registry.username,
            "password": token_registry.password,
        }
    )
    assert status == 200
    assert body["refresh_token"]
    assert _manifest_status(token_registry, "private/app", body["access_token"])[0] == 200
    status, refreshed = post(
        {**common, "grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    )
    assert status == 200
    assert _manifest_status(token_registry, "private/app", refreshed["access_token"])[0] == 200
    assert post({**common, "grant_type": "refresh_token", "refresh_token": "bogus"})[0] == 401
    assert token_registry.server.requests[-1].method == "POST"
    assert "grant_type=refresh_token" in token_registry.server.requests[-1].query


def test_token_ttl_is_enforced_by_registry(
    token_registry: TokenRegistryInfo, seeded: Seeded
) -> None:
    server = token_registry.server
    server.set_ttl(2)
    try:
        status, body = _get_token(token_registry, "repository:public/app:pull")
    finally:
        server.reset_ttl()
    assert status == 200
    assert body["expires_in"] == 2
    assert _manifest_status(token_registry, "public/app", body["token"])[0] == 200
    time.sleep(3.5)
    assert _manifest_status(token_registry, "public/app", body["token"])[0] == 401


# -- docker and the built images ----------------------------------------------------------


def test_docker_runs_app(docker: DockerDaemon, built_images: BuiltImages) -> None:
    out = docker.run("run", "--rm", "--network", "none", built_images.app).stdout.strip()
    assert out == built_images.app_output
    assert docker.image_id(built_images.app) == built_images.app_id
    config = docker.inspect_image(built_images.app)["Config"]
    assert config["Entrypoint"] == ["/bin/sh", "/app/run.sh"]
    assert config["Cmd"] == ["from-cmd"]
    assert config["WorkingDir"] == "/app"
    assert "GREETING=hello-from-env" in config["Env"]
    arm = docker.inspect_image(built_images.small_arm64)
    assert arm["Architecture"] == "arm64"


def _save_layers(docker: DockerDaemon, tag: str, dest: Path) -> list[list[tarfile.TarInfo]]:
    archive = docker.save(dest / "image.tar", tag)
    layers: list[list[tarfile.TarInfo]] = []
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for name in manifest[0]["Layers"]:
            member = outer.extractfile(name)
            assert member is not None
            with tarfile.open(fileobj=member) as inner:
                layers.append(inner.getmembers())
    return layers


def test_app_layers_have_the_promised_edge_cases(
    docker: DockerDaemon, built_images: BuiltImages, tmp_path: Path
) -> None:
    layers = _save_layers(docker, built_images.app, tmp_path)
    everything = {m.name.lstrip("./"): m for layer in layers for m in layer}
    names = set(everything)
    assert "data/.wh.doomed.txt" in names
    assert "data/replaced/.wh..wh..opq" in names, (
        f"no opaque whiteout (storage driver {docker.storage_driver})"
    )
    hard = everything["data/part1.hardlink"]
    assert hard.islnk()
    assert hard.linkname.lstrip("./") == "data/part1"
    assert everything["data/rel-link"].issym()
    assert everything["data/rel-link"].linkname == "part1"
    assert everything["data/abs-link"].linkname == "/data/part1"
    assert everything["bin/sh"].linkname == "/bin/busybox"
    assert everything["data/modes/setuid"].mode & 0o7777 == 0o4755
    assert everything["data/modes/setgid"].mode & 0o7777 == 0o2711
    assert everything["data/modes/none"].mode & 0o7777 == 0
    assert everything["data/modes/sticky"].mode & 0o7777 == 0o1777
    assert len(layers) == 5
    # ENV, LABEL, RUN true, ENTRYPOINT, CMD: history entries without layers.
    assert len(docker.inspect_image(built_images.app)["RootFS"]["Layers"]) == 5
    history = docker.run("image", "history", "-q", "--no-trunc", built_images.app).stdout
    assert len(history.splitlines()) == 10


# -- podman, containerd, umoci ------------------------------------------------------------


def test_podman_loads_docker_save_archive(
    podman: Podman, docker: DockerDaemon, built_images: BuiltImages, tmp_path: Path
) -> None:
    archive = docker.save(tmp_path / "app.tar", built_images.app)
    loaded = podman.load(archive)
    assert any("sneaker-test/app:1" in name for name in loaded), loaded
    info = podman.inspect_image("sneaker-test/app:1")
    assert f"sha256:{info['Id']}" == built_images.app_id


def test_containerd_imports_docker_save_archive(
    containerd: Containerd, docker: DockerDaemon, built_images: BuiltImages, tmp_path: Path
) -> None:
    archive = docker.save(tmp_path / "app.tar", built_images.app)
    containerd.import_archive(archive)
    names = containerd.image_names()
    assert "docker.io/sneaker-test/app:1" in names, names
    out = containerd.ctr("images", "check").stdout
    line = next(row for row in out.splitlines() if row.startswith("docker.io/sneaker-test/app:1"))
    assert "complete" in line
    # Unpacked with the native snapshotter.
    snapshots = containerd.ctr("snapshots", "--snapshotter", "native", "list").stdout
    assert len(snapshots.splitlines()) > 1


def test_umoci_unpacks_applying_whiteouts(
    registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    skopeo(
        "copy",
        *[a.replace("--", "--src-", 1) for a in inspect_args(registry)],
        f"docker://{seeded.ref}",
        f"oci:{layout}:app",
    )
    bundle = tmp_path / "bundle"
    umoci("unpack", "--image", f"{layout}:app", str(bundle))
    rootfs = bundle / "rootfs"
    assert sorted(p.name for p in (rootfs / "data" / "replaced").iterdir()) == ["new.txt"]
    assert not (rootfs / "data" / "doomed.txt").exists()
    assert (rootfs / "data" / "part1").read_text() == "from-layer-2"
    assert (rootfs / "data" / "part1").stat().st_nlink == 2


# -- multi-arch index ---------------------------------------------------------------------


def test_multiarch_index(multiarch: MultiArch, registry: RegistryInfo) -> None:
    status, headers, body = _request(
        f"{registry.url}/v2/{multiarch.repository}/manifests/{multiarch.tag}",
        headers={"Accept": MANIFEST_ACCEPT},
    )
    assert status == 200
    assert headers["docker-content-digest"] == multiarch.index_digest
    assert headers["content-type"] == "application/vnd.oci.image.index.v1+json"
    index = json.loads(body)
    platforms = [
        f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]
    ]
    assert platforms == ["linux/amd64", "linux/arm64", "unknown/unknown"]
    attestation = index["manifests"][2]
    assert attestation["annotations"] == {
        "vnd.docker.reference.digest": multiarch.amd64_digest,
        "vnd.docker.reference.type": "attestation-manifest",
    }
    arm = json.loads(
        skopeo(
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            "arm64",
            "--override-os",
            "linux",
            f"docker://{multiarch.ref}",
        ).stdout
    )
    assert arm["Architecture"] == "arm64"
    assert arm["Digest"] == multiarch.index_digest  # skopeo reports the digest it was given
    for digest in (multiarch.amd64_digest, multiarch.arm64_digest, multiarch.attestation_digest):
        status, headers, _ = _request(
            f"{registry.url}/v2/{multiarch.repository}/manifests/{digest}",
            headers={"Accept": MANIFEST_ACCEPT},
            method="HEAD",
        )
        assert status == 200
        assert headers["docker-content-digest"] == digest
