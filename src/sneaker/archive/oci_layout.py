"""A pure OCI image layout, as a directory or as a tar (an "OCI archive").

Roots may be image manifests or indexes; an index root keeps its raw bytes
(and so its digest), and every manifest and index below it is written as a
blob, as are all configs and layers. ``index.json`` names each root (see
:mod:`sneaker.archive._layout`).

Into a directory, the write is incremental and safe to interrupt, like
go-containerregistry's ``layout`` package: a blob the source has as a local
file (the blob cache's, checked) is hard-linked from it, replacing any other
file of that name (one damaged since, say), and kept when it is that file
already; any other blob already present with the right size is skipped; a new
one is written under a temporary name and renamed, and ``index.json`` is
replaced atomically at the end, keeping the existing entries that the new ones
do not rename. An existing ``index.json``
entry is dropped when a new entry has the same ``io.containerd.image.name``
(or, for an entry that has none, the same ``org.opencontainers.image.ref.name``),
or when it is identical to a new entry; every other entry stays, before the
new ones. The read-merge-write holds an ``flock`` on the ``oci-layout`` file,
so two sneakers writing one directory do not lose each other's entries.

The ``umoci`` tool unpacks only OCI manifests: an image pulled with a Docker
media type stays one here (converting it would change its digest).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ArchiveError, UnsupportedError, UsageError
from ..image.model import MAX_MANIFEST_BYTES, Descriptor
from ..image.records import BlobSource, ImageRecord
from ..util.oserrors import reporting
from ..util.tempfiles import remove_stale, temp_name
from ._layout import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    OCI_LAYOUT_BYTES,
    blob_order,
    index_document,
    index_entries,
    layout_blobs,
    layout_tar_size,
    write_layout_tar,
)
from .delta import DELTA_MARKER, DeltaMarker
from .tar import TarWriter, atomic_file, blob_member, copy_blob, dump_json, output_sink

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["merge_index_entries", "write_oci_layout"]


def write_oci_layout(
    records: Sequence[ImageRecord],
    blobs: BlobSource,
    out: Path,
    *,
    as_tar: bool,
    split: int | None = None,
    delta: DeltaMarker | None = None,
) -> list[Path]:
    """Write ``records`` as an OCI image layout: a tar at ``out`` (``as_tar``), else a directory.

    ``split`` cuts a tar into parts (see :mod:`sneaker.archive.split`); it
    does not apply to a directory. ``delta`` makes a delta archive (see
    :mod:`sneaker.archive.delta`): the layers it lists are left out and its marker is
    written; a delta directory must not hold images yet. Returns the files written:
    ``[out]`` (the tar or the directory), or the parts then ``out.sha256``.
    """
    if not records:
        raise UsageError("no images to write")
    omit: frozenset[Any] = frozenset(delta.omitted) if delta is not None else frozenset()
    extra: dict[str, bytes] = {}
    if delta is not None:
        extra[DELTA_MARKER] = delta.to_bytes()
    if as_tar:
        written: list[Path] = []
        size = layout_tar_size(records, extra, omit)
        with output_sink(out, split, written, size=size) as sink:
            write_layout_tar(TarWriter(sink), records, blobs, extra, omit)
        return written
    if split is not None:
        raise UsageError(
            "--split applies to archive files, not to a layout directory",
            hint="write a tar (-o NAME.tar) to split it",
        )
    if delta is not None and (out / "index.json").exists():
        raise UsageError(
            f"{out} already holds images: a delta layout goes into a new or empty directory",
            hint="choose another output, or write the delta as a tar (-o NAME.tar)",
        )
    _write_directory(records, blobs, out, omit, extra)
    return [out]


def merge_index_entries(
    existing: Sequence[Any], new: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The ``manifests`` of an updated ``index.json``: kept old entries, then the new ones."""
    new_images = set()
    new_refs = set()
    new_keys = {dump_json(e) for e in new}
    for entry in new:
        annotations = entry.get("annotations") or {}
        if ANNOTATION_IMAGE_NAME in annotations:
            new_images.add(annotations[ANNOTATION_IMAGE_NAME])
        if ANNOTATION_REF_NAME in annotations:
            new_refs.add(annotations[ANNOTATION_REF_NAME])
    kept: list[dict[str, Any]] = []
    for entry in existing:
        if not isinstance(entry, dict):
            raise ArchiveError("index.json: every entry of 'manifests' must be an object")
        annotations = entry.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise ArchiveError("index.json: annotations must be an object")
        image = annotations.get(ANNOTATION_IMAGE_NAME)
        ref = annotations.get(ANNOTATION_REF_NAME)
        if image is not None and image in new_images:
            continue
        if image is None and ref is not None and ref in new_refs:
            continue
        if dump_json(entry) in new_keys:
            continue
        kept.append(entry)
    return kept + list(new)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _check_layout_marker(path: Path) -> None:
    try:
        doc = json.loads(path.read_bytes()[:65536])
        version = str(doc["imageLayoutVersion"])
    except (ValueError, KeyError, TypeError):
        raise ArchiveError(f"{path}: not a valid oci-layout file") from None
    if not version.startswith("1."):
        raise UnsupportedError(f"{path}: OCI image layout version {version} is not supported")


def _read_index(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ArchiveError(f"{path} is larger than the 4 MiB limit")
    try:
        doc = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
        raise ArchiveError(f"{path}: expected an image index with a 'manifests' list")
    return doc


def _link_blob(blobs: BlobSource, desc: Descriptor, target: Path) -> bool:
    """Hard-link a local blob file (the cache's, say) into the layout: no bytes copied.

    Blobs are content-addressed and never modified in place, so sharing the file is
    safe. Only for a file of the right size; False (copy instead) across filesystems
    or where links are not allowed. A ``target`` that is that very file already stays;
    any other file there is replaced: the source's file was checked (the cache checks
    a blob before it hands it out), a file in the layout of the right size may be one
    damaged since.
    """
    source = blobs.blob_path(desc)
    if source is None:
        return False
    try:
        found = source.stat()
        if found.st_size != desc.size:
            return False
        if _same_file(found, target):
            return True
        temp = temp_name(target)
        os.link(source, temp)
    except OSError:
        return False
    try:
        os.replace(temp, target)
    except OSError:
        temp.unlink(missing_ok=True)
        return False
    return True


def _same_file(found: os.stat_result, target: Path) -> bool:
    try:
        there = target.stat()
    except FileNotFoundError:
        return False
    return (there.st_dev, there.st_ino) == (found.st_dev, found.st_ino)


def _write_directory(
    records: Sequence[ImageRecord],
    blobs: BlobSource,
    out: Path,
    omit: frozenset[Any] = frozenset(),
    extra: dict[str, bytes] | None = None,
) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    marker = out / "oci-layout"
    if out.is_dir() and not marker.exists() and any(out.iterdir()):
        raise UsageError(
            f"{out} is a directory with files in it but not an OCI image layout",
            hint="write to an empty or new directory, or an existing OCI layout",
        )
    entries = index_entries(records)
    items = layout_blobs(records, omit)
    missing = dict(items)  # what is not in the layout yet: said when the disk is full

    def needed() -> int:
        return sum(len(i) if isinstance(i, bytes) else i.size for i in missing.values())

    with reporting("write", out, needed=needed, resumes=_RESUMES):
        out.mkdir(parents=True, exist_ok=True)
        if marker.exists():
            _check_layout_marker(marker)
        else:
            with atomic_file(marker) as sink:
                sink.write(OCI_LAYOUT_BYTES)
        remove_stale(out)
        for algorithm in sorted({d.algorithm for d in items}):
            remove_stale(out / "blobs" / algorithm)
        for digest in blob_order(items):
            _write_blob(blobs, out / blob_member(digest), items[digest])
            del missing[digest]
        for name, data in sorted((extra or {}).items()):
            with atomic_file(out / name) as sink:
                sink.write(data)
        with _locked(marker):
            index_path = out / "index.json"
            existing = _read_index(index_path)
            merged = merge_index_entries(existing.get("manifests", []), entries)
            kept = {k: v for k, v in existing.items() if k not in ("schemaVersion", "mediaType")}
            with atomic_file(index_path) as sink:
                sink.write(index_document(merged, kept))


#: what a rerun of a layout write keeps (said when the disk is full)
_RESUMES = "the blobs already in the layout are kept, and a rerun writes only the rest"


def _write_blob(blobs: BlobSource, target: Path, item: bytes | Descriptor) -> None:
    """One blob into the layout, unless it is there with the right size already."""
    size = len(item) if isinstance(item, bytes) else item.size
    target.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(item, bytes) and _link_blob(blobs, item, target):
        return
    try:
        if target.stat().st_size == size:
            return
    except FileNotFoundError:
        pass
    with atomic_file(target) as sink:
        if isinstance(item, bytes):
            sink.write(item)
        else:
            copy_blob(blobs, item, sink)
