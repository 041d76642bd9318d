"""The transport under faults: retries, Retry-After, cut connections, redirects, refusals,
and a registry that is down (reached once: one round of retries, one error line).

A real registry sits behind ``tests/fixtures/faults.py``'s loopback proxy, which
injects the faults.
"""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sneaker.errors import NetworkError, RateLimited, RegistryError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor
from sneaker.registry import RegistryClient, RegistryOptions
from sneaker.registry.messages import Request
from sneaker.registry.transport import Transport
from sneaker.verbs.push import push
from tests.fixtures import faults
from tests.fixtures.faults import FaultProxy
from tests.fixtures.random_images import make_random_layout
from tests.fixtures.registry import RegistryInfo
from tests.helpers import free_port, isolated_env, sneaker

pytestmark = pytest.mark.integration

fault_proxy = faults.fault_proxy  # the fixture, made visible to this module

MakeProxy = Callable[..., FaultProxy]
BLOB = bytes(range(256)) * 8192  # 2 MiB
BLOB_DESC = Descriptor(mt.OCI_LAYER, Digest.of_bytes(BLOB), len(BLOB))
REPO = "faults/blob"


def options(tmp_path: Path, **kwargs: object) -> RegistryOptions:
    kwargs.setdefault("certs_dir", tmp_path / "no-certs.d")
    kwargs.setdefault("docker_config", tmp_path / "docker-config")
    kwargs.setdefault("timeout", 10.0)
    return RegistryOptions(**kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stocked(registry: RegistryInfo, tmp_path_factory: pytest.TempPathFactory) -> RegistryInfo:
    tmp = tmp_path_factory.mktemp("stock")
    with RegistryClient(registry.host, options(tmp)) as client:
        if client.blob_exists(REPO, BLOB_DESC.digest) is None:
            client.upload_blob(REPO, BLOB_DESC, io.BytesIO(BLOB))
    return registry


SERVER_ERRORS = [500, 502, 503, 504]


@pytest.mark.parametrize("status", SERVER_ERRORS)
def test_5xx_then_success(
    stocked: RegistryInfo, fault_proxy: MakeProxy, tmp_path: Path, status: int
) -> None:
    proxy = fault_proxy(stocked.url)
    proxy.add_fault("status", path_contains="/blobs/", status=status, times=2)
    slept: list[float] = []
    opts = options(tmp_path, retries=3)
    transport = Transport(proxy.host, opts, sleep=slept.append)
    with RegistryClient(proxy.host, opts, transport=transport) as client:
        assert client.blob_exists(REPO, BLOB_DESC.digest) == len(BLOB)
    assert [r.fault for r in proxy.seen(path_contains="/blobs/")] == ["status", "status", None]
    # the one backoff of every retried status: 0.5 s doubling, with jitter (0.5x to 1x)
    assert len(slept) == 2
    assert 0.25 <= slept[0] < 0.5
    assert 0.5 <= slept[1] < 1.0


@pytest.mark.parametrize("status", SERVER_ERRORS)
def test_5xx_until_retries_run_out(
    stocked: RegistryInfo, fault_proxy: MakeProxy, tmp_path: Path, status: int
) -> None:
    proxy = fault_proxy(stocked.url)
    proxy.add_fault("status", path_contains="/blobs/", status=status, times=100)
    client = RegistryClient(proxy.host, options(tmp_path, retries=2))
    with client, pytest.raises(RegistryError) as info:
        client.open_blob(REPO, BLOB_DESC.digest)
    assert info.value.status == status
    assert f"HTTP {status}" in str(info.value)
    assert "after 3 attempts" in str(info.value)  # bounded: the retries, then the answer
    assert len(proxy.seen(path_contains="/blobs/")) == 3


def test_429_honours_retry_after(
    stocked: RegistryInfo, fault_proxy: MakeProxy, tmp_path: Path
) -> None:
    proxy = fault_proxy(stocked.url)
    proxy.add_fault("status", path_contains="/blobs/", status=429, headers={"Retry-After": "1"})
    with RegistryClient(proxy.host, options(tmp_path, retries=3)) as client:
        start = time.monotonic()
        with client.open_blob(REPO, BLOB_DESC.digest) as blob:
            assert Digest.of_bytes(b"".join(blob.iter_chunks())) == BLOB_DESC.digest
        assert time.monotonic() - start >= 0.9


def test_429_every_time_is_rate_limited(
    stocked: RegistryInfo, fault_proxy: MakeProxy, tmp_path: Path
) -> None:
    proxy = fault_proxy(stocked.url)
    headers = {"Retry-After": "0", "RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0"}
    proxy.add_fault("status", path_contains="/manifests/", status=429, headers=headers, times=50)
    client = RegistryClient(proxy.host, options(tmp_path, retries=2))
    with client, pytest.raises(RateLimited) as info:
        client.get_manifest(REPO, "latest")
    text = str(info.value)
    assert text.startswith(f"{proxy.host} rate-limited GET http://{proxy.host}/v2/{REPO}/manifests")
    assert "HTTP 429 after 3 attempts" in text
    assert "RateLimit-Limit: 100;w=21600, RateLimit-Remaining: 0" in text


def test_cut_connection_then_resume_with_range(
    stocked: RegistryInfo, fault_proxy: MakeProxy, tmp_path: Path
) -> None:
    proxy = fault_proxy(stocked.url)
    proxy.add_fault("cut", path_contains="/blobs/", method="GET", after_bytes=700_000)
    received = bytearray()
    with RegistryClient(proxy.host, options(tmp_path)) as client:
        with client.open_blob(REPO, BLOB_DESC.digest) as blob:
            validator = blob.validator
            chunks = blob.iter_chunks(64 * 1024)
            with pytest.raises(NetworkError) as info:
                received.extend(b"".join(chunk for chunk in _collect(chunks, received)))
        assert "connection cut while reading blob" in str(info.value)
        assert len(received) == 700_000
        with client.open_blob(
            REPO, BLOB_DESC.digest, offset=len(received), validator=validator
        ) as rest:
            assert rest.status == 206
            received += b"".join(rest.iter_chunks())
    assert Digest.of_bytes(bytes(received)) == BLOB_DESC.digest


def test_dropped_connection_is_retried(
    stocked: RegistryInfo, fault_proxy: MakeProxy, tmp_path: Path
) -> None:
    proxy = fault_proxy(stocked.url)
    proxy.add_fault("drop", path_contains="/blobs/", times=2)
    with RegistryClient(proxy.host, options(tmp_path, retries=3)) as client:
        assert client.blob_exists(REPO, BLOB_DESC.digest) == len(BLOB)


def test_redirect_to_another_host_drops_authorization(
    stocked: RegistryInfo, fault_proxy: MakeProxy, tmp_path: Path
) -> None:
    proxy = fault_proxy(stocked.url, basic_auth=("user", "pass"))
    proxy.add_fault("redirect", path_contains="/blobs/sha256", method="GET", times=5)
    opts = options(tmp_path, username="user", password="pass")
    with RegistryClient(proxy.host, opts) as client:
        with client.open_blob(REPO, BLOB_DESC.digest) as blob:
            assert blob.status == 200
            assert Digest.of_bytes(b"".join(blob.iter_chunks())) == BLOB_DESC.digest
            assert "X-Sig" not in blob.url  # the presigned query never shows
        with client.open_blob(REPO, BLOB_DESC.digest, offset=1000) as rest:
            assert rest.status == 206
    redirected = proxy.seen("redirect")
    assert len(redirected) == 2
    assert not any(r.had_auth for r in redirected)
    assert all(r.had_auth for r in proxy.seen(path_contains="/blobs/sha256"))


def test_redirect_target_refuses_authorization(
    stocked: RegistryInfo, fault_proxy: MakeProxy, tmp_path: Path
) -> None:
    """The fixture itself: a client that keeps Authorization is refused (as S3 does)."""
    import urllib.request

    proxy = fault_proxy(stocked.url)
    proxy.add_fault("redirect", path_contains="/blobs/")
    request = urllib.request.Request(
        f"{proxy.url}/v2/{REPO}/blobs/{BLOB_DESC.digest}", headers={"Authorization": "Bearer x"}
    )
    opener = urllib.request.build_opener()
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(request, timeout=10)  # urllib keeps the header on redirects
    assert info.value.code == 400


def test_proxy_in_front_of_a_tls_registry(
    tls_registry: RegistryInfo, fault_proxy: MakeProxy, tmp_path: Path
) -> None:
    proxy = fault_proxy(tls_registry.url, ssl_context=tls_registry.ssl_context())
    proxy.add_fault("status", path_contains="/blobs/uploads/", method="POST", status=502)
    opts = options(tmp_path, username=tls_registry.username, password=tls_registry.password)
    with RegistryClient(proxy.host, opts) as client:
        client.upload_blob("faults/tls", BLOB_DESC, io.BytesIO(BLOB), chunk_size=1 << 20)
        assert client.blob_exists("faults/tls", BLOB_DESC.digest) == len(BLOB)
    assert [r.fault for r in proxy.seen(path_contains="/blobs/uploads/")][:2] == ["status", None]


def test_connection_refused(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    with RegistryClient(host, options(tmp_path, retries=1)) as client:
        start = time.monotonic()
        with pytest.raises(NetworkError) as info:
            client.get_manifest("x/y", "1")
        assert time.monotonic() - start < 5
    assert str(info.value) == (
        f"cannot connect to {host}: connection refused over https and http (after 2 attempts)"
    )
    assert info.value.hint == f"is a registry listening at {host}?"


def test_unresolvable_host(tmp_path: Path) -> None:
    client = RegistryClient("no-such-host.invalid:5000", options(tmp_path, retries=5))
    start = time.monotonic()
    with client, pytest.raises(NetworkError, match=r"^cannot resolve no-such-host\.invalid: "):
        client.get_manifest("x/y", "1")
    assert time.monotonic() - start < 1  # not retried


def test_fault_proxy_is_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://example.com:5000")


def _collect(chunks: Iterator[bytes], into: bytearray) -> Iterator[bytes]:
    """Pass chunks through, keeping them in ``into`` even when the stream breaks."""
    for chunk in chunks:
        into.extend(chunk)
        yield b""


# -- a registry that is down is reached once ------------------------------------------------


@pytest.fixture
def dead_host() -> Iterator[str]:
    """``127.0.0.1:PORT`` where nothing listens: the port is bound (so nobody takes it), not
    listening, and a connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout of one image with three gzip blobs (none needs compressing first)."""
    return make_random_layout(tmp_path_factory.mktemp("down-push"), [3000, 2000]).path


def test_push_to_a_registry_that_is_down_tries_it_once(
    archive: Path,
    dead_host: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in isolated_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO, logger="sneaker.registry.transport")
    with pytest.raises(NetworkError) as info:
        push(archive, f"{dead_host}/x/y:1", options=RegistryOptions(retries=2), jobs=4)
    assert str(info.value) == (
        f"cannot connect to {dead_host}: connection refused over https and http (after 3 attempts)"
    )
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2, [r.getMessage() for r in retries]


def test_push_to_a_registry_that_is_down_prints_one_error(
    archive: Path, dead_host: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    result = sneaker(
        "push", "-q", "--retries", "1", archive, f"{dead_host}/x/y:1",
        check=False, env=isolated_env(tmp_path),
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == NetworkError.exit_code
    assert result.stderr.splitlines() == [
        f"error: cannot connect to {dead_host}: connection refused over https and http "
        "(after 2 attempts)",
        f"hint: is a registry listening at {dead_host}?",
    ]
    assert elapsed < 20  # one round of (at most 1 s of) backoff, not one per blob


def test_a_host_found_unreachable_is_not_retried_again(dead_host: str) -> None:
    slept: list[float] = []
    transport = Transport(dead_host, RegistryOptions(retries=3), sleep=slept.append)
    request = Request("GET", transport.url("/v2/"))
    with pytest.raises(NetworkError) as first:
        transport.send(request)
    assert len(slept) == 3
    with pytest.raises(NetworkError) as second:
        transport.send(request)
    assert len(slept) == 3  # no new round of retries
    assert (second.value.message, second.value.hint) == (first.value.message, first.value.hint)
    # another client tries again
    again: list[float] = []
    with pytest.raises(NetworkError):
        Transport(dead_host, RegistryOptions(retries=1), sleep=again.append).send(request)
    assert len(again) == 1
