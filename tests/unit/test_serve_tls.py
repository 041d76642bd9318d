"""serve over TLS (a throwaway CA from tests/fixtures/pki.py), and a TLS client met on the
plain-HTTP listener.

Loopback sockets and the standard library's TLS client; docker, skopeo, podman and
containerd pulling from the TLS server are in tests/integration/test_serve_tls.py.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sneaker.errors import UsageError
from sneaker.verbs.serve import RegistryServer, serve
from sneaker.verbs.serve.tls import (
    HTTPS_ON_PLAIN,
    PLAIN_ON_HTTPS,
    looks_like_tls,
    server_context,
    tls_record_size,
)
from tests.fixtures.pki import TLSFiles, make_tls_files


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def tls_server(pki: TLSFiles, lines: list[str]) -> Iterator[RegistryServer]:
    context = server_context(pki.server_cert, pki.server_key)
    server = RegistryServer([], "127.0.0.1:0", log=lines.append, tls=context, request_timeout=2.0)
    server.start()
    yield server
    server.shutdown()


@pytest.fixture
def plain_server(lines: list[str]) -> Iterator[RegistryServer]:
    server = RegistryServer([], "127.0.0.1:0", log=lines.append)
    server.start()
    yield server
    server.shutdown()


def _client_context(pki: TLSFiles | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if pki is not None:
        context.load_verify_locations(pki.ca_cert)
    return context


def _client_hello() -> bytes:
    """The first flight of a real TLS client (the standard library's), as bytes."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _wait_for_line(lines: list[str], text: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in lines if text in line]
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no log line with {text!r} in {lines}")


# -- the server's context ----------------------------------------------------------------------


def test_context_refuses_bad_files(pki: TLSFiles, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--tls-cert .*missing\.pem: No such file"):
        server_context(tmp_path / "missing.pem", pki.server_key)
    other = make_tls_files(tmp_path / "other")
    with pytest.raises(UsageError, match=r"cannot use --tls-cert .* with --tls-key .*: .*MISMATCH"):
        server_context(pki.server_cert, other.server_key)
    not_pem = tmp_path / "cert.txt"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(UsageError, match="cannot use --tls-cert") as caught:
        server_context(not_pem, pki.server_key)
    assert caught.value.hint is not None
    assert "PEM" in caught.value.hint


def test_context_refuses_an_encrypted_key_without_asking(pki: TLSFiles, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(UsageError, match="the key is encrypted"):
        server_context(pki.server_cert, encrypted)


def test_serve_needs_both_files(pki: TLSFiles, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--tls-cert needs --tls-key"):
        serve([tmp_path], "127.0.0.1:0", tls_cert=pki.server_cert)
    with pytest.raises(UsageError, match="--tls-key needs --tls-cert"):
        serve([tmp_path], "127.0.0.1:0", tls_key=pki.server_key)


# -- HTTPS ---------------------------------------------------------------------------------------


def test_https_with_the_ca(tls_server: RegistryServer, pki: TLSFiles) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    conn = http.client.HTTPSConnection(*tls_server.address, context=_client_context(pki))
    try:
        for path, status in (("/v2/", 200), ("/v2/_catalog", 200), ("/v2/a/manifests/1", 404)):
            conn.request("GET", path)  # keep-alive over TLS
            reply = conn.getresponse()
            reply.read()
            assert reply.status == status
        assert conn.sock is not None
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert conn.sock.selected_alpn_protocol() in (None, "http/1.1")
    finally:
        conn.close()


def test_a_client_without_the_ca_is_told_in_the_log(
    tls_server: RegistryServer, lines: list[str]
) -> None:
    context = _client_context(None)
    with (
        socket.create_connection(tls_server.address, timeout=10) as sock,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(sock, server_hostname="localhost")
    (line,) = _wait_for_line(lines, "does not trust this server's certificate")
    assert "give it the CA" in line


def test_tls_older_than_1_2_is_refused(
    tls_server: RegistryServer, pki: TLSFiles, lines: list[str]
) -> None:
    context = _client_context(pki)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # naming TLS 1.0/1.1 warns
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with (
        socket.create_connection(tls_server.address, timeout=10) as sock,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(sock, server_hostname="localhost")
    _wait_for_line(lines, "the client offers no TLS 1.2 or newer")


def test_plain_http_on_the_tls_port_gets_a_plain_400(
    tls_server: RegistryServer, lines: list[str]
) -> None:
    with socket.create_connection(tls_server.address, timeout=10) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert PLAIN_ON_HTTPS.encode() in answer
    _wait_for_line(lines, PLAIN_ON_HTTPS)


def test_a_stalled_handshake_is_cut_off(tls_server: RegistryServer, lines: list[str]) -> None:
    hello = _client_hello()
    with socket.create_connection(tls_server.address, timeout=30) as sock:
        try:
            for byte in hello:  # the hello one byte at a time: never done in 2 s
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
            closed = sock.recv(1) == b""
        except OSError:
            closed = True
    assert closed
    _wait_for_line(lines, "TLS handshake not done in time: connection closed")


# -- a TLS client on the plain listener ------------------------------------------------------


def test_a_client_hello_on_the_plain_listener(
    plain_server: RegistryServer, lines: list[str]
) -> None:
    with (
        socket.create_connection(plain_server.address, timeout=10) as sock,
        pytest.raises(ssl.SSLError),
    ):
        ssl.create_default_context().wrap_socket(sock, server_hostname="localhost")
    with socket.create_connection(plain_server.address, timeout=10) as sock:
        sock.sendall(_client_hello())
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    # what Go clients (docker, containerd, skopeo) turn into "server gave HTTP response
    # to HTTPS client"
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert HTTPS_ON_PLAIN.encode() in answer
    found = _wait_for_line(lines, HTTPS_ON_PLAIN)
    assert found == [f"127.0.0.1 {HTTPS_ON_PLAIN}"] * 2
    assert not [line for line in lines if "Bad request version" in line or "400" in line]
    # and plain HTTP is still served
    conn = http.client.HTTPConnection(*plain_server.address, timeout=10)
    conn.request("GET", "/v2/")
    assert conn.getresponse().read() == b"{}"
    conn.close()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x16\x03\x01", True),  # TLS 1.0 record version: what most ClientHellos carry
        (b"\x16\x03\x03", True),
        (b"\x16\x03", True),
        (b"\x16", True),
        (b"\x16\x03\x09", False),
        (b"\x16\x02\x00", False),
        (b"GET", False),
        (b"PRI", False),  # HTTP/2 with prior knowledge is no TLS
        (b"", False),
    ],
)
def test_looks_like_tls(head: bytes, expected: bool) -> None:
    assert looks_like_tls(head) is expected


def test_tls_record_size() -> None:
    assert tls_record_size(b"\x16\x03\x01\x02\x00") == 5 + 512
    assert tls_record_size(b"\x16\x03") == 5
    assert tls_record_size(b"\x16\x03\x01\xff\xff") == 5 + (1 << 14) + 2048
