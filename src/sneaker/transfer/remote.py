"""The registry as a source: resolve a reference to an :class:`ImageRecord` (manifests only).

Layers are not touched here; :mod:`sneaker.transfer.fetch` downloads them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ManifestInvalid, NoMatchingPlatform
from ..image.digest import Digest
from ..image.model import Descriptor, Index, Manifest, parse_manifest
from ..image.platform import Platform
from ..image.records import ImageRecord
from ..image.reference import Reference
from ..image.selection import PlatformRequest, build_subset_index, select_manifests

if TYPE_CHECKING:
    from ..registry.reader import RegistryReader

__all__ = ["MAX_INDEX_DEPTH", "Resolved", "resolve"]

#: nested indexes deeper than this are refused (and loops are caught before that)
MAX_INDEX_DEPTH = 4


@dataclass(frozen=True)
class Resolved:
    """A resolved image: its record, and the registry digest of what the tag points at."""

    record: ImageRecord
    source_digest: Digest
    platforms: tuple[Platform, ...]


def _fetch(
    client: RegistryReader, repository: str, identifier: str, where: str
) -> Manifest | Index:
    raw, media_type = client.get_manifest(repository, identifier)
    expected = Digest.parse(identifier) if ":" in identifier else None
    return parse_manifest(raw, media_type, expected=expected, where=where)


def _collect_children(
    client: RegistryReader,
    repository: str,
    descs: list[Descriptor],
    children: dict[Digest, Manifest | Index],
    path: tuple[Digest, ...],
    name: str,
) -> None:
    if len(path) > MAX_INDEX_DEPTH:
        raise ManifestInvalid(f"{name}: indexes nested deeper than {MAX_INDEX_DEPTH} levels")
    for desc in descs:
        if desc.digest in path:
            raise ManifestInvalid(f"{name}: index {desc.digest} contains itself (a loop)")
        if desc.digest in children:
            continue
        child = _fetch(client, repository, str(desc.digest), f"{name} manifest {desc.digest}")
        children[desc.digest] = child
        if isinstance(child, Index):
            _collect_children(
                client, repository, list(child.manifests), children, (*path, desc.digest), name
            )


def resolve(client: RegistryReader, ref: Reference, request: PlatformRequest) -> Resolved:
    """Fetch what ``ref`` points at and keep what ``request`` asks for."""
    name = ref.familiar
    top = _fetch(client, ref.repository, ref.identifier, name)
    if isinstance(top, Manifest):
        return Resolved(ImageRecord(ref, top), top.digest, ())
    children: dict[Digest, Manifest | Index] = {}
    if request.all:
        _collect_children(
            client, ref.repository, list(top.manifests), children, (top.digest,), name
        )
        platforms = tuple(
            d.platform for d in top.manifests if d.platform is not None and not d.is_attestation
        )
        return Resolved(ImageRecord(ref, top, children), top.digest, platforms)
    chosen = select_manifests(top, request, name=name)
    _collect_children(client, ref.repository, chosen, children, (top.digest,), name)
    platforms = tuple(d.platform for d in chosen if d.platform is not None)
    if request.single:
        only = children[chosen[0].digest]
        if isinstance(only, Index):
            raise NoMatchingPlatform(f"{name}: the entry for {platforms[0]} is itself an index")
        return Resolved(ImageRecord(ref, only), top.digest, platforms)
    subset = build_subset_index(top, chosen)
    return Resolved(ImageRecord(ref, subset, children, rewritten=True), top.digest, platforms)
