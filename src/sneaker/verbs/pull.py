"""``pull``: references -> resolved manifests -> blobs in the cache -> one archive or layout.

Composition only: resolution is :mod:`sneaker.transfer.remote`, downloading is
:mod:`sneaker.transfer.fetch`, writing is :mod:`sneaker.archive`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive.delta import DeltaMarker, OmittedBlob, docker_format_refusal
from ..archive.docker_archive import check_docker_records, write_docker_archive
from ..archive.oci_layout import write_oci_layout
from ..archive.split import split_parts
from ..archive.tar import check_archive_output
from ..errors import UsageError
from ..image.artifacts import artifact_type
from ..image.config import MAX_CONFIG_BYTES, check_record_configs, image_config_digests
from ..image.digest import Digest
from ..image.model import Manifest
from ..image.records import BlobSource, ImageRecord
from ..image.reference import Reference, parse_reference
from ..image.selection import PlatformRequest
from ..registry.mirrors import make_client_factory
from ..registry.options import RegistryOptions, check_explicit_credentials
from ..settings import load_settings
from ..transfer.cache import RESUMES, BlobCache, default_cache_dir
from ..transfer.fetch import BlobJob, FetchStats, fetch_blobs, fetch_while
from ..transfer.source import RegistrySource, ResolvedImage, resolve_images
from ..util.oserrors import resumable
from ..util.progress import NullProgress, Progress
from .output import WrittenOutput
from .referrers import CarriedReferrer, ReferrerOptions, find_referrers, refuse_docker_format

if TYPE_CHECKING:
    from ..image.inventory import Inventory
    from ..registry.reader import RegistryReader
    from ..settings import RegistrySettings

__all__ = ["PullResult", "PulledImage", "default_output_name", "plan_delta", "pull"]

FORMATS = ("docker", "oci")
_ANY = PlatformRequest(all=True)


@dataclass(frozen=True)
class PulledImage:
    reference: str
    digest: str
    platforms: tuple[str, ...]
    size: int
    rewritten: bool = False
    #: what an artifact is (a Helm chart's config type, an SBOM's artifactType); None: an image
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "platforms": list(self.platforms),
            "artifactType": self.artifact_type,
            "size": self.size,
            "index_rewritten": self.rewritten,
        }


@dataclass
class PullResult(WrittenOutput):
    images: list[PulledImage] = field(default_factory=list)
    stats: FetchStats = field(default_factory=FetchStats)
    #: the marker of a delta (``base`` given and something left out), else None
    delta: DeltaMarker | None = None
    #: the images' referrers (``--referrers``), in the archive after the images
    referrers: list[CarriedReferrer] = field(default_factory=list)
    #: what the referrers' bounds left out
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.output_json(),
            "images": [i.to_json() for i in self.images],
            "referrers": [r.to_json() for r in self.referrers],
            "warnings": list(self.warnings),
            "delta": None
            if self.delta is None
            else {
                "base": list(self.delta.base),
                "omitted": len(self.delta.omitted),
                "omitted_size": self.delta.omitted_size,
            },
            "blobs": {
                "downloaded": self.stats.downloaded,
                "resumed": self.stats.resumed,
                "cached": self.stats.cached,
            },
        }


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_output_name(ref: Reference) -> str:
    """``ubuntu:22.04`` -> ``ubuntu_22.04.tar``; safe on Windows (no ``:``)."""
    base = ref.repository.rsplit("/", 1)[-1]
    if ref.tag:
        base += f"_{ref.tag}"
    if ref.digest is not None:
        base += f"_{ref.digest.algorithm}-{ref.digest.short}"
    return _UNSAFE.sub("_", base) + ".tar"


def _output_kind(output: Path | str, fmt: str) -> str:
    """docker archive; an OCI layout directory (``dir/`` or an existing directory); an OCI tar."""
    if fmt == "docker":
        return "docker-archive"
    if str(output).endswith(("/", "\\")) or Path(output).is_dir():
        return "oci-layout"
    return "oci-archive"


def _with_referrers(
    source: RegistrySource, options: ReferrerOptions, result: PullResult, progress: Progress
) -> RegistrySource:
    """``source`` with the referrers of its images after them (noted in ``result``)."""
    found, result.warnings = find_referrers(
        [(image.ref, image.resolved, image.client) for image in source.images], options, progress
    )
    result.referrers = [CarriedReferrer.of(item) for item, _ in found]
    extra = [ResolvedImage(item.ref, item.resolved, reader) for item, reader in found]
    return RegistrySource([*source.images, *extra], source.cache, progress)


def plan_delta(records: Sequence[ImageRecord], base: Inventory) -> DeltaMarker:
    """The layers of ``records`` that ``base`` has, as a marker.

    Only layers are left out: indexes, manifests and configs always travel (a
    digest that is a config anywhere in ``records`` is never omitted), and so
    does a non-distributable layer (one with ``urls``), which registries may
    not hold.
    """
    configs = {m.config.digest for r in records for m in r.manifests()}
    omitted: dict[Digest, OmittedBlob] = {}
    for record in records:
        for manifest in record.manifests():
            for layer in manifest.layers:
                if layer.digest in configs or layer.digest in omitted or layer.urls:
                    continue
                known = base.blobs.get(layer.digest)
                if known is None or known.size != layer.size:
                    continue
                omitted[layer.digest] = OmittedBlob(
                    layer.digest, layer.size, layer.media_type, tuple(sorted(known.repositories))
                )
    return DeltaMarker(omitted, tuple(base.sources))


def pull(
    references: Sequence[str | Reference],
    output: Path | str | None = None,
    *,
    format: str | None = None,
    platform: PlatformRequest | None = None,
    options: RegistryOptions | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    jobs: int = 4,
    split: int | None = None,
    progress: Progress | None = None,
    client_factory: Callable[[str], RegistryReader] | None = None,
    settings: RegistrySettings | None = None,
    base: Inventory | None = None,
    referrers: ReferrerOptions | None = None,
) -> PullResult:
    """Pull ``references`` into one archive (``format`` ``docker`` or ``oci``).

    Several images share one archive and each blob is stored once. The output
    is written under a temporary name and renamed at the end. ``settings``
    (mirrors, insecure and blocked registries; default: :func:`sneaker.settings.load_settings`)
    only change where bytes come from: images keep their original names.

    ``base`` (what the other side has: :func:`sneaker.verbs.inventory.load_base` of
    ``--since`` archives and ``--have`` inventories) makes a delta (:func:`plan_delta`):
    the layers it has are neither downloaded nor written, and the archive is an OCI
    layout with a marker (see :mod:`sneaker.archive.delta`); ``format`` defaults to ``oci``
    then, and ``docker`` is refused. ``referrers`` (``--referrers``) carries the images'
    signatures, attestations and SBOMs too (:mod:`sneaker.verbs.referrers`): OCI only as
    well. ``format`` is ``docker`` otherwise.
    """
    if format is None:
        format = "oci" if base is not None or referrers is not None else "docker"
    if base is not None and format == "docker":
        raise docker_format_refusal()
    if referrers is not None and format == "docker":
        raise refuse_docker_format()
    if format not in FORMATS:
        raise UsageError(f"unknown format {format!r}", hint="use --format docker or --format oci")
    if not references:
        raise UsageError(
            "no image to pull", hint="name at least one image, e.g. sneaker pull ubuntu"
        )
    request = platform or PlatformRequest()
    if format == "docker" and not request.single:
        raise UsageError(
            f"a docker archive holds one platform per image, and {request} asks for more",
            hint="use --format oci to keep several platforms",
        )
    refs = [r if isinstance(r, Reference) else parse_reference(r) for r in references]
    check_explicit_credentials(options, (r.registry for r in refs))
    if output is None:
        if len(refs) > 1:
            raise UsageError("several images need an output name", hint="give one with -o FILE.tar")
        output = Path(default_output_name(refs[0]))
    output_path = Path(output)
    kind = _output_kind(output, format)
    if kind == "docker-archive" and (str(output).endswith(("/", "\\")) or output_path.is_dir()):
        raise UsageError(
            f"{output} is a directory, and a docker archive is a file",
            hint="name the file with -o (e.g. -o images.tar), or use --format oci for a layout "
            "directory",
        )
    if split is not None and kind == "oci-layout":
        raise UsageError("--split applies to archives, not to an OCI layout directory")
    # before any download: a device, fifo or missing directory is refused, a symlink
    # is written through, - is standard output (not a terminal, not split)
    output_path = check_archive_output(output_path, directory=kind == "oci-layout", split=split)
    progress = progress or NullProgress()

    with ExitStack() as stack:
        stack.enter_context(resumable(RESUMES))  # a full disk: what a rerun keeps
        if client_factory is None:
            opts = options or RegistryOptions()
            # registries.conf, daemon.json and --mirror: mirrors, insecure hosts, blocks
            settings = settings or load_settings(plain_http=opts.plain_http)
            client_factory = stack.enter_context(make_client_factory(settings, opts))

        if use_cache:  # closed at the end: from then on a prune may remove what it used
            cache = stack.enter_context(BlobCache(cache_dir or default_cache_dir()))
        else:
            cache = stack.enter_context(BlobCache.temporary(output_path.parent.resolve()))

        source = resolve_images(refs, client_factory, request, cache=cache, progress=progress)
        resolved = [(image.ref, image.resolved) for image in source.images]
        result = PullResult(output_path, kind)
        if referrers is not None:
            source = _with_referrers(source, referrers, result, progress)
        if kind == "docker-archive":
            check_docker_records(source.records)  # before any download: an artifact, say
        image_configs = image_config_digests(source.records)

        delta = None
        if base is not None:
            delta = plan_delta(source.records, base)
            if not delta.omitted:
                progress.message("the base has none of these layers: writing a full archive")
                delta = None
        skipped = delta.omitted if delta is not None else {}

        def blob_jobs(configs: bool | None) -> list[BlobJob]:
            return [
                job
                for job in source.jobs(configs=configs)
                # the other side has it: not downloaded, not written
                if job.desc.digest not in skipped
                # an image config refused by its declared size: never downloaded
                and not (
                    configs
                    and job.desc.size > MAX_CONFIG_BYTES
                    and job.desc.digest in image_configs
                )
            ]

        def read_config(manifest: Manifest) -> bytes:
            if manifest.config.size > MAX_CONFIG_BYTES:
                return b""  # check_config refuses it by its declared size
            return cache.path(manifest.config.digest).read_bytes()

        # the whole download is known now: progress counts against it from the first byte
        progress.expect({str(j.desc.digest): j.desc.size for j in blob_jobs(None)})
        # configs first (a few kB): a wrong platform or a broken config fails the pull
        # before any layer is downloaded
        config_stats = fetch_blobs(blob_jobs(True), cache, parallel=jobs, progress=progress)
        found_platforms = [
            check_record_configs(item.record, read_config, ref.familiar, request)
            for ref, item in resolved
        ]
        for image in source.images[len(resolved) :]:  # referrers: any platform
            check_record_configs(image.resolved.record, read_config, image.ref.familiar, _ANY)
        result.delta = delta
        records: list[ImageRecord] = []
        for (ref, item), found in zip(resolved, found_platforms, strict=True):
            record = item.record
            platforms = item.platforms
            if found is not None:
                platforms = (found,)
            records.append(record)
            size = sum(d.size for d in record.blobs()) + len(record.root.raw)
            result.images.append(
                PulledImage(
                    reference=str(ref.without_digest()) if ref.tag else str(ref),
                    digest=str(record.root.digest),
                    platforms=tuple(str(p) for p in platforms),
                    size=size,
                    rewritten=record.rewritten,
                    artifact_type=artifact_type(record.root),
                )
            )

        records += [image.resolved.record for image in source.images[len(resolved) :]]

        def write(blobs: BlobSource) -> None:
            """The archive, written while the layers download: each blob is copied
            in the writer's fixed order as soon as it is in the cache."""
            if kind == "docker-archive":
                write_docker_archive(records, blobs, output_path, split=split)
            else:
                write_oci_layout(
                    records,
                    blobs,
                    output_path,
                    as_tar=kind == "oci-archive",
                    split=split,
                    delta=delta,
                )

        progress.message(f"writing {output_path}")
        layer_stats, _ = fetch_while(
            blob_jobs(False), cache, write, parallel=jobs, progress=progress
        )
        result.stats = FetchStats(
            downloaded=config_stats.downloaded + layer_stats.downloaded,
            cached=config_stats.cached + layer_stats.cached,
            resumed=config_stats.resumed + layer_stats.resumed,
        )
        if split is not None:
            result.parts = split_parts(output_path) or []
        return result
