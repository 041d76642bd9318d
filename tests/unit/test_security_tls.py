"""TLS defaults, without sockets: verification on, https unless told otherwise."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from sneaker.registry.options import RegistryOptions
from sneaker.registry.tls import build_ssl_context
from sneaker.registry.transport import Transport


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
    assert transport.scheme == "https"  # http only after https fails to connect or handshake


def test_ca_cert_adds_to_the_system_trust_store(tmp_path: Path) -> None:
    from tests.fixtures.pki import make_tls_files

    tls = make_tls_files(tmp_path / "pki")
    system = build_ssl_context("h", certs_dirs=[]).cert_store_stats()["x509_ca"]
    context = build_ssl_context("h", ca_cert=tls.ca_cert, certs_dirs=[])
    assert context.cert_store_stats()["x509_ca"] == system + 1
    assert context.verify_mode == ssl.CERT_REQUIRED
