"""The OCI image layout as both writers lay it out: blobs, ``index.json`` entries, ``oci-layout``.

Names in ``index.json`` follow containerd (``docker save`` of docker 25+ does
the same): ``io.containerd.image.name`` holds the full reference
(``docker.io/library/ubuntu:22.04``) and ``org.opencontainers.image.ref.name``
the tag alone (``22.04``), which is what ``skopeo ... oci:DIR:22.04``,
``umoci --image DIR:22.04`` and ``ctr import --index-name`` look up. An image
known only by digest gets ``io.containerd.image.name`` = ``name@sha256:...``
(the digest of what the archive holds) and no ref name.

An artifact's entry (a Helm chart, a signature, an SBOM) also carries its
``artifactType`` (OCI 1.1 descriptors may), so a tool listing the layout sees
what it is without reading it. A referrer known by digest alone (it has no tag
in its registry) is named as any image known by digest is:
``io.containerd.image.name`` = ``host/repo@sha256:...``; a cosign attachment by
its tag, ``host/repo:sha256-<hex>.sig`` with ref name ``sha256-<hex>.sig``.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from ..errors import UsageError
from ..image import mediatypes as mt
from ..image.artifacts import artifact_type
from ..image.digest import Digest
from ..image.model import Descriptor
from ..image.records import BlobSource, ImageRecord
from .tar import TarWriter, blob_member, dump_json

__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "OCI_LAYOUT_BYTES",
    "index_document",
    "index_entries",
    "layout_blobs",
    "record_names",
    "write_layout_tar",
]

ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT_BYTES = dump_json({"imageLayoutVersion": "1.0.0"})


def record_names(record: ImageRecord) -> dict[str, str]:
    """The ``index.json`` annotations naming ``record`` (empty for an unnamed record)."""
    ref = record.reference
    if ref is None:
        return {}
    if ref.tag:
        return {ANNOTATION_IMAGE_NAME: f"{ref.name}:{ref.tag}", ANNOTATION_REF_NAME: ref.tag}
    if ref.digest is not None:
        return {ANNOTATION_IMAGE_NAME: f"{ref.name}@{record.root.digest}"}
    return {ANNOTATION_IMAGE_NAME: ref.name}


def index_entries(records: Sequence[ImageRecord]) -> list[dict[str, Any]]:
    """One ``index.json`` descriptor per record, in order, exact repeats dropped.

    Raises :class:`UsageError` when one name is given to two different images.
    """
    entries: list[dict[str, Any]] = []
    by_name: dict[str, Digest] = {}
    seen: set[bytes] = set()
    for record in records:
        names = record_names(record)
        name = names.get(ANNOTATION_IMAGE_NAME)
        if name is not None:
            earlier = by_name.setdefault(name, record.root.digest)
            if earlier != record.root.digest:
                raise UsageError(
                    f"{name} names two different images ({earlier.short} and "
                    f"{record.root.digest.short})",
                    hint="give each image in one archive its own name",
                )
        entry = record.root.descriptor.to_json()
        kind = artifact_type(record.root)
        if kind is not None:
            entry["artifactType"] = kind
        if names:
            entry["annotations"] = names
        key = dump_json(entry)
        if key not in seen:
            seen.add(key)
            entries.append(entry)
    return entries


def index_document(entries: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> bytes:
    doc: dict[str, Any] = dict(extra or {})
    doc.update({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries})
    return dump_json(doc)


def layout_blobs(
    records: Sequence[ImageRecord], omit: Container[Digest] = ()
) -> dict[Digest, bytes | Descriptor]:
    """Every blob the records need, once each: manifests and indexes as raw bytes,
    configs and layers as descriptors to copy from a :class:`BlobSource`, bar
    the configs and layers in ``omit`` (those a delta leaves out)."""
    out: dict[Digest, bytes | Descriptor] = {}
    for record in records:
        out[record.root.digest] = record.root.raw
        for digest, child in record.children.items():
            out[digest] = child.raw
        for desc in record.blobs():
            if desc.digest not in omit:
                out.setdefault(desc.digest, desc)
    return out


def blob_order(items: dict[Digest, bytes | Descriptor]) -> list[Digest]:
    """The order blobs are written in: smallest first, then by digest.

    Deterministic (the same records give the same bytes), and it is the order in
    which parallel downloads sharing a link finish, so a writer fed while blobs
    arrive (:func:`sneaker.transfer.fetch.fetch_while`) copies each one soon after it lands
    instead of waiting for the largest first.
    """

    def size(digest: Digest) -> int:
        item = items[digest]
        return len(item) if isinstance(item, bytes) else item.size

    return sorted(items, key=lambda digest: (size(digest), digest))


def write_layout_tar(
    tar: TarWriter,
    records: Sequence[ImageRecord],
    blobs: BlobSource,
    extra: dict[str, bytes],
    omit: Container[Digest] = (),
) -> None:
    """Blobs (in :func:`blob_order`, bar ``omit``), then ``index.json``, ``oci-layout``
    and ``extra``, by name."""
    if not records:
        raise UsageError("no images to write")
    index = index_document(index_entries(records))
    items = layout_blobs(records, omit)
    tar.add_dir("blobs")
    for algorithm in sorted({d.algorithm for d in items}):
        tar.add_dir(f"blobs/{algorithm}")
    for digest in blob_order(items):
        item = items[digest]
        if isinstance(item, bytes):
            tar.add_bytes(blob_member(digest), item)
        else:
            tar.add_blob(blob_member(digest), item, blobs)
    files = {"index.json": index, "oci-layout": OCI_LAYOUT_BYTES, **extra}
    for name in sorted(files):
        tar.add_bytes(name, files[name])
    tar.finish()
