"""The request log behind ``-v``: one line per HTTP request, and never a secret in it.

The transport tells :func:`record` about each attempt of each request (its own
retries included) once the answer's headers are in, or once it failed; the
line goes to the ``sneaker.registry.requestlog`` logger at INFO, which the CLI
shows on stderr with ``-v`` (and ``--debug``). A line says::

    GET https://HOST/v2/REPO/manifests/TAG -> 200, 1.5 kB in 12 ms (with a Bearer token)
    GET https://HOST/v2/ -> 401 in 9 ms (ping; challenge Bearer realm=... service=...)
    GET https://AUTH/token -> 200, 1.1 kB in 40 ms (token for repository:REPO:pull, service S)
    GET https://HOST/v2/REPO/blobs/sha256:... -> 200, 3.0 MB in 8 ms (redirected to https://...)
    GET https://HOST/v2/REPO/blobs/sha256:... failed in 1.0 s: connection reset by peer (attempt 2)

What is left out: query strings and userinfo of every URL (presigned storage URLs
sign in their query: :func:`~sneaker.registry.redact.redact_url`), every header
value but the *scheme* of ``Authorization``, request and response bodies (a token
request's form only gives its ``scope`` and ``service``). The size is the answer's
``Content-Length``; the time is until its headers arrived (a body streams on).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ..util.progress import human_size
from .challenge import parse_challenges
from .messages import Request
from .redact import redact_url

__all__ = ["Exchange", "describe", "enabled", "record"]

log = logging.getLogger(__name__)

#: scopes named in a token line; more are counted
_SHOWN_SCOPES = 3
_CHALLENGE_PARAMS = ("realm", "service", "scope", "error")


@dataclass(frozen=True)
class Exchange:
    """One attempt of one request, as the log shows it."""

    request: Request
    #: where the request went (its URL with the scheme the registry turned out to speak)
    url: str
    seconds: float
    attempt: int = 1
    status: int | None = None
    #: where the answer came from, when a redirect took the request elsewhere
    final_url: str | None = None
    headers: Mapping[str, str] | None = None
    #: why no answer came (a connection-level failure, already free of URLs)
    error: str | None = None
    #: ``WWW-Authenticate`` values of a 401
    challenges: tuple[str, ...] = ()


def enabled() -> bool:
    """Is anyone listening (``-v``)? The transport builds no :class:`Exchange` otherwise."""
    return log.isEnabledFor(logging.INFO)


def record(exchange: Exchange) -> None:
    log.info("%s", describe(exchange))


def describe(exchange: Exchange) -> str:
    request = exchange.request
    line = f"{request.method} {redact_url(exchange.url)}"
    if exchange.error is not None:
        line += f" failed in {_duration(exchange.seconds)}: {exchange.error}"
    else:
        line += f" -> {exchange.status}"
        size = (exchange.headers or {}).get("Content-Length", "")
        if size.isdigit():
            line += f", {human_size(int(size))}"
        line += f" in {_duration(exchange.seconds)}"
    notes = _notes(exchange)
    return f"{line} ({'; '.join(notes)})" if notes else line


def _notes(exchange: Exchange) -> list[str]:
    request = exchange.request
    notes: list[str] = []
    if request.purpose == "ping":
        notes.append("ping")
    elif request.purpose == "token":
        notes.append(_token_note(request))
    if exchange.final_url is not None and exchange.final_url != exchange.url:
        notes.append(f"redirected to {redact_url(exchange.final_url)}")
    scheme = _authorization_scheme(request.headers)
    if scheme:
        notes.append(f"with {'a Bearer token' if scheme == 'bearer' else scheme + ' credentials'}")
    if exchange.challenges:
        notes.append("challenge " + _challenge_note(exchange.challenges))
    if exchange.attempt > 1:
        notes.append(f"attempt {exchange.attempt}")
    return notes


def _authorization_scheme(headers: Mapping[str, str]) -> str:
    """``bearer``, ``Basic``...: the word before the credentials, never what follows."""
    for name, value in headers.items():
        if name.lower() == "authorization":
            scheme = value.split(" ", 1)[0]
            return "bearer" if scheme.lower() == "bearer" else scheme.capitalize()
    return ""


def _token_note(request: Request) -> str:
    """``token for repository:a:pull, repository:b:pull and 3 more, service S``: from the
    query of a GET or the form of an OAuth2 POST, only ``scope`` and ``service``."""
    fields = parse_qsl(urlsplit(request.url).query)
    if request.method == "POST" and isinstance(request.body, bytes):
        fields += parse_qsl(request.body.decode("ascii", "replace"))
    scopes = [s for key, value in fields if key == "scope" for s in value.split()]
    services = [value for key, value in fields if key == "service"]
    shown = ", ".join(scopes[:_SHOWN_SCOPES]) or "no scope"
    if len(scopes) > _SHOWN_SCOPES:
        shown += f" and {len(scopes) - _SHOWN_SCOPES} more"
    note = f"token for {shown}"
    if services:
        note += f", service {services[0]}"
    return note + (" (OAuth2)" if request.method == "POST" else "")


def _challenge_note(values: tuple[str, ...]) -> str:
    shown: list[str] = []
    for challenge in parse_challenges(values):
        params = " ".join(
            f'{name}="{redact_url(value) if name == "realm" else value}"'
            for name in _CHALLENGE_PARAMS
            if (value := challenge.param(name)) is not None
        )
        shown.append(f"{challenge.scheme.capitalize()} {params}".strip())
    return ", ".join(shown) or "without a scheme sneaker reads"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
