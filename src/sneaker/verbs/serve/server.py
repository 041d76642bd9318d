"""The HTTP side of ``serve``: connections, writing replies, and :class:`RegistryServer`.

The server is the standard library's ``HTTPServer`` (HTTP/1.1 keep-alive) with
its connections handed to a bounded :class:`~.pool.WorkerPool`
(``max_connections``, 64 by default). When every worker is busy the listener
stops accepting, so new connections wait in the kernel's accept backlog, and a
keep-alive connection idle for a second or more is closed to make room (HTTP
clients reopen one; docker, containerd and skopeo do). No client holds a worker
for long without sending: the request head (request line and headers) must be
complete ``request_timeout`` seconds (30) after its first byte, and a TLS
handshake within the same time; an idle keep-alive connection is closed after
``IDLE_TIMEOUT`` seconds.

Each accepted socket gets ``TCP_NODELAY``, and a reply's status line, headers and
body go out through one 64 KiB write buffer: a manifest, a config or an error
leaves in one ``send``, never as a small second write held back until the
client acknowledges the first (which cost every request on a reused connection
about 40 ms).

With a TLS context (``--tls-cert``/``--tls-key``, see :mod:`.tls`) every
connection is TLS, its handshake done on its worker. Without one, a client
that opens with a TLS ClientHello gets one log line and a short HTTP 400.

Each request goes through one path, :meth:`_Handler._answer`: the route table
picks the handler (:func:`.routes.resolve`), the handler returns a
:class:`~.answers.Reply` or raises a :class:`~.answers.DistributionError`, and
the reply is written here (a blob streamed with ``sendfile`` or 1 MiB reads).
Anything else a handler raises is a 500 and one log line, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import TracebackType
from typing import Any, BinaryIO, cast

from ... import __version__
from ...archive import open_archive
from ...errors import NetworkError, SneakerError, UsageError
from ...image.model import Descriptor
from ...image.records import ImageSource
from . import tls as tls_side
from .answers import BlobBody, DistributionError, Reply
from .catalog import Catalog, ServedImage, catalog_of
from .handlers import Request
from .pool import WorkerPool
from .protocol import parse_addr
from .routes import resolve

__all__ = ["DEFAULT_ADDR", "DEFAULT_MAX_CONNECTIONS", "RegistryServer", "serve"]

DEFAULT_ADDR = "127.0.0.1:5000"
CHUNK = 1 << 20
#: idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT = 120.0
#: a request head (and a TLS handshake) must be complete this long after its first byte.
REQUEST_TIMEOUT = 30.0
#: how long one write of a reply may wait for the client to read.
WRITE_TIMEOUT = 120.0
#: connections served at once: several clients pulling in parallel (docker takes 3 to 6
#: connections for a pull, skopeo and sneaker a few more).
DEFAULT_MAX_CONNECTIONS = 64
#: a reply up to this size (status line and headers included) leaves in one write.
SMALL_REPLY = 64 * 1024
#: with every worker busy, a keep-alive connection idle this long is closed to make room.
IDLE_BEFORE_CLOSE = 1.0
#: how often the listener looks for room while every worker is busy.
ADMIT_POLL = 0.1
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")


class _ClientGone(Exception):
    """The client closed the connection mid-response."""


class _SlowRequest(Exception):
    """A request head not complete in time (a slowloris, or a stalled client)."""


class _Connection:
    """What the server knows of one open connection: its socket, and since when it is idle."""

    __slots__ = ("closed", "idle_since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle_since: float | None = None  # waiting for a request since (monotonic)
        self.closed = False  # shut down by the server to make room or to stop

    def shut(self) -> None:
        """Wake its worker: reads and writes fail or see the end. The socket's own
        ``shutdown`` is bypassed: ``SSLSocket.shutdown`` drops the TLS state a reading
        thread still uses."""
        self.closed = True
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


class _HTTPServer(HTTPServer):
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        catalog: Catalog,
        log: Callable[[str], None] | None,
        *,
        tls: ssl.SSLContext | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.address_family = family
        self.catalog = catalog
        self.log = log
        self.tls = tls
        self.request_timeout = request_timeout
        self._log_lock = threading.Lock()
        self._connections: dict[socket.socket, _Connection] = {}
        self._conn_lock = threading.Condition()
        self._stopping = threading.Event()
        self.workers = WorkerPool(max_connections, "sneaker-serve")
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (getfqdn), which can hang for
        # a long time on a machine without name service; the name is never used here.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    # -- connections ---------------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a worker, once one is free (see :meth:`_admit`)."""
        if not self._admit():
            self.shutdown_request(request)
            return
        with self._conn_lock:
            self._connections[request] = _Connection(request)
        self.workers.run(lambda: self._serve_connection(request, client_address))

    def _admit(self) -> bool:
        """Wait for a free worker, closing the longest idle keep-alive connection (idle a
        second or more) while there is none; False if the server stops meanwhile. The
        listener accepts nothing meanwhile: new connections wait in the backlog."""
        while not self.workers.reserve(timeout=ADMIT_POLL):
            if self._stopping.is_set():
                return False
            self._close_longest_idle()
        return True

    def _close_longest_idle(self) -> bool:
        now = time.monotonic()
        with self._conn_lock:
            idle = [
                conn
                for conn in self._connections.values()
                if conn.idle_since is not None
                and not conn.closed
                and now - conn.idle_since >= IDLE_BEFORE_CLOSE
            ]
            if not idle:
                return False
            min(idle, key=lambda conn: conn.idle_since or now).shut()
            return True

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        """A worker's job: one connection, from TCP options and TLS handshake to its close."""
        sock = request
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                secured = self._start_tls(request, client_address)
                if secured is None:
                    return
                sock = secured
            self.finish_request(sock, client_address)
        except Exception:
            self.handle_error(sock, client_address)
        finally:
            with self._conn_lock:
                self._connections.pop(sock, None)
                self._connections.pop(request, None)
                self._conn_lock.notify_all()
            self.shutdown_request(sock)

    def _start_tls(self, request: socket.socket, client_address: Any) -> ssl.SSLSocket | None:
        """The connection's TLS socket once its handshake is done; None (the connection
        closed, after a log line when that says something) if it failed."""
        assert self.tls is not None
        with self._conn_lock:  # the socket changes hands: never half-tracked
            conn = self._connections.pop(request)
            tls = tls_side.wrap(request, self.tls)
            conn.sock = tls
            self._connections[tls] = conn
        try:
            if conn.closed:
                raise ConnectionAbortedError("closed by the server")
            tls_side.handshake(tls, self.request_timeout)
        except OSError as exc:
            problem = tls_side.handshake_problem(exc)
            if problem is not None:
                self.write_log(f"{_host(client_address)} {problem}")
            if problem == tls_side.PLAIN_ON_HTTPS:
                with contextlib.suppress(OSError):  # plain text on the TLS socket's descriptor
                    socket.socket.sendall(tls, tls_side.plain_http_answer(problem))
            with self._conn_lock:
                self._connections.pop(tls, None)
            self.shutdown_request(tls)
            return None
        return tls

    def set_idle(self, sock: socket.socket, idle: bool) -> bool:
        """Mark a connection idle (waiting for a request) or busy; False if the server
        closed it meanwhile (to make room, or to stop)."""
        with self._conn_lock:
            conn = self._connections.get(sock)
            if conn is None:
                return True  # not one the server tracks (a test's socket)
            conn.idle_since = time.monotonic() if idle else None
            return not conn.closed

    def shutdown(self) -> None:
        self._stopping.set()
        super().shutdown()

    def server_close(self) -> None:
        super().server_close()
        self.workers.stop()

    def close_connections(self) -> None:
        """Wake every connection's worker (idle keep-alive or mid-transfer) so it ends."""
        with self._conn_lock:
            for conn in self._connections.values():
                conn.shut()

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
        self.write_log(f"{_host(client_address)} error: {type(exc).__name__}: {exc}")


def _host(client_address: Any) -> str:
    return str(client_address[0] if isinstance(client_address, tuple) else client_address)


#: how a client's going away shows while reading or writing its connection
_DISCONNECTED = (
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    TimeoutError,
    ssl.SSLEOFError,
    _ClientGone,
)


class _Reader(io.RawIOBase):
    """A connection's reads: each waits at most until ``deadline`` when one is set (a
    request head under way), else ``IDLE_TIMEOUT`` (keep-alive)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            self._sock.settimeout(IDLE_TIMEOUT)
            return self._sock.recv_into(buffer)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _SlowRequest()
        self._sock.settimeout(left)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            raise _SlowRequest() from None


class _Sender(io.RawIOBase):
    """A connection's writes, each sent whole (under a write buffer of ``SMALL_REPLY``)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        return len(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"sneaker/{__version__}"
    server: _HTTPServer
    rfile: io.BufferedReader

    # -- plumbing --------------------------------------------------------------------------

    def setup(self) -> None:
        # StreamRequestHandler's files, but reads bounded by a deadline and replies
        # written through one buffer (see the module's doc)
        self.connection = self.request
        self._reader = _Reader(self.connection)
        self.rfile = io.BufferedReader(self._reader)
        self.wfile = io.BufferedWriter(_Sender(self.connection), SMALL_REPLY)
        self._first = True
        self._sent = 0
        self._status = 0
        self._started = time.monotonic()

    def finish(self) -> None:
        for stream in (self.wfile, self.rfile):
            with contextlib.suppress(OSError, ValueError):
                stream.close()  # the write buffer is sent first

    def handle_one_request(self) -> None:
        """Wait for a request (idle), then read and answer it, its head under a deadline."""
        if not self._await_request():
            self.close_connection = True
            return
        first, self._first = self._first, False
        self._reader.deadline = time.monotonic() + self.server.request_timeout
        try:
            plain = self.server.tls is None
            if first and plain and tls_side.looks_like_tls(self.rfile.peek(3)[:3]):
                self._answer_tls_client()
                return
            super().handle_one_request()
            self.wfile.flush()
        except _SlowRequest:
            self.close_connection = True
            self.server.write_log(
                f"{self.client_address[0]} request not complete "
                f"{self.server.request_timeout:g} s after its first byte: connection closed"
            )
        finally:
            self._reader.deadline = None

    def _await_request(self) -> bool:
        """Wait (idle) for the first byte of a request; False at the end of the connection,
        after the idle timeout, or when the server closed it to make room."""
        if not self.server.set_idle(self.connection, True):
            return False
        try:
            ready = bool(self.rfile.peek(1))
        except (OSError, ValueError):
            ready = False
        return self.server.set_idle(self.connection, False) and ready

    def _answer_tls_client(self) -> None:
        """A TLS ClientHello on the plain listener: one log line, a plain 400, the close."""
        self.close_connection = True
        self.server.write_log(f"{self.client_address[0]} {tls_side.HTTPS_ON_PLAIN}")
        with contextlib.suppress(OSError, _SlowRequest):
            # read the record first: closing with it unread would reset the connection
            # before the client reads the answer
            self.rfile.read(tls_side.tls_record_size(self.rfile.peek(5)[:5]))
            self.connection.settimeout(WRITE_TIMEOUT)
            self.wfile.write(tls_side.plain_http_answer(tls_side.HTTPS_ON_PLAIN))
            self.wfile.flush()

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
        self._reader.deadline = None  # the head is read: no body is ever read
        self.connection.settimeout(WRITE_TIMEOUT)
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
            self.wfile.flush()  # the status line and headers, waiting in the write buffer
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

    ``tls`` (a server context, :func:`.tls.server_context`) makes every
    connection HTTPS. ``max_connections`` connections are served at once;
    ``request_timeout`` bounds a request head and a TLS handshake.
    """

    def __init__(
        self,
        archives: Sequence[tuple[str, ImageSource]],
        addr: str = DEFAULT_ADDR,
        *,
        log: Callable[[str], None] | None = None,
        closers: Sequence[Callable[[], None]] = (),
        tls: ssl.SSLContext | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        host, port = parse_addr(addr)
        if max_connections < 1:
            raise UsageError(f"--max-connections must be 1 or more, not {max_connections}")
        self.catalog = catalog_of(archives)
        self._closers = list(closers)
        self._scheme = "http" if tls is None else "https"
        family = _family(host)
        try:
            self._httpd = _HTTPServer(
                (host, port),
                family,
                self.catalog,
                log,
                tls=tls,
                max_connections=max_connections,
                request_timeout=request_timeout,
            )
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
        """``http://HOST:PORT``, or ``https://`` with TLS."""
        return f"{self._scheme}://{self.host}"

    @property
    def tls(self) -> bool:
        return self._scheme == "https"

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
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> RegistryServer:
    """Open ``paths`` (archives, layouts, split sets) and bind a read-only registry at ``addr``.

    The server is bound but not serving: call ``serve_forever()`` or ``start()``,
    or use it as a context manager. ``log`` receives one line per request.
    With ``tls_cert`` and ``tls_key`` (PEM files: the certificate chain, its
    private key) it serves HTTPS only. An address that cannot be bound (in use,
    not this machine's) raises :class:`~sneaker.errors.NetworkError`.
    """
    if not paths:
        raise UsageError("no archive to serve", hint="name at least one: sneaker serve images.tar")
    context = None
    if (tls_cert is None) != (tls_key is None):
        given, missing = (
            ("--tls-cert", "--tls-key") if tls_key is None else ("--tls-key", "--tls-cert")
        )
        raise UsageError(f"{given} needs {missing}", hint="give both: the certificate and its key")
    if tls_cert is not None and tls_key is not None:
        context = tls_side.server_context(tls_cert, tls_key)
    opened: list[tuple[str, ImageSource]] = []
    closers: list[Callable[[], None]] = []
    try:
        for path in paths:
            source = open_archive(Path(path))
            opened.append((str(path), source))
            close = getattr(source, "close", None)
            if callable(close):
                closers.append(close)
        return RegistryServer(
            opened,
            addr,
            log=log,
            closers=closers,
            tls=context,
            max_connections=max_connections,
        )
    except BaseException:
        for close in closers:
            with contextlib.suppress(Exception):
                close()
        raise
