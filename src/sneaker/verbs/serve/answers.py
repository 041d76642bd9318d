"""What a handler answers: a :class:`Reply`, or a raised :class:`DistributionError`.

One error type for every refusal the distribution API defines (a code such as
``MANIFEST_UNKNOWN``, the HTTP status, a message, an optional detail), and one
place that renders it as the spec's JSON error body
(``{"errors": [{"code", "message", "detail"}]}``): :meth:`DistributionError.reply`.
No I/O here: the server writes replies to the connection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...image.model import Descriptor
from ...image.records import BlobSource

__all__ = ["BlobBody", "DistributionError", "Reply", "bytes_reply", "json_reply"]


@dataclass(frozen=True)
class BlobBody:
    """``length`` bytes of a blob from ``start``, to be streamed from the archive holding it."""

    source: BlobSource
    desc: Descriptor
    start: int
    length: int


@dataclass(frozen=True)
class Reply:
    """An answer: status and headers (in the order sent), and the body a GET gets.

    ``close``: the connection closes after it (a request body may be left unread).
    """

    status: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes | BlobBody = b""
    close: bool = False


def bytes_reply(
    status: int, body: bytes, content_type: str, extra: Sequence[tuple[str, str]] = ()
) -> Reply:
    """``body`` with its Content-Type and Content-Length, then ``extra`` headers."""
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
    return Reply(status, headers, body)


def json_reply(status: int, value: Any, extra: Sequence[tuple[str, str]] = ()) -> Reply:
    return bytes_reply(status, json.dumps(value).encode(), "application/json", extra)


class DistributionError(Exception):
    """A request the registry refuses, as the distribution spec words it.

    ``headers`` go after Content-Type and Content-Length; ``close`` closes the
    connection after the answer.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        *,
        headers: Sequence[tuple[str, str]] = (),
        close: bool = False,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers
        self.close = close

    def reply(self) -> Reply:
        """The answer: the spec's JSON error body."""
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        answer = json_reply(self.status, {"errors": [entry]}, self.headers)
        return Reply(answer.status, answer.headers, answer.body, close=self.close)
