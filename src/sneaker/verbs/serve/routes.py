"""The route table: which handler answers a request (method, path pattern, handler).

:func:`resolve` is the one place a request is matched: the first row whose
methods include the request's and whose pattern matches its path answers; a
row without a pattern answers whatever the path (it is not even parsed).
:func:`route` is the same match for a GET, as data. The path is matched
percent-decoded; the query maps each parameter to its last value.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from . import handlers
from .answers import Reply
from .handlers import Request
from .protocol import NAME

__all__ = ["READ_METHODS", "ROUTES", "WRITE_METHODS", "Route", "Rule", "resolve", "route"]

READ_METHODS = ("GET", "HEAD")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_LOOSE = re.compile(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags|referrers)/[^/]+(?:/[^/]*)?$")


@dataclass(frozen=True)
class Rule:
    """One row of the route table; ``pattern`` None: any target, left unparsed."""

    methods: Collection[str]
    kind: str
    pattern: re.Pattern[str] | None
    handler: Callable[[Request], Reply]


def _in_repository(rest: str) -> re.Pattern[str]:
    """``/v2/<name>/<rest>``, the name by the repository grammar (``name``, and ``ref`` if any)."""
    return re.compile(rf"^/v2/(?P<name>{NAME})/{rest}$")


ROUTES: tuple[Rule, ...] = (
    Rule(WRITE_METHODS, "write", None, handlers.refuse),
    Rule(("OPTIONS",), "options", None, handlers.options),
    Rule(READ_METHODS, "base", re.compile(r"^/v2/?\Z"), handlers.get_base),
    Rule(READ_METHODS, "catalog", re.compile(r"^/v2/_catalog\Z"), handlers.get_catalog),
    Rule(READ_METHODS, "tags", _in_repository("tags/list"), handlers.get_tags),
    Rule(READ_METHODS, "upload", _in_repository("blobs/uploads(?:/(?P<ref>.*))?"), handlers.refuse),
    Rule(
        READ_METHODS, "manifest", _in_repository("manifests/(?P<ref>[^/]+)"), handlers.get_manifest
    ),
    Rule(READ_METHODS, "blob", _in_repository("blobs/(?P<ref>[^/]+)"), handlers.get_blob),
    Rule(
        READ_METHODS,
        "referrers",
        _in_repository("referrers/(?P<ref>[^/]+)"),
        handlers.get_referrers,
    ),
    # an API path whose repository name breaks the grammar
    Rule(READ_METHODS, "bad-name", _LOOSE, handlers.bad_name),
    Rule(READ_METHODS, "unknown", re.compile(r"(?s:.*)"), handlers.unknown_endpoint),
)


@dataclass(frozen=True)
class Route:
    """What a request path asks for.

    ``kind`` is one of ``base`` (``/v2/``), ``catalog``, ``tags``, ``manifest``,
    ``blob``, ``referrers`` (``/v2/<name>/referrers/<digest>``), ``upload``
    (``/v2/<name>/blobs/uploads/...``), ``bad-name`` (an API path whose repository
    name breaks the grammar) or ``unknown``; for other methods than GET and HEAD,
    ``write`` or ``options``.
    ``query`` maps each query parameter to its last value.
    """

    kind: str
    name: str = ""
    reference: str = ""
    query: Mapping[str, str] = field(default_factory=dict)


def resolve(method: str, target: str) -> tuple[Route, Callable[[Request], Reply]] | None:
    """The route of ``target`` (path and query) and the handler that answers ``method`` there;
    None for a method no row serves."""
    parsed: tuple[str, dict[str, str]] | None = None
    for rule in ROUTES:
        if method not in rule.methods:
            continue
        if rule.pattern is None:
            return Route(rule.kind), rule.handler
        if parsed is None:
            split = urllib.parse.urlsplit(target)
            query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
            parsed = urllib.parse.unquote(split.path), query
        path, query = parsed
        match = rule.pattern.match(path)
        if match:
            groups = match.groupdict()
            found = Route(rule.kind, groups.get("name") or "", groups.get("ref") or "", query)
            return found, rule.handler
    return None


def route(target: str) -> Route:
    """Parse a request target (path and query string) into a :class:`Route`, as for a GET."""
    found = resolve("GET", target)
    assert found is not None  # the last GET row matches any path
    return found[0]
