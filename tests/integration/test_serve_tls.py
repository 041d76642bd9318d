"""``sneaker serve --tls-cert/--tls-key`` against real clients given only the CA.

The archive is written by ``docker save`` (never by sneaker); the certificates come
from a throwaway CA (tests/fixtures/pki.py). Each client trusts nothing but that CA,
configured its own way, and is shown failing without it first, so a pull that
works is a verified one:

- docker, through ``/etc/docker/certs.d/HOST:PORT/ca.crt``. docker never verifies a
  registry whose address is in 127.0.0.0/8 (it is insecure by default), so this
  docker daemon has an /etc of its own where a test name stands for ``::1`` and
  the server listens there;
- skopeo and podman, through ``--cert-dir`` (a directory holding ``ca.crt``);
- containerd's ``ctr``, through ``--hosts-dir`` (``HOST:PORT/hosts.toml`` naming the CA;
  without it ctr speaks plain HTTP to a loopback registry, which the server logs).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sneaker.verbs.serve import RegistryServer, serve
from sneaker.verbs.serve.tls import PLAIN_ON_HTTPS
from tests.fixtures.containerd import Containerd
from tests.fixtures.docker import DockerDaemon, start_docker
from tests.fixtures.images import BuiltImages
from tests.fixtures.pki import TLSFiles, make_tls_files
from tests.fixtures.podman import Podman
from tests.fixtures.tools import skopeo

pytestmark = pytest.mark.integration

#: the name the TLS docker daemon resolves to ::1 (in its own /etc/hosts)
TLS_NAME = "sneaker-serve.test"
UNTRUSTED = "certificate signed by unknown authority"


@dataclass
class TLSServe:
    pki: TLSFiles
    v4: RegistryServer  # on 127.0.0.1, for skopeo, podman and ctr
    v6: RegistryServer  # on ::1, for docker (as TLS_NAME)
    log: list[str] = field(default_factory=list)

    @property
    def docker_host(self) -> str:
        return f"{TLS_NAME}:{self.v6.address[1]}"


@pytest.fixture(scope="module")
def tls_docker() -> Iterator[DockerDaemon]:
    daemon = start_docker(extra_hosts={TLS_NAME: "::1"})
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def tls_serve(
    tmp_path_factory: pytest.TempPathFactory, docker: DockerDaemon, built_images: BuiltImages
) -> Iterator[TLSServe]:
    workdir = tmp_path_factory.mktemp("serve-tls")
    archive = docker.save(workdir / "app.tar", built_images.app)
    pki = make_tls_files(workdir / "pki", extra_names=(TLS_NAME, "::1"))
    log: list[str] = []
    options = {"log": log.append, "tls_cert": pki.server_cert, "tls_key": pki.server_key}
    v4 = serve([archive], "127.0.0.1:0", **options)  # type: ignore[arg-type]
    v6 = serve([archive], "[::1]:0", **options)  # type: ignore[arg-type]
    with v4, v6:
        yield TLSServe(pki, v4, v6, log)


def _ca_in(directory: Path, pki: TLSFiles) -> Path:
    """``directory`` holding the CA as ``ca.crt`` (docker's and containerd's layout)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(pki.ca_cert, directory / "ca.crt")
    return directory


def test_docker_pulls_with_the_ca_in_certs_d(
    tls_serve: TLSServe, tls_docker: DockerDaemon, built_images: BuiltImages
) -> None:
    assert tls_serve.v6.url.startswith("https://[::1]:")
    ref = f"{tls_serve.docker_host}/{built_images.app}"
    refused = tls_docker.run("pull", ref, check=False)
    assert refused.returncode != 0
    assert UNTRUSTED in refused.stderr
    assert [line for line in tls_serve.log if "does not trust this server's certificate" in line]

    assert tls_docker.certs_d is not None
    _ca_in(tls_docker.certs_d / tls_serve.docker_host, tls_serve.pki)
    tls_docker.run("pull", ref)
    # docker save's config is the image: pulled back over HTTPS, the ID is the same
    assert tls_docker.image_id(ref) == built_images.app_id
    tls_docker.run("rmi", ref)


def test_skopeo_copies_with_the_ca_as_cert_dir(
    tls_serve: TLSServe, built_images: BuiltImages, tmp_path: Path
) -> None:
    ref = f"docker://{tls_serve.v4.host}/{built_images.app}"
    refused = skopeo("inspect", ref, check=False)
    assert refused.returncode != 0
    assert UNTRUSTED in refused.stderr

    cert_dir = str(tls_serve.pki.cert_dir)
    raw = skopeo("inspect", "--raw", "--cert-dir", cert_dir, ref).stdout
    assert built_images.app_id in raw  # the config the manifest names
    out = tmp_path / "copied"
    skopeo("copy", "--src-cert-dir", cert_dir, ref, f"dir:{out}")
    assert (out / built_images.app_id.split(":", 1)[1]).is_file()


def test_podman_pulls_with_the_ca_as_cert_dir(
    tls_serve: TLSServe, podman: Podman, built_images: BuiltImages
) -> None:
    ref = f"{tls_serve.v4.host}/{built_images.app}"
    refused = podman.run("pull", ref, check=False)
    assert refused.returncode != 0
    assert UNTRUSTED in refused.stderr
    podman.run("pull", "--cert-dir", str(tls_serve.pki.cert_dir), ref)
    image = podman.inspect_image(ref)
    assert f"sha256:{image['Id']}" == built_images.app_id
    podman.run("rmi", ref)


def test_ctr_pulls_with_the_ca_in_a_hosts_dir(
    tls_serve: TLSServe, containerd: Containerd, built_images: BuiltImages, tmp_path: Path
) -> None:
    ref = f"{tls_serve.v4.host}/{built_images.app}"
    pull = ("images", "pull", "--snapshotter", containerd.snapshotter)
    # without a hosts dir ctr speaks plain HTTP to a loopback registry: told apart and logged
    refused = containerd.ctr(*pull, ref, check=False)
    assert refused.returncode != 0
    assert "400 Bad Request" in refused.stderr
    assert f"127.0.0.1 {PLAIN_ON_HTTPS}" in tls_serve.log
    # containerd's hosts.toml: HTTPS (not the loopback default) and the CA, nothing else
    hosts = tmp_path / "hosts"
    ca = _ca_in(hosts / tls_serve.v4.host, tls_serve.pki) / "ca.crt"
    url = tls_serve.v4.url
    (hosts / tls_serve.v4.host / "hosts.toml").write_text(
        f'server = "{url}"\n\n[host."{url}"]\n  ca = "{ca}"\n'
    )
    containerd.ctr(*pull, "--hosts-dir", str(hosts), ref)
    assert ref in containerd.image_names()
    containerd.ctr("images", "remove", ref)
