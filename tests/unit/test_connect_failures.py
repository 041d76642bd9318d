"""What a failed connection means: which getaddrinfo and connect errors are final, which
are retried briefly, which with the full backoff. Pure logic; no name is looked up."""

from __future__ import annotations

import errno
import socket

import pytest
import urllib3.exceptions

from sneaker.registry.connect_failures import (
    Retry,
    classify_connect_failure,
    classify_errno,
    classify_resolution,
    exception_chain,
    has_network_route,
)


def online() -> bool:
    return True


def offline() -> bool:
    return False


def never_asked() -> bool:
    raise AssertionError("the route only matters for EAI_AGAIN")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (socket.EAI_NONAME, "no such host"),
        (socket.EAI_FAIL, "the DNS server failed to answer"),
        (socket.EAI_SERVICE, f"getaddrinfo error {socket.EAI_SERVICE}"),
        (socket.EAI_FAMILY, f"getaddrinfo error {socket.EAI_FAMILY}"),
    ],
)
def test_names_that_will_not_resolve_are_never_retried(code: int, reason: str) -> None:
    failure = classify_resolution(code, has_network=never_asked)
    assert (failure.retry, failure.resolve, failure.reason) == (Retry.NEVER, True, reason)
    assert not failure.offline


@pytest.mark.skipif(not hasattr(socket, "EAI_NODATA"), reason="this platform has no EAI_NODATA")
def test_a_name_without_an_address_is_never_retried() -> None:
    failure = classify_resolution(socket.EAI_NODATA, has_network=never_asked)
    assert (failure.retry, failure.reason) == (Retry.NEVER, "the name has no address")


def test_temporary_failure_without_a_network_is_final_and_says_so() -> None:
    failure = classify_resolution(socket.EAI_AGAIN, has_network=offline)
    assert failure.retry is Retry.NEVER
    assert failure.offline
    assert failure.resolve
    assert failure.reason.startswith("no network")


def test_temporary_failure_with_a_network_is_retried_like_a_timeout() -> None:
    failure = classify_resolution(socket.EAI_AGAIN, has_network=online)
    assert failure.retry is Retry.BACKOFF
    assert failure.reason == "temporary failure in name resolution"
    assert not failure.offline


def test_an_unknown_resolver_code_is_retried() -> None:
    assert classify_resolution(None, has_network=never_asked).retry is Retry.BACKOFF


@pytest.mark.parametrize(
    ("number", "retry", "reason"),
    [
        (errno.ENETUNREACH, Retry.NEVER, "network is unreachable"),
        (errno.EADDRNOTAVAIL, Retry.NEVER, "network is unreachable"),
        (errno.ECONNREFUSED, Retry.BRIEF, "connection refused"),
        (errno.EHOSTUNREACH, Retry.NEVER, "no route to host"),
        (errno.ECONNRESET, Retry.BACKOFF, "connection reset by peer"),
        (errno.ETIMEDOUT, Retry.BACKOFF, "timed out"),
    ],
)
def test_connect_errors(number: int, retry: Retry, reason: str) -> None:
    failure = classify_errno(number)
    assert failure is not None
    assert (failure.retry, failure.reason, failure.resolve) == (retry, reason, False)
    assert failure.offline == (number in (errno.ENETUNREACH, errno.EADDRNOTAVAIL))


def test_other_errnos_are_not_classified() -> None:
    assert classify_errno(errno.EPERM) is None
    assert classify_errno(None) is None


def test_urllib3_wrapping_is_seen_through() -> None:
    """urllib3 raises NameResolutionError from the gaierror, NewConnectionError from the
    OSError, and MaxRetryError keeps its cause in ``reason``."""
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    try:
        raise urllib3.exceptions.NameResolutionError("h.invalid", None, gai) from gai  # type: ignore[arg-type]
    except urllib3.exceptions.NameResolutionError as exc:
        resolution = exc
    failure = classify_connect_failure(resolution, has_network=never_asked)
    assert failure is not None
    assert (failure.retry, failure.reason) == (Retry.NEVER, "no such host")

    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    outer = urllib3.exceptions.MaxRetryError(None, "/v2/", reason=refused)  # type: ignore[arg-type]
    failure = classify_connect_failure(outer, has_network=never_asked)
    assert failure is not None
    assert failure.retry is Retry.BRIEF
    assert list(exception_chain(outer)) == [outer, refused]


def test_a_failure_with_no_errno_is_not_classified() -> None:
    assert classify_connect_failure(TimeoutError("timed out"), has_network=never_asked) is None


def test_exception_chain_ends_on_a_cycle() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert list(exception_chain(first)) == [first, second]


class _FakeSocket:
    """A UDP socket whose connect succeeds only for the families in ``routed``."""

    routed: frozenset[int] = frozenset()
    connected: list[tuple[int, object]] = []

    def __init__(self, family: int, kind: int) -> None:
        assert kind == socket.SOCK_DGRAM  # a route lookup, never a TCP handshake
        self.family = family

    def connect(self, address: object) -> None:
        if self.family not in self.routed:
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        self.connected.append((self.family, address))

    def __enter__(self) -> _FakeSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(
    ("routed", "expected"),
    [
        (frozenset(), False),
        (frozenset({socket.AF_INET}), True),
        (frozenset({socket.AF_INET6}), True),
    ],
)
def test_route_probe(
    monkeypatch: pytest.MonkeyPatch, routed: frozenset[int], expected: bool
) -> None:
    monkeypatch.setattr(_FakeSocket, "routed", routed)
    monkeypatch.setattr(_FakeSocket, "connected", [])
    monkeypatch.setattr("sneaker.registry.connect_failures.socket.socket", _FakeSocket)
    assert has_network_route() is expected
    assert [family for family, _ in _FakeSocket.connected] == sorted(routed)[:1]
