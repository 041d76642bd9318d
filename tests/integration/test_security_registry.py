"""Hostile registries and TLS trust, end to end (see docs/security.md).

* A hostile registry (``tests/fixtures/hostile.py``, a loopback server made
  hostile on purpose) sends an oversized manifest, a blob longer than its
  descriptor, an oversized config, digests sneaker refuses, redirects to
  nowhere, and indexes that point back at themselves or nest without end:
  each pull fails with one exact line and leaves nothing under the output name.
* A real ``docker-registry`` configured with ``http.tls.clientcas`` (mutual TLS,
  ``tests/fixtures/mtls.py``), seeded by skopeo, is pulled from through docker's
  ``certs.d`` convention, both as ``RegistryOptions.certs_dir`` and as
  ``~/.docker/certs.d``; without the client certificate, without the CA, and
  with ``--insecure`` sneaker says exactly what happened.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sneaker.errors import IntegrityError, ManifestInvalid
from sneaker.image import mediatypes as mt
from sneaker.image.config import MAX_CONFIG_BYTES
from sneaker.image.model import MAX_MANIFEST_BYTES
from sneaker.image.reference import parse_reference
from sneaker.image.selection import PlatformRequest
from sneaker.registry import RegistryClient, RegistryOptions
from sneaker.transfer.remote import MAX_INDEX_DEPTH, resolve
from sneaker.verbs.pull import pull
from tests.fixtures import hostile
from tests.fixtures.hostile import HostileRegistry, Reply, digest_of
from tests.fixtures.mtls import MutualTLSRegistry, start_mtls_registry
from tests.fixtures.process import remove_tree, short_tempdir
from tests.fixtures.random_images import RandomLayout, make_random_layout
from tests.fixtures.tools import skopeo
from tests.helpers import isolated_env, sneaker

pytestmark = pytest.mark.integration

hostile_registry = hostile.hostile_registry  # the fixture, made visible to this module

REPO = "evil/app"


# -- a small image, served by the hostile registry ----------------------------------------------


def _layer() -> tuple[bytes, bytes]:
    """(uncompressed tar, gzip blob) of a one-file layer."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


LAYER_TAR, LAYER = _layer()
CONFIG = json.dumps(
    {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest_of(LAYER_TAR)]},
    }
).encode()


def manifest(*, config: dict[str, Any] | None = None, layer: dict[str, Any] | None = None) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": mt.OCI_CONFIG,
            "digest": digest_of(CONFIG),
            "size": len(CONFIG),
            **(config or {}),
        },
        "layers": [
            {
                "mediaType": mt.OCI_LAYER_GZIP,
                "digest": digest_of(LAYER),
                "size": len(LAYER),
                **(layer or {}),
            }
        ],
    }
    return json.dumps(doc).encode()


def index(children: list[str], *, pad: str = "") -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": mt.OCI_INDEX,
                "digest": child,
                "size": 100,
                "platform": {"os": "linux", "architecture": "amd64"},
            }
            for child in children
        ],
    }
    if pad:
        doc["annotations"] = {"pad": pad}
    return json.dumps(doc).encode()


@pytest.fixture
def evil(hostile_registry: hostile.MakeHostile) -> HostileRegistry:
    server = hostile_registry()
    server.blob(REPO, digest_of(CONFIG), CONFIG)
    server.blob(REPO, digest_of(LAYER), LAYER)
    server.manifest(REPO, "good", manifest())
    return server


def pull_fails(
    server: HostileRegistry, tag: str, tmp_path: Path, code: int
) -> tuple[list[str], Path]:
    """``sneaker pull`` of ``tag``: it fails with ``code``; returns (stderr lines, output dir)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    result = sneaker(
        "pull", "-q", "--retries", "0", "-o", out_dir / "image.tar",
        f"{server.host}/{REPO}:{tag}",
        env=isolated_env(tmp_path), check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert list(out_dir.iterdir()) == []  # nothing under the output name, no temporary file
    return result.stderr.splitlines(), out_dir


def test_hostile_registry_serves_a_good_image(evil: HostileRegistry, tmp_path: Path) -> None:
    """The control: what the hostile registry serves when it behaves is pulled fine."""
    out = tmp_path / "good.tar"
    sneaker("pull", "-q", "-o", out, f"{evil.host}/{REPO}:good", env=isolated_env(tmp_path))
    assert out.is_file()


# -- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_manifest_is_refused(
    evil: HostileRegistry, tmp_path: Path, chunked: bool
) -> None:
    big = b'{"schemaVersion":2,"pad":"' + b"x" * MAX_MANIFEST_BYTES + b'"}'
    evil.manifest(REPO, "big", big, chunked=chunked)
    lines, _ = pull_fails(evil, "big", tmp_path, IntegrityError.exit_code)
    size = "" if chunked else f" {len(big)} bytes,"
    assert lines == [f"error: tag big of {evil.host}/{REPO} is{size} larger than the 4 MiB limit"]


def test_blob_longer_than_its_descriptor_is_cut_off_and_refused(
    evil: HostileRegistry, tmp_path: Path
) -> None:
    evil.manifest(REPO, "long", manifest())
    evil.blob(REPO, digest_of(LAYER), LAYER + b"\0" * (1 << 20))  # a megabyte too many
    lines, _ = pull_fails(evil, "long", tmp_path, IntegrityError.exit_code)
    assert lines == [
        f"error: blob {digest_of(LAYER)}: more data than the {len(LAYER)} bytes "
        "its descriptor declares"
    ]
    assert len(evil.seen(f"/blobs/{digest_of(LAYER)}", "GET")) == 1  # not retried
    cache = tmp_path / "cache"
    kept = [
        p
        for p in cache.rglob("*")
        if digest_of(LAYER).split(":")[1] in p.name and "locks" not in p.parts
    ]
    assert kept == []  # neither a blob nor a partial file


def test_oversized_config_is_refused(evil: HostileRegistry, tmp_path: Path) -> None:
    size = MAX_CONFIG_BYTES + 1
    big_config = b"{" + b" " * (size - 2) + b"}"
    evil.blob(REPO, digest_of(big_config), big_config)
    evil.manifest(
        REPO, "bigconfig", manifest(config={"digest": digest_of(big_config), "size": size})
    )
    lines, _ = pull_fails(evil, "bigconfig", tmp_path, ManifestInvalid.exit_code)
    assert lines == [f"error: {evil.host}/{REPO}:bigconfig: config of {size} bytes is too large"]
    assert evil.seen("/blobs/") == []  # refused by its declared size, before any download


@pytest.mark.parametrize(
    ("digest", "fault"),
    [
        ("md5:" + "0" * 32, "unsupported algorithm 'md5'"),
        ("sha256:" + "A" * 64, "sha256 needs 64 lowercase hex characters"),
        ("sha256:../../../etc/passwd", "sha256 needs 64 lowercase hex characters"),
    ],
    ids=["unknown-algorithm", "uppercase-hex", "path"],
)
def test_digest_sneaker_refuses_in_a_manifest(
    evil: HostileRegistry, tmp_path: Path, digest: str, fault: str
) -> None:
    evil.manifest(REPO, "baddigest", manifest(layer={"digest": digest}))
    lines, _ = pull_fails(evil, "baddigest", tmp_path, ManifestInvalid.exit_code)
    assert lines == [
        f"error: {evil.host}/{REPO}:baddigest layers[0]: invalid digest {digest!r}: {fault}"
    ]
    assert evil.seen("/blobs/") == []  # refused before anything was fetched


def test_manifest_that_does_not_match_its_digest(evil: HostileRegistry, tmp_path: Path) -> None:
    wanted = digest_of(manifest())
    evil.put(f"/v2/{REPO}/manifests/{wanted}", Reply(manifest(layer={"size": 1})))
    out = tmp_path / "x.tar"
    result = sneaker(
        "pull", "-q", "-o", out, f"{evil.host}/{REPO}@{wanted}",
        env=isolated_env(tmp_path), check=False,
    )  # fmt: skip
    assert result.returncode == IntegrityError.exit_code
    assert result.stderr.startswith(f"error: digest mismatch for manifest {wanted} of ")
    assert not out.exists()


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("file:///etc/passwd", "to a non-HTTP URL"),
        ("SELF", "more than 10 redirects"),
    ],
    ids=["file-url", "redirect-loop"],
)
def test_hostile_redirects(
    evil: HostileRegistry, tmp_path: Path, location: str, message: str
) -> None:
    path = f"/v2/{REPO}/blobs/{digest_of(LAYER)}"
    target = f"http://{evil.host}{path}" if location == "SELF" else location
    evil.put(path, Reply(b"", status=307, headers={"Location": target}))
    lines, _ = pull_fails(evil, "good", tmp_path, 6)
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {evil.host}")
    assert message in lines[0]
    assert len(evil.seen(path)) <= 11


# -- indexes that loop or nest without end -------------------------------------------------------


def _client(server: HostileRegistry, tmp_path: Path) -> RegistryClient:
    return RegistryClient(
        server.host,
        RegistryOptions(
            docker_config=tmp_path / "docker-config",
            certs_dir=tmp_path / "no-certs.d",
            retries=0,
            timeout=10,
        ),
    )


def test_remote_index_that_points_at_itself_is_refused(
    evil: HostileRegistry, tmp_path: Path
) -> None:
    # An index cannot hold its own digest (that needs a sha256 fixed point), so the
    # registry lies instead: asked for the child, it sends the top index again.
    child = digest_of(index([], pad="child"))
    top = index([child])
    evil.manifest(REPO, "loop", top, mt.OCI_INDEX, also_by_digest=False)
    evil.put(f"/v2/{REPO}/manifests/{child}", Reply(top, headers={"Content-Type": mt.OCI_INDEX}))
    ref = parse_reference(f"{evil.host}/{REPO}:loop")
    with _client(evil, tmp_path) as client, pytest.raises(IntegrityError) as info:
        resolve(client, ref, PlatformRequest(all=True))
    assert str(info.value) == (
        f"digest mismatch for manifest {child} of {evil.host}/{REPO}: "
        f"the registry sent content hashing to {digest_of(top)}"
    )
    assert len(evil.seen("/manifests/")) == 2


def test_remote_indexes_nested_without_end_are_refused(
    evil: HostileRegistry, tmp_path: Path
) -> None:
    # each index names the next, real digests all the way down: only depth can stop it
    chain: list[str] = []
    child: list[str] = []
    for level in range(MAX_INDEX_DEPTH + 3):
        raw = index(child, pad=str(level))
        digest = evil.manifest(REPO, f"level{level}", raw, mt.OCI_INDEX)
        chain.append(digest)
        child = [digest]
    ref = parse_reference(f"{evil.host}/{REPO}:level{MAX_INDEX_DEPTH + 2}")
    with _client(evil, tmp_path) as client, pytest.raises(ManifestInvalid) as info:
        resolve(client, ref, PlatformRequest(all=True))
    assert str(info.value) == (
        f"{evil.host}/{REPO}:level{MAX_INDEX_DEPTH + 2}: "
        f"indexes nested deeper than {MAX_INDEX_DEPTH} levels"
    )
    assert len(evil.seen("/manifests/")) <= MAX_INDEX_DEPTH + 2


# -- mutual TLS and docker's certs.d -----------------------------------------------------------


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MutualTLSRegistry, str]]:
    """A registry demanding client certificates, holding ``sec/mtls:1`` (copied by skopeo)."""
    workdir = short_tempdir("snkm-")
    try:
        registry = start_mtls_registry(workdir)
        try:
            layout: RandomLayout = make_random_layout(
                tmp_path_factory.mktemp("mtls-layout"), [20_000], seed="mtls"
            )
            certs = registry.certs_d(workdir / "skopeo-certs.d")
            skopeo(
                "copy", "--preserve-digests",
                "--dest-cert-dir", certs / registry.host,
                f"oci:{layout.path}:{layout.ref_name}",
                f"docker://{registry.host}/sec/mtls:1",
            )  # fmt: skip
            yield registry, layout.manifest.digest
        finally:
            registry.stop()
    finally:
        remove_tree(workdir)


def test_mutual_tls_with_a_certs_d_base_dir(
    mtls: tuple[MutualTLSRegistry, str], tmp_path: Path
) -> None:
    registry, digest = mtls
    options = RegistryOptions(
        certs_dir=registry.certs_d(tmp_path / "certs.d"),
        docker_config=tmp_path / "docker-config",
    )
    result = pull(
        [f"{registry.host}/sec/mtls:1"],
        tmp_path / "mtls.tar",
        format="oci",
        options=options,
        cache_dir=tmp_path / "cache",
    )
    assert result.images[0].digest == digest


def _home_certs_d(registry: MutualTLSRegistry, tmp_path: Path, **what: bool) -> dict[str, str]:
    """``HOME`` for a sneaker subprocess, with ``~/.docker/certs.d/HOST/`` holding ``what``."""
    home = tmp_path / "home"
    registry.certs_d(home / ".docker" / "certs.d", **what)
    return isolated_env(tmp_path, HOME=str(home))


def test_mutual_tls_through_the_cli_and_home_certs_d(
    mtls: tuple[MutualTLSRegistry, str], tmp_path: Path
) -> None:
    registry, digest = mtls
    out = tmp_path / "mtls.tar"
    result = sneaker(
        "pull", "--json", "-o", out, f"{registry.host}/sec/mtls:1",
        env=_home_certs_d(registry, tmp_path),
    )  # fmt: skip
    assert json.loads(result.stdout)["images"][0]["digest"] == digest
    assert result.stderr == ""


def test_mutual_tls_with_podmans_certs_d_that_skopeo_reads_too(
    mtls: tuple[MutualTLSRegistry, str], tmp_path: Path
) -> None:
    """~/.config/containers/certs.d/HOST, the containers convention: skopeo (no
    --cert-dir) and sneaker read the same directory."""
    registry, digest = mtls
    home = tmp_path / "home"
    registry.certs_d(home / ".config" / "containers" / "certs.d")
    ref = f"{registry.host}/sec/mtls:1"
    raw = skopeo("inspect", "--raw", f"docker://{ref}", env={"HOME": str(home)}).stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == digest
    result = sneaker(
        "pull", "--json", "-o", tmp_path / "mtls.tar", ref,
        env=isolated_env(tmp_path, HOME=str(home)),
    )  # fmt: skip
    assert json.loads(result.stdout)["images"][0]["digest"] == digest
    assert result.stderr == ""


def test_the_first_client_certificate_found_is_the_one_presented(
    mtls: tuple[MutualTLSRegistry, str], tmp_path: Path
) -> None:
    """SNEAKER_CERTS_D replaces the base directories (as /etc/containers/certs.d and
    /etc/docker/certs.d would be, after the user's): every one's CA is trusted, the
    first client certificate found is presented."""
    from tests.fixtures.pki import make_tls_files

    registry, digest = mtls
    right = registry.certs_d(tmp_path / "etc-containers-certs.d", ca=False)
    wrong = tmp_path / "etc-docker-certs.d"
    stranger = make_tls_files(tmp_path / "other-ca")  # a pair the registry never issued
    (wrong / registry.host).mkdir(parents=True)
    (wrong / registry.host / "client.cert").write_bytes(stranger.server_cert.read_bytes())
    (wrong / registry.host / "client.key").write_bytes(stranger.server_key.read_bytes())
    (wrong / registry.host / "ca.crt").write_bytes(registry.server.ca_cert.read_bytes())
    ref = f"{registry.host}/sec/mtls:1"

    def pull_with(*bases: Path) -> subprocess.CompletedProcess[str]:
        env = isolated_env(tmp_path, SNEAKER_CERTS_D=os.pathsep.join(map(str, bases)))
        return sneaker("pull", "-q", "--retries", "0", "-o", tmp_path / "x.tar", ref,
                       env=env, check=False)  # fmt: skip

    done = pull_with(right, wrong)  # the CA from the second, the client pair from the first
    assert done.returncode == 0, done.stderr
    refused = pull_with(wrong, right)  # the stranger's pair is presented, and refused
    assert refused.returncode == 6
    assert refused.stderr.startswith(f"error: TLS handshake with {registry.host} failed: ")
    assert digest


def test_without_the_client_certificate_the_pull_fails_with_one_tls_line(
    mtls: tuple[MutualTLSRegistry, str], tmp_path: Path
) -> None:
    registry, _ = mtls
    out = tmp_path / "mtls.tar"
    result = sneaker(
        "pull", "-q", "--retries", "0", "-o", out, f"{registry.host}/sec/mtls:1",
        env=_home_certs_d(registry, tmp_path, client_cert=False), check=False,
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    error, hint = result.stderr.splitlines()
    assert re.fullmatch(
        rf"error: TLS handshake with {registry.host} failed: the registry wants a client "
        r"certificate it trusts \(TLS alert: (bad certificate|certificate required)\)",
        error,
    ), error
    assert hint == (
        "hint: put the client certificate and its key in certs.d/HOST/client.cert and "
        "certs.d/HOST/client.key (docker's convention)"
    )
    assert not out.exists()


def test_without_the_ca_the_certificate_is_not_trusted(
    mtls: tuple[MutualTLSRegistry, str], tmp_path: Path
) -> None:
    registry, _ = mtls
    result = sneaker(
        "pull", "-q", "--retries", "0", "-o", tmp_path / "x.tar", f"{registry.host}/sec/mtls:1",
        env=_home_certs_d(registry, tmp_path, ca=False), check=False,
    )  # fmt: skip
    assert result.returncode == 6
    assert result.stderr.splitlines() == [
        f"error: TLS handshake with {registry.host} failed: certificate verify failed: "
        "unable to get local issuer certificate",
        "hint: pass --ca-cert FILE, put the registry's CA in certs.d/HOST/ca.crt, "
        "or (only on a trusted network) use --insecure",
    ]


def test_insecure_only_on_request_and_with_a_warning(
    mtls: tuple[MutualTLSRegistry, str], tmp_path: Path
) -> None:
    registry, digest = mtls
    env = _home_certs_d(registry, tmp_path, ca=False)
    out = tmp_path / "x.tar"
    result = sneaker(
        "pull", "--json", "--insecure", "-o", out, f"{registry.host}/sec/mtls:1", env=env
    )
    assert json.loads(result.stdout)["images"][0]["digest"] == digest
    (warning,) = result.stderr.splitlines()  # one line, no Python warning excerpt
    assert warning.startswith(
        f"warning: TLS certificate verification is disabled for {registry.host}"
    )
    assert "--insecure" in warning


def test_ca_cert_option_is_trusted_next_to_the_system_store(
    mtls: tuple[MutualTLSRegistry, str], tmp_path: Path
) -> None:
    registry, digest = mtls
    env = _home_certs_d(registry, tmp_path, ca=False)
    result = sneaker(
        "pull", "--json", "--ca-cert", registry.server.ca_cert, "-o", tmp_path / "x.tar",
        f"{registry.host}/sec/mtls:1", env=env,
    )  # fmt: skip
    assert json.loads(result.stdout)["images"][0]["digest"] == digest
    assert result.stderr == ""
