"""``inspect``: what an image or archive holds, without downloading layers.

Works on a remote reference (manifests and configs only) and on every
archive :func:`sneaker.archive.open_archive` reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..digest import Digest
from ..errors import ManifestInvalid
from ..imageset import ImageRecord
from ..model import Descriptor, Index, Manifest
from ..reference import Reference, parse_reference
from ..selection import PlatformRequest

if TYPE_CHECKING:
    from ..registry.client import RegistryOptions

__all__ = ["ImageReport", "InspectReport", "ManifestReport", "inspect"]

MAX_CONFIG_BYTES = 32 * 1024 * 1024


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

    @property
    def size(self) -> int:
        return sum(size for _, size, _ in self.layers)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "mediaType": self.media_type,
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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tags": list(self.tags),
            "digest": self.digest,
            "mediaType": self.media_type,
            "platforms": [m.platform for m in self.manifests if not m.attestation],
            "manifests": [m.to_json() for m in self.manifests],
        }


@dataclass
class InspectReport:
    source: str
    kind: str  # "remote", or the archive format
    images: list[ImageReport] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
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
    created = None
    if not attestation:
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
    )


def _looks_like_path(target: str) -> bool:
    path = Path(target)
    return path.exists() or Path(f"{target}.000").exists() or target.endswith((".tar", "/"))


def inspect(target: str | Path, *, options: RegistryOptions | None = None) -> InspectReport:
    """Describe an archive (by path) or a remote image (by reference)."""
    if isinstance(target, Path) or _looks_like_path(target):
        from ..archive import open_archive

        with open_archive(Path(target), allow_delta=True) as archive:
            reader = _read_limited(archive.open_blob)
            report = InspectReport(str(target), archive.format)
            report.images = [report_record(r, reader) for r in archive.records]
            return report
    return _inspect_remote(parse_reference(target), options)


def _inspect_remote(ref: Reference, options: RegistryOptions | None) -> InspectReport:
    from ..registry.client import RegistryClient, RegistryOptions
    from ..remote import resolve

    with RegistryClient(ref.registry, options or RegistryOptions()) as client:
        resolved = resolve(client, ref, PlatformRequest(all=True))

        def open_config(desc: Descriptor) -> AbstractContextManager[BinaryIO]:
            return _RemoteBlob(client, ref.repository, desc)

        reader = _read_limited(open_config)
        image = report_record(resolved.record, reader)
    return InspectReport(str(ref), "remote", [image])


class _RemoteBlob:
    """A small blob (a config) read whole from the registry."""

    def __init__(self, client: Any, repository: str, desc: Descriptor) -> None:
        self._client = client
        self._repository = repository
        self._desc = desc
        self._response: Any = None

    def __enter__(self) -> BinaryIO:
        import io

        self._response = self._client.open_blob(self._repository, self._desc.digest)
        response = self._response.__enter__()
        data = bytearray()
        for chunk in response.iter_chunks(1 << 16):
            data += chunk
            if len(data) > self._desc.size:
                break
        return io.BytesIO(bytes(data))

    def __exit__(self, *exc: object) -> None:
        if self._response is not None:
            self._response.__exit__(None, None, None)
