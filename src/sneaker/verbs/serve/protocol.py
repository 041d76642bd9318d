"""The distribution API's pure parts: the repository name grammar, byte ranges,
pagination, content negotiation and listen addresses. No I/O: unit-tested without sockets.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ...errors import UsageError
from ...image.digest import Digest
from ...image.model import Descriptor, Index, Manifest
from ...image.reference import REPOSITORY_PATH

__all__ = [
    "NAME",
    "NAME_RE",
    "ByteRange",
    "RangeNotSatisfiable",
    "accepted_types",
    "choose_manifest",
    "next_link",
    "paginate",
    "parse_addr",
    "parse_page_size",
    "parse_range",
]

#: a repository name (the reference grammar's path: one owner, image.reference)
NAME = REPOSITORY_PATH
NAME_RE = re.compile(rf"^{NAME}$")


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
