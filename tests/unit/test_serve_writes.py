"""serve writes a small reply in one send, and sets TCP_NODELAY on every connection.

Without both, a reply's body went out as a second small write that the kernel held
back until the client acknowledged the first (a delayed ACK, ~40 ms), on every
request of a reused connection. The handler is run here on a recorded
connection (the request bytes in, every ``sendall`` kept), so the writes are
counted exactly; TCP_NODELAY is read back from a real loopback connection.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from sneaker.verbs.serve import RegistryServer
from sneaker.verbs.serve.server import SMALL_REPLY, _Handler
from tests.unit.test_plan import _manifest as manifest_of

CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER = bytes(range(256)) * 1024  # 256 KiB: bigger than the write buffer


class BlobArchive:
    """An in-memory archive whose blobs are streamed (no local file: the 1 MiB read path)."""

    def __init__(self, records: list[ImageRecord], blobs: dict[Digest, bytes]) -> None:
        self.records = records
        self.names: list[str | None] = [None] * len(records)
        self._blobs = blobs

    def has_blob(self, digest: Digest) -> bool:
        return digest in self._blobs

    def blob_size(self, digest: Digest) -> int | None:
        blob = self._blobs.get(digest)
        return None if blob is None else len(blob)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return io.BytesIO(self._blobs[desc.digest])

    def blob_path(self, desc: Descriptor) -> Path | None:
        return None


def _manifest() -> Manifest:
    return manifest_of(CONFIG, [LAYER])


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    manifest = _manifest()
    record = ImageRecord(parse_reference("example.com/team/app:1"), manifest)
    archive = BlobArchive(
        [record], {manifest.config.digest: CONFIG, manifest.layers[0].digest: LAYER}
    )
    bound = RegistryServer([("app.tar", archive)], "127.0.0.1:0")
    yield bound
    bound.shutdown()


class RecordedConnection:
    """What the handler reads and writes: the request bytes given, each ``sendall`` kept."""

    def __init__(self, requests: bytes) -> None:
        self._incoming = io.BytesIO(requests)
        self.sends: list[bytes] = []

    def recv_into(self, buffer: Any) -> int:
        data = self._incoming.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def sendall(self, data: Any) -> None:
        self.sends.append(bytes(data))

    def settimeout(self, timeout: float | None) -> None:
        pass


def _exchange(server: RegistryServer, *requests: str) -> list[bytes]:
    """Run the handler on ``requests`` sent on one keep-alive connection; the sends."""
    wire = RecordedConnection(b"".join(f"{r}\r\nHost: registry\r\n\r\n".encode() for r in requests))
    _Handler(cast(socket.socket, wire), ("127.0.0.1", 40000), server._httpd)
    return wire.sends


def _split(reply: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, body


def test_each_small_reply_is_one_send(server: RegistryServer) -> None:
    manifest = _manifest()
    sends = _exchange(
        server,
        "GET /v2/ HTTP/1.1",
        "GET /v2/team/app/manifests/1 HTTP/1.1",
        "HEAD /v2/team/app/manifests/1 HTTP/1.1",
        f"GET /v2/team/app/blobs/{manifest.config.digest} HTTP/1.1",
        "GET /v2/team/app/manifests/2 HTTP/1.1",
        "GET /v2/_catalog HTTP/1.1",
    )
    assert len(sends) == 6  # one per reply: status line, headers and body together
    replies = [_split(send) for send in sends]
    assert [status for status, _, _ in replies] == [
        "HTTP/1.1 200 OK",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 404 Not Found",
        "HTTP/1.1 200 OK",
    ]
    for _, headers, body in replies:
        if "Content-Length" in headers and body:
            assert len(body) == int(headers["Content-Length"])
    assert replies[1][2] == manifest.raw
    assert replies[2][2] == b""  # HEAD: headers only
    assert int(replies[2][1]["Content-Length"]) == len(manifest.raw)
    assert replies[3][2] == CONFIG
    assert json.loads(replies[4][2])["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert json.loads(replies[5][2]) == {"repositories": ["team/app"]}


def test_a_large_blob_still_streams(server: RegistryServer) -> None:
    layer = _manifest().layers[0]
    assert layer.size > SMALL_REPLY
    sends = _exchange(server, f"GET /v2/team/app/blobs/{layer.digest} HTTP/1.1")
    status, headers, body = _split(b"".join(sends))
    assert status == "HTTP/1.1 200 OK"
    assert body == LAYER
    assert int(headers["Content-Length"]) == len(LAYER)
    # no reply is gathered whole in memory: the body leaves in more than one send
    assert len(sends) >= 2
    assert max(len(send) for send in sends) <= len(LAYER)


def _server_side(server: RegistryServer, timeout: float = 10.0) -> list[socket.socket]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server._httpd._conn_lock:
            open_now = list(server._httpd._connections)
        if open_now:
            return open_now
        time.sleep(0.01)
    raise AssertionError("the server holds no connection")


def test_accepted_connections_have_tcp_nodelay(server: RegistryServer) -> None:
    server.start()
    client = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        for _ in range(3):  # keep-alive: the same connection answers each
            client.request("GET", "/v2/team/app/manifests/1")
            reply = client.getresponse()
            assert reply.status == 200
            assert reply.read() == _manifest().raw
        (accepted,) = _server_side(server)
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        client.close()
