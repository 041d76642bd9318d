"""What sources hand to sinks: named images (manifest or index trees) and their blobs.

A source (a registry pull, an archive reader, an OCI layout) produces
:class:`ImageRecord` objects plus a :class:`BlobSource`; a sink (archive writer,
registry push, ``serve``) consumes them. Sources and sinks never import each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from .digest import Digest
from .model import Descriptor, Index, Manifest
from .reference import Reference

__all__ = ["BlobSource", "ImageRecord"]


@dataclass(frozen=True)
class ImageRecord:
    """One named image: the manifest or index a reference points at, and everything below it.

    ``children`` holds every manifest and index reachable from ``root`` (by
    digest), raw bytes kept. ``reference`` is the name the image was pulled as
    (its original name, never a mirror's); it may be None for an unnamed entry.
    ``rewritten`` is True when ``root`` is an index sneaker built (a subset of
    platforms), so its digest differs from the registry's.
    """

    reference: Reference | None
    root: Manifest | Index
    children: Mapping[Digest, Manifest | Index] = field(default_factory=dict)
    rewritten: bool = False

    def manifests(self) -> Iterator[Manifest]:
        """Every image manifest in the tree (the root itself when it is one)."""
        if isinstance(self.root, Manifest):
            yield self.root
        for child in self.children.values():
            if isinstance(child, Manifest):
                yield child

    def blobs(self) -> Iterator[Descriptor]:
        """Config and layer descriptors of every manifest in the tree, each digest once."""
        seen: set[Digest] = set()
        for manifest in self.manifests():
            for desc in manifest.blobs:
                if desc.digest not in seen:
                    seen.add(desc.digest)
                    yield desc


class BlobSource(Protocol):
    """Where a sink reads blob content from."""

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        """A readable stream of exactly the blob's bytes; raises NotFound when absent."""
        ...

    def blob_path(self, desc: Descriptor) -> Path | None:
        """A local file holding exactly the blob, when there is one (for fast copies)."""
        ...
