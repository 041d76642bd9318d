"""``--referrers`` for ``pull`` and ``plan``: which images' referrers to carry, finding them
(:mod:`sneaker.transfer.referrers`) once the images are resolved, and how they are reported.

A referrer travels as an image record of its own in the image's repository, named
by its cosign tag (``host/repo:sha256-<hex>.sig``) or, untagged, by its digest
(``host/repo@sha256:...``): archives, plans, deltas, ``push`` and ``serve`` carry
it as they carry any image, byte for byte. What it refers to is in the manifest
(``subject``) or in its cosign tag (:func:`sneaker.image.artifacts.attachment_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..image.artifacts import artifact_type, referrer_subjects
from ..image.reference import Reference
from ..transfer.referrers import FoundReferrer, ReferrerFinder, ReferrerPolicy
from ..util.progress import NullProgress, Progress

if TYPE_CHECKING:
    from ..registry.reader import RegistryReader
    from ..transfer.remote import Resolved

__all__ = ["CarriedReferrer", "ReferrerOptions", "find_referrers", "refuse_docker_format"]


@dataclass(frozen=True)
class ReferrerOptions:
    """Whose referrers to carry and how far to look: every image's (``only`` None), or
    those of the images ``only`` names (normalised references: an images file's lines
    marked ``--referrers``)."""

    policy: ReferrerPolicy = field(default_factory=ReferrerPolicy)
    only: frozenset[str] | None = None

    def wanted(self, ref: Reference) -> bool:
        return self.only is None or str(ref) in self.only


def refuse_docker_format() -> UsageError:
    """The error for ``--referrers`` with ``--format docker``."""
    return UsageError(
        "--referrers needs an OCI archive: signatures, attestations and SBOMs are OCI "
        "artifacts, which a docker archive does not hold",
        hint="use --format oci (the default with --referrers)",
    )


@dataclass(frozen=True)
class CarriedReferrer:
    """A referrer as ``pull`` and ``plan`` report it."""

    reference: str
    digest: str
    subject: str
    kind: str  # "referrer" (OCI 1.1 subject) or cosign's ".sig", ".att", ".sbom"
    via: str  # "api", "tag" (the fallback tag's index) or "cosign"
    artifact_type: str | None
    size: int

    @classmethod
    def of(cls, found: FoundReferrer) -> CarriedReferrer:
        record = found.resolved.record
        size = sum(d.size for d in record.blobs()) + len(record.root.raw)
        return cls(
            reference=str(found.ref),
            digest=str(found.digest),
            subject=str(found.subject),
            kind=found.kind,
            via=found.via,
            artifact_type=artifact_type(record.root),
            size=size,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "subject": self.subject,
            "kind": self.kind,
            "via": self.via,
            "artifactType": self.artifact_type,
            "size": self.size,
        }


def find_referrers(
    images: Sequence[tuple[Reference, Resolved, RegistryReader]],
    options: ReferrerOptions,
    progress: Progress | None = None,
) -> tuple[list[tuple[FoundReferrer, RegistryReader]], list[str]]:
    """The referrers of each wanted image (in the images' order, each found once), each with
    the reader it was found through, and the warnings of the bounds that left some out."""
    progress = progress or NullProgress()
    finder = ReferrerFinder(options.policy)
    found: list[tuple[FoundReferrer, RegistryReader]] = []
    warnings: list[str] = []
    for ref, resolved, reader in images:
        if not options.wanted(ref):
            continue
        progress.message(f"looking for referrers of {ref.familiar}")
        search = finder.find(reader, ref, referrer_subjects(resolved.record))
        found.extend((item, reader) for item in search.found)
        warnings.extend(search.warnings)
    return found, warnings
