"""Where the model meets sources and sinks: named images (manifest or index trees) and blobs.

Every source (an archive, an OCI layout or a split set read back, a registry
read through the blob cache) is an :class:`ImageSource`: its images as
:class:`ImageRecord` objects, and its blobs by descriptor. Every verb that reads
images consumes one (``verify``, ``unpack``, ``inspect``, ``serve``,
``inventory``, ``push``), whatever it came from. A sink (an archive writer)
takes records and a :class:`BlobSource`, the part of an :class:`ImageSource`
it reads blobs through. Sources and sinks never import each other: they meet here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from .digest import Digest
from .model import Descriptor, Index, Manifest
from .reference import Reference

__all__ = ["BlobSource", "ImageRecord", "ImageSource"]


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
    """Where a sink reads blob content from: a true subset of :class:`ImageSource`.

    Archive writers need nothing more, so they take this narrower protocol (a
    download still in progress, :class:`sneaker.transfer.fetch.ArrivingBlobs`,
    is one, without records or sizes to offer yet).
    """

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        """A readable stream of exactly the blob's bytes; raises NotFound when absent."""
        ...

    def blob_path(self, desc: Descriptor) -> Path | None:
        """A local file holding exactly the blob, when there is one (for fast copies)."""
        ...


class ImageSource(BlobSource, Protocol):
    """Images and their blobs, wherever they are: what every reading verb consumes.

    ``records`` are the named images; ``names`` (same order) the name each has
    in the source as written there (a full reference, a bare tag such as
    ``latest`` whose record's ``reference`` is None, or None). Read-only
    attributes, so a plain list satisfies them.
    """

    @property
    def records(self) -> Sequence[ImageRecord]: ...

    @property
    def names(self) -> Sequence[str | None]: ...

    def has_blob(self, digest: Digest) -> bool:
        """Whether the source holds the blob."""
        ...

    def blob_size(self, digest: Digest) -> int | None:
        """The size of the blob the source holds, None when it has none."""
        ...
