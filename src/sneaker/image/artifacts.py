"""OCI artifacts, referrers and cosign attachments: which manifests are not images, and
how the things that refer to an image are named and listed. Pure logic, no I/O.

An **artifact** is a manifest that carries something other than a container
image: a Helm chart, a signature, an SBOM, an attestation. It is one when it says
so (OCI 1.1 ``artifactType``), when its config is not an image config (Helm's
``application/vnd.cncf.helm.config.v1+json``, the empty ``{}`` of
``application/vnd.oci.empty.v1+json``), or when a layer is not a filesystem
layer: cosign's tag-based signatures, attestations and SBOMs have an image
config (with no platform) and JSON "layers". An artifact has no platform and
no diff IDs to check; its blobs are carried byte for byte.

A **referrer** names another manifest as its ``subject``; a registry with the
referrers API lists it under ``GET /v2/NAME/referrers/DIGEST``, one without keeps
an OCI index of them under the *fallback tag* ``sha256-<hex>`` of the subject
(:func:`digest_tag`), which clients maintain. cosign's older scheme tags its
attachments ``sha256-<hex>.sig``, ``.att`` and ``.sbom`` (:func:`cosign_tag`);
they name no subject, the tag does. :func:`attachment_of` says what a record is
attached to, either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidDigest
from . import mediatypes as mt
from .digest import Digest
from .model import Descriptor, Index, Manifest
from .records import ImageRecord

__all__ = [
    "COSIGN_SUFFIXES",
    "IMAGE_CONFIG_TYPES",
    "Attachment",
    "artifact_type",
    "attachment_of",
    "cosign_artifact_type",
    "cosign_tag",
    "digest_tag",
    "filter_type",
    "is_artifact",
    "is_layer_type",
    "listing_type",
    "merge_referrers_index",
    "parse_digest_tag",
    "record_is_artifact",
    "referrer_descriptor",
    "referrer_subjects",
    "referrers_index",
]

IMAGE_CONFIG_TYPES = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})
#: media types of filesystem layers start so (gzip, zstd, plain, foreign, non-distributable,
#: encrypted): anything else in ``layers`` makes the manifest an artifact
_LAYER_PREFIXES = ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")
#: cosign's tag suffixes: signatures, attestations, SBOM attachments
COSIGN_SUFFIXES = (".sig", ".att", ".sbom")


def is_layer_type(media_type: str) -> bool:
    """Is ``media_type`` a filesystem layer (a tar, compressed or not)?"""
    return media_type.startswith(_LAYER_PREFIXES)


def is_artifact(node: Manifest | Index) -> bool:
    """Is ``node`` an artifact rather than an image (or an index of images)?"""
    if node.artifact_type:
        return True
    if isinstance(node, Index):
        return False
    if node.config.media_type not in IMAGE_CONFIG_TYPES:
        return True
    return any(not is_layer_type(layer.media_type) for layer in node.layers)


def record_is_artifact(record: ImageRecord) -> bool:
    """Is the record's root an artifact (an index of images holding an attestation is not)?"""
    return is_artifact(record.root)


def artifact_type(node: Manifest | Index) -> str | None:
    """What an artifact is, as shown to people: its ``artifactType``; else its config's media
    type when that is no image config (the spec's fallback for artifacts made before OCI 1.1,
    a Helm chart's); else its first layer that is no filesystem layer (a cosign signature's
    ``application/vnd.dev.cosign.simplesigning.v1+json``). None for an image."""
    if not is_artifact(node):
        return None
    if node.artifact_type or isinstance(node, Index):
        return node.artifact_type
    if node.config.media_type not in IMAGE_CONFIG_TYPES:
        return node.config.media_type
    return next(d.media_type for d in node.layers if not is_layer_type(d.media_type))


def listing_type(node: Manifest | Index) -> str | None:
    """The ``artifactType`` a referrers list gives ``node`` (distribution spec, "Listing
    Referrers"): its own, else a manifest's config media type; None for an index without one."""
    if node.artifact_type:
        return node.artifact_type
    if isinstance(node, Manifest):
        return node.config.media_type
    return None


def cosign_artifact_type(suffix: str) -> str:
    """The ``artifactType`` cosign gives the same kind of attachment when it stores it as an
    OCI 1.1 referrer (``.sig`` -> ``application/vnd.dev.cosign.artifact.sig.v1+json``)."""
    return f"application/vnd.dev.cosign.artifact.{suffix.lstrip('.')}.v1+json"


def filter_type(node: Manifest | Index, suffix: str = "") -> str | None:
    """The type ``--referrers-type`` matches: ``artifactType``; for a cosign tag attachment
    (``suffix`` ``.sig``, ``.att``, ``.sbom``) without one, cosign's type for its kind; else
    the listing type."""
    if not node.artifact_type and suffix:
        return cosign_artifact_type(suffix)
    return listing_type(node)


# -- the tag schema -------------------------------------------------------------------------


def digest_tag(digest: Digest) -> str:
    """The referrers fallback tag of ``digest``: ``<alg>-<hex>`` (alg truncated to 32
    characters, hex to 64), e.g. ``sha256-<64 hex>``."""
    return f"{digest.algorithm[:32]}-{digest.hex[:64]}"


def cosign_tag(digest: Digest, suffix: str) -> str:
    """cosign's tag for an attachment of ``digest``: ``sha256-<hex>.sig`` (``.att``, ``.sbom``)."""
    return f"{digest.algorithm}-{digest.hex}{suffix}"


def parse_digest_tag(tag: str) -> tuple[Digest, str] | None:
    """``sha256-<hex>`` -> (digest, ``""``), ``sha256-<hex>.sig`` -> (digest, ``".sig"``); None
    for any other tag (a sha512 fallback tag is truncated: it names no whole digest)."""
    name, dot, suffix = tag.partition(".")
    if dot and f".{suffix}" not in COSIGN_SUFFIXES:
        return None
    algorithm, dash, hexpart = name.partition("-")
    if not dash:
        return None
    try:
        digest = Digest.parse(f"{algorithm}:{hexpart}")
    except InvalidDigest:
        return None
    return digest, f".{suffix}" if dot else ""


@dataclass(frozen=True)
class Attachment:
    """What a record is attached to: ``subject``, and how (``kind``: ``referrer`` for an OCI
    1.1 ``subject``, else cosign's tag suffix ``.sig``, ``.att`` or ``.sbom``)."""

    subject: Digest
    kind: str

    @property
    def suffix(self) -> str:
        return "" if self.kind == "referrer" else self.kind


def attachment_of(record: ImageRecord) -> Attachment | None:
    """The subject ``record`` is attached to: its root's ``subject``, else the digest its
    cosign tag names; None for anything else (an image, a chart)."""
    subject = record.root.subject
    if subject is not None:
        return Attachment(subject.digest, "referrer")
    ref = record.reference
    if ref is None or ref.tag is None:
        return None
    parsed = parse_digest_tag(ref.tag)
    if parsed is None or not parsed[1]:
        return None
    return Attachment(parsed[0], parsed[1])


def referrer_subjects(record: ImageRecord) -> Iterator[Digest]:
    """The digests whose referrers belong with ``record``: every manifest and index it holds
    as the registry has them (not a root index sneaker rewrote)."""
    if not record.rewritten:
        yield record.root.digest
    yield from record.children


# -- referrers lists ------------------------------------------------------------------------


def referrer_descriptor(node: Manifest | Index) -> Descriptor:
    """``node``'s entry in a referrers list: media type, digest, size, :func:`listing_type`
    as ``artifactType``, and every annotation of the manifest."""
    return Descriptor(
        node.media_type,
        node.digest,
        len(node.raw),
        annotations=dict(node.annotations),
        artifact_type=listing_type(node),
    )


def _index_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _unique(descriptors: Sequence[Descriptor]) -> list[Descriptor]:
    seen: set[Digest] = set()
    out: list[Descriptor] = []
    for desc in descriptors:
        if desc.digest not in seen:
            seen.add(desc.digest)
            out.append(desc)
    return out


def referrers_index(descriptors: Sequence[Descriptor]) -> bytes:
    """An OCI image index listing ``descriptors``, as the referrers API answers and the
    fallback tag holds (``"manifests": []`` when there are none, never null)."""
    return _index_bytes(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [d.to_json() for d in descriptors],
        }
    )


def merge_referrers_index(existing: bytes | None, new: Sequence[Descriptor]) -> bytes | None:
    """The fallback index after adding ``new``: ``existing`` (a registry's current one, None
    when it has none) keeps its entries as they are, in order, and each descriptor of ``new``
    whose digest it does not list yet is appended. None when nothing is to be added."""
    if existing is None:
        return referrers_index(_unique(new)) if new else None
    doc = json.loads(existing)
    entries = list(doc.get("manifests") or [])
    listed = {str(entry.get("digest")) for entry in entries if isinstance(entry, dict)}
    added = [d.to_json() for d in _unique(new) if str(d.digest) not in listed]
    if not added:
        return None
    doc["manifests"] = entries + added
    doc["schemaVersion"] = 2
    doc["mediaType"] = mt.OCI_INDEX
    return _index_bytes(doc)
