"""``serve``: archives as a read-only registry (the OCI distribution API), nothing unpacked.

Manifests are served byte for byte as the archives hold them and blobs are
streamed straight from the archive files: with ``sendfile`` when the blob is a
file of its own (an OCI layout directory), else read with ``pread`` in 1 MiB
chunks from its place inside the tar (or split parts). Digests are those of
the archive and memory use does not grow with blob size.

Names: an image is served under the repository path of its reference
(``docker.io/library/ubuntu:22.04`` -> ``library/ubuntu``, ``ghcr.io/o/app``
-> ``o/app``) and also under two aliases: the short Docker Hub name
(``ubuntu``) and the full name with the registry host (``docker.io/library/ubuntu``,
``ghcr.io/o/app``) when that is a valid repository name. When two images claim
the same repository:tag, the one from the archive named later wins and a
warning says so. Blobs are served only under repositories whose images
reference them, from any of the archives that holds them (so a delta archive
served next to its base works).

The pure parts (routing, ranges, pagination, content negotiation) are
functions at the top of this module; the HTTP server is the standard library's
``ThreadingHTTPServer`` (a thread per connection, HTTP/1.1 keep-alive).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import TracebackType
from typing import Any, BinaryIO, cast

from .. import __version__
from ..archive import open_archive
from ..errors import InvalidDigest, NetworkError, SneakerError, UsageError
from ..image.digest import Digest
from ..image.model import Descriptor, Index, Manifest
from ..image.records import ImageSource
from ..image.reference import DOCKER_HUB, REPOSITORY_PATH, Reference

__all__ = [
    "DEFAULT_ADDR",
    "ByteRange",
    "RangeNotSatisfiable",
    "RegistryServer",
    "Route",
    "ServedImage",
    "accepted_types",
    "catalog_of",
    "choose_manifest",
    "paginate",
    "parse_addr",
    "parse_page_size",
    "parse_range",
    "repository_aliases",
    "route",
    "serve",
]

DEFAULT_ADDR = "127.0.0.1:5000"
CHUNK = 1 << 20
#: idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT = 120.0
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_ALLOWED = "GET, HEAD"
_READ_ONLY = "this registry is read-only: it serves archives and accepts no uploads or deletes"

# --------------------------------------------------------------------------------------------
# Pure parts: routing, ranges, pagination, content negotiation, addresses.
# --------------------------------------------------------------------------------------------

_NAME = REPOSITORY_PATH
_NAME_RE = re.compile(rf"^{_NAME}$")
_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tags", re.compile(rf"^/v2/(?P<name>{_NAME})/tags/list$")),
    ("upload", re.compile(rf"^/v2/(?P<name>{_NAME})/blobs/uploads(?:/(?P<ref>.*))?$")),
    ("manifest", re.compile(rf"^/v2/(?P<name>{_NAME})/manifests/(?P<ref>[^/]+)$")),
    ("blob", re.compile(rf"^/v2/(?P<name>{_NAME})/blobs/(?P<ref>[^/]+)$")),
)
_LOOSE = re.compile(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags)/[^/]+(?:/[^/]*)?$")


@dataclass(frozen=True)
class Route:
    """What a request path asks for.

    ``kind`` is one of ``base`` (``/v2/``), ``catalog``, ``tags``, ``manifest``,
    ``blob``, ``upload`` (``/v2/<name>/blobs/uploads/...``), ``bad-name`` (an
    API path whose repository name breaks the grammar) or ``unknown``.
    ``query`` maps each query parameter to its last value.
    """

    kind: str
    name: str = ""
    reference: str = ""
    query: Mapping[str, str] = field(default_factory=dict)


def route(target: str) -> Route:
    """Parse a request target (path and query string) into a :class:`Route`."""
    split = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    path = urllib.parse.unquote(split.path)
    if path in ("/v2", "/v2/"):
        return Route("base", query=query)
    if path == "/v2/_catalog":
        return Route("catalog", query=query)
    for kind, pattern in _ROUTES:
        match = pattern.match(path)
        if match:
            return Route(kind, match["name"], match.groupdict().get("ref") or "", query)
    loose = _LOOSE.match(path)
    if loose:
        return Route("bad-name", loose["name"], query=query)
    return Route("unknown", query=query)


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``start``-``end`` of a blob of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class RangeNotSatisfiable(Exception):
    """The Range header is valid but no byte of it lies inside the blob (HTTP 416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for {size} bytes")
        self.size = size


_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for, or None to send everything.

    Follows RFC 9110: a header that is absent, malformed, in another unit or
    asks for several ranges is ignored (None: answer 200 with the whole blob);
    ``a-b``, ``a-`` and the suffix form ``-n`` are clamped to the blob; a range
    starting at or past the end (or ``-0``) raises :class:`RangeNotSatisfiable`.
    """
    if header is None:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in specs:
        return None
    match = _RANGE_SPEC.match(specs)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(size - suffix, 0), size - 1, size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, min(end, size - 1), size)


def parse_page_size(text: str | None) -> int | None:
    """The ``n`` query parameter: None when absent; raises UsageError unless an integer >= 0."""
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise UsageError(f"invalid page size n={text!r}: expected a non-negative integer")
    return int(text)


def paginate(items: Sequence[str], n: int | None, last: str | None) -> tuple[list[str], bool]:
    """Sorted ``items`` after ``last``, at most ``n`` of them; and whether more follow."""
    ordered = sorted(items)
    if last:
        ordered = [item for item in ordered if item > last]
    if n is None:
        return ordered, False
    return ordered[:n], len(ordered) > n


def next_link(path: str, n: int, last: str) -> str:
    """The RFC 5988 ``Link`` header value pointing at the next page."""
    query = urllib.parse.urlencode({"n": n, "last": last})
    return f'<{path}?{query}>; rel="next"'


def accepted_types(values: Iterable[str]) -> frozenset[str]:
    """Media types named in ``Accept`` header values (several headers, comma lists, params dropped).

    Entries with ``q=0`` are left out. ``*/*`` and ``type/*`` stay as written.
    """
    found: set[str] = set()
    for value in values:
        for item in value.split(","):
            media, _, params = item.partition(";")
            media = media.strip().lower()
            if not media:
                continue
            refused = False
            for param in params.split(";"):
                key, _, val = param.partition("=")
                if key.strip().lower() == "q":
                    with contextlib.suppress(ValueError):
                        refused = float(val.strip()) == 0
            if not refused:
                found.add(media)
    return frozenset(found)


def _accepts(accept: frozenset[str], media_type: str) -> bool:
    if not accept or "*/*" in accept or media_type in accept:
        return True
    major = media_type.split("/", 1)[0]
    return f"{major}/*" in accept


def choose_manifest(
    root: Manifest | Index,
    children: Mapping[Digest, Manifest | Index],
    accept: frozenset[str],
) -> Manifest | Index | None:
    """What to answer a manifest request by tag whose image is ``root``.

    A client that sends no ``Accept`` or accepts the root's media type gets the
    root. A client that does not accept an index pointing at an index gets, as
    distribution does, the linux/amd64 image manifest when the archive holds
    it, else the only image manifest when there is exactly one (attestations
    aside); otherwise None (404: the client must ask for the index). Image
    manifests are served whatever the client accepts: their bytes cannot be
    converted without changing the digest.
    """
    if isinstance(root, Manifest) or _accepts(accept, root.media_type):
        return root
    present: list[tuple[Descriptor, Manifest]] = []
    for desc in root.manifests:
        child = children.get(desc.digest)
        if isinstance(child, Manifest) and not desc.is_attestation:
            present.append((desc, child))
    for desc, child in present:
        plat = desc.platform
        if plat is not None and plat.os == "linux" and plat.architecture == "amd64":
            return child
    if len(present) == 1:
        return present[0][1]
    return None


def parse_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or a bare ``PORT`` (on 127.0.0.1) -> (host, port)."""
    value = text.strip()
    if value.isdigit():
        host, port_text = "127.0.0.1", value
    elif value.startswith("["):
        close = value.find("]")
        if close < 0 or value[close + 1 : close + 2] != ":":
            raise UsageError(f"invalid address {text!r}", hint="write [IPv6]:PORT, e.g. [::1]:5000")
        host, port_text = value[1:close], value[close + 2 :]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or ":" in host:
            raise UsageError(
                f"invalid address {text!r}: expected HOST:PORT",
                hint="e.g. 127.0.0.1:5000, or 0.0.0.0:5000 to listen on every interface",
            )
    if not host:
        raise UsageError(
            f"invalid address {text!r}: no host",
            hint="name the interface: 127.0.0.1:PORT (this machine only) or 0.0.0.0:PORT (all)",
        )
    if not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"invalid address {text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def repository_aliases(ref: Reference) -> list[str]:
    """Repository names an image is served under: its path first, then aliases."""
    names = [ref.repository]
    if ref.registry == DOCKER_HUB and ref.repository.startswith("library/"):
        names.append(ref.repository.removeprefix("library/"))
    full = f"{ref.registry}/{ref.repository}"
    if _NAME_RE.match(full):
        names.append(full)
    return names


# --------------------------------------------------------------------------------------------
# What is served: repositories, tags, manifests and blobs from every archive.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedImage:
    """One tag (or untagged digest) being served, for the start-up listing."""

    repository: str
    tag: str | None
    digest: Digest
    media_type: str
    archive: str

    def name(self, host: str) -> str:
        suffix = f":{self.tag}" if self.tag else f"@{self.digest}"
        return f"{host}/{self.repository}{suffix}"


@dataclass
class _Repository:
    name: str
    tags: dict[str, Manifest | Index] = field(default_factory=dict)
    manifests: dict[Digest, Manifest | Index] = field(default_factory=dict)
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)


@dataclass
class Catalog:
    """Everything the server answers from, built once at start-up (read-only afterwards)."""

    repositories: dict[str, _Repository] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    blob_sources: dict[Digest, ImageSource] = field(default_factory=dict)
    images: list[ServedImage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def repository(self, name: str) -> _Repository | None:
        canonical = name if name in self.repositories else self.aliases.get(name)
        return self.repositories.get(canonical) if canonical else None


def catalog_of(archives: Sequence[tuple[str, ImageSource]]) -> Catalog:
    """Index the records of ``archives`` (label, source); a later archive wins a repository:tag."""
    catalog = Catalog()
    where: dict[tuple[str, str], str] = {}
    refs: dict[str, list[Reference]] = {}
    for label, source in archives:
        unnamed = 0
        for record in source.records:
            ref = record.reference
            if ref is None:
                unnamed += 1
                continue
            repo = catalog.repositories.setdefault(ref.repository, _Repository(ref.repository))
            refs.setdefault(ref.repository, []).append(ref)
            repo.manifests[record.root.digest] = record.root
            repo.manifests.update(record.children)
            for desc in record.blobs():
                repo.blobs.setdefault(desc.digest, desc)
                if desc.digest not in catalog.blob_sources and source.has_blob(desc.digest):
                    catalog.blob_sources[desc.digest] = source
            if ref.tag:
                old = repo.tags.get(ref.tag)
                if old is not None and old.digest != record.root.digest:
                    catalog.warnings.append(
                        f"{ref.repository}:{ref.tag} is in {where[(ref.repository, ref.tag)]} "
                        f"and in {label}: serving the one from {label}"
                    )
                repo.tags[ref.tag] = record.root
                where[(ref.repository, ref.tag)] = label
                catalog.images = [
                    i for i in catalog.images if (i.repository, i.tag) != (ref.repository, ref.tag)
                ]
            served = ServedImage(
                ref.repository, ref.tag, record.root.digest, record.root.media_type, label
            )
            if served not in catalog.images:
                catalog.images.append(served)
        if unnamed:
            noun = "image has" if unnamed == 1 else "images have"
            catalog.warnings.append(
                f"{label}: {unnamed} {noun} no repository name in the archive and cannot be "
                "served (a bare tag such as 'latest' names no repository)"
            )
    for name in sorted(refs):
        for ref in refs[name]:
            for alias in repository_aliases(ref)[1:]:
                if alias not in catalog.repositories:
                    catalog.aliases.setdefault(alias, name)
    missing = {
        digest
        for repo in catalog.repositories.values()
        for digest, desc in repo.blobs.items()
        if digest not in catalog.blob_sources and not desc.urls
    }
    if missing:
        noun = "blob is" if len(missing) == 1 else "blobs are"
        catalog.warnings.append(
            f"{len(missing)} {noun} referenced but in none of the archives; "
            "requests for them get 404 BLOB_UNKNOWN"
        )
    return catalog


# --------------------------------------------------------------------------------------------
# The HTTP side.
# --------------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client closed the connection mid-response."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        catalog: Catalog,
        log: Callable[[str], None] | None,
    ) -> None:
        self.address_family = family
        self.catalog = catalog
        self.log = log
        self._log_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Condition()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (getfqdn), which can hang for
        # a long time on a machine without name service; the name is never used here.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            with self._conn_lock:
                self._connections.discard(request)
                self._conn_lock.notify_all()

    def close_connections(self) -> None:
        """Wake every connection's thread (idle keep-alive or mid-transfer) so it ends."""
        with self._conn_lock:
            live = list(self._connections)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until no connection is open; True when none is."""
        with self._conn_lock:
            return self._conn_lock.wait_for(lambda: not self._connections, timeout)

    def write_log(self, line: str) -> None:
        if self.log is not None:
            with self._log_lock:
                self.log(line)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line, never a traceback, for what escaped a request's handling.

        What gets here is mostly a client that went away while the standard
        library was still talking to it (half a request, then the connection
        closed or the server shut down): that is expected and is not logged.
        """
        exc = sys.exc_info()[1]
        if exc is None or isinstance(exc, _DISCONNECTED):
            return
        host = client_address[0] if isinstance(client_address, tuple) else client_address
        self.write_log(f"{host} error: {type(exc).__name__}: {exc}")


#: how a client's going away shows while reading or writing its connection
_DISCONNECTED = (
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    TimeoutError,
    _ClientGone,
)


def _error_body(code: str, message: str, detail: Any = None) -> bytes:
    entry: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"sneaker/{__version__}"
    timeout = IDLE_TIMEOUT
    server: _HTTPServer

    # -- plumbing --------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self._sent = 0
        self._status = 0
        self._started = time.monotonic()

    def version_string(self) -> str:
        return self.server_version

    def handle_expect_100(self) -> bool:
        # Never invite a request body: every method that has one is refused.
        return True

    def log_message(self, format: str, *args: Any) -> None:
        self.server.write_log(f"{self.client_address[0]} {format % args}")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Requests are logged once complete (with bytes sent) by _finish_log.
        pass

    def _finish_log(self) -> None:
        took = time.monotonic() - self._started
        self.server.write_log(
            f'{self.client_address[0]} "{self.requestline}" {self._status} {self._sent} '
            f"{took * 1000:.0f}ms"
        )

    def _begin(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        self._status = status
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header(*API_VERSION_HEADER)
        for key, value in headers:
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _write(self, data: bytes | memoryview) -> None:
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            raise _ClientGone() from exc
        self._sent += len(data)

    def _send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str,
        head: bool,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
        self._begin(status, headers)
        if not head:
            self._write(body)

    def _send_json(
        self, status: int, value: Any, head: bool, extra: Sequence[tuple[str, str]] = ()
    ) -> None:
        body = json.dumps(value).encode()
        self._send_bytes(status, body, "application/json", head, extra)

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        head: bool,
        detail: Any = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        body = _error_body(code, message, detail)
        self._send_bytes(status, body, "application/json", head, extra)

    def _run(self, head: bool, action: Callable[[bool], None]) -> None:
        self._started = time.monotonic()
        self._sent = 0
        self._status = 0
        try:
            action(head)
        except _ClientGone:
            self.close_connection = True
        except Exception as exc:  # a bug or an unreadable archive: answer 500 if we still can
            self.close_connection = True
            message = exc.message if isinstance(exc, SneakerError) else f"{type(exc).__name__}"
            self.server.write_log(f"{self.client_address[0]} error: {message}")
            if not self._status:
                with contextlib.suppress(_ClientGone, OSError):
                    self._error(500, "UNKNOWN", f"internal error: {message}", head)
        finally:
            self._finish_log()

    # -- methods ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._run(False, self._dispatch)

    def do_HEAD(self) -> None:
        self._run(True, self._dispatch)

    def _refuse(self, head: bool) -> None:
        self.close_connection = True  # any request body stays unread
        self._error(
            405,
            "UNSUPPORTED",
            _READ_ONLY,
            head,
            detail={"method": self.command},
            extra=[("Allow", _ALLOWED)],
        )

    def do_POST(self) -> None:
        self._run(False, self._refuse)

    def do_PUT(self) -> None:
        self._run(False, self._refuse)

    def do_PATCH(self) -> None:
        self._run(False, self._refuse)

    def do_DELETE(self) -> None:
        self._run(False, self._refuse)

    def do_OPTIONS(self) -> None:
        def answer(head: bool) -> None:
            self._send_bytes(200, b"", "text/plain", head, [("Allow", _ALLOWED)])

        self._run(False, answer)

    # -- routes ----------------------------------------------------------------------------

    def _dispatch(self, head: bool) -> None:
        r = route(self.path)
        catalog = self.server.catalog
        if r.kind == "base":
            self._send_json(200, {}, head)
            return
        if r.kind == "catalog":
            self._list(head, "/v2/_catalog", "repositories", list(catalog.repositories), r)
            return
        if r.kind == "bad-name":
            self._error(
                400, "NAME_INVALID", "invalid repository name", head, detail={"name": r.name}
            )
            return
        if r.kind == "unknown":
            self._error(
                404,
                "UNSUPPORTED",
                f"no such endpoint: {urllib.parse.urlsplit(self.path).path}",
                head,
            )
            return
        if r.kind == "upload":
            self._refuse(head)
            return
        repo = catalog.repository(r.name)
        if repo is None:
            self._error(
                404,
                "NAME_UNKNOWN",
                "repository name not known to registry",
                head,
                detail={"name": r.name},
            )
            return
        if r.kind == "tags":
            body_extra = {"name": r.name}
            self._list(head, f"/v2/{r.name}/tags/list", "tags", list(repo.tags), r, body_extra)
        elif r.kind == "manifest":
            self._manifest(head, repo, r)
        else:
            self._blob(head, repo, r)

    def _list(
        self,
        head: bool,
        path: str,
        key: str,
        items: list[str],
        r: Route,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            n = parse_page_size(r.query.get("n"))
        except UsageError as exc:
            self._error(
                400, "PAGINATION_NUMBER_INVALID", exc.message, head, detail={"n": r.query.get("n")}
            )
            return
        page, more = paginate(items, n, r.query.get("last") or None)
        body = {**(extra_body or {}), key: page}
        headers: list[tuple[str, str]] = []
        if more and n and page:
            headers.append(("Link", next_link(path, n, page[-1])))
        self._send_json(200, body, head, headers)

    def _manifest(self, head: bool, repo: _Repository, r: Route) -> None:
        found: Manifest | Index | None
        if ":" in r.reference:
            try:
                digest = Digest.parse(r.reference)
            except InvalidDigest as exc:
                self._error(
                    400, "DIGEST_INVALID", exc.message, head, detail={"digest": r.reference}
                )
                return
            found = repo.manifests.get(digest)
            if found is None:
                self._error(
                    404,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                    head,
                    detail={"name": repo.name, "digest": str(digest)},
                )
                return
        else:
            root = repo.tags.get(r.reference)
            if root is None:
                self._error(
                    404,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                    head,
                    detail={"name": repo.name, "tag": r.reference},
                )
                return
            accept = accepted_types(self.headers.get_all("Accept") or [])
            found = choose_manifest(root, repo.manifests, accept)
            if found is None:
                self._error(
                    404,
                    "MANIFEST_UNKNOWN",
                    f"{repo.name}:{r.reference} is an image index ({root.media_type}), "
                    "which the request's Accept header does not allow, and no single image "
                    "manifest stands in for it",
                    head,
                    detail={"name": repo.name, "tag": r.reference, "mediaType": root.media_type},
                )
                return
        digest_text = str(found.digest)
        etag = f'"{digest_text}"'
        headers = [("Docker-Content-Digest", digest_text), ("ETag", etag)]
        if etag in (self.headers.get("If-None-Match") or ""):
            self._begin(304, headers)
            return
        self._send_bytes(200, found.raw, found.media_type, head, headers)

    def _blob(self, head: bool, repo: _Repository, r: Route) -> None:
        try:
            digest = Digest.parse(r.reference)
        except InvalidDigest as exc:
            self._error(400, "DIGEST_INVALID", exc.message, head, detail={"digest": r.reference})
            return
        desc = repo.blobs.get(digest)
        source = self.server.catalog.blob_sources.get(digest) if desc is not None else None
        manifest = repo.manifests.get(digest)
        if source is None and manifest is None:
            self._error(
                404,
                "BLOB_UNKNOWN",
                "blob unknown to registry",
                head,
                detail={"name": repo.name, "digest": str(digest)},
            )
            return
        if source is not None and desc is not None:
            size = desc.size
        else:
            assert manifest is not None
            size = len(manifest.raw)
        etag = f'"{digest}"'
        common = [
            ("Docker-Content-Digest", str(digest)),
            ("ETag", etag),
            ("Accept-Ranges", "bytes"),
        ]
        if etag in (self.headers.get("If-None-Match") or ""):
            self._begin(304, common)
            return
        try:
            wanted = parse_range(self.headers.get("Range"), size)
        except RangeNotSatisfiable:
            self._error(
                416,
                "RANGE_INVALID",
                "requested range not satisfiable",
                head,
                detail={"size": size},
                extra=[("Content-Range", f"bytes */{size}"), *common],
            )
            return
        start, length = (wanted.start, wanted.length) if wanted else (0, size)
        status = 206 if wanted else 200
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(length)),
            *common,
        ]
        if wanted:
            headers.append(("Content-Range", wanted.content_range))
        if source is None or desc is None:
            assert manifest is not None  # a manifest asked for through the blob endpoint
            self._begin(status, headers)
            if not head:
                self._write(manifest.raw[start : start + length])
            return
        if head:
            self._begin(status, headers)
            return
        path = source.blob_path(desc)
        if path is not None:
            with open(path, "rb") as fileobj:
                self._begin(status, headers)
                self._sendfile(fileobj, start, length)
            return
        with source.open_blob(desc) as stream:
            self._begin(status, headers)
            self._copy(stream, desc, start, length)

    def _sendfile(self, fileobj: BinaryIO, start: int, length: int) -> None:
        """Send ``length`` bytes of a real file from ``start`` (``sendfile`` in the kernel)."""
        if not length:
            return
        try:
            sent = self.connection.sendfile(fileobj, start, length)
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            raise _ClientGone() from exc
        self._sent += sent
        if sent != length:
            self.close_connection = True  # the file shrank: the client sees a short body

    def _copy(self, stream: BinaryIO, desc: Descriptor, start: int, length: int) -> None:
        """Send ``length`` bytes of ``stream`` from ``start``, 1 MiB at a time."""
        if not length:
            return
        if start:
            stream.seek(start)
        readinto = cast(io.RawIOBase, stream).readinto
        buf = memoryview(bytearray(min(CHUNK, length)))
        remaining = length
        while remaining > 0:
            n = readinto(buf[: min(CHUNK, remaining)])
            if not n:
                self.close_connection = True  # the client sees a short body
                self.server.write_log(f"blob {desc.digest}: archive ended {remaining} bytes early")
                return
            self._write(buf[:n])
            remaining -= n


# --------------------------------------------------------------------------------------------
# The public object.
# --------------------------------------------------------------------------------------------


class RegistryServer:
    """A bound, read-only registry over some archives; not serving until started.

    ``serve_forever()`` serves in the calling thread; ``start()`` in a daemon
    thread. ``shutdown()`` stops either, closes open connections and the
    archives; it is safe to call twice. As a context manager the server starts
    in the background on entry and shuts down on exit.
    """

    def __init__(
        self,
        archives: Sequence[tuple[str, ImageSource]],
        addr: str = DEFAULT_ADDR,
        *,
        log: Callable[[str], None] | None = None,
        closers: Sequence[Callable[[], None]] = (),
    ) -> None:
        host, port = parse_addr(addr)
        self.catalog = catalog_of(archives)
        self._closers = list(closers)
        family = _family(host)
        try:
            self._httpd = _HTTPServer((host, port), family, self.catalog, log)
        except OSError as exc:
            raise NetworkError(
                f"cannot listen on {addr}: {exc.strerror or exc}", hint=_listen_hint(exc, port)
            ) from None
        bound = self._httpd.server_address
        self._address = (str(bound[0]), int(bound[1]))
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()  # set once serving started (and never cleared)
        self._closed = False
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on (the real port when 0 was asked for)."""
        return self._address

    @property
    def host(self) -> str:
        """``HOST:PORT`` as it goes in image references (``127.0.0.1:5000/library/x:1``)."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def images(self) -> list[ServedImage]:
        return list(self.catalog.images)

    @property
    def warnings(self) -> list[str]:
        return list(self.catalog.warnings)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve in the calling thread until :meth:`shutdown` is called from another one."""
        self._claim()
        self._httpd.serve_forever(poll_interval)

    def start(self) -> RegistryServer:
        """Serve in a background (daemon) thread; returns self."""
        self._claim()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"sneaker-serve {self.host}", daemon=True
        )
        self._thread.start()
        return self

    def _claim(self) -> None:
        with self._lock:
            if self._closed:
                raise UsageError("this server has been shut down")
            if self._serving.is_set():
                raise UsageError("this server is already serving")
            self._serving.set()

    def shutdown(self) -> None:
        """Stop serving, close open connections, then the archives. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._serving.is_set():
            self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd.wait_idle(timeout=10)
        for close in self._closers:
            with contextlib.suppress(Exception):
                close()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def _listen_hint(exc: OSError, port: int) -> str | None:
    if exc.errno == errno.EADDRINUSE:
        return "another program listens there: pick another port with --addr HOST:PORT"
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return "ports below 1024 need privileges: pick another port with --addr HOST:PORT"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "that is not an address of this machine: use 127.0.0.1 or 0.0.0.0"
    return None


def _family(host: str) -> socket.AddressFamily:
    if ":" in host:
        return socket.AF_INET6
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve listen address {host!r}: {exc.strerror}") from None
    families = [info[0] for info in infos]
    return socket.AF_INET if socket.AF_INET in families or not families else families[0]


def serve(
    paths: Sequence[str | os.PathLike[str]],
    addr: str = DEFAULT_ADDR,
    *,
    log: Callable[[str], None] | None = None,
) -> RegistryServer:
    """Open ``paths`` (archives, layouts, split sets) and bind a read-only registry at ``addr``.

    The server is bound but not serving: call ``serve_forever()`` or ``start()``,
    or use it as a context manager. ``log`` receives one line per request.
    An address that cannot be bound (in use, not this machine's) raises
    :class:`~sneaker.errors.NetworkError`.
    """
    if not paths:
        raise UsageError("no archive to serve", hint="name at least one: sneaker serve images.tar")
    opened: list[tuple[str, ImageSource]] = []
    closers: list[Callable[[], None]] = []
    try:
        for path in paths:
            source = open_archive(Path(path))
            opened.append((str(path), source))
            close = getattr(source, "close", None)
            if callable(close):
                closers.append(close)
        return RegistryServer(opened, addr, log=log, closers=closers)
    except BaseException:
        for close in closers:
            with contextlib.suppress(Exception):
                close()
        raise
