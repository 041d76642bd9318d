"""The image model every source and sink meets at: descriptors, manifests, indexes.

Manifests and indexes keep their raw bytes: sneaker never re-serialises one
it did not build itself, so digests survive pull -> archive -> push/serve.
Parsing is pure (no I/O), size-capped and schema-checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArchiveError, IntegrityError, ManifestInvalid, UnsupportedError
from . import mediatypes as mt
from .digest import Digest
from .platform import Platform, is_attestation

__all__ = [
    "MAX_MANIFEST_BYTES",
    "Descriptor",
    "Index",
    "Manifest",
    "parse_manifest",
    "sniff_media_type",
]

#: distribution refuses manifests larger than this; sneaker refuses them too.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None

    @classmethod
    def from_json(cls, data: Any, *, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestInvalid(f"{where}: expected an object")
        try:
            digest = Digest.parse(str(data["digest"]))
            size = data["size"]
        except KeyError as exc:
            raise ManifestInvalid(f"{where}: missing {exc.args[0]!r}") from None
        except (ArchiveError, IntegrityError):
            raise
        except Exception as exc:
            raise ManifestInvalid(f"{where}: {exc}") from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestInvalid(f"{where}: size must be a non-negative integer")
        platform = data.get("platform")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise ManifestInvalid(f"{where}: annotations must be an object")
        urls = data.get("urls") or []
        if not isinstance(urls, list):
            raise ManifestInvalid(f"{where}: urls must be a list")
        features = platform.get("os.features") if isinstance(platform, dict) else None
        if features is not None and not isinstance(features, list):
            raise ManifestInvalid(f"{where}: platform os.features must be a list")
        artifact_type = data.get("artifactType")
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=digest,
            size=size,
            platform=Platform.from_json(platform) if isinstance(platform, dict) else None,
            annotations={str(k): str(v) for k, v in annotations.items()},
            urls=tuple(str(u) for u in urls),
            artifact_type=str(artifact_type) if artifact_type is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @property
    def is_attestation(self) -> bool:
        return is_attestation(self.platform, self.annotations)


@dataclass(frozen=True)
class Manifest:
    """An image manifest (Docker schema 2 or OCI)."""

    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: OCI 1.1: what kind of artifact this is (``artifactType``), None when absent
    artifact_type: str | None = None
    #: OCI 1.1: the manifest this one refers to (a signature's image, say), None when absent
    subject: Descriptor | None = None

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.raw)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)


@dataclass(frozen=True)
class Index:
    """A manifest list or OCI image index."""

    raw: bytes
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    subject: Descriptor | None = None

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.raw)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))


def sniff_media_type(doc: Mapping[str, Any]) -> str:
    """The media type of a parsed manifest document, from its fields when it has none."""
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_SCHEMA1
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mt.OCI_MANIFEST
    return ""


def _artifact_fields(doc: Mapping[str, Any], where: str) -> tuple[str | None, Descriptor | None]:
    """The OCI 1.1 ``artifactType`` and ``subject`` of a manifest or index document."""
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid(f"{where}: artifactType must be a string")
    subject = doc.get("subject")
    parsed = None if subject is None else Descriptor.from_json(subject, where=f"{where} subject")
    return artifact_type or None, parsed


def parse_manifest(
    raw: bytes,
    media_type: str | None = None,
    *,
    expected: Digest | None = None,
    where: str = "manifest",
) -> Manifest | Index:
    """Parse raw manifest bytes; check the digest when it is known.

    ``media_type`` is what the transport said (Content-Type, descriptor); the
    document's own ``mediaType`` wins when they disagree only in being absent.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestInvalid(f"{where}: {len(raw)} bytes is larger than the 4 MiB limit")
    if expected is not None:
        actual = Digest.of_bytes(raw, expected.algorithm)
        if actual != expected:
            raise IntegrityError(f"digest mismatch for {where}: expected {expected}, got {actual}")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestInvalid(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ManifestInvalid(f"{where}: expected a JSON object")
    kind = sniff_media_type(doc)
    if not kind and media_type:
        kind = media_type.split(";")[0].strip()
    if kind in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED) or doc.get("schemaVersion") == 1:
        raise UnsupportedError(
            f"{where} is a Docker schema 1 manifest, which sneaker does not read",
            hint="schema 1 is deprecated and unsigned; ask the registry for schema 2 "
            "(re-push the image with a current docker, skopeo or crane)",
        )
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalid(f"{where}: schemaVersion must be 2")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ManifestInvalid(f"{where}: annotations must be an object")
    annotations = {str(k): str(v) for k, v in annotations.items()}
    artifact_type, subject = _artifact_fields(doc, where)
    if mt.is_index(kind):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestInvalid(f"{where}: 'manifests' must be a list")
        manifests = tuple(
            Descriptor.from_json(e, where=f"{where} manifests[{i}]") for i, e in enumerate(entries)
        )
        return Index(raw, kind, manifests, annotations, artifact_type, subject)
    if mt.is_manifest(kind):
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestInvalid(f"{where}: 'layers' must be a list")
        config = Descriptor.from_json(doc.get("config"), where=f"{where} config")
        return Manifest(
            raw,
            kind,
            config,
            tuple(
                Descriptor.from_json(e, where=f"{where} layers[{i}]") for i, e in enumerate(layers)
            ),
            annotations,
            artifact_type,
            subject,
        )
    raise UnsupportedError(f"{where} has media type {kind or 'unknown'!r}, which is not an image")
