"""Inventories: which blobs one side of an air gap has, and in which repositories.

An inventory is what ``sneaker pull --have`` and ``--since`` compare against
to write a delta (see :mod:`sneaker.delta`). It is read from an archive (the
blobs it holds), from a registry (a bounded walk of catalog, tags and
manifests) or from the JSON file ``sneaker inventory -o`` writes::

    {
      "format": "sneaker-inventory",
      "version": 1,
      "sources": ["registry registry.example"],
      "complete": true,
      "images": [
        {"reference": "registry.example/team/app:1", "digest": "sha256:..."}
      ],
      "blobs": {
        "sha256:...": {"size": 1234, "repositories": ["registry.example/team/app"]}
      }
    }

``blobs`` holds configs and layers (never manifests), each with its size and
the repositories (``registry/path``) it is known in, sorted; ``images`` the
references (or bare names) and root digests seen; ``complete`` is false when a
registry walk stopped at one of its bounds (:class:`WalkLimits`) or skipped
something it could not read, so the inventory may miss blobs the side has
(never the reverse: a delta against it is only ever larger than needed).

From an archive, a blob counts only when the archive holds it. A delta
archive's omitted layers count too, in the repositories its marker recorded
and those of the images using them: to push the delta, the other side must
have had them, so ``--since DELTA`` chains deltas.

From a registry, blobs are those the manifests name, in the repository of the
manifest (a registry refuses a manifest whose blobs the repository lacks);
non-distributable layers (with ``urls``) are left out.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import (
    AuthError,
    InvalidDigest,
    ManifestInvalid,
    NotFound,
    RegistryError,
    UnsupportedError,
    UsageError,
)
from .image import mediatypes as mt
from .image.digest import Digest
from .image.model import Descriptor, Index, Manifest, parse_manifest
from .image.records import ImageRecord
from .util.progress import NullProgress, Progress, count, human_size

if TYPE_CHECKING:
    from .delta import DeltaMarker
    from .registry.client import RegistryClient

__all__ = [
    "INVENTORY_FORMAT",
    "INVENTORY_VERSION",
    "MAX_INVENTORY_BYTES",
    "Inventory",
    "InventoryBlob",
    "InventoryImage",
    "WalkLimits",
    "inventory_from_archive",
    "inventory_from_registry",
    "inventory_of_source",
    "load_base",
    "load_inventory",
    "write_inventory",
]

INVENTORY_FORMAT = "sneaker-inventory"
INVENTORY_VERSION = 1
#: inventory files larger than this are refused
MAX_INVENTORY_BYTES = 256 * 1024 * 1024
#: indexes nested deeper than this below a tag are not followed
MAX_INDEX_DEPTH = 4


@dataclass
class InventoryBlob:
    """One blob: its size and the repositories (``registry/path``) it is known in."""

    size: int
    repositories: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "repositories": sorted(self.repositories)}


@dataclass(frozen=True)
class InventoryImage:
    """An image seen: its reference (or bare name; None when unnamed) and root digest."""

    reference: str | None
    digest: Digest

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": str(self.digest)}


@dataclass
class Inventory:
    """Blobs by digest, images, and what they were read from (see the module doc)."""

    sources: list[str] = field(default_factory=list)
    blobs: dict[Digest, InventoryBlob] = field(default_factory=dict)
    images: list[InventoryImage] = field(default_factory=list)
    complete: bool = True

    # -- building ----------------------------------------------------------------------

    def add_blob(self, digest: Digest, size: int, *repositories: str | None) -> None:
        entry = self.blobs.get(digest)
        if entry is None:
            entry = self.blobs[digest] = InventoryBlob(size)
        entry.repositories.update(r for r in repositories if r)

    def add_image(self, reference: str | None, digest: Digest) -> None:
        image = InventoryImage(reference, digest)
        if image not in self.images:
            self.images.append(image)

    def merge(self, other: Inventory) -> None:
        """Add everything ``other`` holds (a blob's repositories are joined)."""
        for source in other.sources:
            if source not in self.sources:
                self.sources.append(source)
        for digest, blob in other.blobs.items():
            self.add_blob(digest, blob.size, *blob.repositories)
        for image in other.images:
            self.add_image(image.reference, image.digest)
        self.complete = self.complete and other.complete

    # -- questions ---------------------------------------------------------------------

    def has(self, digest: Digest) -> bool:
        return digest in self.blobs

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs.values())

    def describe(self) -> str:
        """``2 images, 7 blobs (12.3 MB)``"""
        images = len(self.images)
        blobs = len(self.blobs)
        return (
            f"{images} image{'' if images == 1 else 's'}, "
            f"{blobs} blob{'' if blobs == 1 else 's'} ({human_size(self.size)})"
        )

    # -- JSON --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INVENTORY_FORMAT,
            "version": INVENTORY_VERSION,
            "sources": list(self.sources),
            "complete": self.complete,
            "images": [i.to_json() for i in self.images],
            "blobs": {str(d): self.blobs[d].to_json() for d in sorted(self.blobs)},
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, doc: Any, *, where: str = "inventory") -> Inventory:
        """Parse the document :meth:`to_json` writes; :class:`UsageError` when it is not one."""
        if not isinstance(doc, dict) or doc.get("format") != INVENTORY_FORMAT:
            raise UsageError(
                f"{where} is not a sneaker inventory",
                hint="write one with `sneaker inventory REGISTRY|ARCHIVE -o FILE.json`",
            )
        version = doc.get("version")
        if version != INVENTORY_VERSION:
            raise UnsupportedError(
                f"{where}: inventory format version {version!r} is not supported "
                f"(this sneaker reads version {INVENTORY_VERSION})",
                hint="write the inventory again with this sneaker",
            )
        sources = doc.get("sources", [])
        images = doc.get("images", [])
        blobs = doc.get("blobs", {})
        complete = doc.get("complete", True)
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise UsageError(f"{where}: 'sources' must be a list of strings")
        if not isinstance(images, list):
            raise UsageError(f"{where}: 'images' must be a list")
        if not isinstance(blobs, dict):
            raise UsageError(f"{where}: 'blobs' must be an object keyed by digest")
        if not isinstance(complete, bool):
            raise UsageError(f"{where}: 'complete' must be true or false")
        inventory = cls(list(sources), complete=complete)
        try:
            for number, image in enumerate(images):
                if not isinstance(image, dict):
                    raise UsageError(f"{where}: images[{number}] is not an object")
                reference = image.get("reference")
                if reference is not None and not isinstance(reference, str):
                    raise UsageError(f"{where}: images[{number}].reference must be a string")
                inventory.add_image(reference, Digest.parse(str(image.get("digest"))))
            for text, entry in blobs.items():
                digest = Digest.parse(text)
                if not isinstance(entry, dict):
                    raise UsageError(f"{where}: blob {text} is not an object")
                size = entry.get("size")
                repositories = entry.get("repositories", [])
                if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                    raise UsageError(f"{where}: blob {text}: size must be a non-negative integer")
                if not isinstance(repositories, list) or not all(
                    isinstance(r, str) for r in repositories
                ):
                    raise UsageError(f"{where}: blob {text}: repositories must be a list of names")
                inventory.add_blob(digest, size, *repositories)
        except InvalidDigest as exc:
            raise UsageError(f"{where}: {exc.message}") from None
        return inventory

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "inventory") -> Inventory:
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise UsageError(f"{where} is not valid JSON ({exc})") from None
        return cls.from_json(doc, where=where)


# --------------------------------------------------------------------------- files


def load_inventory(path: Path | str) -> Inventory:
    """Read an inventory JSON file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_INVENTORY_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no such inventory file",
            hint="write one with `sneaker inventory REGISTRY|ARCHIVE -o FILE.json`",
        ) from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not an inventory file") from None
    if len(raw) > MAX_INVENTORY_BYTES:
        raise UsageError(f"{path} is larger than the {MAX_INVENTORY_BYTES >> 20} MiB limit")
    return Inventory.from_bytes(raw, where=str(path))


def write_inventory(inventory: Inventory, path: Path | str) -> None:
    """Write ``inventory`` to ``path`` through a temporary file and a rename.

    ``path`` is checked as every output is (:func:`sneaker.archive.tar.check_output_path`):
    a symlink is written through, a device, fifo, socket or directory refused.
    """
    from .archive.tar import check_output_path

    path = check_output_path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        temp.write_bytes(inventory.to_bytes())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def load_base(
    since: Iterable[Path | str] = (), have: Iterable[Path | str] = ()
) -> Inventory | None:
    """What the other side has: archives (``--since``) and inventory files (``--have``)
    merged; None when neither is given."""
    base: Inventory | None = None
    for part in [inventory_from_archive(p) for p in since] + [load_inventory(p) for p in have]:
        if base is None:
            base = part
        else:
            base.merge(part)
    return base


# --------------------------------------------------------------------------- archives


class ArchiveLike(Protocol):
    """What :func:`inventory_of_source` needs of an opened archive."""

    @property
    def records(self) -> Sequence[ImageRecord]: ...

    @property
    def names(self) -> Sequence[str | None]: ...

    def has_blob(self, digest: Digest) -> bool: ...


def inventory_of_source(
    source: ArchiveLike, label: str, delta: DeltaMarker | None = None
) -> Inventory:
    """The inventory of an opened archive: the blobs it holds (and a delta's omitted layers)."""
    inventory = Inventory([label])
    names = list(source.names)
    for number, record in enumerate(source.records):
        ref = record.reference
        name = names[number] if number < len(names) else None
        inventory.add_image(str(ref) if ref is not None else name, record.root.digest)
        repository = ref.name if ref is not None else None
        for manifest in record.manifests():
            for desc in manifest.blobs:
                if source.has_blob(desc.digest):
                    inventory.add_blob(desc.digest, desc.size, repository)
                elif delta is not None and desc.digest in delta.omitted:
                    omitted = delta.omitted[desc.digest]
                    inventory.add_blob(desc.digest, desc.size, repository, *omitted.repositories)
    return inventory


def inventory_from_archive(path: Path | str) -> Inventory:
    """The inventory of an archive, layout or split set (a delta archive too)."""
    from .archive import open_archive

    with open_archive(Path(path), allow_delta=True) as source:
        return inventory_of_source(source, f"archive {path}", source.delta)


# --------------------------------------------------------------------------- registries


@dataclass(frozen=True)
class WalkLimits:
    """Bounds of a registry walk; reaching one marks the inventory incomplete."""

    repositories: int = 10_000
    tags: int = 1_000  # per repository
    manifests: int = 50_000  # manifest requests in all


@dataclass
class _Walk:
    client: RegistryClient
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
            digest = Digest.parse(identifier) if identifier.startswith("sha") else None
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
    client: RegistryClient,
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
