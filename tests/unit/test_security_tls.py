"""TLS defaults, without sockets: verification on, https unless told otherwise."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sneaker.registry.options import RegistryOptions
from sneaker.registry.tls import build_ssl_context
from sneaker.registry.transport import Transport, _speaks_tls


def test_verification_is_on_by_default_with_the_system_trust_store() -> None:
    context = build_ssl_context("registry.example.com", certs_dirs=[])
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the system's (or certifi's) roots


@pytest.mark.parametrize("host", ["registry.example.com", "10.0.0.5:5000", "ghcr.io"])
def test_a_registry_off_loopback_is_spoken_to_over_https_only(host: str, tmp_path: Path) -> None:
    transport = Transport(host, RegistryOptions(certs_dir=tmp_path))
    assert transport.scheme == "https"
    assert transport.url("/v2/") == f"https://{host}/v2/"
    assert not transport.loopback
    plain = Transport(host, RegistryOptions(certs_dir=tmp_path, plain_http=True))
    assert plain.url("/v2/") == f"http://{host}/v2/"  # only when asked for: --plain-http


@pytest.mark.parametrize("host", ["localhost:5000", "127.0.0.1:5000", "[::1]:5000"])
def test_loopback_tries_https_first(host: str, tmp_path: Path) -> None:
    transport = Transport(host, RegistryOptions(certs_dir=tmp_path))
    assert transport.loopback
    assert transport.scheme == "https"  # http only once a handshake finds no TLS


def test_ca_cert_adds_to_the_system_trust_store(tmp_path: Path) -> None:
    from tests.fixtures.pki import make_tls_files

    tls = make_tls_files(tmp_path / "pki")
    system = build_ssl_context("h", certs_dirs=[]).cert_store_stats()["x509_ca"]
    context = build_ssl_context("h", ca_cert=tls.ca_cert, certs_dirs=[])
    assert context.cert_store_stats()["x509_ca"] == system + 1
    assert context.verify_mode == ssl.CERT_REQUIRED


# -- the https-or-http probe of a loopback registry (local sockets, no registry) ----------


@contextmanager
def _one_shot_server(
    tmp_path: Path, *, tls: bool = False, client_cert: bool = False
) -> Iterator[str]:
    """A loopback listener answering every connection once: over TLS (with a
    throwaway CA's certificate), or with a plain HTTP 400 as an http server does."""
    from tests.fixtures.pki import make_tls_files

    context = None
    if tls:
        files = make_tls_files(tmp_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.server_cert, files.server_key)
        if client_cert:
            context.maximum_version = ssl.TLSVersion.TLSv1_2  # the alert comes in the handshake
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(files.ca_cert)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # so the loop sees ``stop`` soon
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5.0)
            with conn:
                try:
                    if context is not None:
                        with context.wrap_socket(conn, server_side=True) as tls_conn:
                            tls_conn.recv(1)
                    else:
                        conn.recv(4096)
                        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_probe_finds_a_plain_http_server(tmp_path: Path) -> None:
    with _one_shot_server(tmp_path) as host:
        assert _speaks_tls(host, 5.0) is False


def test_probe_finds_tls_without_trusting_or_sending_anything(tmp_path: Path) -> None:
    with _one_shot_server(tmp_path, tls=True) as host:
        assert _speaks_tls(host, 5.0) is True  # its CA is in no trust store: not checked here


def test_probe_takes_a_tls_alert_for_tls(tmp_path: Path) -> None:
    with _one_shot_server(tmp_path, tls=True, client_cert=True) as host:
        assert _speaks_tls(host, 5.0) is True


def test_probe_of_a_closed_port_decides_nothing() -> None:
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
    assert _speaks_tls(f"127.0.0.1:{port}", 5.0) is None
