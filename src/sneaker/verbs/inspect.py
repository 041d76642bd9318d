"""``inspect``: what an image or archive holds, without downloading layers.

Works on a remote reference (manifests and configs only; read through the
registry settings, mirrors included: :mod:`sneaker.settings`) and on every
archive :func:`sneaker.archive.open_archive` reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import ArchiveError, ManifestInvalid, NotFound, SneakerError
from ..image.artifacts import Attachment, artifact_type, attachment_of
from ..image.config import MAX_CONFIG_BYTES
from ..image.digest import Digest
from ..image.model import Descriptor, Index, Manifest
from ..image.records import ImageRecord, ImageSource
from ..image.reference import Reference, parse_reference
from ..image.selection import PlatformRequest

if TYPE_CHECKING:
    from ..archive.delta import DeltaMarker
    from ..registry.client import RegistryOptions
    from ..registry.reader import RegistryReader
    from ..settings import RegistrySettings

__all__ = ["ImageReport", "InspectReport", "ManifestReport", "inspect"]

#: tags named in the hint when a tag is not found
TAG_HINT_LIMIT = 10
LEGACY_NOTE = (
    "a docker save from before docker 25: its layers are stored uncompressed and push "
    "gzips them, so the pushed image's digest will differ from the one shown here"
)


@dataclass(frozen=True)
class ManifestReport:
    """One platform's image."""

    digest: str
    media_type: str
    platform: str
    created: str | None
    config_digest: str
    layers: tuple[tuple[str, int, str], ...]  # digest, size, media type
    attestation: bool = False
    #: what an artifact is (``artifactType``, else its config's media type); None for an image
    artifact_type: str | None = None

    @property
    def size(self) -> int:
        return sum(size for _, size, _ in self.layers)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "platform": self.platform,
            "created": self.created,
            "config": self.config_digest,
            "size": self.size,
            "attestation": self.attestation,
            "layers": [{"digest": d, "size": s, "mediaType": m} for d, s, m in self.layers],
        }


@dataclass(frozen=True)
class ImageReport:
    name: str | None
    tags: tuple[str, ...]
    digest: str
    media_type: str
    manifests: tuple[ManifestReport, ...]
    #: the root's artifact type when it is an artifact, else None
    artifact_type: str | None = None
    #: what the image is attached to (an OCI 1.1 referrer, a cosign tag), else None
    attachment: Attachment | None = None

    def to_json(self) -> dict[str, Any]:
        attached = self.attachment
        return {
            "name": self.name,
            "tags": list(self.tags),
            "digest": self.digest,
            "mediaType": self.media_type,
            "artifactType": self.artifact_type,
            "subject": str(attached.subject) if attached is not None else None,
            "attachment": attached.kind if attached is not None else None,
            "platforms": [
                m.platform for m in self.manifests if not m.attestation and not m.artifact_type
            ],
            "manifests": [m.to_json() for m in self.manifests],
        }


@dataclass
class InspectReport:
    source: str
    kind: str  # "remote", or the archive format
    images: list[ImageReport] = field(default_factory=list)
    #: something to know before pushing (docker-legacy archives), else None
    note: str | None = None
    #: the marker of a delta archive (layers left out), else None
    delta: DeltaMarker | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "note": self.note,
            "delta": None
            if self.delta is None
            else {
                "base": list(self.delta.base),
                "omitted": len(self.delta.omitted),
                "omitted_size": self.delta.omitted_size,
            },
            "images": [i.to_json() for i in self.images],
        }


ConfigReader = Callable[[Descriptor], bytes]


def _read_limited(opener: Callable[[Descriptor], AbstractContextManager[BinaryIO]]) -> ConfigReader:
    def read(desc: Descriptor) -> bytes:
        if desc.size > MAX_CONFIG_BYTES:
            raise ManifestInvalid(f"config {desc.digest} of {desc.size} bytes is too large")
        with opener(desc) as stream:
            data = stream.read(desc.size + 1)
        if len(data) != desc.size or Digest.of_bytes(data, desc.digest.algorithm) != desc.digest:
            raise ManifestInvalid(f"config {desc.digest} does not match its descriptor")
        return data

    return read


def _manifest_report(
    manifest: Manifest, read_config: ConfigReader, desc: Descriptor | None
) -> ManifestReport:
    platform = str(desc.platform) if desc is not None and desc.platform is not None else ""
    attestation = desc.is_attestation if desc is not None else False
    kind = artifact_type(manifest)
    created = None
    if not attestation and kind is None:
        try:
            config = json.loads(read_config(manifest.config))
        except ValueError:
            config = {}
        if isinstance(config, dict):
            created = config.get("created") if isinstance(config.get("created"), str) else None
            if not platform and config.get("os") and config.get("architecture"):
                platform = f"{config['os']}/{config['architecture']}"
                if config.get("variant"):
                    platform += f"/{config['variant']}"
    return ManifestReport(
        digest=str(manifest.digest),
        media_type=manifest.media_type,
        platform=platform or "unknown",
        created=created,
        config_digest=str(manifest.config.digest),
        layers=tuple((str(d.digest), d.size, d.media_type) for d in manifest.layers),
        attestation=attestation,
        artifact_type=kind,
    )


def _walk(
    node: Manifest | Index,
    children: dict[Digest, Manifest | Index] | Any,
    read_config: ConfigReader,
    desc: Descriptor | None,
    out: list[ManifestReport],
    depth: int = 0,
) -> None:
    if isinstance(node, Manifest):
        out.append(_manifest_report(node, read_config, desc))
        return
    if depth > 4:
        raise ManifestInvalid(f"index {node.digest} nests too deep")
    for child_desc in node.manifests:
        child = children.get(child_desc.digest)
        if child is not None:
            _walk(child, children, read_config, child_desc, out, depth + 1)


def report_record(record: ImageRecord, read_config: ConfigReader) -> ImageReport:
    manifests: list[ManifestReport] = []
    _walk(record.root, record.children, read_config, None, manifests)
    ref = record.reference
    return ImageReport(
        name=ref.name if ref is not None else None,
        tags=(ref.tag,) if ref is not None and ref.tag else (),
        digest=str(record.root.digest),
        media_type=record.root.media_type,
        manifests=tuple(manifests),
        artifact_type=artifact_type(record.root),
        attachment=attachment_of(record),
    )


_PATH_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")


def _looks_like_path(target: str) -> bool:
    """Is ``target`` a path? Yes when it exists or is written as one.

    Written as one: ``./x``, ``../x``, ``/x``, ``~/x``, ``x.tar``, ``x/``. Anything
    else is an image reference.
    """
    if target in (".", "..") or target.startswith(_PATH_PREFIXES):
        return True
    if target.endswith((".tar", "/")):
        return True
    return Path(target).exists() or Path(f"{target}.000").exists()


def inspect(
    target: str | Path,
    *,
    options: RegistryOptions | None = None,
    settings: RegistrySettings | None = None,
    client_factory: Callable[[str], RegistryReader] | None = None,
) -> InspectReport:
    """Describe an archive (by path) or a remote image (by reference).

    A remote image is read through ``client_factory`` (default: one for ``settings``,
    which default to :func:`sneaker.settings.load_settings`), so mirrors, insecure
    and blocked registries apply as they do for ``pull``.
    """
    if isinstance(target, Path) or _looks_like_path(target):
        return _inspect_archive(target)
    # start-up: the registry code (urllib3 among it) is loaded for a remote image only
    from ..registry.mirrors import client_factory_for

    ref = parse_reference(target)
    with client_factory_for(options, settings, client_factory) as factory:
        return _inspect_remote(ref, factory(ref.registry))


def _inspect_archive(target: str | Path) -> InspectReport:
    # start-up: the archive reader (and its layer code) is loaded for an archive only
    from ..archive import open_archive

    path = Path(target).expanduser()
    if not path.exists() and not Path(f"{path}.000").exists():
        raise ArchiveError(
            f"no such file or directory: {target}",
            hint="check the path; a split archive is opened by its base name (x.tar for "
            "x.tar.000, x.tar.001, ...)",
        )
    with open_archive(path, allow_delta=True) as archive:
        report = InspectReport(str(target), archive.format, delta=archive.delta)
        if archive.format == "docker-legacy":
            report.note = LEGACY_NOTE
        report.images = report_source(archive)
        return report


def _tags_hint(client: RegistryReader, repository: str) -> str | None:
    """``the repository's tags: a, b, ... (N in all)`` or None when they cannot be listed."""
    try:
        tags = client.list_tags(repository)
    except SneakerError:
        return None
    if not tags:
        return None
    shown = ", ".join(sorted(tags)[:TAG_HINT_LIMIT])
    more = f" ({len(tags)} in all)" if len(tags) > TAG_HINT_LIMIT else ""
    return f"the repository's tags: {shown}{more}"


def _inspect_remote(ref: Reference, client: RegistryReader) -> InspectReport:
    # start-up: as in inspect(), the registry code is loaded for a remote image only
    from ..transfer.remote import resolve
    from ..transfer.source import RegistrySource, ResolvedImage

    try:
        resolved = resolve(client, ref, PlatformRequest(all=True))
    except NotFound as exc:
        if ref.digest is not None or ref.tag is None or exc.hint is not None:
            raise
        hint = _tags_hint(client, ref.repository)
        if hint is None:
            raise
        raise NotFound(exc.message, hint=hint) from None

    source = RegistrySource([ResolvedImage(ref, resolved, client)])
    return InspectReport(str(ref), "remote", report_source(source))


def report_source(source: ImageSource) -> list[ImageReport]:
    """A report of every image of ``source`` (configs read, layers never)."""
    reader = _read_limited(source.open_blob)
    return [report_record(record, reader) for record in source.records]
