"""HTTP to one registry on urllib3: pools, TLS, proxies, scheme choice, retries, redirects.

* One pool manager per (registry-or-other host, proxy), 16 connections each,
  so parallel blob downloads share warm connections.
* https by default; a loopback registry (``localhost``, 127.0.0.0/8, ``::1``)
  is spoken to over http when it does not speak TLS (as docker does), but never
  when the certificate is refused or the server answers with a TLS alert (a
  missing client certificate, say); ``plain_http`` means http. Which one it
  speaks is found by a bare handshake first (no request, no trust store loaded).
* Retries with capped exponential backoff and jitter for timeouts, resets,
  500/502/503/504 and 429 (honouring ``Retry-After``, as for 503); a refused connection gets
  the same number of short retries (about a second in all); a name that does
  not resolve, a host the network cannot reach, or a machine with no network,
  none at all
  (:mod:`sneaker.registry.connect_failures`). A host that could not be
  connected to is not tried again by this transport: the other threads (and
  later requests) get the same error at once.
* Redirects are followed here, by hand (at most 10), dropping ``Authorization``
  as soon as the host changes: presigned storage URLs refuse it, and a token
  must never reach another host.
* Responses stream, undecoded: blob bytes are hashed as sent.

:meth:`Transport.perform` drives an auth flow (:mod:`sneaker.registry.auth`).
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from ..errors import NetworkError, RegistryError, TLSError
from . import requestlog
from .auth import AuthFlow
from .connect_failures import (
    ConnectFailure,
    Retry,
    classify_connect_failure,
    exception_chain,
    has_network_route,
)
from .loopback import is_loopback_host
from .messages import Body, Headers, Request, Response, same_origin
from .options import DEFAULT_OPTIONS, RegistryOptions
from .proxy import proxy_for
from .redact import redact_url
from .retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from .tls import build_ssl_context, warn_insecure

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

__all__ = [
    "MAX_REDIRECTS",
    "HttpTransport",
    "Sent",
    "Transport",
    "describe_exception",
    "read_capped",
    "release",
]

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10
POOL_MAXSIZE = 16
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SMALL_BODY = 64 * 1024
_BLOCKSIZE = 1 << 20
#: Methods whose request may be sent again after the connection broke mid-way.
_REPLAYABLE = frozenset({"GET", "HEAD", "PUT", "DELETE", "POST"})
_TLS_HINT = (
    "pass --ca-cert FILE, put the registry's CA in certs.d/HOST/ca.crt, "
    "or (only on a trusted network) use --insecure"
)
_CLIENT_CERT_HINT = (
    "put the client certificate and its key in certs.d/HOST/client.cert and "
    "certs.d/HOST/client.key (docker's convention)"
)
#: ``tlsv13 alert certificate required``, ``sslv3 alert bad certificate``...
_CLIENT_CERT_ALERTS = frozenset(
    {"certificate required", "bad certificate", "unknown ca", "certificate unknown"}
)
_ALERT = re.compile(r"(?:tlsv1\d?|sslv3) alert ([a-z ]+)", re.IGNORECASE)


@dataclass
class Sent:
    """A response whose body is still on the wire; ``url`` is where it came from."""

    response: urllib3.BaseHTTPResponse
    url: str
    attempts: int = 1

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def headers(self) -> Headers:
        return Headers(list(self.response.headers.items()))


class HttpTransport(Protocol):
    """What :class:`~sneaker.registry.client.RegistryClient` sends its requests through.

    :class:`Transport` (HTTP on urllib3) is the one sneaker uses; the tests have one
    that answers from memory, so the client's flows run without sockets.
    """

    def url(self, path: str) -> str:
        """An absolute URL on the registry for ``path`` (which starts with ``/``)."""
        ...

    def send(self, request: Request) -> Sent:
        """``request`` as it is (no auth), its response's body unread."""
        ...

    def perform(self, flow: AuthFlow) -> Sent:
        """Run an auth flow to its end; the response to its last real request."""
        ...

    def close(self) -> None: ...


def release(response: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back: drain a small rest, close on a large one."""
    try:
        # urllib3 knows what is left: 0 for HEAD, 204 and 304, the rest of Content-Length else.
        left = getattr(response, "length_remaining", None)
        small = isinstance(left, int) and left <= _SMALL_BODY
        if small or response.status in _REDIRECTS:
            response.drain_conn()
        else:
            response.close()
    except (HTTPError, OSError, http.client.HTTPException):
        response.close()
    finally:
        response.release_conn()


def read_capped(response: urllib3.BaseHTTPResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body (for error and token bodies), then release."""
    try:
        return response.read(limit, decode_content=False) or b""
    except (HTTPError, OSError, http.client.HTTPException):
        return b""
    finally:
        release(response)


class _Rewinder:
    """Remembers where a stream body started, so it can be sent again."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.position: int | None = None
        if body is not None and not isinstance(body, bytes):
            try:
                self.position = body.tell()
            except (OSError, AttributeError, ValueError):
                self.position = None

    def rewind(self) -> bool:
        if self.body is None or isinstance(self.body, bytes):
            return True
        if self.position is None:
            return False
        try:
            self.body.seek(self.position)
        except (OSError, AttributeError, ValueError):
            return False
        return True


def describe_exception(exc: BaseException) -> str:
    """A short, URL-free reason for a connection-level failure."""
    for current in exception_chain(exc):
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(current, (socket.gaierror, NameResolutionError)):
            return "cannot resolve the host name"
        if isinstance(current, (ReadTimeoutError, ConnectTimeoutError, TimeoutError)) and not (
            isinstance(current, NewConnectionError)
        ):
            return "timed out"
        if isinstance(current, http.client.RemoteDisconnected):
            return "the server closed the connection without answering"
        if isinstance(current, http.client.IncompleteRead):
            return "the connection closed before the end of the body"
    text = str(exc)
    text = re.sub(r"<[^>]*object at 0x[0-9a-f]+>:?\s*", "", text)
    text = re.sub(r"\(Caused by [^)]*\)", "", text)
    text = re.sub(r"https?://\S+", lambda m: redact_url(m.group(0)), text)
    return text.strip()[:200] or type(exc).__name__


def _is_verification_failure(exc: BaseException) -> bool:
    return any(
        isinstance(current, ssl.SSLCertVerificationError)
        or "CERTIFICATE_VERIFY_FAILED" in str(current)
        for current in exception_chain(exc)
    )


def _tls_alert(exc: BaseException) -> str | None:
    """The TLS alert the server sent (``certificate required``...), if that is what failed.

    A server that sends an alert speaks TLS: no reason to try plain http on it.
    """
    for current in exception_chain(exc):
        match = _ALERT.search(str(current))
        if isinstance(current, ssl.SSLError) and match:
            return match.group(1).strip()
    return None


def _speaks_tls(host: str, timeout: float | None) -> bool | None:
    """Whether the (loopback) server at ``host`` answers a TLS handshake: None if it
    cannot be reached at all.

    A bare handshake: nothing is sent after it, and no certificate is checked or
    presented (the real connection, made next with the registry's context, checks
    it). So deciding between https and http costs one local round trip, not the
    tens of milliseconds of loading a trust store for a server that speaks http.
    A server that answers with a TLS alert (a client certificate required, say)
    speaks TLS too.
    """
    parts = urlsplit(f"//{host}")
    name = parts.hostname or host
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        sock = socket.create_connection((name, parts.port or 443), timeout=timeout)
    except OSError:
        return None
    try:
        with context.wrap_socket(sock, server_hostname=name):
            return True
    except ssl.SSLError as exc:
        return _tls_alert(exc) is not None
    except OSError:
        return False  # reset or closed on a TLS hello: a server, but no TLS
    finally:
        sock.close()


class _UnverifiedHTTPSPool(urllib3.HTTPSConnectionPool):
    """HTTPS to a registry whose certificate is deliberately not checked (``insecure``).

    sneaker has said so once for the registry (:func:`~sneaker.registry.tls.warn_insecure`):
    urllib3's InsecureRequestWarning on every request is left out here, rather than
    turned off for the whole process.
    """

    def _validate_conn(self, conn: BaseHTTPConnection) -> None:
        if conn.is_closed:
            conn.connect()  # early, as urllib3 does, so a TLS failure shows here


class Transport:
    """HTTP to one registry host (``host[:port]``, the API host) and wherever it redirects."""

    def __init__(
        self,
        host: str,
        options: RegistryOptions = DEFAULT_OPTIONS,
        *,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        name: str | None = None,
    ) -> None:
        self.host = host.lower()
        #: the registry name ``host`` serves, for messages (``docker.io`` for its API host)
        self.name = name or self.host
        self.options = options
        self._env = dict(os.environ if env is None else env)
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._policy = RetryPolicy(retries=max(0, options.retries))
        self._timeout = urllib3.Timeout(connect=options.timeout, read=options.timeout)
        self._lock = threading.Lock()
        self._pools: dict[tuple[bool, str | None, bool], urllib3.PoolManager] = {}
        #: host -> the error its last round of connection retries ended with
        self._unreachable: dict[str, NetworkError] = {}
        self._hop = threading.local()  # .host: where this thread's last hop went
        self.loopback = is_loopback_host(self.host)
        # None: not decided yet (a loopback registry may turn out to speak http).
        self._scheme: str | None = "http" if options.plain_http else None
        if self._scheme is None and not self.loopback:
            self._scheme = "https"
        # TLS contexts are built on first https use: loading the trust store costs tens
        # of milliseconds that a plain-http loopback registry never needs
        self._ssl_contexts: dict[bool, ssl.SSLContext] = {}
        if options.insecure:
            warn_insecure(self.host, options.insecure_source)

    # -- URLs -----------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        """The scheme in use (https until a loopback registry proves to speak http)."""
        return self._scheme or "https"

    def url(self, path: str) -> str:
        """An absolute URL on the registry for ``path`` (which starts with ``/``)."""
        return f"{self.scheme}://{self.host}{path}"

    def is_registry_url(self, url: str) -> bool:
        return urlsplit(url).netloc.rpartition("@")[2].lower() == self.host

    def _with_scheme(self, url: str) -> str:
        if self.is_registry_url(url) and self._scheme is not None:
            parts = urlsplit(url)
            if parts.scheme != self._scheme:
                return self._scheme + url[len(parts.scheme) :]
        return url

    # -- pools ----------------------------------------------------------------------------

    def _ssl_context(self, registry: bool) -> ssl.SSLContext:
        """The registry's context (CA, certs.d client certificates, insecure) or, for
        other hosts (token realms, redirect targets), one with only the CA options."""
        context = self._ssl_contexts.get(registry)
        if context is None:
            options = self.options
            if registry:
                certs_dirs = [options.certs_dir] if options.certs_dir is not None else None
                context = build_ssl_context(
                    self.host,
                    ca_cert=options.ca_cert,
                    certs_dirs=certs_dirs,
                    insecure=options.insecure,
                    env=self._env,
                )
            else:
                context = build_ssl_context(
                    self.host, ca_cert=options.ca_cert, certs_dirs=[], env=self._env
                )
            self._ssl_contexts[registry] = context
        return context

    def _pool(self, url: str) -> urllib3.PoolManager:
        registry = self.is_registry_url(url)
        proxy = proxy_for(url, self._env)
        https = url.startswith("https:") or proxy is not None
        key = (registry, proxy, https)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                insecure = registry and self.options.insecure
                # only TLS keywords that urllib3 drops for http:// pools (not assert_hostname:
                # an http pool fails on it); the insecure context checks no host name anyway
                kwargs: dict[str, Any] = {
                    "num_pools": 8,
                    "maxsize": POOL_MAXSIZE,
                    "block": False,
                    "ssl_context": self._ssl_context(registry) if https else None,
                    "cert_reqs": "CERT_NONE" if insecure else "CERT_REQUIRED",
                    "blocksize": _BLOCKSIZE,
                }
                if proxy is not None:
                    pool = urllib3.ProxyManager(proxy, **kwargs)
                else:
                    pool = urllib3.PoolManager(**kwargs)
                if insecure:
                    pool.pool_classes_by_scheme = {
                        **pool.pool_classes_by_scheme,
                        "https": _UnverifiedHTTPSPool,
                    }
                self._pools[key] = pool
            return pool

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.clear()

    # -- one hop --------------------------------------------------------------------------

    def _open(
        self, method: str, url: str, headers: Mapping[str, str], body: Body
    ) -> urllib3.BaseHTTPResponse:
        host = self._host_of(url)
        with self._lock:
            known = self._unreachable.get(host)
        if known is not None:  # a whole round of retries failed to connect there already
            raise NetworkError(known.message, hint=known.hint)
        self._hop.host = host
        all_headers = {"User-Agent": self.options.user_agent, **headers}
        return self._pool(url).urlopen(
            method,
            url,
            body=cast(Any, body),
            headers=all_headers,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            timeout=self._timeout,
        )

    def _open_choosing_scheme(
        self, method: str, url: str, headers: Mapping[str, str], body: Body, rewinder: _Rewinder
    ) -> tuple[urllib3.BaseHTTPResponse, str]:
        """One hop; a loopback registry not yet known to speak https may fall back to http."""
        url = self._with_scheme(url)
        if not (self.is_registry_url(url) and self._scheme is None):
            return self._open(method, url, headers, body), url
        tls = _speaks_tls(self.host, self.options.timeout)
        if tls is not None:
            with self._lock:
                if self._scheme is None:
                    self._scheme = "https" if tls else "http"
                    if not tls:
                        log.info(
                            "%s does not answer a TLS handshake: using plain http, "
                            "as for any loopback registry",
                            self.host,
                        )
            return self._open_choosing_scheme(method, url, headers, body, rewinder)
        # not reachable: try https, then http, and report what the last attempt met
        https_url = "https" + url[len(urlsplit(url).scheme) :]
        try:
            response = self._open(method, https_url, headers, body)
        except SSLError as exc:
            if _is_verification_failure(exc) or _tls_alert(exc) is not None:
                raise
            reason = describe_exception(exc)
        except (NewConnectionError, ProtocolError, ConnectTimeoutError) as exc:
            reason = describe_exception(exc)
        else:
            self._scheme = "https"
            return response, https_url
        if not rewinder.rewind():
            raise NetworkError(
                f"cannot retry a request to {self.host} over http: body not seekable"
            )
        http_url = "http" + url[len(urlsplit(url).scheme) :]
        response = self._open(method, http_url, headers, body)
        log.info(
            "%s: https failed (%s); using plain http, as for any loopback registry",
            self.host,
            reason,
        )
        self._scheme = "http"
        return response, http_url

    # -- redirects ------------------------------------------------------------------------

    def _send_following_redirects(self, request: Request, rewinder: _Rewinder) -> Sent:
        method, url, body = request.method, request.url, request.body
        headers = dict(request.headers)
        origin = self._with_scheme(request.url)
        for _ in range(MAX_REDIRECTS + 1):
            response, url = self._open_choosing_scheme(method, url, headers, body, rewinder)
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                return Sent(response, url)
            release(response)
            target = urljoin(url, location)
            if urlsplit(target).scheme not in ("http", "https"):
                raise RegistryError(
                    f"{self.host} redirected {method} {redact_url(url)} to a non-HTTP URL"
                )
            if not same_origin(target, origin):
                # Never again to another host: the token stays with the registry.
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                origin = ""
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), None
                headers = {
                    k: v
                    for k, v in headers.items()
                    if k.lower() not in ("content-type", "content-length", "content-range")
                }
            elif body is not None and not rewinder.rewind():
                raise NetworkError(
                    f"{self.host} redirected an upload whose data cannot be sent again"
                )
            log.debug("redirect %s -> %s", redact_url(url), redact_url(target))
            url = target
        raise RegistryError(
            f"{self.host}: more than {MAX_REDIRECTS} redirects for {request.method} "
            f"{redact_url(request.url)}"
        )

    # -- retries --------------------------------------------------------------------------

    def send(self, request: Request, rewinder: _Rewinder | None = None) -> Sent:
        """Send ``request`` (no auth handling), retrying what is worth retrying.

        Returns the final response with its body unread, whatever its status; raises
        :class:`TLSError` or :class:`NetworkError` when no response could be had.
        """
        rewinder = rewinder or _Rewinder(request.body)
        replayable = request.method in _REPLAYABLE
        attempt = 0
        while True:
            unreachable = False
            try:
                sent = self._logged_attempt(request, rewinder, attempt + 1)
            except SSLError as exc:
                alert = _tls_alert(exc)
                if alert is not None and alert.lower() in _CLIENT_CERT_ALERTS:
                    raise TLSError(
                        f"TLS handshake with {self._host_of(request.url)} failed: the registry "
                        f"wants a client certificate it trusts (TLS alert: {alert})",
                        hint=_CLIENT_CERT_HINT,
                    ) from None
                raise TLSError(
                    f"TLS handshake with {self._host_of(request.url)} failed: "
                    f"{describe_exception(exc)}",
                    hint=_TLS_HINT,
                ) from None
            except ProxyError as exc:
                error: Exception = exc
                failure = classify_connect_failure(exc, has_network=has_network_route)
                reason = f"cannot reach {self._host_of(request.url)} through the proxy: "
                reason += failure.reason if failure else describe_exception(exc)
                retry, unreachable = (failure.retry if failure else Retry.BACKOFF), True
            except (NewConnectionError, ConnectTimeoutError) as exc:
                error, unreachable = exc, True
                failure = classify_connect_failure(exc, has_network=has_network_route)
                reason = self._connect_failure_reason(request.url, exc, failure)
                retry = failure.retry if failure else Retry.BACKOFF
            except (ProtocolError, ReadTimeoutError, OSError, http.client.HTTPException) as exc:
                error, failure = exc, None
                retry = Retry.BACKOFF if replayable else Retry.NEVER
                reason = f"{request.method} {redact_url(request.url)} failed: "
                reason += describe_exception(exc)
            else:
                delay = self._status_delay(sent, attempt, replayable)
                if delay is None:
                    sent.attempts = attempt + 1
                    return sent
                log.info(
                    "%s answered HTTP %d to %s %s; retrying in %.1f s",
                    self.host,
                    sent.status,
                    request.method,
                    redact_url(sent.url),
                    delay,
                )
                release(sent.response)
                if not rewinder.rewind():
                    raise NetworkError(
                        f"{self.host} answered HTTP {sent.status} and the request data "
                        "cannot be sent again"
                    ) from None
                self._sleep(delay)
                attempt += 1
                continue
            delay = None
            if retry is not Retry.NEVER:
                delay = self._policy.delay_for(attempt, None, brief=retry is Retry.BRIEF)
            if delay is None or not rewinder.rewind():
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                hint = self._network_hint(request.url, failure)
                network_error = NetworkError(f"{reason}{tries}", hint=hint)
                if unreachable and delay is None:
                    with self._lock:
                        self._unreachable.setdefault(self._hop.host, network_error)
                raise network_error from error
            log.info("%s: %s; retrying in %.1f s", self.host, reason, delay)
            self._sleep(delay)
            attempt += 1

    def _logged_attempt(self, request: Request, rewinder: _Rewinder, attempt: int) -> Sent:
        """One attempt of ``request``, told to the request log (``-v``) when it listens."""
        if not requestlog.enabled():
            return self._send_following_redirects(request, rewinder)
        started = time.monotonic()
        try:
            sent = self._send_following_redirects(request, rewinder)
        except Exception as exc:
            took, url = time.monotonic() - started, self._with_scheme(request.url)
            error = describe_exception(exc)
            requestlog.record(requestlog.Exchange(request, url, took, attempt, error=error))
            raise
        took, url, headers = (
            time.monotonic() - started,
            self._with_scheme(request.url),
            sent.headers,
        )
        challenges = tuple(headers.get_all("WWW-Authenticate")) if sent.status == 401 else ()
        requestlog.record(
            requestlog.Exchange(
                request, url, took, attempt, sent.status, sent.url, headers, challenges=challenges
            )
        )
        return sent

    def _status_delay(self, sent: Sent, attempt: int, replayable: bool) -> float | None:
        if sent.status not in RETRY_STATUSES or not replayable:
            return None
        retry_after = None
        if sent.status in (429, 503):
            retry_after = parse_retry_after(
                sent.response.headers.get("Retry-After"), now=self._wall_clock()
            )
        return self._policy.delay_for(attempt, retry_after)

    def _host_of(self, url: str) -> str:
        return urlsplit(url).netloc.rpartition("@")[2] or self.host

    def _described_host(self, url: str, *, port: bool = True) -> str:
        """The host (and port) of ``url``; for the registry's own API host, also the
        registry name it serves when that differs (``registry-1.docker.io (the API host
        of docker.io)``)."""
        host = self._host_of(url) if port else (urlsplit(url).hostname or self._host_of(url))
        if self.is_registry_url(url) and self.name != self.host:
            return f"{host} (the API host of {self.name})"
        return host

    def _connect_failure_reason(
        self, url: str, exc: BaseException, failure: ConnectFailure | None
    ) -> str:
        if failure is not None and failure.resolve:
            return f"cannot resolve {self._described_host(url, port=False)}: {failure.reason}"
        reason = f"cannot connect to {self._described_host(url)}: "
        reason += failure.reason if failure is not None else describe_exception(exc)
        if self.is_registry_url(url) and self._scheme is None:
            reason += " over https and http"
        return reason

    def _network_hint(self, url: str, failure: ConnectFailure | None) -> str | None:
        if failure is None:
            return None
        if failure.offline:
            return (
                "this machine has no network connection: connect it (or set HTTPS_PROXY "
                "when a proxy is the way out), or pull on a machine that has one and "
                "carry the archive over"
            )
        if failure.resolve:
            way_out = "(or set HTTPS_PROXY when a proxy is the way out)"
            if self.is_registry_url(url) and self.name == self.host:
                return (
                    f"check the registry name {self.name!r} in the image reference, and this "
                    f"machine's DNS settings {way_out}"
                )
            return f"check this machine's network and DNS settings {way_out}"
        if failure.reason == "connection refused":
            return f"is a registry listening at {self._host_of(url)}?"
        if failure.reason == "no route to host":
            return f"is {urlsplit(url).hostname} up, and is its address right?"
        return None

    # -- auth-flow driver -----------------------------------------------------------------

    def perform(self, flow: AuthFlow) -> Sent:
        """Run an auth flow to its end; return the response to its last real request.

        The flow's own ping and token requests have their bodies read (capped) and
        their connections released; a superseded real response is released too.
        """
        last: Sent | None = None
        rewinder: _Rewinder | None = None
        try:
            request = next(flow)
            while True:
                if request.purpose == "request":
                    if last is not None:
                        release(last.response)
                        last = None
                        if rewinder is not None and not rewinder.rewind():
                            raise NetworkError(
                                f"cannot send {request.method} {redact_url(request.url)} "
                                "again with fresh credentials: its data is not seekable"
                            )
                    if rewinder is None:
                        rewinder = _Rewinder(request.body)
                    last = self.send(request, rewinder)
                    reply = Response(last.status, last.url, last.headers)
                else:
                    sent = self.send(request)
                    headers = sent.headers
                    body = read_capped(sent.response, 1 << 20)
                    reply = Response(sent.status, sent.url, headers, body)
                request = flow.send(reply)
        except StopIteration:
            pass
        except BaseException:
            if last is not None:
                release(last.response)
            raise
        finally:
            flow.close()
        if last is None:  # pragma: no cover - a flow always sends its request
            raise RuntimeError("the auth flow ended without sending the request")
        return last
