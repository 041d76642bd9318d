"""One function per endpoint: a :class:`Request` in, a :class:`~.answers.Reply` out.

A handler that refuses raises :class:`~.answers.DistributionError` (the server
renders it); it never writes to the connection. Which handler answers which
request is the route table's business (:mod:`.routes`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import InvalidDigest, UsageError
from ...image import mediatypes as mt
from ...image.artifacts import referrers_index
from ...image.digest import Digest
from ...image.model import Index, Manifest
from .answers import BlobBody, DistributionError, Reply, bytes_reply, json_reply
from .catalog import Catalog, Repository
from .protocol import (
    RangeNotSatisfiable,
    accepted_types,
    choose_manifest,
    next_link,
    paginate,
    parse_page_size,
    parse_range,
)

__all__ = [
    "ALLOWED",
    "Request",
    "bad_name",
    "get_base",
    "get_blob",
    "get_catalog",
    "get_manifest",
    "get_referrers",
    "get_tags",
    "options",
    "refuse",
    "unknown_endpoint",
]

ALLOWED = "GET, HEAD"
_READ_ONLY = "this registry is read-only: it serves archives and accepts no uploads or deletes"


class Headers(Protocol):
    """The request headers (an ``email.message.Message`` in the standard library's server)."""

    def get(self, name: str, /) -> str | None: ...

    def get_all(self, name: str, /) -> list[str] | None: ...


@dataclass(frozen=True)
class Request:
    """What a handler knows of a request: its route's parts, its headers, the catalog."""

    method: str
    target: str  # path and query, as sent
    name: str  # the repository, for the routes that have one
    reference: str  # the tag or digest, for the routes that have one
    query: Mapping[str, str]
    headers: Headers
    catalog: Catalog


# -- the API base and the lists --------------------------------------------------------------


def get_base(request: Request) -> Reply:
    return json_reply(200, {})


def get_catalog(request: Request) -> Reply:
    repositories = list(request.catalog.repositories)
    return _listing(request, "/v2/_catalog", "repositories", repositories)


def get_tags(request: Request) -> Reply:
    repo = _repository(request)
    path = f"/v2/{request.name}/tags/list"
    return _listing(request, path, "tags", list(repo.tags), {"name": request.name})


def _listing(
    request: Request,
    path: str,
    key: str,
    items: list[str],
    extra_body: Mapping[str, Any] | None = None,
) -> Reply:
    """One page of ``items`` (``n`` and ``last`` in the query), with a Link to the next."""
    try:
        n = parse_page_size(request.query.get("n"))
    except UsageError as exc:
        raise DistributionError(
            400, "PAGINATION_NUMBER_INVALID", exc.message, {"n": request.query.get("n")}
        ) from None
    page, more = paginate(items, n, request.query.get("last") or None)
    body = {**(extra_body or {}), key: page}
    headers: list[tuple[str, str]] = []
    if more and n and page:
        headers.append(("Link", next_link(path, n, page[-1])))
    return json_reply(200, body, headers)


# -- manifests and blobs -------------------------------------------------------------------


def get_manifest(request: Request) -> Reply:
    repo = _repository(request)
    if ":" in request.reference:
        found = _manifest_by_digest(repo, request.reference)
    else:
        found = _manifest_by_tag(request, repo)
    digest_text = str(found.digest)
    etag = f'"{digest_text}"'
    headers = [("Docker-Content-Digest", digest_text), ("ETag", etag)]
    if etag in (request.headers.get("If-None-Match") or ""):
        return Reply(304, headers)
    return bytes_reply(200, found.raw, found.media_type, headers)


def _manifest_by_digest(repo: Repository, reference: str) -> Manifest | Index:
    digest = _digest(reference)
    found = repo.manifests.get(digest)
    if found is None:
        raise DistributionError(
            404, "MANIFEST_UNKNOWN", "manifest unknown", {"name": repo.name, "digest": str(digest)}
        )
    return found


def _manifest_by_tag(request: Request, repo: Repository) -> Manifest | Index:
    tag = request.reference
    root = repo.tags.get(tag)
    if root is None:
        raise DistributionError(
            404, "MANIFEST_UNKNOWN", "manifest unknown", {"name": repo.name, "tag": tag}
        )
    accept = accepted_types(request.headers.get_all("Accept") or [])
    found = choose_manifest(root, repo.manifests, accept)
    if found is None:
        raise DistributionError(
            404,
            "MANIFEST_UNKNOWN",
            f"{repo.name}:{tag} is an image index ({root.media_type}), which the request's "
            "Accept header does not allow, and no single image manifest stands in for it",
            {"name": repo.name, "tag": tag, "mediaType": root.media_type},
        )
    return found


def get_referrers(request: Request) -> Reply:
    """The OCI image index of the manifests whose ``subject`` is the digest (an empty one when
    there are none); ``artifactType`` in the query filters it, and ``OCI-Filters-Applied``
    says so."""
    repo = _repository(request)
    listed = repo.referrers_of(_digest(request.reference))
    wanted = request.query.get("artifactType")
    headers: list[tuple[str, str]] = []
    if wanted:
        listed = [desc for desc in listed if desc.artifact_type == wanted]
        headers.append(("OCI-Filters-Applied", "artifactType"))
    return bytes_reply(200, referrers_index(listed), mt.OCI_INDEX, headers)


def get_blob(request: Request) -> Reply:
    """A blob the repository's images use, or one of its manifests (the spec allows both)."""
    repo = _repository(request)
    digest = _digest(request.reference)
    desc = repo.blobs.get(digest)
    source = request.catalog.blob_sources.get(digest) if desc is not None else None
    manifest = repo.manifests.get(digest)
    if source is None and manifest is None:
        raise DistributionError(
            404,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
            {"name": repo.name, "digest": str(digest)},
        )
    if source is not None and desc is not None:
        size = desc.size
    else:
        assert manifest is not None
        size = len(manifest.raw)
    etag = f'"{digest}"'
    common = [("Docker-Content-Digest", str(digest)), ("ETag", etag), ("Accept-Ranges", "bytes")]
    if etag in (request.headers.get("If-None-Match") or ""):
        return Reply(304, common)
    try:
        wanted = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        raise DistributionError(
            416,
            "RANGE_INVALID",
            "requested range not satisfiable",
            {"size": size},
            headers=[("Content-Range", f"bytes */{size}"), *common],
        ) from None
    start, length = (wanted.start, wanted.length) if wanted else (0, size)
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(length)),
        *common,
    ]
    if wanted:
        headers.append(("Content-Range", wanted.content_range))
    status = 206 if wanted else 200
    if source is None or desc is None:
        assert manifest is not None  # a manifest asked for through the blob endpoint
        return Reply(status, headers, manifest.raw[start : start + length])
    return Reply(status, headers, BlobBody(source, desc, start, length))


def _repository(request: Request) -> Repository:
    repo = request.catalog.repository(request.name)
    if repo is None:
        raise DistributionError(
            404,
            "NAME_UNKNOWN",
            "repository name not known to registry",
            {"name": request.name},
        )
    return repo


def _digest(reference: str) -> Digest:
    try:
        return Digest.parse(reference)
    except InvalidDigest as exc:
        raise DistributionError(400, "DIGEST_INVALID", exc.message, {"digest": reference}) from None


# -- what is not served ----------------------------------------------------------------------


def bad_name(request: Request) -> Reply:
    raise DistributionError(400, "NAME_INVALID", "invalid repository name", {"name": request.name})


def unknown_endpoint(request: Request) -> Reply:
    path = urllib.parse.urlsplit(request.target).path
    raise DistributionError(404, "UNSUPPORTED", f"no such endpoint: {path}")


def refuse(request: Request) -> Reply:
    """Uploads, deletes: refused, and the connection closed (any request body stays unread)."""
    raise DistributionError(
        405,
        "UNSUPPORTED",
        _READ_ONLY,
        {"method": request.method},
        headers=[("Allow", ALLOWED)],
        close=True,
    )


def options(request: Request) -> Reply:
    return bytes_reply(200, b"", "text/plain", [("Allow", ALLOWED)])
