"""Requests and responses as plain values, so protocol logic can be written without sockets.

The auth flow yields :class:`Request` objects and receives :class:`Response`
objects; :mod:`sneaker.registry.transport` turns them into HTTP on urllib3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol
from urllib.parse import urlsplit

from .redact import redact_headers, redact_url

__all__ = ["Body", "Headers", "Purpose", "Request", "Response", "StreamBody", "same_origin"]


class StreamBody(Protocol):
    """A readable request body; ``tell``/``seek`` may raise OSError when it cannot rewind."""

    def read(self, size: int = -1, /) -> bytes: ...

    def tell(self) -> int: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


#: What a request body may be: nothing, bytes in memory, or a stream (rewound on a retry).
Body = bytes | StreamBody | None

#: Why a request is sent: the auth flow's own requests have their bodies read in full.
Purpose = Literal["ping", "token", "request"]


class Headers(Mapping[str, str]):
    """Immutable, case-insensitive, multi-valued headers; ``h[name]`` joins repeats with ``, ``."""

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: tuple[tuple[str, str], ...] = tuple((str(k), str(v)) for k, v in pairs)

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self._items if k.lower() == wanted]

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for key, _ in self._items:
            if key.lower() not in seen:
                seen.add(key.lower())
                yield key

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self._items})

    def items_all(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def __repr__(self) -> str:
        return f"Headers({redact_headers(dict(self))!r})"


@dataclass(frozen=True)
class Request:
    """One HTTP request. ``headers`` must not hold credentials when it is built by callers:
    the auth flow adds ``Authorization`` itself."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body = None
    purpose: Purpose = "request"

    def with_header(self, name: str, value: str | None) -> Request:
        """A copy with ``name`` set to ``value`` (or removed when value is None)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        if value is not None:
            headers[name] = value
        return replace(self, headers=headers)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc.rpartition("@")[2].lower()

    def __repr__(self) -> str:
        return (
            f"Request({self.method} {redact_url(self.url)}, "
            f"headers={redact_headers(self.headers)!r}, purpose={self.purpose!r})"
        )


@dataclass(frozen=True)
class Response:
    """What the flow learns of a response: status, final URL, headers, and (for its own
    ping and token requests only) the body."""

    status: int
    url: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc.rpartition("@")[2].lower()

    def __repr__(self) -> str:
        return f"Response({self.status} {redact_url(self.url)})"


def same_origin(a: str, b: str) -> bool:
    """Do two URLs name the same host and port (scheme ignored: http fallback keeps auth)?"""
    return _hostport(a) == _hostport(b)


def _hostport(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return host, port
