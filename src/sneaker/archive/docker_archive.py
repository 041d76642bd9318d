"""The archive ``docker save`` writes since docker 25, loadable by older dockers too.

It is an OCI image layout in a tar (``oci-layout``, ``index.json``,
``blobs/sha256/<hex>`` for every manifest, config and layer, each once) plus
the two files docker has always read:

``manifest.json``
    ``[{"Config": "blobs/sha256/<config hex>", "RepoTags": ["ubuntu:22.04"],
    "Layers": ["blobs/sha256/<layer hex>", ...]}]``, one entry per image
    (manifest), with every tag it is written under, in docker's familiar form.
``repositories``
    ``{"ubuntu": {"22.04": "<hex of the top layer>"}}``.

Layers go in as pulled (compressed); docker 20.10's ``docker load`` reads
``manifest.json``, decompresses gzip layers and checks them against the
config's diff_ids; docker 25+, podman, ``ctr import`` and skopeo's
``docker-archive:`` read the same file. Only single-platform images (a
``Manifest`` root) fit this format: docker loads one platform per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..image.artifacts import artifact_type, is_artifact
from ..image.digest import Digest
from ..image.model import Manifest
from ..image.records import BlobSource, ImageRecord
from ..image.reference import Reference
from ._layout import write_layout_tar
from .delta import DeltaMarker, docker_format_refusal
from .tar import TarWriter, blob_member, dump_json, output_sink

__all__ = ["check_docker_records", "docker_metadata", "write_docker_archive"]


def _record_name(record: ImageRecord) -> str:
    return str(record.reference) if record.reference else str(record.root.digest)


def check_docker_records(records: Sequence[ImageRecord]) -> None:
    """Raise :class:`UsageError` unless every record fits a docker archive: one image
    manifest each (not an index), and an image, not an artifact (a Helm chart, a
    signature, an SBOM: ``docker load`` has nothing to load from them)."""
    for record in records:
        root = record.root
        if not isinstance(root, Manifest):
            raise UsageError(
                f"{_record_name(record)} is a multi-platform index; a docker archive holds one "
                "platform per image",
                hint="use --format oci, or choose one platform with --platform",
            )
        if is_artifact(root):
            raise UsageError(
                f"{_record_name(record)} is an OCI artifact ({artifact_type(root)}), not a "
                "container image; a docker archive holds images only",
                hint="use --format oci, which carries artifacts byte for byte",
            )


def docker_metadata(records: Sequence[ImageRecord]) -> tuple[bytes, bytes]:
    """``manifest.json`` and ``repositories`` for ``records`` (each root a ``Manifest``)."""
    order: list[Digest] = []
    manifests: dict[Digest, Manifest] = {}
    tags: dict[Digest, list[str]] = {}
    repositories: dict[str, dict[str, str]] = {}
    check_docker_records(records)
    for record in records:
        root = record.root
        assert isinstance(root, Manifest)
        digest = root.digest
        if digest not in manifests:
            order.append(digest)
            manifests[digest] = root
            tags[digest] = []
        ref = record.reference
        if ref is None or not ref.tag:
            continue
        familiar = ref.without_digest().familiar
        if familiar not in tags[digest]:
            tags[digest].append(familiar)
        repo = Reference(ref.registry, ref.repository).familiar
        top = root.layers[-1].digest if root.layers else root.config.digest
        repositories.setdefault(repo, {})[ref.tag] = top.hex
    entries: list[dict[str, Any]] = [
        {
            "Config": blob_member(manifests[d].config.digest),
            "RepoTags": tags[d],
            "Layers": [blob_member(layer.digest) for layer in manifests[d].layers],
        }
        for d in order
    ]
    return dump_json(entries), dump_json(repositories)


def write_docker_archive(
    records: Sequence[ImageRecord],
    blobs: BlobSource,
    out: Path,
    *,
    split: int | None = None,
    delta: DeltaMarker | None = None,
) -> list[Path]:
    """Write ``records`` as a docker-loadable archive at ``out`` (or its parts, with ``split``).

    Returns the files written: ``[out]``, or the parts then ``out.sha256``.
    Raises :class:`UsageError` when a record's root is an index, or when one
    name is given to two images, or for any ``delta`` (``docker load`` needs
    every layer: a delta is only ever an OCI layout); :class:`IntegrityError`
    when a blob does not match its descriptor. ``out`` appears only once complete.
    """
    if delta is not None:
        raise docker_format_refusal()
    if not records:
        raise UsageError("no images to write")
    manifest_json, repositories = docker_metadata(records)
    written: list[Path] = []
    with output_sink(out, split, written) as sink:
        write_layout_tar(
            TarWriter(sink),
            records,
            blobs,
            {"manifest.json": manifest_json, "repositories": repositories},
        )
    return written
