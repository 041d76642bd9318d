"""Delta archives: only the layers the other side lacks, and a note of what was left out.

This module owns the format (the marker, :class:`DeltaMarker`) and the errors
that refuse a delta where it cannot go. Planning a delta is the pull side's
(:func:`sneaker.verbs.pull.plan_delta`), completing one on a registry the
push side's (:func:`sneaker.verbs.push.mount_sources`).

``sneaker pull --since BASE_ARCHIVE`` (or ``--have INVENTORY.json``, see
:mod:`sneaker.image.inventory`) writes a *delta*: an archive that names and
describes its images completely but leaves out the layer blobs the other side
of the air gap already has. ``sneaker push`` of the delta onto a registry that
received the base (BASE_ARCHIVE, or the registry the inventory was taken of) completes
every image there: an omitted layer is found in the target repository (HEAD),
or mounted from a repository the base recorded it in; when neither works the
push stops, naming the blob, before it uploads anything.

The format
----------

A delta is always an OCI image layout, as a tar (``--split`` applies) or a
directory, never a docker archive: ``docker load`` reads every layer it lists
and cannot be told that some live elsewhere. It holds:

* ``oci-layout`` and ``index.json``, naming each image as in a full archive;
* ``blobs/<alg>/<hex>`` for every index, manifest and config (they are small),
  and for every layer the base does **not** have;
* ``sneaker-delta.json``, the marker, written by :meth:`DeltaMarker.to_bytes`::

      {
        "format": "sneaker-delta",
        "version": 1,
        "base": ["archive v1.tar"],
        "omitted": [
          {
            "digest": "sha256:...",
            "size": 2345678,
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "repositories": ["registry.example/team/base"]
          }
        ]
      }

  ``base`` describes what the delta was computed against (for people);
  ``omitted`` lists every layer left out, sorted by digest, with the
  repositories (``registry/path``) the base knew it in: ``push`` tries to mount
  from those (and from the same paths below its target prefix). A reader that
  does not know ``version`` refuses the archive.

Reading: :func:`sneaker.archive.open_archive` accepts a layout whose
manifests name missing layers only when those layers are listed in the marker,
and only for a caller that asks for it (``allow_delta=True``: ``push`` and
``inventory``). Every other reader (``verify``, ``unpack``, ``serve``,
``inspect``) gets :func:`delta_refusal`, an :class:`UnsupportedError` that
says what the archive is and what to do with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArchiveError, InvalidDigest, UnsupportedError, UsageError, summarize
from ..image.digest import Digest
from ..util.jsondoc import DocumentKind, parse_document
from ..util.progress import human_size

__all__ = [
    "DELTA_FORMAT",
    "DELTA_MARKER",
    "DELTA_VERSION",
    "MAX_MARKER_BYTES",
    "DeltaMarker",
    "OmittedBlob",
    "delta_refusal",
    "docker_format_refusal",
]

#: the marker file at the root of a delta layout
DELTA_MARKER = "sneaker-delta.json"
DELTA_FORMAT = "sneaker-delta"
DELTA_VERSION = 1
#: markers larger than this are refused (about 80 000 omitted layers)
MAX_MARKER_BYTES = 16 * 1024 * 1024


#: the marker as a versioned JSON document (format, version, size cap)
MARKER_KIND = DocumentKind(
    format=DELTA_FORMAT,
    version=DELTA_VERSION,
    noun="delta marker",
    max_bytes=MAX_MARKER_BYTES,
    error=ArchiveError,
    version_hint="use the sneaker version that wrote the delta, or a newer one",
)


@dataclass(frozen=True)
class OmittedBlob:
    """A layer left out of a delta, and the repositories (``registry/path``) the base had it in."""

    digest: Digest
    size: int
    media_type: str = ""
    repositories: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": str(self.digest),
            "size": self.size,
            "mediaType": self.media_type,
            "repositories": list(self.repositories),
        }


@dataclass(frozen=True)
class DeltaMarker:
    """What ``sneaker-delta.json`` says: the omitted layers, and what the base was."""

    omitted: Mapping[Digest, OmittedBlob] = field(default_factory=dict)
    base: tuple[str, ...] = ()

    @property
    def omitted_size(self) -> int:
        return sum(b.size for b in self.omitted.values())

    def describe(self) -> str:
        """``3 layers (12.5 MB)``"""
        count = len(self.omitted)
        noun = "layer" if count == 1 else "layers"
        return f"{count} {noun} ({human_size(self.omitted_size)})"

    def to_json(self) -> dict[str, Any]:
        return {
            **MARKER_KIND.fields(),
            "base": list(self.base),
            "omitted": [self.omitted[d].to_json() for d in sorted(self.omitted)],
        }

    def to_bytes(self) -> bytes:
        """Deterministic JSON (sorted keys, indented for people), ending in a newline."""
        return json.dumps(self.to_json(), sort_keys=True, indent=2).encode() + b"\n"

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = DELTA_MARKER) -> DeltaMarker:
        """Parse a marker; :class:`ArchiveError` when it is malformed,
        :class:`UnsupportedError` when it is of a version this sneaker does not know."""
        doc = parse_document(raw, MARKER_KIND, where)
        base = doc.get("base", [])
        entries = doc.get("omitted")
        if not isinstance(base, list) or not all(isinstance(b, str) for b in base):
            raise ArchiveError(f"{where}: 'base' must be a list of strings")
        if not isinstance(entries, list):
            raise ArchiveError(f"{where}: 'omitted' must be a list")
        omitted: dict[Digest, OmittedBlob] = {}
        for number, entry in enumerate(entries):
            blob = _omitted_from_json(entry, f"{where}: omitted[{number}]")
            if blob.digest in omitted:
                raise ArchiveError(f"{where}: {blob.digest} is listed twice")
            omitted[blob.digest] = blob
        return cls(omitted, tuple(base))


def _omitted_from_json(entry: Any, where: str) -> OmittedBlob:
    if not isinstance(entry, dict):
        raise ArchiveError(f"{where} is not an object")
    try:
        digest = Digest.parse(str(entry.get("digest")))
    except InvalidDigest as exc:
        raise ArchiveError(f"{where}: {exc.message}") from None
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ArchiveError(f"{where}: size must be a non-negative integer")
    media_type = entry.get("mediaType", "")
    repositories = entry.get("repositories", [])
    if not isinstance(media_type, str):
        raise ArchiveError(f"{where}: mediaType must be a string")
    if not isinstance(repositories, list) or not all(isinstance(r, str) for r in repositories):
        raise ArchiveError(f"{where}: repositories must be a list of names")
    return OmittedBlob(digest, size, media_type, tuple(repositories))


def delta_refusal(path: Path | str, marker: DeltaMarker) -> UnsupportedError:
    """The error every reader but ``push`` and ``inventory`` raises for a delta."""
    if marker.base:
        base = f"the images of its base ({summarize(marker.base)})"
    else:
        base = "the images of the base archive this delta was made from"
    return UnsupportedError(
        f"{path} is a delta archive: it leaves out {marker.describe()} that its base "
        f"already had; push it onto a registry that holds {base}",
        hint="`sneaker push DELTA REGISTRY` completes every image from the blobs the registry "
        "has; docker load, verify, unpack and serve need a full archive "
        "(pull without --since/--have); inspect reads a delta as it is",
    )


def docker_format_refusal() -> UsageError:
    """The error for a delta asked for in docker format."""
    return UsageError(
        "a delta archive cannot be a docker archive: docker load would need the layers it "
        "leaves out, and cannot be told they are elsewhere",
        hint="use --format oci (the default with --since/--have) and `sneaker push` the delta "
        "onto a registry that holds the images of its base (the --since archive, or what "
        "the --have inventory lists); pull without --since/--have for docker load",
    )
