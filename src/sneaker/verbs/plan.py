"""``plan``: resolve images now, write what a download team needs to fetch their blobs.

The plan directory (every name safe on Windows: no ``:``)::

    plan.json                   machine-readable: images, manifests, blobs, URLs
    manifests/sha256-<hex>.json every manifest and index, raw bytes as served
    blobs/sha256/<hex>          the image configs (fetched now); fetch.sh adds the layers
    urls.txt                    one blob URL per line (configs included)
    SHA256SUMS                  ``sha256sum -c`` format for every blob and manifest
    fetch.sh                    POSIX sh + curl: fetches every blob (see sneaker.verbs.fetchscript)
    README.txt                  the short version of the above, for the people fetching

Manifests and configs are fetched by sneaker (with its auth, TLS and platform
selection); layers are left to ``fetch.sh`` or any tool that can fetch
``urls.txt``. ``sneaker assemble`` turns the filled directory into an archive.
The directory is built under a temporary name and renamed at the end.

Registry settings (registries.conf, daemon.json, ``--mirror``: :mod:`sneaker.settings`)
apply as for ``pull``. An image resolved through a mirror (or a registries.conf
``location``) gets that endpoint's blob URLs in ``urls.txt``, ``fetch.sh`` and
plan.json's ``url`` and ``api`` (what the download team reaches is what answered
sneaker), and plan.json's ``fetch_from`` names it (``host/repository``; the key is
absent when the registry itself answered); ``reference``, ``registry`` and
``repository`` keep the name the image was asked for, which is the name
``assemble`` writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import __version__
from ..errors import ArchiveError, UnsupportedError, UsageError
from ..image.artifacts import record_is_artifact
from ..image.config import MAX_CONFIG_BYTES, check_record_configs
from ..image.digest import Digest
from ..image.model import Descriptor, Manifest
from ..image.platform import Platform
from ..image.records import ImageRecord
from ..image.reference import Reference, parse_reference
from ..image.selection import PlatformRequest
from ..registry.mirrors import client_factory_for
from ..registry.options import check_explicit_credentials
from ..transfer.cache import BlobCache
from ..transfer.fetch import BlobJob, fetch_blobs
from ..transfer.remote import Resolved, resolve
from ..util.jsondoc import DocumentKind
from ..util.oserrors import reporting
from ..util.progress import NullProgress, Progress
from ..util.tempfiles import remove_stale, temp_name
from .fetchscript import DEFAULT_JOBS, FetchItem, render_fetch_script
from .referrers import CarriedReferrer, ReferrerOptions, find_referrers

if TYPE_CHECKING:
    from ..registry.client import RegistryClient, RegistryOptions
    from ..registry.reader import RegistryReader
    from ..settings import RegistrySettings

__all__ = [
    "PLAN_FILE",
    "PLAN_FORMAT",
    "PLAN_KIND",
    "PLAN_VERSION",
    "PlanResult",
    "PlannedImage",
    "assemble_command",
    "blob_relpath",
    "manifest_relpath",
    "plan",
    "plan_document",
]

PLAN_FILE = "plan.json"
_ANY = PlatformRequest(all=True)
PLAN_FORMAT = "sneaker-plan"
PLAN_VERSION = 1
#: plan files larger than this are refused
MAX_PLAN_BYTES = 64 * 1024 * 1024


def _no_plan(path: Path) -> UsageError:
    return UsageError(
        f"{path} is missing", hint="give the directory that `sneaker plan -o DIR` wrote"
    )


#: ``plan.json`` as a versioned JSON document (format, version, size cap); assemble reads it
PLAN_KIND = DocumentKind(
    format=PLAN_FORMAT,
    version=PLAN_VERSION,
    noun="plan",
    max_bytes=MAX_PLAN_BYTES,
    error=ArchiveError,
    missing=_no_plan,
    version_hint="assemble it with the sneaker version that made the plan, or a newer one",
)
#: image configs larger than this are refused (they are JSON documents)


def manifest_relpath(digest: Digest) -> str:
    """``manifests/sha256-<hex>.json``: where a plan keeps a manifest or index."""
    return f"manifests/{digest.algorithm}-{digest.hex}.json"


def blob_relpath(digest: Digest) -> str:
    """``blobs/sha256/<hex>``: where a plan's blobs go (what fetch.sh and SHA256SUMS use)."""
    return f"blobs/{digest.algorithm}/{digest.hex}"


@dataclass(frozen=True)
class PlannedImage:
    """One resolved image of a plan and where its blobs are fetched from."""

    record: ImageRecord
    api: str
    source_digest: Digest
    platforms: tuple[Platform, ...]
    blob_url: Callable[[Digest], str] = field(repr=False, compare=False)
    #: ``host/repository`` blobs are fetched from when not the image's own (a mirror)
    fetch_from: str | None = None
    #: what it refers to, when it is a referrer of another image of the plan
    referrer: CarriedReferrer | None = None

    @property
    def reference(self) -> Reference:
        ref = self.record.reference
        assert ref is not None
        return ref

    def fetch_items(self) -> list[FetchItem]:
        ref = self.reference
        registry, repository = ref.registry, ref.repository
        if self.fetch_from is not None:
            registry, _, repository = self.fetch_from.partition("/")
        return [
            FetchItem(registry, repository, self.blob_url(d.digest), d.digest.hex, d.size)
            for d in self.record.blobs()
        ]


def _descriptor_json(desc: Descriptor, path: str) -> dict[str, Any]:
    return {
        "digest": str(desc.digest),
        "mediaType": desc.media_type,
        "size": desc.size,
        "path": path,
    }


def _request_json(request: PlatformRequest) -> dict[str, Any]:
    # the platforms are written out even when the host's was meant: the machine that
    # assembles the plan may be another one
    return {
        "all": request.all,
        "platforms": [] if request.all else [str(p) for p in request.wanted()],
        "explicit": request.explicit,
        "single": request.single,
    }


def _image_json(image: PlannedImage) -> dict[str, Any]:
    record = image.record
    ref = image.reference
    configs = {m.config.digest for m in record.manifests()}
    blobs = []
    for desc in record.blobs():
        entry = _descriptor_json(desc, blob_relpath(desc.digest))
        entry["kind"] = "config" if desc.digest in configs else "layer"
        entry["url"] = image.blob_url(desc.digest)
        blobs.append(entry)
    names: dict[str, Any] = {
        "reference": str(ref),
        "registry": ref.registry,
        "api": image.api,
        "repository": ref.repository,
    }
    if image.fetch_from is not None:
        names["fetch_from"] = image.fetch_from
    if image.referrer is not None:
        names["referrer"] = image.referrer.to_json()
    return {
        **names,
        "source_digest": str(image.source_digest),
        "root": _descriptor_json(record.root.descriptor, manifest_relpath(record.root.digest)),
        "rewritten": record.rewritten,
        "platforms": [str(p) for p in image.platforms],
        "children": [
            _descriptor_json(child.descriptor, manifest_relpath(digest))
            for digest, child in record.children.items()
        ],
        "blobs": blobs,
    }


def _unique_blobs(images: Sequence[PlannedImage]) -> list[FetchItem]:
    seen: dict[str, FetchItem] = {}
    for image in images:
        for item in image.fetch_items():
            seen.setdefault(item.hex, item)
    return list(seen.values())


def plan_document(images: Sequence[PlannedImage], request: PlatformRequest) -> dict[str, Any]:
    """The content of ``plan.json`` (pure: the same images give the same document)."""
    unique = _unique_blobs(images)
    return {
        **PLAN_KIND.fields(),
        "created_by": f"sneaker {__version__}",
        "platform": _request_json(request),
        "images": [_image_json(i) for i in images],
        "blobs": {"count": len(unique), "size": sum(i.size for i in unique)},
    }


def assemble_command(plan_dir: str, plan_digest: Digest | str, *, several_platforms: bool) -> str:
    """The ``sneaker assemble`` line to suggest for a plan (OCI when it has several platforms)."""
    fmt = " --format oci" if several_platforms else ""
    return f"sneaker assemble {plan_dir} -o images.tar{fmt} --plan-digest {plan_digest}"


def _several_platforms(images: Sequence[PlannedImage], request: PlatformRequest) -> bool:
    """Can only an OCI archive hold these (as ``assemble`` decides)? Several platforms, or
    an artifact (a Helm chart, a signature), which a docker archive does not hold."""
    return not request.single or any(
        not isinstance(i.record.root, Manifest) or record_is_artifact(i.record) for i in images
    )


@dataclass
class PlanResult:
    output: Path
    images: list[PlannedImage] = field(default_factory=list)
    #: every distinct blob of the plan, configs included
    blob_count: int = 0
    blob_size: int = 0
    #: the distinct configs sneaker fetched into the plan already
    config_count: int = 0
    config_size: int = 0
    #: a docker archive cannot hold the plan's images (several platforms): assemble to OCI
    several_platforms: bool = False
    #: what the referrers' bounds left out
    warnings: list[str] = field(default_factory=list)

    @property
    def requested(self) -> list[PlannedImage]:
        """The images asked for (not their referrers)."""
        return [i for i in self.images if i.referrer is None]

    @property
    def referrers(self) -> list[CarriedReferrer]:
        return [i.referrer for i in self.images if i.referrer is not None]

    @property
    def fetch_count(self) -> int:
        """Blobs left for fetch.sh (every blob but the configs already in the plan)."""
        return self.blob_count - self.config_count

    @property
    def fetch_size(self) -> int:
        return self.blob_size - self.config_size

    def assemble_command(self, plan_digest: Digest | str) -> str:
        return assemble_command(
            str(self.output), plan_digest, several_platforms=self.several_platforms
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "images": [
                {
                    "reference": str(i.reference),
                    "digest": str(i.record.root.digest),
                    "source_digest": str(i.source_digest),
                    "platforms": [str(p) for p in i.platforms],
                    "index_rewritten": i.record.rewritten,
                }
                for i in self.requested
            ],
            "referrers": [r.to_json() for r in self.referrers],
            "warnings": list(self.warnings),
            "blobs": {
                "count": self.blob_count,
                "size": self.blob_size,
                "in_plan": self.config_count,
                "to_fetch": self.fetch_count,
                "to_fetch_size": self.fetch_size,
            },
            "several_platforms": self.several_platforms,
            "fetch_script": str(self.output / "fetch.sh"),
        }


def _sha256_line(data: bytes, relpath: str) -> str:
    return f"{hashlib.sha256(data).hexdigest()}  {relpath}\n"


def _readme(
    images: Sequence[PlannedImage],
    count: int,
    size: int,
    in_plan: int,
    assemble_line: str,
) -> str:
    names = "".join(f"  {i.reference}  ({i.record.root.digest})\n" for i in images)
    mirrors = "".join(
        f"  {i.reference}: from {i.fetch_from}\n" for i in images if i.fetch_from is not None
    )
    if mirrors:
        mirrors = (
            "Served by a mirror (or a registries.conf location); the URLs point there:\n"
            f"{mirrors}\n"
        )
    return (
        "sneaker download plan\n"
        "=====================\n\n"
        f"Images:\n{names}\n"
        f"{mirrors}"
        f"Blobs to fetch: {count - in_plan} of {count} ({size} bytes in all); the other "
        f"{in_plan} (the image configs) are already in blobs/sha256/.\n\n"
        "To fetch them with curl (POSIX sh; sha256sum checks each file when installed):\n\n"
        "  sh fetch.sh\n\n"
        "Run it again after an interruption: it resumes. It gets anonymous registry tokens\n"
        "itself; for private images set SNEAKER_USER and SNEAKER_PASSWORD. It fetches\n"
        f"{DEFAULT_JOBS} blobs at a time; SNEAKER_FETCH_JOBS=N sets how many "
        "(1: one after another).\n\n"
        "With other tools: fetch each URL of urls.txt and save it as blobs/sha256/<hex>,\n"
        "where <hex> is the 64 characters after 'sha256:' at the end of the URL; then\n"
        "check everything with:\n\n"
        "  sha256sum -c SHA256SUMS\n\n"
        "Bring this whole directory back; on the other side:\n\n"
        f"  {assemble_line}\n"
    )


def _prepare_output(output: Path) -> Path:
    """A fresh temporary directory next to ``output``; ``output`` must not hold anything."""
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()):
        raise UsageError(
            f"{output} exists and is not empty",
            hint="give a new directory to -o (a plan is written whole, never merged)",
        )
    parent = output.resolve().parent
    with reporting("write", output):
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale(parent)
        tmp = temp_name(parent / output.name)
        tmp.mkdir()
    return tmp


def _finish_output(tmp: Path, output: Path) -> None:
    for leftover in BlobCache.BOOKKEEPING:  # the plan keeps the blobs only
        shutil.rmtree(tmp / leftover, ignore_errors=True)
    if output.is_dir():
        output.rmdir()
    os.replace(tmp, output)


def _configs(images: Sequence[PlannedImage]) -> dict[Digest, int]:
    """The distinct configs of the plan (what sneaker fetches into it), with their sizes."""
    return {m.config.digest: m.config.size for i in images for m in i.record.manifests()}


def _write_files(tmp: Path, images: Sequence[PlannedImage], request: PlatformRequest) -> None:
    sums: list[str] = []
    manifests_dir = tmp / "manifests"
    manifests_dir.mkdir()
    written: set[Digest] = set()
    for image in images:
        record = image.record
        for node in (record.root, *record.children.values()):
            if node.digest in written:
                continue
            written.add(node.digest)
            relpath = manifest_relpath(node.digest)
            (tmp / relpath).write_bytes(node.raw)
            sums.append(_sha256_line(node.raw, relpath))
    unique = _unique_blobs(images)
    blob_sums = [f"{item.hex}  {blob_relpath(Digest('sha256', item.hex))}\n" for item in unique]
    (tmp / "SHA256SUMS").write_text("".join(blob_sums + sums), encoding="utf-8", newline="\n")
    (tmp / "urls.txt").write_text(
        "".join(f"{item.url}\n" for item in unique), encoding="utf-8", newline="\n"
    )
    document = plan_document(images, request)
    plan_bytes = (json.dumps(document, indent=2) + "\n").encode()
    (tmp / PLAN_FILE).write_bytes(plan_bytes)
    plan_digest = Digest.of_bytes(plan_bytes)
    several = _several_platforms(images, request)
    script = render_fetch_script(unique, version=__version__)
    (tmp / "fetch.sh").write_text(script, encoding="utf-8", newline="\n")
    (tmp / "fetch.sh").chmod(0o755)
    readme = _readme(
        images,
        len(unique),
        sum(i.size for i in unique),
        len(_configs(images)),
        assemble_command("THIS_DIR", plan_digest, several_platforms=several),
    )
    (tmp / "README.txt").write_text(readme, encoding="utf-8", newline="\n")


def _blob_url_maker(client: RegistryClient, repository: str) -> Callable[[Digest], str]:
    base = client.transport.url(f"/v2/{quote(repository, safe='/')}/blobs/")

    def make(digest: Digest) -> str:
        return f"{base}{digest}"

    return make


def plan(
    references: Sequence[str | Reference],
    output: Path | str,
    *,
    platform: PlatformRequest | None = None,
    options: RegistryOptions | None = None,
    jobs: int = 4,
    progress: Progress | None = None,
    settings: RegistrySettings | None = None,
    client_factory: Callable[[str], RegistryReader] | None = None,
    referrers: ReferrerOptions | None = None,
) -> PlanResult:
    """Resolve ``references`` now and write a download plan into the directory ``output``.

    Registries are read through ``client_factory`` (default: one for ``settings``,
    which default to :func:`sneaker.settings.load_settings`): mirrors, insecure and
    blocked registries apply as for ``pull``; see the module doc for mirror URLs.
    ``referrers`` plans the images' referrers too (:mod:`sneaker.verbs.referrers`), as
    images of their own after them, each entry of plan.json saying what it refers to.
    """
    if not references:
        raise UsageError(
            "no image to plan", hint="name at least one image, e.g. sneaker plan ubuntu -o DIR"
        )
    request = platform or PlatformRequest()
    refs = [r if isinstance(r, Reference) else parse_reference(r) for r in references]
    check_explicit_credentials(options, (r.registry for r in refs))
    unique_refs = list(dict.fromkeys(refs))
    output_path = Path(output)
    progress = progress or NullProgress()

    tmp = _prepare_output(output_path)
    try:
        with ExitStack() as stack:
            client_for = stack.enter_context(client_factory_for(options, settings, client_factory))

            resolved: list[Resolved] = []
            for ref in unique_refs:
                progress.message(f"resolving {ref.familiar}")
                resolved.append(resolve(client_for(ref.registry), ref, request))
            carried: list[CarriedReferrer | None] = [None] * len(unique_refs)
            warnings: list[str] = []
            if referrers is not None:
                readers = [
                    (r, i, client_for(r.registry))
                    for r, i in zip(unique_refs, resolved, strict=True)
                ]
                taken, warnings = find_referrers(readers, referrers, progress)
                unique_refs += [item.ref for item, _ in taken]
                resolved += [item.resolved for item, _ in taken]
                carried += [CarriedReferrer.of(item) for item, _ in taken]

            cache = stack.enter_context(BlobCache(tmp))
            config_jobs: list[BlobJob] = []
            for ref, item in zip(unique_refs, resolved, strict=True):
                for manifest in item.record.manifests():
                    for desc in manifest.blobs:
                        if desc.digest.algorithm != "sha256":
                            raise UnsupportedError(
                                f"{ref.familiar}: blob {desc.digest} is not a sha256 digest",
                                hint="fetch.sh and SHA256SUMS handle sha256 blobs only",
                            )
                    label = f"{ref.brief} config {manifest.config.digest.short}"
                    config_jobs.append(
                        BlobJob(client_for(ref.registry), ref.repository, manifest.config, label)
                    )
            fetch_blobs(config_jobs, cache, parallel=jobs, progress=progress)

            def read_config(manifest: Manifest) -> bytes:
                if manifest.config.size > MAX_CONFIG_BYTES:
                    return b""  # check_config refuses it by its declared size
                return cache.path(manifest.config.digest).read_bytes()

            images: list[PlannedImage] = []
            for ref, item, referrer in zip(unique_refs, resolved, carried, strict=True):
                record = item.record
                platforms = item.platforms
                wanted = request if referrer is None else _ANY  # a referrer: any platform
                found = check_record_configs(record, read_config, ref.familiar, wanted)
                if found is not None:
                    platforms = (found,)
                client, repository, fetch_from = client_for(ref.registry).served_from(
                    ref.repository, ref.identifier
                )
                images.append(
                    PlannedImage(
                        record=record,
                        api=client.transport.url("/v2/"),
                        source_digest=item.source_digest,
                        platforms=platforms,
                        blob_url=_blob_url_maker(client, repository),
                        fetch_from=fetch_from,
                        referrer=referrer,
                    )
                )

        progress.message(f"writing {output_path}")
        with reporting("write", output_path):
            _write_files(tmp, images, request)
            _finish_output(tmp, output_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    unique = _unique_blobs(images)
    configs = _configs(images)
    return PlanResult(
        output=output_path,
        images=images,
        blob_count=len(unique),
        blob_size=sum(i.size for i in unique),
        config_count=len(configs),
        config_size=sum(configs.values()),
        several_platforms=_several_platforms(images, request),
        warnings=warnings,
    )
