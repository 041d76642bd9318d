"""Which manifests of an index to keep for a platform request. Pure logic, no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import NoMatchingPlatform
from . import mediatypes as mt
from .model import Descriptor, Index
from .platform import Platform, describe, host_platform

__all__ = ["PlatformRequest", "build_subset_index", "select_manifests"]


@dataclass(frozen=True)
class PlatformRequest:
    """``all`` keeps everything; ``platforms`` empty means the host's platform."""

    platforms: tuple[Platform, ...] = field(default=())
    all: bool = False

    @property
    def explicit(self) -> bool:
        return self.all or bool(self.platforms)

    @property
    def single(self) -> bool:
        return not self.all and len(self.platforms) <= 1

    def wanted(self) -> tuple[Platform, ...]:
        return self.platforms or (host_platform(),)

    def __str__(self) -> str:
        if self.all:
            return "all"
        return ",".join(str(p) for p in self.wanted())


def _variant_rank(want: Platform, have: Platform | None) -> int:
    """Lower is better: an exact variant before an implied one."""
    if have is None:
        return 9
    return 0 if have.normalized().variant == want.normalized().variant else 1


def select_manifests(index: Index, request: PlatformRequest, *, name: str) -> list[Descriptor]:
    """The index entries a request keeps, in the index's order.

    Attestation entries (``unknown/unknown``, ``vnd.docker.reference.type``) are
    kept only with ``all``; a platform that matches nothing is an error listing
    the platforms the image has.
    """
    if request.all:
        return list(index.manifests)
    candidates = [d for d in index.manifests if not d.is_attestation and d.platform is not None]
    chosen: list[Descriptor] = []
    for want in request.wanted():
        matches = [d for d in candidates if d.platform is not None and want.matches(d.platform)]
        if not matches:
            available = describe(d.platform for d in candidates if d.platform is not None)
            raise NoMatchingPlatform(
                f"{name} has no image for platform {want}",
                hint=f"available platforms: {available}; choose one with --platform",
            )
        best = min(matches, key=lambda d: _variant_rank(want, d.platform))
        if best not in chosen:
            chosen.append(best)
    order = {id(d): i for i, d in enumerate(index.manifests)}
    return sorted(chosen, key=lambda d: order[id(d)])


def build_subset_index(index: Index, keep: Sequence[Descriptor]) -> Index:
    """A new index holding only ``keep`` (its digest necessarily differs from the original)."""
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": index.media_type if index.media_type else mt.OCI_INDEX,
        "manifests": [d.to_json() for d in keep],
    }
    if index.annotations:
        doc["annotations"] = dict(index.annotations)
    raw = json.dumps(doc, indent=2, sort_keys=False).encode() + b"\n"
    return Index(raw, str(doc["mediaType"]), tuple(keep), dict(index.annotations))
