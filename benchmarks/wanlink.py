"""A wide-area link on loopback: latency, a shared bandwidth cap, and a log of the HTTP
that crossed it. A library for ``bench_wan.py``, not a script.

What the link models (one :class:`Link`, shared by every proxy in front of every host,
as a laptop's one access line is shared by every server it talks to):

* **Latency**: a one-way delay ``rtt / 2`` each way. Every chunk read from one side is
  stamped and released to the other side at its stamp plus the delay: a time-stamped
  queue (a delay line), so the delay adds latency and never caps throughput.
* **Connection set-up**: a new connection costs one round trip before its first byte
  flows, as a TCP handshake does (the client's first byte leaves ``rtt`` after the
  connect and arrives half a round trip later; a first request is answered ``2 * rtt``
  after the connect). A TLS handshake is bytes like any other, so it costs what it
  costs (one more round trip for TLS 1.3). Another host behind another proxy costs
  its own handshakes.
* **Bandwidth**: one token bucket per direction for the whole link (every connection
  of every proxy), first come, first served: a chunk waits until the link has carried
  what was queued before it. Each connection has at most one chunk (64 KiB) waiting
  besides the one going through, so parallel transfers share the link chunk by chunk.
  A small chunk (16 KiB at most: a request, a token, a manifest, a response head) from
  a connection with nothing queued skips the queue, as a sparse flow does under fq_codel
  (the default queueing discipline of systemd-based Linux): an answer does not wait
  behind the downloads on other connections, as it would in one long first-come,
  first-served queue. The bucket's depth (128 KiB, 5 ms at 200 Mbit/s) is the burst it
  allows after idling: it gives back the time the event loop wakes late on a busy
  machine, which a link that never bursts would lose at every chunk.
* **Window**: each connection has at most ``window`` bytes unacknowledged each way
  (sent and not yet acknowledged one delay after they arrived): one connection reaches
  ``window / rtt`` at most. The default, 6 MiB, is Linux's default ``tcp_rmem``
  maximum; at 200 Mbit/s it binds only above a 250 ms round trip.

What it does not model: packet loss and retransmission, TCP slow start (a fresh
connection here runs at full rate at once, where a real one needs a few round trips
to open its window: reusing warm connections matters even more on a real link than
here), jitter, DNS look-ups, and TLS session resumption.

What crossed the link is logged per connection (:class:`ConnRecord`): when it opened,
what its first bytes were (HTTP, a TLS hello, something else), bytes each way, and on
plain HTTP each request and its response (:class:`HttpSniffer` follows both streams).
Behind a :class:`TlsTerminator` the requests are read from the decrypted side.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

CHUNK = 64 * 1024
DEFAULT_WINDOW = 6 * 1024 * 1024
DEFAULT_DEPTH = 2 * CHUNK
SPARSE = 16 * 1024  # at most this much at once from an idle connection skips the queue
MBIT = 1_000_000 / 8  # bytes per second in one Mbit/s
_MAX_HEAD = 64 * 1024


# -- the link's pure parts ---------------------------------------------------------------


class TokenBucket:
    """Bytes through a link of ``rate`` bytes/s that bursts up to ``depth`` bytes when idle.

    :meth:`reserve` says when ``nbytes`` handed to the link at ``now`` have gone through:
    callers share the link first come, first served; a reservation may run the bucket
    into debt, which the next caller waits out. Depth 0 is a link that serializes every
    byte at the rate.
    """

    def __init__(self, rate: float, depth: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.rate = rate
        self.depth = depth
        self._tokens = depth
        self._stamp: float | None = None

    def reserve(self, nbytes: int, now: float, *, sparse: bool = False) -> float:
        """When the ``nbytes`` handed over at ``now`` have gone through (``>= now``).

        ``sparse`` bytes (a small answer on a connection with nothing queued) skip what
        is queued, as fq_codel serves a sparse flow first: they wait only for their own
        serialization, and what comes after them waits for them.
        """
        if self._stamp is not None:
            now = max(now, self._stamp)
            refill = (now - self._stamp) * self.rate
            self._tokens = min(self.depth, self._tokens + refill)
        self._stamp = now
        available = self._tokens
        self._tokens -= nbytes
        if sparse:
            return now + max(0.0, nbytes - max(available, 0.0)) / self.rate
        return now if self._tokens >= 0 else now - self._tokens / self.rate


@dataclass(frozen=True)
class Step:
    """One round trip a perfect client cannot avoid, and why."""

    what: str
    round_trips: int = 1


def perfect_round_trips(*, index: bool, token: bool, tls: bool) -> list[Step]:
    """The round trips a perfect client needs to pull any number of images from one
    registry in parallel: every image at once at each step, every connection it will need
    opened at once, config and layers of every image in one round.

    * connect to the registry (TCP, plus TLS 1.3 with ``tls``);
    * with ``token`` (Docker Hub, GHCR): the 401 that names the token service, a
      connection to that other host, and one token request for every repository (one
      request with several scopes, or all in parallel);
    * the index (with ``index``: a multi-platform image), the manifest, the blobs.
    """
    connect = [Step("TCP connect"), *([Step("TLS handshake")] if tls else [])]
    steps = list(connect)
    if token:
        steps.append(Step("401 naming the token service"))
        steps += [Step(f"{s.what} to the token service") for s in connect]
        steps.append(Step("token"))
    if index:
        steps.append(Step("index"))
    steps += [Step("manifest"), Step("config and layers")]
    return steps


def limit_seconds(round_trips: int, nbytes: int, rtt: float, rate: float) -> float:
    """The limit: ``round_trips`` times the round-trip time, plus ``nbytes`` at ``rate``."""
    return round_trips * rtt + nbytes / rate


# -- following HTTP/1.1 on one connection ------------------------------------------------


@dataclass
class Exchange:
    """One request seen on a connection and, once answered, its response.

    Times are as the client sees them: ``sent`` when the request head left the client,
    ``answered`` when the response head reached it, ``done`` when the last body byte did.
    """

    method: str
    target: str
    sent: float
    status: int | None = None
    answered: float | None = None
    done: float | None = None
    body: int = 0

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


def first_bytes_kind(data: bytes) -> str:
    """What a client's first bytes are: ``"tls"`` (a handshake record), ``"http"`` (a
    request line's method) or ``"other"``."""
    if data[:1] == b"\x16":
        return "tls"
    method = data.split(b" ", 1)[0]
    return "http" if method.isalpha() and method.isupper() else "other"


def _head_fields(lines: Iterable[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


class HttpSniffer:
    """Follows the HTTP/1.1 exchanges on one connection, from the bytes each way.

    :meth:`client_bytes` and :meth:`server_bytes` take what each side sent, in order,
    with the time to stamp it with. ``kind`` says what the client's first bytes were:
    ``"http"``, ``"tls"`` (a TLS hello), ``"other"``, or ``"none"`` (nothing yet). A
    stream it cannot follow (chunked uploads, protocol upgrades, garbage) is given up:
    ``kind`` becomes ``"lost"`` and the exchanges so far stay.
    """

    def __init__(self) -> None:
        self.kind = "none"
        self.exchanges: list[Exchange] = []
        self._pending: collections.deque[Exchange] = collections.deque()
        self._request = bytearray()
        self._request_body = 0
        self._response = bytearray()
        self._state = "head"  # head, length, chunk-size, chunk-data, trailer, close
        self._left = 0

    # -- requests -------------------------------------------------------------------

    def client_bytes(self, data: bytes, now: float) -> None:
        if self.kind == "none" and data:
            self.kind = first_bytes_kind(data)
        if self.kind != "http":
            return
        buf = self._request
        buf += data
        while buf:
            if self._request_body:
                take = min(self._request_body, len(buf))
                del buf[:take]
                self._request_body -= take
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._lose()
                return
            line, *lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            parts = line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._lose()
                return
            exchange = Exchange(parts[0], parts[1], now)
            self.exchanges.append(exchange)
            self._pending.append(exchange)
            fields = _head_fields(lines)
            if "transfer-encoding" in fields:
                self._lose()  # a chunked upload: not followed
                return
            try:
                self._request_body = int(fields.get("content-length") or 0)
            except ValueError:
                self._lose()
                return

    # -- responses ------------------------------------------------------------------

    def server_bytes(self, data: bytes, now: float) -> None:
        if self.kind != "http":
            return
        self._response += data
        while self.kind == "http" and self._step(now):
            pass

    def closed(self, now: float) -> None:
        """The server closed the connection: a response read until close ends here."""
        if self.kind == "http" and self._state == "close":
            self._finish(now)

    def _step(self, now: float) -> bool:
        """Consume what the buffer allows of the current state; False when it needs more."""
        buf = self._response
        state = self._state
        if state == "head":
            return self._response_head(now)
        if state in ("length", "chunk-data"):
            take = min(self._left, len(buf))
            if take == 0 and self._left:
                return False
            del buf[:take]
            self._left -= take
            if self._left:
                return False
            if state == "length":
                self._finish(now)
            else:
                self._state = "chunk-size"
            return True
        if state == "close":
            self._pending[0].body += len(buf)
            buf.clear()
            return False
        end = buf.find(b"\r\n")  # chunk-size, trailer
        if end < 0:
            if len(buf) > _MAX_HEAD:
                self._lose()
            return False
        line = bytes(buf[:end])
        del buf[: end + 2]
        if state == "trailer":
            if not line:
                self._finish(now)
            return True
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            self._lose()
            return False
        if size == 0:
            self._state = "trailer"
        else:
            self._pending[0].body += size
            self._state, self._left = "chunk-data", size + 2
        return True

    def _response_head(self, now: float) -> bool:
        buf = self._response
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                self._lose()
            return False
        if not self._pending:
            self._lose()  # an answer to no request
            return False
        line, *lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        parts = line.split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            self._lose()
            return False
        if status == 101:
            self._lose()
            return False
        if status < 200:
            return True  # 100 Continue and friends: the real answer follows
        exchange = self._pending[0]
        exchange.status, exchange.answered = status, now
        fields = _head_fields(lines)
        if exchange.method == "HEAD" or status in (204, 304):
            self._finish(now)
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            self._state = "chunk-size"
        elif "content-length" in fields:
            try:
                self._left = int(fields["content-length"])
            except ValueError:
                self._lose()
                return False
            exchange.body = self._left
            if self._left:
                self._state = "length"
            else:
                self._finish(now)
        else:
            self._state = "close"
        return True

    def _finish(self, now: float) -> None:
        self._pending.popleft().done = now
        self._state, self._left = "head", 0

    def _lose(self) -> None:
        self.kind = "lost"
        self._request.clear()
        self._response.clear()


# -- what crossed the link -------------------------------------------------------------


@dataclass
class ConnRecord:
    """One connection through a proxy. ``sniffer`` follows its HTTP: the proxy's own, or
    for a TLS connection the terminator's, which reads the decrypted side."""

    host: str
    opened: float
    sniffer: HttpSniffer = field(default_factory=HttpSniffer)
    kind: str = "none"  # the client's first bytes: http, tls, other, none
    up: int = 0
    down: int = 0
    closed: float | None = None

    @property
    def exchanges(self) -> list[Exchange]:
        return self.sniffer.exchanges


def request_kind(host: str, exchange: Exchange) -> str:
    """token, ping (``/v2/``), manifest, blob or other; `` HEAD`` added for HEADs."""
    path = exchange.path
    if host == "token":
        kind = "token"
    elif path.rstrip("/") == "/v2":
        kind = "ping"
    elif "/manifests/" in path:
        kind = "manifest"
    elif "/blobs/" in path:
        kind = "blob"
    else:
        kind = "other"
    return f"{kind} HEAD" if exchange.method == "HEAD" else kind


@dataclass
class Traffic:
    """What one run sent over the link; times in seconds since the run began."""

    connections: dict[str, int]
    idle_connections: int  # carried no HTTP request: a TLS probe, a hello to a plain server
    tls_hellos: int
    requests: dict[str, int]
    statuses: dict[int, int]
    max_in_flight: int
    first_request: float | None
    first_blob: float | None
    last_byte: float | None
    down_bytes: int
    up_bytes: int

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())


def summarize(records: Iterable[ConnRecord], start: float) -> Traffic:
    """The :class:`Traffic` of the connections ``records`` of a run that began at ``start``."""
    records = list(records)
    connections: collections.Counter[str] = collections.Counter()
    requests: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[int] = collections.Counter()
    events: list[tuple[float, int]] = []
    idle = hellos = down = up = 0
    first_request: float | None = None
    first_blob: float | None = None
    last_byte: float | None = None
    for record in records:
        connections[record.host] += 1
        down += record.down
        up += record.up
        hellos += record.kind == "tls"
        if not record.exchanges:
            idle += 1
        for exchange in record.exchanges:
            kind = request_kind(record.host, exchange)
            requests[kind] += 1
            if exchange.status is not None:
                statuses[exchange.status] += 1
            sent = exchange.sent - start
            first_request = sent if first_request is None else min(first_request, sent)
            if kind == "blob":
                first_blob = sent if first_blob is None else min(first_blob, sent)
            if exchange.done is not None:
                done = exchange.done - start
                last_byte = done if last_byte is None else max(last_byte, done)
                events += [(exchange.sent, 1), (exchange.done, -1)]
    in_flight = most = 0
    for _, delta in sorted(events):
        in_flight += delta
        most = max(most, in_flight)
    return Traffic(
        connections=dict(connections),
        idle_connections=idle,
        tls_hellos=hellos,
        requests=dict(requests),
        statuses=dict(statuses),
        max_in_flight=most,
        first_request=first_request,
        first_blob=first_blob,
        last_byte=last_byte,
        down_bytes=down,
        up_bytes=up,
    )


# -- the link and its proxies (asyncio) --------------------------------------------------


class Link:
    """The shared state: delay, the two token buckets (``up`` towards the servers,
    ``down`` towards the client), the window, and the connection log."""

    def __init__(
        self,
        rtt: float,
        rate: float | None,
        *,
        window: int = DEFAULT_WINDOW,
        depth: float = DEFAULT_DEPTH,
    ) -> None:
        self.window = window
        self.depth = depth
        self.records: list[ConnRecord] = []
        self.by_upstream: dict[tuple[str, int], ConnRecord] = {}
        self.configure(rtt, rate)

    def configure(self, rtt: float, rate: float | None) -> None:
        """A new round-trip time (seconds) and rate (bytes/s, None: unlimited); the
        buckets start empty of debt."""
        self.rtt = rtt
        self.delay = rtt / 2
        self.rate = rate
        self.up = TokenBucket(rate, self.depth) if rate else None
        self.down = TokenBucket(rate, self.depth) if rate else None


async def _sleep_until(when: float) -> None:
    delay = when - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Direction:
    """One direction of one proxied connection: a reader that hands chunks to the link
    and a writer that releases them, each at its time."""

    def __init__(
        self,
        link: Link,
        bucket: TokenBucket | None,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        not_before: float,
        on_read: Callable[[bytes, float], None],
        on_release: Callable[[bytes, float], None],
    ) -> None:
        self.link = link
        self.bucket = bucket
        self.source = source
        self.sink = sink
        self.not_before = not_before
        self.on_read = on_read
        self.on_release = on_release
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.unacked = 0
        self.window_open = asyncio.Event()
        self.window_open.set()

    def _acked(self, nbytes: int) -> None:
        self.unacked -= nbytes
        if self.unacked < self.link.window:
            self.window_open.set()

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        previous = 0.0  # when the link is through with the chunk before
        try:
            while True:
                await self.window_open.wait()
                data = await self.source.read(CHUNK)
                if not data:
                    break
                now = loop.time()
                if now < self.not_before:  # the handshake is not done yet
                    await _sleep_until(self.not_before)
                    now = self.not_before
                self.on_read(data, now)
                sparse = previous <= now and len(data) <= SPARSE
                sent = self.bucket.reserve(len(data), now, sparse=sparse) if self.bucket else now
                self.unacked += len(data)
                if self.unacked >= self.link.window:
                    self.window_open.clear()
                self.queue.put_nowait((sent + self.link.delay, data))
                # One chunk waits at the link while the one before it goes through: the
                # next read comes when that one is through (reading only when this one
                # is would lose the timer's lateness at every chunk).
                await _sleep_until(previous)
                previous = sent
        except OSError:
            pass  # a reset reads as the end of the stream
        finally:
            self.queue.put_nowait((loop.time() + self.link.delay, b""))

    async def write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            release, data = await self.queue.get()
            await _sleep_until(release)
            self.on_release(data, release)
            if not data:
                with contextlib.suppress(OSError):
                    if self.sink.can_write_eof():
                        self.sink.write_eof()
                return
            self.sink.write(data)
            await self.sink.drain()
            loop.call_at(release + self.link.delay, self._acked, len(data))


def _abort(*writers: asyncio.StreamWriter) -> None:
    for writer in writers:
        transport = writer.transport
        with contextlib.suppress(Exception):
            transport.abort()


async def _connect(
    upstream: tuple[str, int], client: asyncio.StreamWriter
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection to ``upstream`` (Nagle off), or None with ``client`` cut off."""
    try:
        reader, writer = await asyncio.open_connection(*upstream)
    except OSError:
        _abort(client)
        return None
    _nodelay(writer)
    return reader, writer


class _Servers:
    """The connections a server has open, so that a reset can cut them all."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    def track(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cut(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port


class DelayProxy(_Servers):
    """Listens on a free loopback port and forwards every connection to ``upstream``
    across ``link``; ``host`` labels its connections in the log (``"token"`` for a
    token service)."""

    def __init__(self, link: Link, host: str, upstream: tuple[str, int]) -> None:
        super().__init__()
        self.link = link
        self.host = host
        self.upstream = upstream

    async def start(self) -> DelayProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.track()
        loop = asyncio.get_running_loop()
        link = self.link
        record = ConnRecord(self.host, loop.time())
        link.records.append(record)
        upstream = await _connect(self.upstream, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        _nodelay(writer)
        local = up_writer.get_extra_info("sockname")
        link.by_upstream[(local[0], local[1])] = record

        sniffer = record.sniffer  # a TLS terminator puts its own in the record

        def client_read(data: bytes, now: float) -> None:
            record.up += len(data)
            sniffer.client_bytes(data, now)
            if record.kind == "none":
                record.kind = first_bytes_kind(data)

        def server_read(data: bytes, now: float) -> None:
            record.down += len(data)

        def client_receives(data: bytes, now: float) -> None:
            if data:
                sniffer.server_bytes(data, now)
            else:
                sniffer.closed(now)

        def ignore(data: bytes, now: float) -> None:
            pass

        towards_server = _Direction(
            link, link.up, reader, up_writer,
            not_before=record.opened + link.rtt, on_read=client_read, on_release=ignore,
        )  # fmt: skip
        towards_client = _Direction(
            link, link.down, up_reader, writer,
            not_before=record.opened, on_read=server_read, on_release=client_receives,
        )  # fmt: skip
        tasks = [
            asyncio.ensure_future(coro)
            for coro in (
                towards_server.read(),
                towards_server.write(),
                towards_client.read(),
                towards_client.write(),
            )
        ]
        try:
            await _until_done_or_failed(tasks)
        finally:
            record.closed = loop.time()
            for task in tasks:
                task.cancel()
            _abort(writer, up_writer)


async def _until_done_or_failed(tasks: Sequence[asyncio.Future[None]]) -> None:
    """Wait for every task, or for the first to fail (a reset: the caller cuts the rest)."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                return


class TlsTerminator(_Servers):
    """A TLS server on a free loopback port that forwards the decrypted stream to
    ``upstream`` (plain HTTP) at once. Put behind a :class:`DelayProxy`, it is the far
    end of the link: the handshake crosses the delay, and the requests are read here,
    into the proxy's record of the connection (times shifted by the one-way delay, to
    approximate the client's view)."""

    def __init__(self, link: Link, upstream: tuple[str, int], context: ssl.SSLContext) -> None:
        super().__init__()
        self.link = link
        self.upstream = upstream
        self.context = context

    async def start(self) -> TlsTerminator:
        self.server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self.context, ssl_handshake_timeout=30
        )
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.track()
        link = self.link
        peer = writer.get_extra_info("peername")
        record = link.by_upstream.get((peer[0], peer[1]))
        sniffer = HttpSniffer()
        if record is not None:
            record.sniffer = sniffer
        upstream = await _connect(self.upstream, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, client: bool
        ) -> None:
            loop = asyncio.get_running_loop()
            try:
                while data := await source.read(CHUNK):
                    if client:
                        sniffer.client_bytes(data, loop.time() - link.delay)
                    else:
                        sniffer.server_bytes(data, loop.time() + link.delay)
                    sink.write(data)
                    await sink.drain()
                if not client:
                    sniffer.closed(loop.time() + link.delay)
                if sink.can_write_eof():
                    sink.write_eof()
            except OSError:
                pass

        tasks = [
            asyncio.ensure_future(pump(reader, up_writer, True)),
            asyncio.ensure_future(pump(up_reader, writer, False)),
        ]
        try:
            await _until_done_or_failed(tasks)
        finally:
            for task in tasks:
                task.cancel()
            _abort(writer, up_writer)


class Network:
    """The link and its proxies, served by an event loop in a thread of its own, driven
    from the caller's thread."""

    def __init__(self, rtt: float, rate: float | None, *, window: int = DEFAULT_WINDOW) -> None:
        self.link = Link(rtt, rate, window=window)
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, context: None)  # failed TLS probes
        self._servers: list[_Servers] = []
        self._thread = threading.Thread(target=self._serve, name="wan-link", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the link's loop; its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def proxy(self, host: str, upstream_port: int, *, tls: ssl.SSLContext | None = None) -> int:
        """A proxy across the link to ``127.0.0.1:upstream_port``, labelled ``host``; with
        ``tls``, a TLS server at the far end in front of the (plain) upstream. Its port."""

        async def start() -> int:
            target = ("127.0.0.1", upstream_port)
            if tls is not None:
                terminator = await TlsTerminator(self.link, target, tls).start()
                self._servers.append(terminator)
                target = ("127.0.0.1", terminator.port)
            proxy = await DelayProxy(self.link, host, target).start()
            self._servers.append(proxy)
            return proxy.port

        return self.call(start())

    def configure(self, rtt: float, rate: float | None) -> None:
        async def configure() -> None:
            self.link.configure(rtt, rate)

        self.call(configure())

    def reset(self) -> None:
        """Cut every open connection and forget the log: the next run starts cold."""

        async def reset() -> None:
            for server in self._servers:
                server.cut()
            await asyncio.sleep(0)
            self.link.records = []
            self.link.by_upstream = {}

        self.call(reset())

    def records(self) -> list[ConnRecord]:
        async def records() -> list[ConnRecord]:
            return list(self.link.records)

        return self.call(records())

    def stop(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()

        with contextlib.suppress(Exception):
            self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


# -- calibration: the link measured by itself ---------------------------------------------


@dataclass(frozen=True)
class Calibration:
    rtt: float
    rate: float | None
    first_echo: float  # connect, then 1 byte there and back: expected 2 RTT
    echo: float  # median 1-byte round trip on the open connection: expected 1 RTT
    bulk_bytes: int
    bulk: float  # connect, ask, receive bulk_bytes: expected 2 RTT + bytes / rate
    parallel: int
    parallel_time: float  # as many connections sharing bulk_bytes: the same
    busy_echo: float  # median 1-byte round trip while they download: 1 RTT

    def expected_bulk(self) -> float:
        return 2 * self.rtt + (self.bulk_bytes / self.rate if self.rate else 0.0)

    def lines(self) -> list[str]:
        """Table rows: round-trip time, measure, measured, expected."""
        rtt_ms = self.rtt * 1000
        mb = self.bulk_bytes / 1e6
        rows = [
            ("new connection, 1 byte there and back", f"{self.first_echo * 1000:.1f} ms",
             f"{2 * rtt_ms:.1f} ms (2 RTT)"),
            ("1 byte there and back, open connection (median of 10)",
             f"{self.echo * 1000:.1f} ms", f"{rtt_ms:.1f} ms (1 RTT)"),
            (f"{mb:.0f} MB on one new connection", f"{self.bulk:.3f} s",
             f"{self.expected_bulk():.3f} s (2 RTT + bytes at the rate)"),
            (f"{mb:.0f} MB over {self.parallel} new connections at once",
             f"{self.parallel_time:.3f} s", f"{self.expected_bulk():.3f} s (one shared link)"),
            ("1 byte there and back meanwhile (median of 5)", f"{self.busy_echo * 1000:.1f} ms",
             f"{rtt_ms:.1f} ms (1 RTT: it skips the queue)"),
        ]  # fmt: skip
        return [f"| {rtt_ms:.0f} ms | {what} | {got} | {want} |" for what, got, want in rows]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _bulk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads an 8-byte size, sends that many bytes."""
    block = bytes(1 << 20)
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        left = int.from_bytes(await reader.readexactly(8), "big")
        while left > 0:
            writer.write(block[: min(left, len(block))])
            left -= min(left, len(block))
            await writer.drain()
    writer.close()


def _client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _receive(sock: socket.socket, nbytes: int) -> None:
    buf = bytearray(1 << 20)
    while nbytes > 0:
        got = sock.recv_into(buf, min(nbytes, len(buf)))
        if not got:
            raise ConnectionError(f"closed with {nbytes} bytes to come")
        nbytes -= got


def _echo_time(sock: socket.socket) -> float:
    begin = time.perf_counter()
    sock.sendall(b"x")
    _receive(sock, 1)
    return time.perf_counter() - begin


def _fetch(port: int, nbytes: int) -> None:
    with _client(port) as sock:
        sock.sendall(nbytes.to_bytes(8, "big"))
        _receive(sock, nbytes)


def calibrate(net: Network, bulk_bytes: int = 20_000_000, parallel: int = 4) -> Calibration:
    """Measure the link as it is configured, with servers of its own on the link's loop
    and blocking sockets in this thread, as a client process would see it."""

    async def start(handler: Any) -> asyncio.Server:
        return await asyncio.start_server(handler, "127.0.0.1", 0)

    echo_server = net.call(start(_echo))
    bulk_server = net.call(start(_bulk))
    try:
        echo_port = net.proxy("calibration", echo_server.sockets[0].getsockname()[1])
        bulk_port = net.proxy("calibration", bulk_server.sockets[0].getsockname()[1])
        net.reset()
        begin = time.perf_counter()
        with _client(echo_port) as sock:
            first = _echo_time(sock)
            echo = statistics.median(_echo_time(sock) for _ in range(10))
            begin = time.perf_counter()
            _fetch(bulk_port, bulk_bytes)
            bulk = time.perf_counter() - begin
            share = bulk_bytes // parallel
            threads = [
                threading.Thread(target=_fetch, args=(bulk_port, share)) for _ in range(parallel)
            ]
            begin = time.perf_counter()
            for thread in threads:
                thread.start()
            time.sleep(2 * net.link.rtt + 0.1)  # the downloads are under way
            busy_echo = statistics.median(_echo_time(sock) for _ in range(5))
            for thread in threads:
                thread.join()
            together = time.perf_counter() - begin
    finally:
        net.reset()
        for server in (echo_server, bulk_server):
            net.loop.call_soon_threadsafe(server.close)
    return Calibration(
        rtt=net.link.rtt,
        rate=net.link.rate,
        first_echo=first,
        echo=echo,
        bulk_bytes=bulk_bytes,
        bulk=bulk,
        parallel=parallel,
        parallel_time=together,
        busy_echo=busy_echo,
    )
