"""Reading the response headers the registry API uses. Pure functions, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urljoin

__all__ = [
    "append_query",
    "media_type_of",
    "next_link",
    "parse_content_range",
    "rate_limit_summary",
]

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``bytes START-END/TOTAL`` (TOTAL may be ``*``) as (start, end, total); None if unreadable.

    END is inclusive, as in HTTP. A range whose end precedes its start is unreadable.
    """
    if not value:
        return None
    match = _CONTENT_RANGE.match(value)
    if match is None:
        return None
    start, end = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if end < start or (total is not None and end >= total):
        return None
    return start, end, total


def next_link(value: str | None, base_url: str) -> str | None:
    """The absolute URL of the ``rel="next"`` entry of a ``Link`` header, if any."""
    if not value:
        return None
    for match in _LINK.finditer(value):
        target, params = match.group(1), match.group(2)
        for param in params.split(";"):
            name, _, rel = param.partition("=")
            if name.strip().lower() == "rel" and "next" in rel.strip().strip('"').lower().split():
                return str(urljoin(base_url, target.strip()))
    return None


def media_type_of(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` value without parameters, lower case."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def rate_limit_summary(headers: Mapping[str, str]) -> str:
    """``RateLimit-Limit``/``RateLimit-Remaining`` (and Docker Hub's source) for a message."""
    parts = []
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "Docker-RateLimit-Source"):
        value = _get(headers, name)
        if value:
            parts.append(f"{name}: {value}")
    return ", ".join(parts)


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value: str | None = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def append_query(url: str, params: str) -> str:
    """``url`` with ``params`` (already encoded) added to whatever query it holds."""
    base, hash_mark, fragment = url.partition("#")
    joiner = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        joiner = ""
    return base + joiner + params + (hash_mark + fragment)
