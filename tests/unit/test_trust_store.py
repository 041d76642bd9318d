"""What sneaker trusts: the OS store through truststore, with SSL_CERT_FILE, SSL_CERT_DIR,
--ca-cert and certs.d added (docs/security.md, "TLS"), each proved by a real handshake
with a loopback TLS server whose certificate a throwaway CA signed.

Every context is built with an explicit environment: this machine's SSL_CERT_* variables
never decide a result.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sneaker.registry.tls import _load_pem_files, build_ssl_context
from tests.fixtures.pki import TLSFiles, make_tls_files
from tests.fixtures.threaded import LoopbackServer


@pytest.fixture
def pki(tmp_path: Path) -> TLSFiles:
    return make_tls_files(tmp_path / "pki")


@pytest.fixture
def server(pki: TLSFiles) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a TLS server with ``pki``'s certificate."""
    with _server_of(pki) as running:
        yield running.host


def _server_of(pki: TLSFiles) -> LoopbackServer:
    """A TLS server with ``pki``'s certificate: it completes every handshake, then closes."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)

    class Handshake(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(5.0)
            try:
                with context.wrap_socket(self.request, server_side=True) as conn:
                    conn.recv(1)
            except OSError:
                pass

    return LoopbackServer(Handshake, name="trust-store", http=False, quiet=True)


def handshake(context: ssl.SSLContext, address: str) -> None:
    """Connect and complete a verified TLS handshake (raises when the peer is not trusted)."""
    host, _, port = address.rpartition(":")
    with (
        socket.create_connection((host, int(port)), timeout=5.0) as raw,
        context.wrap_socket(raw, server_hostname=host),
    ):
        pass


def test_the_os_trust_store_is_the_base() -> None:
    import truststore

    context = build_ssl_context("reg.example", certs_dirs=[], env={})
    assert isinstance(context, truststore.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_a_certificate_no_store_holds_is_refused(server: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(build_ssl_context(server, certs_dirs=[], env={}), server)


def test_ca_cert_adds_to_the_os_store(server: str, pki: TLSFiles) -> None:
    handshake(build_ssl_context(server, ca_cert=pki.ca_cert, certs_dirs=[], env={}), server)


def test_ssl_cert_file_adds_to_the_os_store(server: str, pki: TLSFiles, tmp_path: Path) -> None:
    env = {"SSL_CERT_FILE": str(pki.ca_cert)}
    handshake(build_ssl_context(server, certs_dirs=[], env=env), server)
    missing = {"SSL_CERT_FILE": str(tmp_path / "nothing.pem")}  # ignored, as OpenSSL does
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(build_ssl_context(server, certs_dirs=[], env=missing), server)


def test_ssl_cert_dir_adds_to_the_os_store(server: str, pki: TLSFiles, tmp_path: Path) -> None:
    # an OpenSSL hashed directory: the certificate under its subject hash, as c_rehash does
    subject_hash = subprocess.run(
        ["openssl", "x509", "-subject_hash", "-noout", "-in", str(pki.ca_cert)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    hashed = tmp_path / "hashed"
    hashed.mkdir()
    (hashed / f"{subject_hash}.0").write_bytes(pki.ca_cert.read_bytes())
    handshake(build_ssl_context(server, certs_dirs=[], env={"SSL_CERT_DIR": str(hashed)}), server)


def test_certs_d_adds_to_the_os_store(server: str, pki: TLSFiles, tmp_path: Path) -> None:
    host_dir = tmp_path / "home" / ".config" / "containers" / "certs.d" / server
    host_dir.mkdir(parents=True)
    (host_dir / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    handshake(build_ssl_context(server, env={"HOME": str(tmp_path / "home")}), server)


def test_every_certs_d_tree_adds_its_ca(tmp_path: Path) -> None:
    """podman's tree and docker's both have a directory for the host, each with the CA of
    one of two servers on the same address in turn: both are trusted."""
    home = tmp_path / "home"
    for tree, name in ((".config/containers/certs.d", "one"), (".docker/certs.d", "two")):
        pki = make_tls_files(tmp_path / name)
        with _server_of(pki) as running:
            address = running.host
            host_dir = home / tree / address
            host_dir.mkdir(parents=True)
            (host_dir / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
            handshake(build_ssl_context(address, env={"HOME": str(home)}), address)


def test_the_os_verifier_gets_ssl_cert_dir_as_files(pki: TLSFiles, tmp_path: Path) -> None:
    """On macOS and Windows the OS verifier sees only certificates loaded as files: every
    file of SSL_CERT_DIR is loaded (names need not be hashes); the rest is skipped."""
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / "corporate-root.pem").write_bytes(pki.ca_cert.read_bytes())
    (directory / "README").write_text("not a certificate\n")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _load_pem_files(context, str(directory))
    assert context.cert_store_stats()["x509_ca"] == 1


def test_without_truststore_openssl_default_paths_are_the_base(
    server: str, pki: TLSFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "truststore", None)
    context = build_ssl_context(server, certs_dirs=[], env={})
    assert type(context) is ssl.SSLContext
    assert context.cert_store_stats()["x509_ca"] > 0  # the system's (or certifi's) roots
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(context, server)
    handshake(build_ssl_context(server, ca_cert=pki.ca_cert, certs_dirs=[], env={}), server)


def test_insecure_checks_nothing_and_needs_no_os_verifier(server: str) -> None:
    context = build_ssl_context(server, certs_dirs=[], insecure=True, env={})
    assert type(context) is ssl.SSLContext
    assert context.verify_mode == ssl.CERT_NONE
    handshake(context, server)
