"""``unpack``: one image's root filesystem, layer over layer, into a directory.

The image comes from anything that hands over :class:`~sneaker.imageset.ImageRecord`
objects and their blobs: an archive (:func:`sneaker.archive.open_archive`) or a
record and a :class:`~sneaker.imageset.BlobSource` from elsewhere (a registry).
Layers are applied by :mod:`sneaker.layers` (whiteouts, links, never outside
the destination). Each layer's compressed digest and size and its ``diff_id``
are checked while it streams; a mismatch stops the unpack with IntegrityError.

A new (or empty) destination is filled under a temporary name beside it and
renamed at the end, so a failed unpack leaves nothing behind; ``force``
applies the image over a non-empty directory in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..digest import Digest
from ..errors import (
    ArchiveError,
    IntegrityError,
    ManifestInvalid,
    NoMatchingPlatform,
    NotFound,
    SneakerError,
    UsageError,
)
from ..imageset import BlobSource, ImageRecord
from ..layers import (
    DEFAULT_LIMITS,
    LayerApplier,
    LayerLimits,
    LayerStats,
    Readable,
    open_layer_stream,
    remove_tree,
)
from ..model import MAX_MANIFEST_BYTES, Descriptor, Index, Manifest, parse_manifest
from ..platform import Platform
from ..progress import NullProgress, Progress
from ..reference import parse_reference
from ..selection import PlatformRequest, select_manifests

if TYPE_CHECKING:
    from ..registry.client import RegistryOptions

__all__ = ["MAX_CONFIG_BYTES", "RecordSource", "UnpackResult", "choose_record", "unpack"]

MAX_CONFIG_BYTES = 32 * 1024 * 1024
_CHUNK = 1024 * 1024
_MAX_NESTING = 4
_HEX = re.compile(r"^[0-9a-f]+$")


class RecordSource(BlobSource, Protocol):
    """A source of named images and their blobs (an opened archive, say)."""

    @property
    def records(self) -> Sequence[ImageRecord]: ...


@dataclass
class UnpackResult:
    dest: Path
    reference: str | None
    manifest: Digest
    platform: Platform | None
    layers: int
    stats: LayerStats = field(default_factory=LayerStats)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "reference": self.reference,
            "manifest": str(self.manifest),
            "platform": str(self.platform) if self.platform else None,
            "layers": self.layers,
            "files": self.stats.files,
            "directories": self.stats.directories,
            "symlinks": self.stats.symlinks,
            "hardlinks": self.stats.hardlinks,
            "whiteouts": self.stats.whiteouts,
            "skipped": self.stats.skipped,
            "bytes": self.stats.bytes_written,
            "warnings": list(self.warnings),
        }


def _record_name(record: ImageRecord) -> str:
    return str(record.reference) if record.reference is not None else str(record.root.digest)


def choose_record(records: Sequence[ImageRecord], image: str | None) -> ImageRecord:
    """The record ``image`` names (a reference, or a digest or its prefix); the only one if None."""
    if not records:
        raise NotFound("the archive holds no image")
    names = ", ".join(_record_name(r) for r in records)
    if image is None:
        if len(records) == 1:
            return records[0]
        raise UsageError(
            f"the archive holds {len(records)} images: {names}",
            hint="name the one to unpack",
        )
    found = [r for r in records if _record_matches(r, image)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"no image {image!r} in the archive", hint=f"it holds: {names}")
    raise UsageError(f"{image!r} names several images of the archive: {names}")


def _record_matches(record: ImageRecord, image: str) -> bool:
    root = record.root.digest
    algorithm, _, hexpart = image.rpartition(":")
    if algorithm in ("", root.algorithm) and _HEX.match(hexpart) and len(hexpart) >= 12:
        return root.hex.startswith(hexpart)
    if record.reference is None:
        return False
    try:
        wanted = parse_reference(image)
    except UsageError:
        return False
    have = record.reference
    if wanted.name != have.name:
        return False
    if wanted.digest is not None:
        return wanted.digest in (have.digest, record.root.digest)
    return wanted.tag == have.tag


def _read_small(blobs: BlobSource, desc: Descriptor, limit: int, what: str) -> bytes:
    if desc.size > limit:
        raise ManifestInvalid(f"{what} {desc.digest}: {desc.size} bytes is larger than {limit}")
    with blobs.open_blob(desc) as stream:
        data = stream.read(limit + 1)
    if len(data) != desc.size or Digest.of_bytes(data, desc.digest.algorithm) != desc.digest:
        raise IntegrityError(f"{what} {desc.digest}: content does not match its descriptor")
    return data


def _child(record: ImageRecord, blobs: BlobSource, desc: Descriptor, name: str) -> Manifest | Index:
    child = record.children.get(desc.digest)
    if child is not None:
        return child
    try:
        raw = _read_small(blobs, desc, MAX_MANIFEST_BYTES, "manifest")
    except NotFound:
        platform = f" for {desc.platform}" if desc.platform else ""
        raise NotFound(
            f"{name}: the manifest{platform} ({desc.digest}) is not in the source"
        ) from None
    return parse_manifest(raw, desc.media_type, expected=desc.digest, where=f"{name} manifest")


def _config_platform(doc: dict[str, Any]) -> Platform | None:
    if isinstance(doc.get("os"), str) and isinstance(doc.get("architecture"), str):
        return Platform(doc["os"], doc["architecture"], str(doc.get("variant") or ""))
    return None


def _choose_manifest(
    record: ImageRecord, blobs: BlobSource, platform: Platform | None, name: str
) -> tuple[Manifest, Platform | None]:
    node: Manifest | Index = record.root
    chosen: Platform | None = None
    for _ in range(_MAX_NESTING):
        if isinstance(node, Manifest):
            return node, chosen
        request = PlatformRequest(platforms=(platform,) if platform is not None else ())
        desc = select_manifests(node, request, name=name)[0]
        chosen = desc.platform
        node = _child(record, blobs, desc, name)
    raise ManifestInvalid(f"{name}: indexes nested deeper than {_MAX_NESTING} levels")


def _read_config(blobs: BlobSource, manifest: Manifest, name: str) -> dict[str, Any]:
    raw = _read_small(blobs, manifest.config, MAX_CONFIG_BYTES, f"{name}: config")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ManifestInvalid(f"{name}: image config is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ManifestInvalid(f"{name}: image config is not a JSON object")
    return doc


def _diff_ids(doc: dict[str, Any], manifest: Manifest, name: str) -> list[Digest]:
    rootfs = doc.get("rootfs")
    raw = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(raw, list) or len(raw) != len(manifest.layers):
        count = len(raw) if isinstance(raw, list) else 0
        raise ManifestInvalid(
            f"{name}: image config lists {count} layer diff IDs "
            f"but the manifest has {len(manifest.layers)} layers"
        )
    try:
        return [Digest.parse(str(d)) for d in raw]
    except UsageError as exc:
        raise ManifestInvalid(f"{name}: image config: {exc}") from None


class _Hashing:
    """A reader that hashes and counts what passes through it (and reports progress)."""

    def __init__(
        self, inner: Readable, hasher: Any, on_read: Callable[[int], None] | None = None
    ) -> None:
        self._inner = inner
        self.hasher = hasher
        self.count = 0
        self._on_read = on_read

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        if data:
            self.hasher.update(data)
            self.count += len(data)
            if self._on_read is not None:
                self._on_read(len(data))
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _prepare_dest(dest: Path, force: bool) -> tuple[Path, bool]:
    """Where to unpack, and whether that is a temporary directory to rename to ``dest``."""
    if (dest.exists() or dest.is_symlink()) and not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise UsageError(
                f"{dest} is not empty",
                hint="unpack into a new or empty directory, or use --force to unpack over it",
            )
        return dest, False
    if dest.is_symlink():
        return dest, False  # an empty directory reached through a link: fill it in place
    parent = dest.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    temp = parent / f".{dest.name}.unpacking-{os.getpid()}"
    remove_tree(temp)
    temp.mkdir(mode=0o700)
    return temp, True


def unpack(
    source: RecordSource | tuple[ImageRecord, BlobSource],
    dest: Path,
    *,
    platform: Platform | None = None,
    image: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    limits: LayerLimits = DEFAULT_LIMITS,
    warn: Callable[[str], None] | None = None,
) -> UnpackResult:
    """Unpack one image of ``source`` into ``dest`` (created when missing).

    ``image`` picks a record when the source holds several. For an index, the
    manifest is chosen as ``pull`` does (``platform``, else the host's; never an
    attestation); ``NoMatchingPlatform`` lists what the image has. An explicit
    ``platform`` must also match a single-platform image. A non-empty ``dest``
    is refused unless ``force``. Warnings (skipped device nodes) go to ``warn``
    and to the progress's messages, and are listed in the result.
    """
    if isinstance(source, tuple):
        record, blobs = source
    else:
        record, blobs = choose_record(source.records, image), source
    name = _record_name(record)
    progress = progress or NullProgress()
    manifest, chosen = _choose_manifest(record, blobs, platform, name)
    config = _read_config(blobs, manifest, name)
    found = _config_platform(config)
    single = isinstance(record.root, Manifest)
    if single and platform is not None and found is not None and not platform.matches(found):
        raise NoMatchingPlatform(
            f"{name} is a single-platform image for {found}, not {platform}",
            hint=f"unpack it with --platform {found}, or without --platform",
        )
    diff_ids = _diff_ids(config, manifest, name)

    result = UnpackResult(
        dest=dest,
        reference=str(record.reference) if record.reference is not None else None,
        manifest=manifest.digest,
        platform=chosen or found,
        layers=len(manifest.layers),
    )

    def on_warning(text: str) -> None:
        result.warnings.append(text)
        progress.message(f"warning: {text}")
        if warn is not None:
            warn(text)

    target, temporary = _prepare_dest(dest, force)
    try:
        applier = LayerApplier(target, warn=on_warning)
        count = len(manifest.layers)
        for number, (desc, diff_id) in enumerate(zip(manifest.layers, diff_ids, strict=True), 1):
            what = f"{name}: layer {number}/{count} {desc.digest}"
            result.stats.add(_apply_one(applier, blobs, desc, diff_id, what, limits, progress))
        applier.finish()
        if temporary:
            os.chmod(target, 0o755)
            if dest.is_dir():
                dest.rmdir()  # empty: checked above
            os.rename(target, dest)
    except BaseException:
        if temporary:
            remove_tree(target)
        raise
    return result


def _apply_one(
    applier: LayerApplier,
    blobs: BlobSource,
    desc: Descriptor,
    diff_id: Digest,
    what: str,
    limits: LayerLimits,
    progress: Progress,
) -> LayerStats:
    key = f"unpack:{desc.digest}"
    progress.start(key, f"layer {desc.digest.short}", desc.size)
    try:
        with blobs.open_blob(desc) as stream:
            compressed = _Hashing(stream, desc.digest.hasher(), lambda n: progress.advance(key, n))
            try:
                tar = open_layer_stream(
                    compressed,
                    desc.media_type,
                    compressed_size=desc.size,
                    limits=limits,
                    what=what,
                )
                uncompressed = _Hashing(tar, diff_id.hasher())
                stats = applier.apply(uncompressed, what=what)
                uncompressed.drain()  # the tar's padding and any trailing bytes count too
            except (ArchiveError, IntegrityError):
                # A damaged blob breaks the tar or the decompressor first: say what it is.
                drained = False
                with contextlib.suppress(SneakerError, OSError):
                    compressed.drain()
                    drained = True
                if drained:
                    _check_blob(compressed, desc, what)
                raise
            compressed.drain()
    finally:
        progress.finish(key)
    _check_blob(compressed, desc, what)
    actual = uncompressed.hasher.hexdigest()
    if actual != diff_id.hex:
        raise IntegrityError(
            f"{what}: uncompressed content hashes to {diff_id.algorithm}:{actual}, "
            f"the config's diff_id is {diff_id}"
        )
    return stats


def _check_blob(compressed: _Hashing, desc: Descriptor, what: str) -> None:
    if compressed.count != desc.size:
        raise IntegrityError(f"{what}: {compressed.count} bytes, descriptor says {desc.size}")
    actual = compressed.hasher.hexdigest()
    if actual != desc.digest.hex:
        raise IntegrityError(
            f"{what}: digest mismatch (content hashes to {desc.digest.algorithm}:{actual})"
        )


def unpack_remote(
    reference: str,
    dest: Path,
    *,
    platform: Platform | None = None,
    options: RegistryOptions | None = None,
    cache_dir: Path | None = None,
    jobs: int = 4,
    force: bool = False,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> UnpackResult:
    """Unpack an image straight from a registry: resolve, fetch into the cache, apply."""
    from ..cache import BlobCache, default_cache_dir
    from ..fetch import BlobJob, fetch_blobs
    from ..registry.client import RegistryClient
    from ..registry.client import RegistryOptions as _Options
    from ..remote import resolve

    ref = parse_reference(reference)
    request = PlatformRequest((platform,) if platform is not None else ())
    cache = BlobCache(cache_dir or default_cache_dir())
    with RegistryClient(ref.registry, options or _Options()) as client:
        resolved = resolve(client, ref, request)
        jobs_list = [
            BlobJob(client, ref.repository, desc, f"{ref.familiar} {desc.digest.short}")
            for desc in resolved.record.blobs()
        ]
        fetch_blobs(jobs_list, cache, parallel=jobs, progress=progress)
    return unpack(
        (resolved.record, cache),
        dest,
        platform=platform,
        force=force,
        progress=progress,
        warn=warn,
    )
