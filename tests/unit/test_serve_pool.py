"""serve's bounded worker pool: a cap on connections served at once, room made by closing
idle keep-alive connections, and slow request heads cut off so they starve nobody.

Loopback sockets against an empty OCI layout; what is checked is the server's own
behaviour. No duration is asserted: the slow clients are bounded by the server's
``request_timeout`` (set short here), and every wait has a generous timeout.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from sneaker.errors import UsageError
from sneaker.verbs.serve import RegistryServer
from sneaker.verbs.serve.pool import WorkerPool


def _wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- the pool itself ---------------------------------------------------------------------------


def test_pool_runs_at_most_size_jobs_and_reuses_threads() -> None:
    pool = WorkerPool(2, "test")
    release = threading.Event()
    running: list[str] = []
    lock = threading.Lock()

    def job() -> None:
        with lock:
            running.append(threading.current_thread().name)
        release.wait(30)

    try:
        for _ in range(2):
            assert pool.reserve(timeout=5)
            pool.run(job)
        assert not pool.reserve(timeout=0.05)  # both workers busy
        _wait_until(lambda: len(running) == 2, "two jobs to start")
        release.set()
        done = threading.Event()
        for _ in range(20):  # one after another: no thread beyond the two
            assert pool.reserve(timeout=10)
            done.clear()
            pool.run(done.set)
            assert done.wait(10)
        assert pool.threads == 2
    finally:
        release.set()
        pool.stop()


def test_a_failing_job_does_not_shrink_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_value))
    pool = WorkerPool(1, "test")

    def broken() -> None:
        raise RuntimeError("a bug in a job")

    try:
        assert pool.reserve(timeout=5)
        pool.run(broken)
        done = threading.Event()
        assert pool.reserve(timeout=10)  # the worker slot came back
        pool.run(done.set)
        assert done.wait(10)
    finally:
        pool.stop()
    # reported by threading, not swallowed
    _wait_until(lambda: bool(reported), "the failed job's report")
    assert [str(exc) for exc in reported] == ["a bug in a job"]


def test_max_connections_must_be_positive() -> None:
    with pytest.raises(UsageError, match="--max-connections"):
        RegistryServer([], "127.0.0.1:0", max_connections=0)


# -- the server under load ---------------------------------------------------------------------


@pytest.fixture
def lines() -> list[str]:
    return []


def _server(lines: list[str], **options: float) -> RegistryServer:
    return RegistryServer([], "127.0.0.1:0", log=lines.append, **options)  # type: ignore[arg-type]


@pytest.fixture
def small_server(lines: list[str]) -> Iterator[RegistryServer]:
    server = _server(lines, max_connections=4, request_timeout=2.0)
    server.start()
    yield server
    server.shutdown()


def _slowloris(address: tuple[str, int], stop: threading.Event) -> bool:
    """Open a request and never finish its head: one header byte every 0.2 s.

    Returns True once the server closed the connection.
    """
    with socket.create_connection(address, timeout=30) as sock:
        try:
            sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                sock.sendall(b"X")
                time.sleep(0.2)
        except OSError:
            return True  # reset: closed by the server
        return False


def test_fifty_clients_and_slow_heads_are_all_served(
    small_server: RegistryServer, lines: list[str]
) -> None:
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=54) as pool:
        # as many clients as workers that never finish a request head
        loris = [pool.submit(_slowloris, small_server.address, stop) for _ in range(4)]

        def client(number: int) -> list[int]:
            conn = http.client.HTTPConnection(*small_server.address, timeout=60)
            statuses = []
            try:
                for path in ("/v2/", "/v2/_catalog", f"/v2/client{number}/tags/list"):
                    conn.request("GET", path)
                    reply = conn.getresponse()
                    reply.read()
                    statuses.append(reply.status)
            finally:
                conn.close()
            return statuses

        results = [pool.submit(client, n) for n in range(50)]
        statuses = [future.result(timeout=120) for future in results]
        closed = [future.result(timeout=60) for future in loris]
        stop.set()
    assert statuses == [[200, 200, 404]] * 50
    assert closed == [True] * 4
    cut = [line for line in lines if "request not complete 2 s after its first byte" in line]
    assert len(cut) == 4, lines
    assert small_server._httpd.workers.threads <= 4


def test_an_idle_keep_alive_connection_makes_room(lines: list[str]) -> None:
    server = _server(lines, max_connections=1)
    server.start()
    try:
        first = http.client.HTTPConnection(*server.address, timeout=30)
        first.request("GET", "/v2/")
        assert first.getresponse().read() == b"{}"
        # `first` now idles on the only worker; a second client still gets its answer
        second = http.client.HTTPConnection(*server.address, timeout=60)
        second.request("GET", "/v2/_catalog")
        reply = second.getresponse()
        assert (reply.status, reply.read()) == (200, b'{"repositories": []}')
        second.close()
        # the idle one was closed by the server: the next request on it finds the end
        assert first.sock is not None
        first.sock.settimeout(30)
        assert first.sock.recv(1) == b""
        first.close()
    finally:
        server.shutdown()


def test_a_connection_that_never_sends_is_closed_to_make_room(lines: list[str]) -> None:
    server = _server(lines, max_connections=1)
    server.start()
    try:
        with socket.create_connection(server.address, timeout=30) as silent:
            client = http.client.HTTPConnection(*server.address, timeout=60)
            client.request("GET", "/v2/")
            assert client.getresponse().status == 200
            client.close()
            assert silent.recv(1) == b""
    finally:
        server.shutdown()
