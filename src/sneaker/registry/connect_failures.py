"""What a failure to connect means, and whether asking again can help. Pure logic, no I/O
but :func:`has_network_route` (a routing-table lookup: no packet is sent).

``getaddrinfo`` answers a name it cannot resolve with an ``EAI_*`` code:

* ``EAI_NONAME`` (NXDOMAIN, or a name in no hosts file and no DNS), ``EAI_NODATA``
  (the name exists but has no address) and ``EAI_FAIL`` (the DNS server refused or
  failed for good): the same question gets the same answer; never retried.
* ``EAI_AGAIN``, "temporary failure in name resolution": a DNS server that did not
  answer, or no network at all. With no route to the internet (no default route:
  unplugged, offline) no retry can help; with one, it is retried like a timeout.
* The others (bad flags, family, service) are a question asked wrongly: never retried.

After a name resolved: ``ENETUNREACH``/``EADDRNOTAVAIL`` (no route to that network:
offline) and ``EHOSTUNREACH`` (the network says the host cannot be reached; each attempt
can take seconds of neighbour discovery) are never retried; a refused connection is a
definite answer that may pass (a registry restarting), retried briefly (about a second
in all); timeouts, resets and everything else are retried with the full backoff.
"""

from __future__ import annotations

import enum
import errno
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "ConnectFailure",
    "Retry",
    "classify_connect_failure",
    "classify_errno",
    "classify_resolution",
    "exception_chain",
    "has_network_route",
]


class Retry(enum.Enum):
    """How a failure is retried."""

    NEVER = "never"  #: asking again gets the same answer
    BRIEF = "brief"  #: a definite answer that may pass soon: short waits
    BACKOFF = "backoff"  #: no answer (timeouts, resets): the full backoff


@dataclass(frozen=True)
class ConnectFailure:
    """``resolve`` is True when the host name did not resolve; ``reason`` is for messages."""

    reason: str
    retry: Retry
    resolve: bool = False
    offline: bool = False


def _codes(*names: str) -> frozenset[int]:
    """The ``socket.EAI_*`` values this platform defines (Windows lacks some)."""
    return frozenset(getattr(socket, name) for name in names if hasattr(socket, name))


_NO_SUCH_NAME = _codes("EAI_NONAME")
_NO_ADDRESS = _codes("EAI_NODATA", "EAI_ADDRFAMILY")
_DNS_FAILED = _codes("EAI_FAIL")
_TRY_AGAIN = _codes("EAI_AGAIN")
_ASKED_WRONGLY = _codes("EAI_BADFLAGS", "EAI_FAMILY", "EAI_SERVICE", "EAI_SOCKTYPE")

_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EADDRNOTAVAIL})


def classify_resolution(code: int | None, *, has_network: Callable[[], bool]) -> ConnectFailure:
    """What ``getaddrinfo``'s error ``code`` means; ``has_network`` is asked only for
    ``EAI_AGAIN`` (with no route to anywhere, a retry cannot help)."""
    if code in _NO_SUCH_NAME:
        return ConnectFailure("no such host", Retry.NEVER, resolve=True)
    if code in _NO_ADDRESS:
        return ConnectFailure("the name has no address", Retry.NEVER, resolve=True)
    if code in _DNS_FAILED:
        return ConnectFailure("the DNS server failed to answer", Retry.NEVER, resolve=True)
    if code in _ASKED_WRONGLY:
        return ConnectFailure(f"getaddrinfo error {code}", Retry.NEVER, resolve=True)
    if code in _TRY_AGAIN and not has_network():
        return ConnectFailure(
            "no network (this machine has no route to the internet)",
            Retry.NEVER,
            resolve=True,
            offline=True,
        )
    if code in _TRY_AGAIN:
        return ConnectFailure("temporary failure in name resolution", Retry.BACKOFF, resolve=True)
    return ConnectFailure("name resolution failed", Retry.BACKOFF, resolve=True)


def classify_errno(number: int | None) -> ConnectFailure | None:
    """What a failed ``connect`` means by its errno; None when nothing is known of it."""
    if number in _NO_ROUTE:
        return ConnectFailure("network is unreachable", Retry.NEVER, offline=True)
    if number == errno.ECONNREFUSED:
        return ConnectFailure("connection refused", Retry.BRIEF)
    if number == errno.EHOSTUNREACH:
        return ConnectFailure("no route to host", Retry.NEVER)
    if number == errno.ECONNRESET:
        return ConnectFailure("connection reset by peer", Retry.BACKOFF)
    if number == errno.ETIMEDOUT:
        return ConnectFailure("timed out", Retry.BACKOFF)
    return None


def classify_connect_failure(
    exc: BaseException, *, has_network: Callable[[], bool]
) -> ConnectFailure | None:
    """The first ``socket.gaierror`` or ``OSError`` with an errno in ``exc``'s chain of
    causes (urllib3 wraps them), classified; None when there is none."""
    for current in exception_chain(exc):
        if isinstance(current, socket.gaierror):
            return classify_resolution(current.errno, has_network=has_network)
        if isinstance(current, OSError) and current.errno is not None:
            known = classify_errno(current.errno)
            if known is not None:
                return known
    return None


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what caused it, and so on: ``__cause__``, ``__context__``, or an
    exception urllib3 keeps in its arguments or ``reason``; each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__ or _wrapped(current)


def _wrapped(exc: BaseException) -> BaseException | None:
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, BaseException):
            return arg
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else None


# Addresses from the documentation ranges (RFC 5737, RFC 3849): a UDP ``connect`` to
# one only looks up a route; nothing is sent, and nothing there answers anyway.
_PROBES = ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1"))


def has_network_route() -> bool:
    """Whether this machine has a route to the internet (IPv4 or IPv6).

    A UDP socket's ``connect`` consults the routing table and sends nothing: it fails
    with ``ENETUNREACH`` when no default route exists (unplugged, offline).
    """
    for family, address in _PROBES:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((address, 9))
        except OSError:
            continue
        return True
    return False
