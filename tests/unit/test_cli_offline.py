"""``sneaker pull busybox`` on a machine that cannot resolve Docker Hub: one error line at
once, naming the API host and the registry it serves; retried only when the resolver
may answer later.

The resolver is faked (``socket.getaddrinfo`` for Docker Hub's names), so these run the
real CLI, client and transport the same on a machine with internet and one without;
tests/integration/test_offline.py asks the real resolver about names under ``.invalid``.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from sneaker.cli.main import main

HUB_API = "registry-1.docker.io"


@pytest.fixture
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in {
        "DOCKER_CONFIG": tmp_path / "docker-config",
        "SNEAKER_CACHE_DIR": tmp_path / "cache",
        "CONTAINERS_REGISTRIES_CONF": tmp_path / "none.conf",
        "SNEAKER_DAEMON_JSON": "",
        "HOME": tmp_path,
    }.items():
        monkeypatch.setenv(name, str(value))
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fake_resolver(monkeypatch: pytest.MonkeyPatch, code: int) -> list[str]:
    """Make every lookup of a docker.io name fail with ``code``; return the names asked."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith("docker.io"):
            asked.append(host)
            raise socket.gaierror(code, "faked resolver failure")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def pull_busybox(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[str], float]:
    started = time.monotonic()
    code = main(["pull", "-q", *extra, "busybox"])
    elapsed = time.monotonic() - started
    return code, capsys.readouterr().err.splitlines(), elapsed


def test_docker_hub_that_does_not_resolve_fails_at_once_naming_both_names(
    no_docker_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = fake_resolver(monkeypatch, socket.EAI_NONAME)
    code, lines, elapsed = pull_busybox(capsys)
    assert code == 6
    assert lines == [
        f"error: cannot resolve {HUB_API} (the API host of docker.io): no such host",
        "hint: check this machine's network and DNS settings "
        "(or set HTTPS_PROXY when a proxy is the way out)",
    ]
    assert asked == [HUB_API]  # asked once: no retries
    assert elapsed < 1.0
    assert not (no_docker_config / "busybox_latest.tar").exists()


def test_temporary_failure_without_any_route_is_not_retried(
    no_docker_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = fake_resolver(monkeypatch, socket.EAI_AGAIN)
    monkeypatch.setattr("sneaker.registry.transport.has_network_route", lambda: False)
    code, lines, elapsed = pull_busybox(capsys)
    assert code == 6
    assert lines[0] == (
        f"error: cannot resolve {HUB_API} (the API host of docker.io): "
        "no network (this machine has no route to the internet)"
    )
    assert lines[1].startswith("hint: this machine has no network connection")
    assert asked == [HUB_API]
    assert elapsed < 1.0


def test_temporary_failure_with_a_route_is_retried(
    no_docker_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = fake_resolver(monkeypatch, socket.EAI_AGAIN)
    monkeypatch.setattr("sneaker.registry.transport.has_network_route", lambda: True)
    code, lines, elapsed = pull_busybox(capsys, "--retries", "2")
    assert code == 6
    assert lines[0] == (
        f"error: cannot resolve {HUB_API} (the API host of docker.io): "
        "temporary failure in name resolution (after 3 attempts)"
    )
    assert asked == [HUB_API] * 3
    assert elapsed >= 0.75  # the full backoff (0.25 s at least, then 0.5 s), not the brief one
