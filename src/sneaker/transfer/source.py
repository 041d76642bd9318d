"""The registry as an :class:`~sneaker.image.records.ImageSource`: resolved images, their blobs.

:func:`resolve_images` resolves references (manifests only, see
:mod:`sneaker.transfer.remote`) into a :class:`RegistrySource`. Its blobs are
read from the blob cache when it has one: a blob not there yet is downloaded
into it first (verified while written, :func:`~sneaker.transfer.fetch.fetch_one`),
and :meth:`RegistrySource.fetch` downloads many at once. Without a cache
(``inspect``, which reads a few configs and keeps nothing) a blob streams
straight from the registry; its reader checks what it reads, as every reader
of an image source does.

``pull``, ``unpack`` and ``inspect`` read a registry through it; archives are
the other sources (:mod:`sneaker.archive.reader`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from ..errors import NotFound
from ..image.digest import Digest
from ..image.model import Descriptor
from ..image.records import ImageRecord, ImageSource
from ..image.reference import Reference
from ..image.selection import PlatformRequest
from ..registry.client import BlobResponse
from ..registry.reader import RegistryReader
from ..util.progress import NullProgress, Progress
from .cache import BlobCache
from .fetch import BlobJob, FetchStats, fetch_blobs, fetch_one
from .remote import Resolved, resolve

__all__ = ["RegistrySource", "ResolvedImage", "resolve_images"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ResolvedImage:
    """One reference as asked for, what it resolved to, and the reader it came from."""

    ref: Reference
    resolved: Resolved
    client: RegistryReader


class RegistrySource:
    """Images resolved from registries and their blobs: an :class:`ImageSource`.

    ``names`` are the references as asked for. A blob is known by the images
    that name it; :meth:`has_blob` and :meth:`blob_size` ask the cache, then
    the registry (a HEAD).
    """

    def __init__(
        self,
        images: Sequence[ResolvedImage],
        cache: BlobCache | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.images = list(images)
        self.cache = cache
        self.progress = progress or NullProgress()
        self._origins: dict[Digest, tuple[ResolvedImage, Descriptor]] = {}
        for image in self.images:
            for desc in image.resolved.record.blobs():
                self._origins.setdefault(desc.digest, (image, desc))

    @property
    def records(self) -> list[ImageRecord]:
        return [image.resolved.record for image in self.images]

    @property
    def names(self) -> list[str | None]:
        return [str(image.ref) for image in self.images]

    # -- downloads ------------------------------------------------------------------------

    def jobs(self, *, configs: bool | None = None) -> list[BlobJob]:
        """A download job for each blob of each image (the configs only, or the layers
        only, when ``configs`` says so)."""
        jobs: list[BlobJob] = []
        for image in self.images:
            record, ref = image.resolved.record, image.ref
            config_digests = {m.config.digest for m in record.manifests()}
            for desc in record.blobs():
                if configs is not None and (desc.digest in config_digests) != configs:
                    continue
                label = f"{ref.brief} {desc.digest.short}"
                jobs.append(BlobJob(image.client, ref.repository, desc, label))
        return jobs

    def fetch(self, *, parallel: int = 4, progress: Progress | None = None) -> FetchStats:
        """Download every blob into the cache, ``parallel`` at a time."""
        progress = progress or self.progress
        return fetch_blobs(self.jobs(), self._cache(), parallel=parallel, progress=progress)

    def _cache(self) -> BlobCache:
        if self.cache is None:
            raise ValueError("this source reads straight from the registry: it has no cache")
        return self.cache

    # -- ImageSource ----------------------------------------------------------------------

    def has_blob(self, digest: Digest) -> bool:
        return self.blob_size(digest) is not None

    def blob_size(self, digest: Digest) -> int | None:
        origin = self._origins.get(digest)
        if origin is None:
            return None
        image, desc = origin
        if self.cache is not None and self.cache.has(desc):
            return desc.size
        return image.client.blob_exists(image.ref.repository, digest)

    def blob_path(self, desc: Descriptor) -> Path | None:
        return self.cache.blob_path(desc) if self.cache is not None else None

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[BinaryIO]:
        """The blob from the cache (downloaded into it first when missing), or streamed
        from the registry when there is no cache."""
        origin = self._origins.get(desc.digest)
        if origin is None:
            raise NotFound(f"blob {desc.digest} is not one of the images' blobs")
        image = origin[0]
        if self.cache is None:
            with image.client.open_blob(image.ref.repository, desc.digest) as response:
                yield cast(BinaryIO, io.BufferedReader(_ResponseStream(response), _CHUNK))
            return
        # checked (or downloaded) first: a damaged cached copy is never read
        job = BlobJob(image.client, image.ref.repository, desc, desc.digest.short)
        fetch_one(job, self.cache, self.progress)
        with self.cache.open_blob(desc) as stream:
            yield stream


class _ResponseStream(io.RawIOBase):
    """A blob response as a raw stream (a cut connection is a NetworkError, as in
    :meth:`BlobResponse.iter_chunks`)."""

    def __init__(self, response: BlobResponse) -> None:
        super().__init__()
        self._chunks = response.iter_chunks(_CHUNK)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, b"")
            if not chunk:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def resolve_images(
    refs: Sequence[Reference],
    client_for: Callable[[str], RegistryReader],
    request: PlatformRequest,
    *,
    cache: BlobCache | None = None,
    progress: Progress | None = None,
) -> RegistrySource:
    """Resolve each reference (manifests only) into one :class:`RegistrySource`;
    ``progress`` is told of each reference as it is resolved."""
    images: list[ResolvedImage] = []
    for ref in refs:
        if progress is not None:
            progress.message(f"resolving {ref.familiar}")
        client = client_for(ref.registry)
        images.append(ResolvedImage(ref, resolve(client, ref, request), client))
    return RegistrySource(images, cache, progress)


if TYPE_CHECKING:  # mypy proves that a RegistrySource is an ImageSource
    _source: type[ImageSource] = RegistrySource
