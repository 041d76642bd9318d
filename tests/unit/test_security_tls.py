"""TLS: verification on by default, https unless told otherwise, the https-or-http probe of a
loopback registry (local sockets), and the one warning when verification is turned off."""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sneaker.cli.options import build_registry_options
from sneaker.registry.mirrors import endpoint_options
from sneaker.registry.options import RegistryOptions
from sneaker.registry.tls import (
    InsecureWarning,
    build_ssl_context,
    certs_dirs_for,
    default_certs_dirs,
    warn_insecure,
)
from sneaker.registry.transport import Transport, _speaks_tls
from sneaker.settings import load_settings
from sneaker.verbs.login import _endpoint as login_endpoint
from tests.fixtures.threaded import LoopbackServer


def test_verification_is_on_by_default_with_the_system_trust_store() -> None:
    import truststore

    context = build_ssl_context("registry.example.com", certs_dirs=[])
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert isinstance(context, truststore.SSLContext)  # the OS store (test_trust_store.py)


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


def test_certs_d_of_podman_skopeo_and_docker_the_users_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert default_certs_dirs({"HOME": str(home)}) == [
        home / ".config" / "containers" / "certs.d",
        home / ".docker" / "certs.d",
        Path("/etc/containers/certs.d"),
        Path("/etc/docker/certs.d"),
    ]
    listed = f"{tmp_path / 'a'}:{tmp_path / 'b'}"
    assert default_certs_dirs({"HOME": str(home), "SNEAKER_CERTS_D": listed}) == [
        tmp_path / "a",
        tmp_path / "b",
    ]
    assert default_certs_dirs({"SNEAKER_CERTS_D": ""}) == []


def test_every_base_with_a_directory_for_the_host_is_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    podman_dir = home / ".config" / "containers" / "certs.d" / "reg.example:5000"
    docker_dir = home / ".docker" / "certs.d" / "reg.example:5000"
    for directory in (podman_dir, docker_dir):
        directory.mkdir(parents=True)
    env = {"HOME": str(home)}
    assert certs_dirs_for("reg.example:5000", env=env) == [podman_dir, docker_dir]
    assert certs_dirs_for("reg.example", env=env) == []  # the port is part of the name
    # that each one's CA is trusted: test_trust_store.py::test_every_certs_d_tree_adds_its_ca


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

    class Answer(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn = self.request
            conn.settimeout(5.0)
            try:
                if context is not None:
                    with context.wrap_socket(conn, server_side=True) as tls_conn:
                        tls_conn.recv(1)
                else:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            except OSError:
                pass

    with LoopbackServer(Answer, name="tls-probe", http=False, quiet=True) as server:
        yield server.host


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


INSECURE_HOST = "reg.example:5000"

# -- insecure registries: one warning, naming what asked for it, once per host ----------


def test_insecure_warning_names_its_source_once_per_host() -> None:
    with pytest.warns(InsecureWarning) as seen:
        warn_insecure("unit-fixes.example:1", "--insecure")
    assert [str(w.message) for w in seen] == [
        "TLS certificate verification is disabled for unit-fixes.example:1 (from --insecure)"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_insecure("unit-fixes.example:1", "/etc/docker/daemon.json, line 2")  # not again


def test_the_flag_is_the_source_and_the_cli_does_not_warn_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = build_registry_options(None, True, False, None, False)
    assert (options.insecure, options.insecure_source) == (True, "--insecure")
    assert build_registry_options(None, False, False, None, False).insecure_source == ""
    assert capsys.readouterr().err == ""  # the transport warns, once per registry


def _daemon_json(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"debug": True, "insecure-registries": [INSECURE_HOST]}, indent=2))
    return path, f"{path}, line 3"


def _registries_conf(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "registries.conf"
    path.write_text(f'\n[[registry]]\nlocation = "{INSECURE_HOST}"\ninsecure = true\n')
    return path, f"{path}, line 2"


@pytest.mark.parametrize("kind", ["daemon.json", "registries.conf"])
def test_insecure_from_a_settings_file_names_the_file(kind: str, tmp_path: Path) -> None:
    if kind == "daemon.json":
        path, where = _daemon_json(tmp_path)
        settings = load_settings(registries_conf=[], daemon_json=[path])
    else:
        path, where = _registries_conf(tmp_path)
        settings = load_settings(registries_conf=[path], daemon_json=[])
    for endpoint in (
        settings.for_registry(f"{INSECURE_HOST}/team/app").origin,  # pull, inspect
        settings.target_endpoint(f"{INSECURE_HOST}/team/app"),  # push
        login_endpoint(INSECURE_HOST, settings),  # login
    ):
        options = endpoint_options(endpoint, RegistryOptions(), INSECURE_HOST)
        assert (options.insecure, options.insecure_source) == (True, where)
        # --insecure given as well: the flag is what the user asked for
        flagged = RegistryOptions(insecure=True, insecure_source="--insecure")
        assert endpoint_options(endpoint, flagged, INSECURE_HOST).insecure_source == "--insecure"
    other = settings.for_registry("other.example/team/app").origin
    assert endpoint_options(other, RegistryOptions(), "other.example").insecure is False
