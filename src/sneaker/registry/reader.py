"""``RegistryReader``: the read side of a registry, as every reading verb sees it.

Two classes satisfy it: :class:`~sneaker.registry.client.RegistryClient` (one
registry, one endpoint) and :class:`~sneaker.registry.mirrors.MirroringClient`
(one registry name read through its mirrors, the origin last). ``pull``,
``inspect``, ``unpack``, ``plan`` and ``inventory``, the registry walk and the
download engine take a reader; only ``push`` and ``login`` hold a
:class:`RegistryClient` (they write, or check credentials). mypy proves both
classes satisfy the protocol (see the end of their modules), so no verb casts
one client type into another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..errors import IntegrityError
    from ..image.digest import Digest
    from ..image.model import Descriptor
    from .client import BlobResponse, Referrers, RegistryClient

__all__ = ["RegistryReader"]


class RegistryReader(Protocol):
    """Manifests, blobs and listings of one registry name (``docker.io``, ``host:port``)."""

    @property
    def registry(self) -> str:
        """The registry's name, as references name it."""
        ...

    def get_manifest(
        self, repository: str, identifier: str, accept: Sequence[str] = ...
    ) -> tuple[bytes, str]:
        """The raw manifest and its media type; verified when ``identifier`` is a digest."""
        ...

    def head_manifest(
        self, repository: str, identifier: str, accept: Sequence[str] = ...
    ) -> Descriptor | None:
        """The manifest's descriptor without its body; None when it does not exist."""
        ...

    def open_blob(
        self, repository: str, digest: Digest, offset: int = 0, validator: str | None = None
    ) -> BlobResponse:
        """GET a blob (from ``offset``, with ``validator`` as ``If-Range``)."""
        ...

    def reject_blob(
        self, repository: str, digest: Digest, error: IntegrityError
    ) -> IntegrityError | None:
        """The bytes last opened for ``digest`` do not match it: the error to raise, or None
        when the next :meth:`open_blob` asks another endpoint."""
        ...

    def blob_exists(self, repository: str, digest: Digest) -> int | None:
        """The blob's size when the repository has it, else None."""
        ...

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> Referrers | None:
        """What the referrers API lists for ``digest``; None when the registry has none (the
        caller then reads the tag schema: the fallback tag, cosign's tags)."""
        ...

    def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repository``."""
        ...

    def catalog(self, *, page_size: int = 1000) -> list[str]:
        """Every repository the registry lists."""
        ...

    def served_from(
        self, repository: str, identifier: str
    ) -> tuple[RegistryClient, str, str | None]:
        """The client that served manifest ``identifier`` of ``repository``, the repository
        path there, and a description of that endpoint when it is a mirror (else None).

        ``plan`` writes the download team's blob URLs from it.
        """
        ...

    def close(self) -> None: ...
