"""RegistryClient against real distribution registries, checked with skopeo (a real peer).

Images are made here as small OCI layouts and copied in with ``skopeo copy``, so
what sneaker reads was written by another tool, and what sneaker writes is read
back by another tool.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from sneaker.errors import AuthError, IntegrityError, NotFound, TLSError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Manifest, parse_manifest
from sneaker.registry import RegistryClient, RegistryOptions
from sneaker.registry import tls as tls_module
from tests.fixtures.registry import RegistryInfo, TokenRegistryInfo
from tests.fixtures.seeding import dest_args, inspect_args
from tests.fixtures.tools import skopeo

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Layout:
    path: Path
    manifest: bytes
    config: bytes
    layer: bytes

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.manifest)

    @property
    def layer_digest(self) -> Digest:
        return Digest.of_bytes(self.layer)


def make_layout(directory: Path, payload_size: int = 300_000, seed: bytes = b"x") -> Layout:
    """A one-layer OCI image layout; the layer holds ``payload_size`` pseudo-random bytes."""
    data = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(data) < payload_size:
        block = hashlib.sha256(block).digest()
        data += block
    raw_tar = io.BytesIO()
    with tarfile.open(fileobj=raw_tar, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = payload_size
        info.mtime = 0
        tar.addfile(info, io.BytesIO(bytes(data[:payload_size])))
    layer = gzip.compress(raw_tar.getvalue(), mtime=0)
    diff_id = hashlib.sha256(raw_tar.getvalue()).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
            "config": {},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "digest": str(Digest.of_bytes(config)),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": mt.OCI_LAYER_GZIP,
                    "digest": str(Digest.of_bytes(layer)),
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in (layer, config, manifest):
        (blobs / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": str(Digest.of_bytes(manifest)),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "t"},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    return Layout(directory, manifest, config, layer)


def push_layout(info: RegistryInfo, layout: Layout, repo_tag: str) -> None:
    skopeo(
        "copy", "--preserve-digests", *dest_args(info),
        f"oci:{layout.path}:t", f"docker://{info.host}/{repo_tag}",
    )  # fmt: skip


def skopeo_inspect_raw(info: RegistryInfo, repo_ref: str) -> bytes:
    out = skopeo("inspect", "--raw", *inspect_args(info), f"docker://{info.host}/{repo_ref}")
    return out.stdout.encode()


def clean_env(tmp_path: Path) -> dict[str, str]:
    """No docker config, certs.d or proxy of the machine leaks into a test."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    return env


def options(tmp_path: Path, **kwargs: object) -> RegistryOptions:
    kwargs.setdefault("certs_dir", tmp_path / "no-certs.d")
    kwargs.setdefault("docker_config", tmp_path / "docker-config")
    return RegistryOptions(**kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Layout]:
    base = tmp_path_factory.mktemp("layouts")
    return {
        "a": make_layout(base / "a", 300_000, b"a"),
        "b": make_layout(base / "b", 2_500_000, b"b"),
    }


@pytest.fixture(scope="module")
def plain(registry: RegistryInfo, layouts: dict[str, Layout]) -> RegistryInfo:
    push_layout(registry, layouts["a"], "regtest/a:1")
    push_layout(registry, layouts["b"], "regtest/b:1")
    return registry


@pytest.fixture(scope="module")
def tokened(token_registry: TokenRegistryInfo, layouts: dict[str, Layout]) -> TokenRegistryInfo:
    push_layout(token_registry, layouts["a"], "public/regtest:1")
    push_layout(token_registry, layouts["a"], "private/regtest:1")
    return token_registry


@pytest.fixture(scope="module")
def tls(tls_registry: RegistryInfo, layouts: dict[str, Layout]) -> RegistryInfo:
    push_layout(tls_registry, layouts["a"], "regtest/a:1")
    return tls_registry


# -- reading from the plain registry ---------------------------------------------------------


def test_get_manifest_by_tag_and_digest(
    plain: RegistryInfo, layouts: dict[str, Layout], tmp_path: Path
) -> None:
    layout = layouts["a"]
    with RegistryClient(plain.host, options(tmp_path)) as client:
        raw, media_type = client.get_manifest("regtest/a", "1")
        assert raw == layout.manifest == skopeo_inspect_raw(plain, "regtest/a:1")
        assert media_type == mt.OCI_MANIFEST
        raw2, _ = client.get_manifest("regtest/a", str(layout.digest))
        assert raw2 == raw
        assert client.transport.scheme == "http"  # loopback: https failed, http used
        desc = client.head_manifest("regtest/a", "1")
        assert desc == Descriptor(mt.OCI_MANIFEST, layout.digest, len(layout.manifest))
        assert client.head_manifest("regtest/a", "nope") is None


def test_not_found_messages(plain: RegistryInfo, tmp_path: Path) -> None:
    with RegistryClient(plain.host, options(tmp_path)) as client:
        with pytest.raises(NotFound) as info:
            client.get_manifest("regtest/a", "nope")
        assert str(info.value) == f"tag nope not found in {plain.host}/regtest/a"
        with pytest.raises(NotFound) as info:
            client.get_manifest("regtest/absent", "1")
        # distribution 2.8 answers MANIFEST_UNKNOWN here (NAME_UNKNOWN for tags/list)
        assert str(info.value) == f"tag 1 not found in {plain.host}/regtest/absent"
        with pytest.raises(NotFound) as info:
            client.list_tags("regtest/absent")
        assert str(info.value) == f"repository {plain.host}/regtest/absent not found"
        missing = Digest.of_bytes(b"missing")
        with pytest.raises(NotFound) as info:
            client.open_blob("regtest/a", missing)
        assert str(info.value) == f"blob {missing} not found in {plain.host}/regtest/a"
        assert client.blob_exists("regtest/a", missing) is None


def test_blob_download_and_range_resume(
    plain: RegistryInfo, layouts: dict[str, Layout], tmp_path: Path
) -> None:
    layout = layouts["b"]
    digest = layout.layer_digest
    size = len(layout.layer)
    with RegistryClient(plain.host, options(tmp_path)) as client:
        assert client.blob_exists("regtest/b", digest) == size
        with client.open_blob("regtest/b", digest) as response:
            assert response.status == 200
            assert response.content_range is None
            validator = response.validator
            first = b""
            for chunk in response.iter_chunks(64 * 1024):
                first += chunk
                if len(first) >= 1_000_000:
                    break
        assert validator
        with client.open_blob("regtest/b", digest, offset=len(first), validator=validator) as rest:
            assert rest.status == 206
            assert rest.content_range == (len(first), size - 1, size)
            tail = b"".join(rest.iter_chunks())
        assert Digest.of_bytes(first + tail) == digest
        # A validator that no longer matches: the registry sends the whole blob again.
        with client.open_blob("regtest/b", digest, offset=10, validator='"stale"') as again:
            assert again.status == 200
            assert Digest.of_bytes(b"".join(again.iter_chunks())) == digest


def test_upload_monolithic_and_chunked_then_skopeo_reads_them(
    registry: RegistryInfo, tmp_path: Path
) -> None:
    layout = make_layout(tmp_path / "up", 700_000, b"upload")
    config_desc = Descriptor(mt.OCI_CONFIG, Digest.of_bytes(layout.config), len(layout.config))
    layer_desc = Descriptor(mt.OCI_LAYER_GZIP, layout.layer_digest, len(layout.layer))
    with RegistryClient(registry.host, options(tmp_path)) as client:
        client.upload_blob("regtest/up", config_desc, io.BytesIO(layout.config))
        # 700 kB in 64 KiB PATCH chunks.
        client.upload_blob("regtest/up", layer_desc, io.BytesIO(layout.layer), chunk_size=65_536)
        assert client.blob_exists("regtest/up", layer_desc.digest) == layer_desc.size
        digest = client.put_manifest("regtest/up", "v1", layout.manifest, mt.OCI_MANIFEST)
        assert digest == layout.digest
        assert "v1" in client.list_tags("regtest/up")
    assert skopeo_inspect_raw(registry, "regtest/up:v1") == layout.manifest
    out = tmp_path / "copied"
    skopeo(
        "copy", "--src-tls-verify=false", f"docker://{registry.host}/regtest/up:v1", f"dir:{out}"
    )
    assert (out / layout.layer_digest.hex).read_bytes() == layout.layer


def test_upload_refuses_wrong_data(registry: RegistryInfo, tmp_path: Path) -> None:
    data = b"0123456789" * 1000
    wrong = Descriptor(mt.OCI_LAYER, Digest.of_bytes(b"something else"), len(data))
    with RegistryClient(registry.host, options(tmp_path)) as client:
        with pytest.raises(IntegrityError):
            client.upload_blob("regtest/wrong", wrong, io.BytesIO(data))
        with pytest.raises(IntegrityError, match="not committing"):
            client.upload_blob("regtest/wrong", wrong, io.BytesIO(data), chunk_size=4096)
        short = Descriptor(mt.OCI_LAYER, Digest.of_bytes(data), len(data) + 10)
        with pytest.raises(IntegrityError, match="ended after"):
            client.upload_blob("regtest/wrong", short, io.BytesIO(data), chunk_size=4096)
        assert client.blob_exists("regtest/wrong", wrong.digest) is None


def test_mount_tags_and_catalog(
    plain: RegistryInfo, layouts: dict[str, Layout], tmp_path: Path
) -> None:
    layout = layouts["a"]
    with RegistryClient(plain.host, options(tmp_path)) as client:
        assert client.mount_blob("regtest/mounted", layout.layer_digest, "regtest/a")
        assert client.blob_exists("regtest/mounted", layout.layer_digest) == len(layout.layer)
        assert not client.mount_blob("regtest/mounted2", Digest.of_bytes(b"nope"), "regtest/a")
        for tag in ("t1", "t2", "t3", "t4", "t5"):
            client.put_manifest("regtest/a", tag, layout.manifest, mt.OCI_MANIFEST)
        assert sorted(client.list_tags("regtest/a", page_size=2)) == [
            "1", "t1", "t2", "t3", "t4", "t5",
        ]  # fmt: skip
        assert sorted(client.list_tags("regtest/a")) == ["1", "t1", "t2", "t3", "t4", "t5"]
        repositories = client.catalog(page_size=1)
        assert {"regtest/a", "regtest/b", "regtest/mounted"} <= set(repositories)
        client.ping()


# -- token auth -----------------------------------------------------------------------------


def test_public_repository_anonymously(
    tokened: TokenRegistryInfo, layouts: dict[str, Layout], tmp_path: Path
) -> None:
    tokened.server.clear_requests()
    with RegistryClient(tokened.host, options(tmp_path)) as client:
        raw, _ = client.get_manifest("public/regtest", "1")
        assert raw == layouts["a"].manifest
        requests = tokened.server.requests
        assert len(requests) == 1
        assert not requests[0].had_auth
        assert "scope=repository%3Apublic%2Fregtest%3Apull" in requests[0].query


def test_private_repository_refused_anonymously(tokened: TokenRegistryInfo, tmp_path: Path) -> None:
    with (
        RegistryClient(tokened.host, options(tmp_path)) as client,
        pytest.raises(AuthError) as info,
    ):
        client.get_manifest("private/regtest", "1")
    assert str(info.value) == (
        f"authentication required for repository private/regtest on {tokened.host}"
    )
    assert info.value.hint == (
        f"run 'sneaker login {tokened.host}' or pass --username with --password-stdin "
        "(or the repository does not exist)"
    )


def test_private_repository_with_credentials(
    tokened: TokenRegistryInfo, layouts: dict[str, Layout], tmp_path: Path
) -> None:
    opts = options(tmp_path, username=tokened.username, password=tokened.password)
    with RegistryClient(tokened.host, opts) as client:
        raw, _ = client.get_manifest("private/regtest", "1")
        assert raw == layouts["a"].manifest


def test_credentials_from_config_json(tokened: TokenRegistryInfo, tmp_path: Path) -> None:
    import base64

    config = tmp_path / "docker-config"
    config.mkdir()
    auth = base64.b64encode(f"{tokened.username}:{tokened.password}".encode()).decode()
    (config / "config.json").write_text(
        json.dumps({"auths": {f"http://{tokened.host}": {"auth": auth}}})
    )
    with RegistryClient(tokened.host, options(tmp_path)) as client:
        assert client.head_manifest("private/regtest", "1") is not None


def test_wrong_password_refused(tokened: TokenRegistryInfo, tmp_path: Path) -> None:
    opts = options(tmp_path, username=tokened.username, password="not-the-password")
    with RegistryClient(tokened.host, opts) as client:
        with pytest.raises(AuthError) as info:
            client.get_manifest("private/regtest", "1")
        with pytest.raises(AuthError):
            client.ping()
    assert str(info.value) == (
        f"access denied: the token service at {tokened.realm} refused the credentials of "
        f"user {tokened.username!r} for {tokened.host} (from command line)"
    )
    assert "not-the-password" not in str(info.value) + repr(info.value) + str(info.value.hint)


def test_token_is_cached_and_upgraded_for_push(
    tokened: TokenRegistryInfo, layouts: dict[str, Layout], tmp_path: Path
) -> None:
    layout = layouts["a"]
    opts = options(tmp_path, username=tokened.username, password=tokened.password)
    with RegistryClient(tokened.host, opts) as client:
        tokened.server.clear_requests()
        client.get_manifest("private/regtest", "1")
        client.get_manifest("private/regtest", str(layout.digest))
        with client.open_blob("private/regtest", layout.layer_digest) as blob:
            assert Digest.of_bytes(b"".join(blob.iter_chunks())) == layout.layer_digest
        assert client.blob_exists("private/regtest", layout.layer_digest) == len(layout.layer)
        assert len(tokened.server.requests) == 1  # one token for every pull of the repository
        assert all(r.had_auth for r in tokened.server.requests)
        # Push to another repository, mounting from the first: one token with both scopes.
        assert client.mount_blob("private/copy", layout.layer_digest, "private/regtest")
        assert len(tokened.server.requests) == 2
        query = tokened.server.requests[-1].query
        assert "repository%3Aprivate%2Fcopy%3Apull%2Cpush" in query
        assert "repository%3Aprivate%2Fregtest%3Apull" in query
        config_desc = Descriptor(mt.OCI_CONFIG, Digest.of_bytes(layout.config), len(layout.config))
        client.upload_blob("private/copy", config_desc, io.BytesIO(layout.config))
        client.put_manifest("private/copy", "1", layout.manifest, mt.OCI_MANIFEST)
        assert len(tokened.server.requests) == 3  # pull,push on private/copy alone
    info = RegistryInfo(
        host=tokened.host, url=tokened.url, storage=tokened.storage,
        username=tokened.username, password=tokened.password,
    )  # fmt: skip
    assert skopeo_inspect_raw(info, "private/copy:1") == layout.manifest


def test_parallel_downloads_share_one_token(
    tokened: TokenRegistryInfo, layouts: dict[str, Layout], tmp_path: Path
) -> None:
    layout = layouts["a"]
    opts = options(tmp_path, username=tokened.username, password=tokened.password)
    with RegistryClient(tokened.host, opts) as client:
        tokened.server.clear_requests()

        def download(_: int) -> Digest:
            with client.open_blob("private/regtest", layout.layer_digest) as blob:
                hasher = layout.layer_digest.hasher()
                for chunk in blob.iter_chunks(32 * 1024):
                    hasher.update(chunk)
                return Digest("sha256", hasher.hexdigest())

        with ThreadPoolExecutor(max_workers=8) as pool:
            digests = list(pool.map(download, range(24)))
    assert set(digests) == {layout.layer_digest}
    assert len(tokened.server.requests) == 1


def test_expired_token_refreshed_and_401_retried_once(
    tokened: TokenRegistryInfo, tmp_path: Path
) -> None:
    opts = options(tmp_path, username=tokened.username, password=tokened.password)
    tokened.server.set_ttl(2)
    try:
        with RegistryClient(tokened.host, opts) as client:
            tokened.server.clear_requests()
            client.get_manifest("private/regtest", "1")
            time.sleep(2.5)
            client.get_manifest("private/regtest", "1")  # expired here: fetched anew first
            assert len(tokened.server.requests) == 2
            # Now pretend sneaker's clock stopped: the registry refuses the stale token
            # with a 401, and the flow fetches a fresh one and retries exactly once.
            stopped = time.monotonic()
            client.auth._clock = lambda: stopped
            time.sleep(2.5)
            client.get_manifest("private/regtest", "1")
            assert len(tokened.server.requests) == 3
    finally:
        tokened.server.reset_ttl()


def test_catalog_needs_its_own_scope(tokened: TokenRegistryInfo, tmp_path: Path) -> None:
    opts = options(tmp_path, username=tokened.username, password=tokened.password)
    with RegistryClient(tokened.host, opts) as client:
        assert "private/regtest" in client.catalog()
        assert client.list_tags("private/regtest") == ["1"]


# -- TLS ------------------------------------------------------------------------------------


def test_tls_with_ca_cert(tls: RegistryInfo, layouts: dict[str, Layout], tmp_path: Path) -> None:
    opts = options(tmp_path, ca_cert=tls.ca_cert, username=tls.username, password=tls.password)
    with RegistryClient(tls.host, opts) as client:
        raw, _ = client.get_manifest("regtest/a", "1")
        assert raw == layouts["a"].manifest
        assert client.transport.scheme == "https"
        client.ping()


def test_tls_without_ca_cert_fails(tls: RegistryInfo, tmp_path: Path) -> None:
    opts = options(tmp_path, username=tls.username, password=tls.password, retries=0)
    with RegistryClient(tls.host, opts) as client, pytest.raises(TLSError) as info:
        client.get_manifest("regtest/a", "1")
    assert str(info.value).startswith(
        f"TLS handshake with {tls.host} failed: certificate verify failed"
    )
    assert info.value.hint is not None
    assert "--ca-cert" in info.value.hint
    assert "certs.d" in info.value.hint
    assert "--insecure" in info.value.hint


def test_tls_with_certs_d(tls: RegistryInfo, tmp_path: Path) -> None:
    assert tls.ca_cert is not None
    certs_d = tmp_path / "certs.d"
    (certs_d / tls.host).mkdir(parents=True)
    (certs_d / tls.host / "ca.crt").write_bytes(tls.ca_cert.read_bytes())
    opts = options(tmp_path, certs_dir=certs_d, username=tls.username, password=tls.password)
    with RegistryClient(tls.host, opts) as client:
        assert client.head_manifest("regtest/a", "1") is not None


def test_tls_insecure(tls: RegistryInfo, tmp_path: Path) -> None:
    opts = options(tmp_path, insecure=True, username=tls.username, password=tls.password)
    tls_module._warned.discard(tls.host)  # the warning comes once per host and process
    with pytest.warns(tls_module.InsecureWarning, match="verification is disabled"):
        client = RegistryClient(tls.host, opts)
    with client:
        assert client.head_manifest("regtest/a", "1") is not None


def test_basic_auth_refused(tls: RegistryInfo, tmp_path: Path) -> None:
    with RegistryClient(tls.host, options(tmp_path, ca_cert=tls.ca_cert)) as client:
        with pytest.raises(AuthError) as info:
            client.get_manifest("regtest/a", "1")
        assert str(info.value) == f"authentication required for repository regtest/a on {tls.host}"
        with pytest.raises(AuthError, match=f"^authentication required for {tls.host}$"):
            client.ping()
    opts = options(tmp_path, ca_cert=tls.ca_cert, username=tls.username, password="wrong")
    with RegistryClient(tls.host, opts) as client, pytest.raises(AuthError) as info:
        client.get_manifest("regtest/a", "1")
    assert str(info.value) == (
        f"access denied to repository regtest/a on {tls.host} for user {tls.username!r}"
    )


def test_manifest_parses_with_model(plain: RegistryInfo, tmp_path: Path) -> None:
    with RegistryClient(plain.host, options(tmp_path)) as client:
        raw, media_type = client.get_manifest("regtest/a", "1")
    parsed = parse_manifest(raw, media_type)
    assert isinstance(parsed, Manifest)
