"""``serve`` and TLS: the server's context, one connection's handshake, and a TLS client
met on the plain-HTTP listener.

The context is the standard library's server context with TLS 1.2 as the oldest
version, no renegotiation and ``http/1.1`` offered by ALPN (Go clients offer
``h2`` first). The handshake runs on the connection's worker, bounded as a whole
by one timeout, so a client that stalls in it holds a worker no longer than a
slow request head does.

On the plain listener a connection whose first bytes are a TLS record header
(``0x16 0x03 0x0N``: a handshake record, a TLS version) is a client trying HTTPS:
docker, podman and containerd do that first for any registry they are not told
is plain HTTP. It gets one log line and a short HTTP 400, whose first bytes make Go
clients say "server gave HTTP response to HTTPS client", the message registry
users know; then the connection closes.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

from ...errors import UsageError

__all__ = [
    "HTTPS_ON_PLAIN",
    "MIN_VERSION",
    "PLAIN_ON_HTTPS",
    "handshake",
    "handshake_problem",
    "looks_like_tls",
    "plain_http_answer",
    "server_context",
    "tls_record_size",
    "wrap",
]

MIN_VERSION = ssl.TLSVersion.TLSv1_2
#: a TLS record's header: content type, version (2 bytes), length (2 bytes)
RECORD_HEADER = 5
#: the largest TLS record (2^14 bytes of plaintext, plus what encryption adds)
MAX_RECORD = RECORD_HEADER + (1 << 14) + 2048

HTTPS_ON_PLAIN = (
    "a client tried HTTPS on this plain-HTTP server; use --tls-cert/--tls-key, "
    "or configure the client for HTTP (insecure-registries)"
)
PLAIN_ON_HTTPS = (
    "a client sent plain HTTP to this HTTPS server; configure it for HTTPS "
    "with the server's CA (ctr: no --plain-http)"
)


def server_context(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """A server context for the certificate (chain) in ``cert`` and its private key in ``key``.

    Raises :class:`UsageError` naming the file for a missing or unreadable file,
    a certificate that is no PEM, a key that does not belong to the certificate,
    or an encrypted key (sneaker asks for no passphrase).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSION
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    context.set_alpn_protocols(["http/1.1"])

    def refuse_passphrase() -> str:
        raise UsageError(
            f"--tls-key {key}: the key is encrypted",
            hint="give sneaker an unencrypted key (e.g. openssl pkey -in KEY -out PLAIN.key), "
            "readable only by the user serving",
        )

    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            Path(path).open("rb").close()
        except OSError as exc:
            raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
    try:
        context.load_cert_chain(cert, key, password=refuse_passphrase)
    except ssl.SSLError as exc:
        reason = exc.reason or exc.strerror or str(exc)
        raise UsageError(
            f"cannot use --tls-cert {cert} with --tls-key {key}: {reason}",
            hint="both must be PEM files: the certificate (then any intermediate certificates) "
            "and the private key that belongs to it",
        ) from None
    return context


def wrap(sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
    """The server side of TLS on ``sock``, handshake not done yet (see :func:`handshake`).

    ``sock`` is detached: the returned socket owns its descriptor.
    """
    return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


def handshake(tls: ssl.SSLSocket, timeout: float) -> None:
    """Do ``tls``'s handshake within ``timeout`` seconds in all.

    Raises :class:`ssl.SSLError`, :class:`TimeoutError` or another :class:`OSError`.
    """
    # the standard library bounds each wait of a handshake by what is left of the timeout
    tls.settimeout(timeout)
    tls.do_handshake()


def handshake_problem(exc: BaseException) -> str | None:
    """The log line for a failed handshake; None for a client that just went away."""
    if not isinstance(exc, ssl.SSLError):
        if isinstance(exc, TimeoutError):
            return "TLS handshake not done in time: connection closed"
        return None
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return None
    reason = (exc.reason or "").upper()
    if reason == "HTTP_REQUEST":
        return PLAIN_ON_HTTPS
    if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason or "CERTIFICATE_UNKNOWN" in reason:
        return (
            f"TLS handshake failed ({exc.reason}): the client does not trust this server's "
            "certificate; give it the CA (docker: certs.d/HOST:PORT/ca.crt)"
        )
    if "VERSION" in reason or "PROTOCOL" in reason:
        return f"TLS handshake failed ({exc.reason}): the client offers no TLS 1.2 or newer"
    return f"TLS handshake failed: {exc.reason or exc}"


def looks_like_tls(head: bytes) -> bool:
    """Whether the first bytes of a connection are a TLS handshake record (a ClientHello)."""
    if not head or head[0] != 0x16:
        return False  # every HTTP request starts with a method name
    return len(head) < 2 or (head[1] == 0x03 and (len(head) < 3 or head[2] <= 0x04))


def tls_record_size(head: bytes) -> int:
    """The size of the TLS record ``head`` starts (header included), capped at the largest."""
    if len(head) < RECORD_HEADER:
        return RECORD_HEADER
    return min(RECORD_HEADER + int.from_bytes(head[3:5], "big"), MAX_RECORD)


def plain_http_answer(message: str) -> bytes:
    """A complete HTTP/1.1 400 answer with ``message`` as its text, closing the connection."""
    body = (message + "\n").encode()
    return (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
