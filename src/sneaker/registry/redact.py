"""Make URLs and header sets safe to print: no userinfo, no query string, no secrets.

Presigned blob URLs (S3, Azure, GCS) carry signatures in their query strings
and a URL may carry ``user:password@``; neither may reach a message or a log
line. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = ["SENSITIVE_HEADERS", "redact_headers", "redact_url"]

#: Header names whose values are never shown.
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def redact_url(url: str) -> str:
    """``url`` without userinfo, query string or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unprintable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credentials replaced by ``<redacted>``."""
    return {
        name: "<redacted>" if name.lower() in SENSITIVE_HEADERS else value
        for name, value in headers.items()
    }
