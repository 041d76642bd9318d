"""The pure parts of the WAN benchmark's link (benchmarks/wanlink.py): the token bucket,
the limit model, the HTTP sniffer and the per-run summary. No sockets, no timing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from benchmarks.wanlink import (
    ConnRecord,
    Exchange,
    HttpSniffer,
    TokenBucket,
    first_bytes_kind,
    limit_seconds,
    perfect_round_trips,
    request_kind,
    summarize,
)

RATE = 1000.0  # bytes per second: easy numbers


# -- token bucket ---------------------------------------------------------------------


def test_depth_zero_serializes_every_byte_first_come_first_served() -> None:
    bucket = TokenBucket(RATE)
    assert bucket.reserve(100, 0.0) == pytest.approx(0.1)
    # a second caller at the same moment waits for the first
    assert bucket.reserve(100, 0.0) == pytest.approx(0.2)
    # one arriving while the link is busy goes after what is queued
    assert bucket.reserve(50, 0.15) == pytest.approx(0.25)


def test_depth_zero_gives_no_burst_after_idling() -> None:
    bucket = TokenBucket(RATE)
    bucket.reserve(100, 0.0)
    assert bucket.reserve(100, 10.0) == pytest.approx(10.1)


def test_depth_is_a_burst_after_idling_and_only_that() -> None:
    bucket = TokenBucket(RATE, depth=300)
    assert bucket.reserve(300, 0.0) == 0.0  # full at start
    assert bucket.reserve(100, 0.0) == pytest.approx(0.1)
    # after 5 s the bucket is full again (300, not 5000) and the debt is gone
    assert bucket.reserve(400, 5.0) == pytest.approx(5.1)


def test_a_sparse_chunk_skips_the_queue_and_what_follows_waits_for_it() -> None:
    bucket = TokenBucket(RATE)
    assert bucket.reserve(1000, 0.0) == pytest.approx(1.0)  # a download, through at 1 s
    # a small answer on an idle connection waits only for its own 10 ms
    assert bucket.reserve(10, 0.1, sparse=True) == pytest.approx(0.11)
    # the next queued chunk waits for the download and the answer
    assert bucket.reserve(100, 0.1) == pytest.approx(1.11)


def test_a_sparse_chunk_uses_the_burst_left() -> None:
    bucket = TokenBucket(RATE, depth=300)
    assert bucket.reserve(10, 0.0, sparse=True) == 0.0
    assert bucket.reserve(300, 0.0, sparse=True) == pytest.approx(0.01)  # 290 left of 300


def test_a_clock_going_back_does_not_refund() -> None:
    bucket = TokenBucket(RATE)
    assert bucket.reserve(100, 1.0) == pytest.approx(1.1)
    assert bucket.reserve(100, 0.5) == pytest.approx(1.2)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


# -- the limit --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "token", "tls", "trips"),
    [
        (False, False, False, 3),  # connect, manifest, blobs
        (True, False, False, 4),  # + index
        (True, True, False, 7),  # + 401, connect to the token host, token
        (True, True, True, 9),  # + a TLS handshake to each host
        (False, True, True, 8),
    ],
)
def test_perfect_round_trips(index: bool, token: bool, tls: bool, trips: int) -> None:
    steps = perfect_round_trips(index=index, token=token, tls=tls)
    assert sum(step.round_trips for step in steps) == trips
    assert steps[-1].what == "config and layers"
    assert ("index" in [s.what for s in steps]) is index


def test_limit_is_round_trips_plus_bytes_at_the_rate() -> None:
    # the fleet: 4 round trips at 50 ms, 14 MB at 200 Mbit/s (25 MB/s)
    assert limit_seconds(4, 14_000_000, 0.05, 25_000_000) == pytest.approx(0.76)
    assert limit_seconds(3, 0, 0.0, 1.0) == 0.0


# -- following HTTP -------------------------------------------------------------------------


def _feed(feed: Callable[[bytes, float], None], data: bytes, now: float, step: int) -> None:
    """Feed ``data`` in pieces of ``step`` bytes, as a network would cut it."""
    for i in range(0, len(data), step):
        feed(data[i : i + step], now)


@pytest.mark.parametrize("step", [1, 7, 1000])
def test_keep_alive_exchanges_in_any_cut(step: int) -> None:
    sniffer = HttpSniffer()
    _feed(sniffer.client_bytes, b"GET /v2/ HTTP/1.1\r\nHost: r\r\n\r\n", 1.0, step)
    _feed(
        sniffer.server_bytes,
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nnope!",
        2.0,
        step,
    )
    _feed(sniffer.client_bytes, b"HEAD /v2/a/manifests/1 HTTP/1.1\r\n\r\n", 3.0, step)
    _feed(sniffer.server_bytes, b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n", 4.0, step)
    _feed(sniffer.client_bytes, b"GET /v2/a/blobs/sha256:1 HTTP/1.1\r\n\r\n", 5.0, step)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n"
    _feed(sniffer.server_bytes, chunked + b"0\r\nX-T: 1\r\n\r\n", 6.0, step)
    assert sniffer.kind == "http"
    got = [(e.method, e.path, e.status, e.sent, e.done, e.body) for e in sniffer.exchanges]
    assert got == [
        ("GET", "/v2/", 401, 1.0, 2.0, 5),
        ("HEAD", "/v2/a/manifests/1", 200, 3.0, 4.0, 0),  # no body after HEAD
        ("GET", "/v2/a/blobs/sha256:1", 200, 5.0, 6.0, 5),
    ]


def test_a_response_ends_when_its_last_byte_arrives() -> None:
    sniffer = HttpSniffer()
    sniffer.client_bytes(b"GET /x HTTP/1.1\r\n\r\n", 0.0)
    sniffer.server_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", 1.0)
    assert sniffer.exchanges[0].answered == 1.0
    assert [e.done for e in sniffer.exchanges] == [None]
    sniffer.server_bytes(b"67890", 2.5)
    assert sniffer.exchanges[0].done == 2.5


def test_a_request_body_is_skipped_and_interim_responses_ignored() -> None:
    sniffer = HttpSniffer()
    sniffer.client_bytes(b"POST /token HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", 0.0)
    sniffer.client_bytes(b"cdGET /next HTTP/1.1\r\n\r\n", 0.1)
    sniffer.server_bytes(b"HTTP/1.1 100 Continue\r\n\r\n", 0.2)
    sniffer.server_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0.3)
    sniffer.server_bytes(b"HTTP/1.1 204 No Content\r\n\r\n", 0.4)
    assert [(e.method, e.target, e.status, e.done) for e in sniffer.exchanges] == [
        ("POST", "/token", 200, 0.3),
        ("GET", "/next", 204, 0.4),
    ]


def test_a_body_without_length_ends_when_the_server_closes() -> None:
    sniffer = HttpSniffer()
    sniffer.client_bytes(b"GET /v2/ HTTP/1.0\r\n\r\n", 0.0)
    sniffer.server_bytes(b"HTTP/1.0 200 OK\r\n\r\nsome", 1.0)
    sniffer.server_bytes(b" body", 2.0)
    assert [e.done for e in sniffer.exchanges] == [None]
    sniffer.closed(3.0)
    assert (sniffer.exchanges[0].done, sniffer.exchanges[0].body) == (3.0, 9)


@pytest.mark.parametrize(
    ("first", "kind"),
    [
        (b"\x16\x03\x01\x02\x00", "tls"),
        (b"GET / HTTP/1.1\r\n", "http"),
        (b"SSH-2.0-x\r\n", "other"),
        (b"get / HTTP/1.1\r\n", "other"),
    ],
)
def test_first_bytes(first: bytes, kind: str) -> None:
    assert first_bytes_kind(first) == kind
    sniffer = HttpSniffer()
    sniffer.client_bytes(first, 0.0)
    assert sniffer.kind == kind
    if kind != "http":
        sniffer.server_bytes(b"HTTP/1.1 400 Bad Request\r\n\r\n", 1.0)
        assert sniffer.exchanges == []


@pytest.mark.parametrize(
    ("client", "server"),
    [
        (b"GET / HTTP/2\r\n\r\n", b""),  # not HTTP/1.x
        (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n"),  # no status
        (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 101 Switching\r\n\r\n"),  # an upgrade
        (b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b""),  # chunked upload
        (b"", b"HTTP/1.1 200 OK\r\n\r\n"),  # an answer to nothing
    ],
)
def test_what_cannot_be_followed_is_given_up(client: bytes, server: bytes) -> None:
    sniffer = HttpSniffer()
    sniffer.kind = "http" if not client else sniffer.kind
    sniffer.client_bytes(client, 0.0)
    sniffer.server_bytes(server, 1.0)
    assert sniffer.kind == "lost"
    sniffer.server_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2.0)  # ignored


# -- a run's summary ------------------------------------------------------------------------


def _record(host: str, kind: str, *exchanges: Exchange) -> ConnRecord:
    record = ConnRecord(host, opened=100.0, kind=kind, down=1000, up=10)
    record.sniffer.exchanges.extend(exchanges)
    return record


def test_request_kinds() -> None:
    def kind(host: str, method: str, target: str) -> str:
        return request_kind(host, Exchange(method, target, 0.0))

    assert kind("token", "GET", "/token?scope=repository:a:pull") == "token"
    assert kind("registry", "GET", "/v2/") == "ping"
    assert kind("registry", "GET", "/v2") == "ping"
    assert kind("registry", "HEAD", "/v2/a/b/manifests/1") == "manifest HEAD"
    assert kind("registry", "GET", "/v2/a/blobs/sha256:0?x=1") == "blob"
    assert kind("registry", "GET", "/v2/_catalog") == "other"


def test_summarize_counts_and_overlaps() -> None:
    records = [
        _record("registry", "tls"),  # a probe: no request
        _record(
            "registry",
            "http",
            Exchange("GET", "/v2/", 100.2, 401, 100.3, 100.3),
            Exchange("GET", "/v2/a/manifests/1", 100.5, 200, 100.6, 100.6),
            Exchange("GET", "/v2/a/blobs/sha256:1", 100.7, 200, 100.8, 101.5),
        ),
        _record("token", "http", Exchange("GET", "/token", 100.35, 200, 100.45, 100.45)),
        _record(
            "registry",
            "http",
            Exchange("GET", "/v2/a/blobs/sha256:2", 100.75, 200, 100.8, 101.0),
            Exchange("GET", "/v2/a/blobs/sha256:3", 101.1, None),  # never answered
        ),
    ]
    traffic = summarize(records, start=100.0)
    assert traffic.connections == {"registry": 3, "token": 1}
    assert traffic.idle_connections == 1
    assert traffic.tls_hellos == 1
    assert traffic.requests == {"ping": 1, "manifest": 1, "blob": 3, "token": 1}
    assert traffic.request_count == 6
    assert traffic.statuses == {401: 1, 200: 4}
    assert traffic.max_in_flight == 2  # two blobs at once
    assert traffic.first_request == pytest.approx(0.2)
    assert traffic.first_blob == pytest.approx(0.7)
    assert traffic.last_byte == pytest.approx(1.5)
    assert (traffic.down_bytes, traffic.up_bytes) == (4000, 40)


def test_summarize_nothing() -> None:
    traffic = summarize([], start=0.0)
    assert (traffic.request_count, traffic.max_in_flight, traffic.first_request) == (0, 0, None)
