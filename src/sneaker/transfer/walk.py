"""Taking an inventory of a registry: a bounded walk of its catalog, tags and manifests.

The walk reads through a :class:`~sneaker.registry.reader.RegistryReader` and
fills an :class:`~sneaker.image.inventory.Inventory` (see that module for the
document): every blob the manifests name, in the repository of the manifest,
non-distributable layers (with ``urls``) left out. Reaching a bound of
:class:`WalkLimits`, or skipping what cannot be read, marks the inventory
incomplete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import AuthError, ManifestInvalid, NotFound, RegistryError, UnsupportedError
from ..image import mediatypes as mt
from ..image.digest import Digest
from ..image.inventory import Inventory
from ..image.model import Descriptor, Index, Manifest, parse_manifest
from ..registry.reader import RegistryReader
from ..util.progress import NullProgress, Progress, count

__all__ = ["MAX_INDEX_DEPTH", "WalkLimits", "inventory_from_registry"]

#: indexes nested deeper than this below a tag are not followed
MAX_INDEX_DEPTH = 4


@dataclass(frozen=True)
class WalkLimits:
    """Bounds of a registry walk; reaching one marks the inventory incomplete."""

    repositories: int = 10_000
    tags: int = 1_000  # per repository
    manifests: int = 50_000  # manifest requests in all


@dataclass
class _Walk:
    client: RegistryReader
    inventory: Inventory
    limits: WalkLimits
    progress: Progress
    fetched: int = 0
    spent: bool = False
    # manifest digest -> (config and layers, child manifests): a tree is read once
    nodes: dict[Digest, tuple[tuple[Descriptor, ...], tuple[Descriptor, ...]]] = field(
        default_factory=dict
    )

    def incomplete(self, why: str) -> None:
        self.inventory.complete = False
        self.progress.message(f"warning: {why}")

    def budget(self) -> bool:
        if self.fetched >= self.limits.manifests:
            if not self.spent:
                self.spent = True
                self.incomplete(
                    f"stopped after {self.limits.manifests} manifests; the inventory is partial"
                )
            return False
        self.fetched += 1
        return True

    def fetch(self, repository: str, identifier: str) -> Manifest | Index | None:
        """One manifest, or None (and the inventory marked incomplete) when it cannot be had."""
        if not self.budget():
            return None
        where = f"{self.client.registry}/{repository}:{identifier}"
        try:
            raw, media_type = self.client.get_manifest(repository, identifier)
            digest = Digest.parse(identifier) if ":" in identifier else None
            return parse_manifest(raw, media_type, expected=digest, where=where)
        except (NotFound, UnsupportedError, ManifestInvalid, AuthError) as exc:
            self.incomplete(f"skipped {where}: {exc.message}")
            return None

    def node(self, node: Manifest | Index) -> tuple[tuple[Descriptor, ...], tuple[Descriptor, ...]]:
        known = self.nodes.get(node.digest)
        if known is not None:
            return known
        if isinstance(node, Manifest):
            entry: tuple[tuple[Descriptor, ...], tuple[Descriptor, ...]] = (node.blobs, ())
        else:
            children = tuple(
                d
                for d in node.manifests
                if not d.media_type or mt.is_index(d.media_type) or mt.is_manifest(d.media_type)
            )
            entry = ((), children)
        self.nodes[node.digest] = entry
        return entry

    def record(self, repository: str, node: Manifest | Index) -> None:
        self.visit(repository, self.node(node), 0)

    def visit(
        self,
        repository: str,
        entry: tuple[tuple[Descriptor, ...], tuple[Descriptor, ...]],
        depth: int,
    ) -> None:
        name = f"{self.client.registry}/{repository}"
        blobs, children = entry
        for desc in blobs:
            if not desc.urls:
                self.inventory.add_blob(desc.digest, desc.size, name)
        if depth >= MAX_INDEX_DEPTH and children:
            self.incomplete(f"{name}: indexes nest deeper than {MAX_INDEX_DEPTH}; not followed")
            return
        for desc in children:
            known = self.nodes.get(desc.digest)
            if known is None:
                child = self.fetch(repository, str(desc.digest))
                if child is None:
                    continue
                known = self.node(child)
            self.visit(repository, known, depth + 1)

    def repository(self, repository: str, identifiers: Sequence[str] | None) -> None:
        name = f"{self.client.registry}/{repository}"
        if identifiers is None:
            try:
                tags = sorted(self.client.list_tags(repository))
            except (NotFound, AuthError) as exc:
                self.incomplete(f"skipped {name}: {exc.message}")
                return
            if len(tags) > self.limits.tags:
                self.incomplete(f"{name}: only the first {self.limits.tags} of {len(tags)} tags")
                tags = tags[: self.limits.tags]
            identifiers = tags
        self.progress.message(f"reading {name} ({count(len(identifiers), 'tag')})")
        for identifier in identifiers:
            node = self.fetch(repository, identifier)
            if node is None:
                continue
            separator = "@" if identifier.startswith("sha") and ":" in identifier else ":"
            self.inventory.add_image(f"{name}{separator}{identifier}", node.digest)
            self.record(repository, node)


def inventory_from_registry(
    client: RegistryReader,
    targets: Sequence[tuple[str, str | None]] | None = None,
    *,
    limits: WalkLimits | None = None,
    progress: Progress | None = None,
) -> Inventory:
    """Walk a registry: its catalog (or ``targets``), every tag, every manifest below them.

    ``targets`` are ``(repository, tag or digest)`` pairs, a None identifier
    meaning every tag of the repository; without them the registry's catalog
    is listed. The walk is bounded by ``limits``.
    """
    limits = limits or WalkLimits()
    progress = progress or NullProgress()
    walk = _Walk(client, Inventory([f"registry {client.registry}"]), limits, progress)
    wanted: dict[str, list[str] | None] = {}
    if targets is None:
        progress.message(f"listing the repositories of {client.registry}")
        try:
            repositories = sorted(client.catalog())
        except (AuthError, NotFound, RegistryError) as exc:
            exc.hint = exc.hint or (
                f"{client.registry} does not list its repositories to this user; name them: "
                f"sneaker inventory {client.registry}/REPOSITORY ..."
            )
            raise
        if len(repositories) > limits.repositories:
            walk.incomplete(
                f"{client.registry}: only the first {limits.repositories} of "
                f"{len(repositories)} repositories"
            )
            repositories = repositories[: limits.repositories]
        wanted = dict.fromkeys(repositories)
    else:
        for repository, identifier in targets:
            if identifier is None:
                wanted[repository] = None
            elif repository not in wanted:
                wanted[repository] = [identifier]
            else:
                current = wanted[repository]
                if current is not None and identifier not in current:
                    current.append(identifier)
    for repository, identifiers in wanted.items():
        walk.repository(repository, identifiers)
    return walk.inventory
