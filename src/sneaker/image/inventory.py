"""Inventories: which blobs one side of an air gap has, and in which repositories.

An inventory is what ``sneaker pull --have`` and ``--since`` compare against
to write a delta (see :mod:`sneaker.archive.delta`). This module is the
document alone, a pure value: taking one of an archive or reading and writing
its file is :mod:`sneaker.verbs.inventory`'s, walking a registry for one
:mod:`sneaker.transfer.walk`'s. The JSON file ``sneaker inventory -o`` writes::

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
registry walk stopped at one of its bounds or skipped something it could not
read, so the inventory may miss blobs the side has (never the reverse: a delta
against it is only ever larger than needed).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidDigest, UsageError
from ..util.jsondoc import DocumentKind, check_document, parse_document
from ..util.progress import human_size
from .digest import Digest

__all__ = [
    "INVENTORY_FORMAT",
    "INVENTORY_KIND",
    "INVENTORY_VERSION",
    "MAX_INVENTORY_BYTES",
    "Inventory",
    "InventoryBlob",
    "InventoryImage",
]

INVENTORY_FORMAT = "sneaker-inventory"
INVENTORY_VERSION = 1
#: inventory files larger than this are refused
MAX_INVENTORY_BYTES = 256 * 1024 * 1024
_WRITE_ONE = "write one with `sneaker inventory REGISTRY|ARCHIVE -o FILE.json`"


def _no_inventory(path: Path) -> UsageError:
    return UsageError(f"{path}: no such inventory file", hint=_WRITE_ONE)


#: the inventory as a versioned JSON document (format, version, size cap)
INVENTORY_KIND = DocumentKind(
    format=INVENTORY_FORMAT,
    version=INVENTORY_VERSION,
    noun="inventory",
    max_bytes=MAX_INVENTORY_BYTES,
    error=UsageError,
    missing=_no_inventory,
    hint=_WRITE_ONE,
    version_hint="write the inventory again with this sneaker",
)


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
            **INVENTORY_KIND.fields(),
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
        doc = check_document(doc, INVENTORY_KIND, where)
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
        return cls.from_json(parse_document(raw, INVENTORY_KIND, where), where=where)
