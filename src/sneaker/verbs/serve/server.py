"""The HTTP side of ``serve``: connections, writing replies, and :class:`RegistryServer`.

The server is the standard library's ``ThreadingHTTPServer`` (a thread per
connection, HTTP/1.1 keep-alive). Each request goes through one path,
:meth:`_Handler._answer`: the route table picks the handler
(:func:`.routes.resolve`), the handler returns a :class:`~.answers.Reply` or
raises a :class:`~.answers.DistributionError`, and the reply is written here
(a blob streamed with ``sendfile`` or 1 MiB reads). Anything else a handler
raises is a 500 and one log line, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import TracebackType
from typing import Any, BinaryIO, cast

from ... import __version__
from ...archive import open_archive
from ...errors import NetworkError, SneakerError, UsageError
from ...image.model import Descriptor
from ...image.records import ImageSource
from .answers import BlobBody, DistributionError, Reply
from .catalog import Catalog, ServedImage, catalog_of
from .handlers import Request
from .protocol import parse_addr
from .routes import resolve

__all__ = ["DEFAULT_ADDR", "RegistryServer", "serve"]

DEFAULT_ADDR = "127.0.0.1:5000"
CHUNK = 1 << 20
#: idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT = 120.0
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")


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

    def _answer(self) -> None:
        """Answer the request: the reply of its route's handler, or the error it raised."""
        self._started = time.monotonic()
        self._sent = 0
        self._status = 0
        head = self.command == "HEAD"
        try:
            try:
                reply = self._handle()
            except DistributionError as refused:
                reply = refused.reply()
            self._send(reply, head)
        except _ClientGone:
            self.close_connection = True
        except Exception as exc:  # a bug or an unreadable archive: answer 500 if we still can
            self.close_connection = True
            message = exc.message if isinstance(exc, SneakerError) else f"{type(exc).__name__}"
            self.server.write_log(f"{self.client_address[0]} error: {message}")
            if not self._status:
                failed = DistributionError(500, "UNKNOWN", f"internal error: {message}")
                with contextlib.suppress(_ClientGone, OSError):
                    self._send(failed.reply(), head)
        finally:
            self._finish_log()

    #: every method the route table has a row for
    do_GET = do_HEAD = do_OPTIONS = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def _handle(self) -> Reply:
        found = resolve(self.command, self.path)
        assert found is not None, self.command  # only methods the table serves get here
        route, handler = found
        request = Request(
            self.command,
            self.path,
            route.name,
            route.reference,
            route.query,
            self.headers,
            self.server.catalog,
        )
        return handler(request)

    def _send(self, reply: Reply, head: bool) -> None:
        """Status and headers, then the body unless the request is a HEAD."""
        if reply.close:
            self.close_connection = True  # any request body stays unread
        if isinstance(reply.body, BlobBody) and not head:
            self._send_blob(reply.status, reply.headers, reply.body)
            return
        self._begin(reply.status, reply.headers)
        if isinstance(reply.body, bytes) and reply.body and not head:
            self._write(reply.body)

    def _send_blob(self, status: int, headers: Sequence[tuple[str, str]], body: BlobBody) -> None:
        """A blob from its archive: ``sendfile`` from a file of its own, else 1 MiB reads."""
        path = body.source.blob_path(body.desc)
        if path is not None:
            with open(path, "rb") as fileobj:
                self._begin(status, headers)
                self._sendfile(fileobj, body.start, body.length)
            return
        with body.source.open_blob(body.desc) as stream:
            self._begin(status, headers)
            self._copy(stream, body.desc, body.start, body.length)

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
