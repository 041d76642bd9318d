"""``serve``: archives as a read-only registry (the OCI distribution API), nothing unpacked.

Manifests are served byte for byte as the archives hold them and blobs are
streamed straight from the archive files: with ``sendfile`` when the blob is a
file of its own (an OCI layout directory), else read with ``pread`` in 1 MiB
chunks from its place inside the tar (or split parts). Digests are those of
the archive and memory use does not grow with blob size.

Names: an image is served under the repository path of its reference
(``docker.io/library/ubuntu:22.04`` -> ``library/ubuntu``, ``ghcr.io/o/app``
-> ``o/app``) and also under two aliases: the short Docker Hub name
(``ubuntu``) and the full name with the registry host (``docker.io/library/ubuntu``,
``ghcr.io/o/app``) when that is a valid repository name. When two images claim
the same repository:tag, the one from the archive named later wins and a
warning says so. Blobs are served only under repositories whose images
reference them, from any of the archives that holds them (so a delta archive
served next to its base works).

The modules, from the bottom up:

- :mod:`.protocol`: the pure rules (name grammar, ranges, pagination, content
  negotiation, addresses);
- :mod:`.answers`: what a handler answers, a ``Reply``, or the one error type,
  ``DistributionError`` (code, HTTP status, message, detail), rendered in one
  place as the spec's JSON error body;
- :mod:`.catalog`: what is served, indexed once at start-up, and under which names;
- :mod:`.handlers`: one function per endpoint, a ``Request`` in, a ``Reply`` out;
- :mod:`.routes`: the route table (methods, path pattern, handler), matched in
  one place;
- :mod:`.pool`: the bounded set of worker threads connections are served on;
- :mod:`.tls`: the server's TLS context, one connection's handshake, a TLS client
  met on the plain listener;
- :mod:`.server`: connections, writing replies, :class:`RegistryServer`, :func:`serve`.

Referrers (``GET /v2/<name>/referrers/<digest>``): the catalog indexes, per
repository, the manifests of the archives that name a ``subject``; the handler
answers the OCI image index of those (an empty one for a digest nothing refers
to; ``?artifactType=`` filters, and ``OCI-Filters-Applied`` says so), and the
fallback tag ``sha256-<hex>`` of each such digest holds the same index, for
clients that use the tag schema. cosign's ``sha256-<hex>.sig`` (``.att``,
``.sbom``) attachments are tags of their own in the archives and served as such.

Where what comes next goes:

- anything about connections (limits, timeouts, TLS options): :mod:`.server` and
  :mod:`.tls`; handlers do not change.
"""

from __future__ import annotations

from .catalog import ServedImage, catalog_of, repository_aliases
from .protocol import (
    ByteRange,
    RangeNotSatisfiable,
    accepted_types,
    choose_manifest,
    next_link,
    paginate,
    parse_addr,
    parse_page_size,
    parse_range,
)
from .routes import Route, route
from .server import DEFAULT_ADDR, DEFAULT_MAX_CONNECTIONS, RegistryServer, serve

__all__ = [
    "DEFAULT_ADDR",
    "DEFAULT_MAX_CONNECTIONS",
    "ByteRange",
    "RangeNotSatisfiable",
    "RegistryServer",
    "Route",
    "ServedImage",
    "accepted_types",
    "catalog_of",
    "choose_manifest",
    "next_link",
    "paginate",
    "parse_addr",
    "parse_page_size",
    "parse_range",
    "repository_aliases",
    "route",
    "serve",
]
