"""``unpack``: one image's root filesystem, layer over layer, into a directory.

The image comes from any :class:`~sneaker.image.records.ImageSource`: an archive
(:func:`sneaker.archive.open_archive`) or a registry read through the blob cache
(:mod:`sneaker.transfer.source`, :func:`unpack_remote`).
Layers are applied by :mod:`sneaker.layers.apply` (whiteouts, links, never outside
the destination). Each layer's compressed digest and size and its ``diff_id``
are checked while it streams; a mismatch stops the unpack with IntegrityError.

A new (or empty) destination is filled under a temporary name beside it and
renamed at the end, so a failed unpack leaves nothing behind; ``force``
applies the image over a non-empty directory in place.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    ArchiveError,
    IntegrityError,
    ManifestInvalid,
    NoMatchingPlatform,
    NotFound,
    SneakerError,
    UnsupportedError,
    UsageError,
    summarize,
)
from ..image.artifacts import artifact_type, record_is_artifact
from ..image.config import MAX_CONFIG_BYTES, parse_config
from ..image.digest import Digest
from ..image.model import MAX_MANIFEST_BYTES, Descriptor, Index, Manifest, parse_manifest
from ..image.platform import Platform
from ..image.records import BlobSource, ImageRecord, ImageSource
from ..image.reference import names_registry_host, parse_reference
from ..image.selection import PlatformRequest, select_manifests
from ..layers.apply import (
    DEFAULT_LIMITS,
    LayerApplier,
    LayerLimits,
    LayerStats,
    open_layer_stream,
    remove_tree,
)
from ..util.oserrors import reporting
from ..util.progress import NullProgress, Progress
from ..util.streams import HashingReader
from ..util.tempfiles import remove_stale, temp_name

if TYPE_CHECKING:
    from ..registry.client import RegistryOptions

__all__ = [
    "MAX_CONFIG_BYTES",
    "UnpackResult",
    "check_dest",
    "choose_record",
    "unpack",
]

_MAX_NESTING = 4
_HEX = re.compile(r"^[0-9a-f]+$")


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
    """The record ``image`` names; the only one when ``image`` is None.

    ``image`` is matched as docker matches a name: a digest (or a prefix of at
    least 12 hex digits) of the image; else a reference, normalised
    (``app:1`` is ``docker.io/library/app:1``); a name given without a registry
    that matches no such image also matches a repository ending with it
    (``test/b`` or ``b`` for ``127.0.0.1:5000/test/b``). Without a tag, a name
    matches the one tag of that repository the archive holds (``latest``
    among several).
    """
    if not records:
        raise NotFound("the archive holds no image")
    names = summarize(_record_name(r) for r in records)
    if image is None:
        if len(records) == 1:
            return records[0]
        raise UsageError(
            f"the archive holds {len(records)} images: {names}",
            hint="choose one with --image NAME (a name as listed, its short form, or a digest)",
        )
    found = _matching_records(records, image)
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"no image {image!r} in the archive", hint=f"it holds: {names}")
    several = summarize(_record_name(r) for r in found)
    raise UsageError(
        f"{image!r} names several images of the archive: {several}",
        hint="choose one with --image NAME:TAG, or a digest",
    )


def _has_registry(name: str) -> bool:
    """Does ``name`` (no tag, no digest) start with a registry host, as docker decides?"""
    first, sep, _ = name.partition("/")
    return bool(sep) and names_registry_host(first)


def _matching_records(records: Sequence[ImageRecord], image: str) -> list[ImageRecord]:
    by_digest = [r for r in records if _digest_matches(r, image)]
    if by_digest:
        return by_digest
    try:
        wanted = parse_reference(image, default_tag=None)
    except UsageError:
        return []
    named = [r for r in records if r.reference is not None and r.reference.name == wanted.name]
    typed = image.partition("@")[0]
    slash, colon = typed.rfind("/"), typed.rfind(":")
    path = typed[:colon] if colon > slash else typed
    if not named and not _has_registry(path):
        tail = "/" + path
        named = [
            r
            for r in records
            if r.reference is not None
            and (r.reference.repository == path or r.reference.repository.endswith(tail))
        ]
    if wanted.digest is not None:
        return [
            r
            for r in named
            if r.reference is not None and wanted.digest in (r.reference.digest, r.root.digest)
        ]
    if wanted.tag is not None:
        return [r for r in named if r.reference is not None and r.reference.tag == wanted.tag]
    if len(named) > 1:
        latest = [r for r in named if r.reference is not None and r.reference.tag == "latest"]
        if len(latest) == 1 and len({r.reference.name for r in named if r.reference}) == 1:
            return latest
    return named


def _digest_matches(record: ImageRecord, image: str) -> bool:
    root = record.root.digest
    algorithm, _, hexpart = image.rpartition(":")
    if algorithm in ("", root.algorithm) and _HEX.match(hexpart) and len(hexpart) >= 12:
        return root.hex.startswith(hexpart)
    return False


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


def _refuse_artifact(node: Manifest | Index, name: str) -> None:
    kind = artifact_type(node)
    if kind is not None:
        raise UnsupportedError(
            f"{name} is an OCI artifact ({kind}), not a container image: it has no "
            "filesystem to unpack",
            hint="`sneaker inspect` lists its blobs; the tool made for it reads it "
            "(helm for a chart, cosign for a signature)",
        )


def check_dest(dest: Path) -> None:
    """Refuse a destination that exists and is not a directory (before any work)."""
    if dest.is_dir():
        return
    if dest.is_file():
        raise UsageError(
            f"cannot unpack into {dest}: it exists and is a file",
            hint="name a new or empty directory as DEST",
        )
    if dest.exists() or dest.is_symlink():
        raise UsageError(
            f"cannot unpack into {dest}: it exists and is not a directory",
            hint="name a new or empty directory as DEST",
        )


def _prepare_dest(dest: Path, force: bool) -> tuple[Path, bool]:
    """Where to unpack, and whether that is a temporary directory to rename to ``dest``."""
    check_dest(dest)
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
    with reporting("write", dest):
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale(parent)
        temp = temp_name(parent / dest.name)
        temp.mkdir(mode=0o700)
    return temp, True


def unpack(
    source: ImageSource,
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
    (else to the progress's messages: once, either way) and are listed in the result.
    ``limits`` bound what each layer decompresses to and what the layers write
    (:class:`~sneaker.layers.apply.LayerLimits`).
    """
    candidates = source.records
    if image is None:  # an archive of an image and its signatures and SBOMs: the image
        candidates = [r for r in source.records if not record_is_artifact(r)] or candidates
    record, blobs = choose_record(candidates, image), source
    name = _record_name(record)
    progress = progress or NullProgress()
    _refuse_artifact(record.root, name)
    manifest, chosen = _choose_manifest(record, blobs, platform, name)
    _refuse_artifact(manifest, name)
    raw_config = _read_small(blobs, manifest.config, MAX_CONFIG_BYTES, f"{name}: config")
    config = parse_config(manifest, raw_config, name)
    found = config.platform
    single = isinstance(record.root, Manifest)
    if single and platform is not None and found is not None and not platform.matches(found):
        raise NoMatchingPlatform(
            f"{name} is a single-platform image for {found}, not {platform}",
            hint=f"unpack it with --platform {found}, or without --platform",
        )
    diff_ids = list(config.diff_ids)

    result = UnpackResult(
        dest=dest,
        reference=str(record.reference) if record.reference is not None else None,
        manifest=manifest.digest,
        platform=chosen or found,
        layers=len(manifest.layers),
    )

    def on_warning(text: str) -> None:
        result.warnings.append(text)
        if warn is not None:
            warn(text)
        else:
            progress.message(f"warning: {text}")

    target, temporary = _prepare_dest(dest, force)
    try:
        applier = LayerApplier(target, warn=on_warning, limits=limits, shown_as=dest)
        count = len(manifest.layers)
        progress.expect({_apply_key(desc): desc.size for desc in manifest.layers})
        for number, (desc, diff_id) in enumerate(zip(manifest.layers, diff_ids, strict=True), 1):
            what = f"{name}: layer {number}/{count} {desc.digest}"
            result.stats.add(_apply_one(applier, blobs, desc, diff_id, what, limits, progress))
        applier.finish()
        if temporary:
            with reporting("write", dest):
                os.chmod(target, 0o755)
                if dest.is_dir():
                    dest.rmdir()  # empty: checked above
                os.rename(target, dest)
    except BaseException:
        if temporary:
            remove_tree(target)
        raise
    return result


def _apply_key(desc: Descriptor) -> str:
    """The progress key of applying one layer."""
    return f"unpack:{desc.digest}"


def _apply_one(
    applier: LayerApplier,
    blobs: BlobSource,
    desc: Descriptor,
    diff_id: Digest,
    what: str,
    limits: LayerLimits,
    progress: Progress,
) -> LayerStats:
    key = _apply_key(desc)
    progress.start(key, f"layer {desc.digest.short}", desc.size)
    try:
        with blobs.open_blob(desc) as stream:
            compressed = HashingReader(
                stream, desc.digest.hasher(), lambda n: progress.advance(key, n)
            )
            try:
                tar = open_layer_stream(
                    compressed,
                    desc.media_type,
                    compressed_size=desc.size,
                    limits=limits,
                    what=what,
                )
                uncompressed = HashingReader(tar, diff_id.hasher())
                stats = applier.apply(uncompressed, what=what, compressed_size=desc.size)
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


def _check_blob(compressed: HashingReader, desc: Descriptor, what: str) -> None:
    if compressed.count != desc.size:
        raise IntegrityError(f"{what}: {compressed.count} bytes, descriptor says {desc.size}")
    actual = compressed.hasher.hexdigest()
    if actual != desc.digest.hex:
        raise IntegrityError(
            f"{what}: digest mismatch (content hashes to {desc.digest.algorithm}:{actual})"
        )


if TYPE_CHECKING:  # for unpack_remote (kept beside it)
    from ..registry.reader import RegistryReader
    from ..settings import RegistrySettings


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
    settings: RegistrySettings | None = None,
    client_factory: Callable[[str], RegistryReader] | None = None,
    limits: LayerLimits = DEFAULT_LIMITS,
) -> UnpackResult:
    """Unpack an image straight from a registry: resolve, fetch into the cache, apply.

    The registry is read through ``client_factory`` (default: one for ``settings``,
    which default to :func:`sneaker.settings.load_settings`): mirrors, insecure and
    blocked registries apply as for ``pull``.
    """
    # start-up: unpacking an archive loads no registry code; only this function needs it
    from ..registry.mirrors import client_factory_for
    from ..transfer.cache import BlobCache, default_cache_dir
    from ..transfer.source import resolve_images

    ref = parse_reference(reference)
    request = PlatformRequest((platform,) if platform is not None else ())
    with BlobCache(cache_dir or default_cache_dir()) as cache:
        with client_factory_for(options, settings, client_factory) as factory:
            source = resolve_images([ref], factory, request, cache=cache)
            source.fetch(parallel=jobs, progress=progress)
        return unpack(
            source,
            dest,
            platform=platform,
            force=force,
            progress=progress,
            limits=limits,
            warn=warn,
        )
