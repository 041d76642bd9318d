"""Deterministic gzip of uncompressed layers, and the manifests that then name them.

``docker save`` before 25 stores layers as plain tars and no manifest at all;
the archive reader synthesises a Docker schema 2 manifest whose layers have
the uncompressed media type (``application/vnd.docker.image.rootfs.diff.tar``).
Registries and pullers expect gzip, so ``push`` compresses each such layer once
and rewrites the manifest to name the compressed blobs.

The same input must always give the same bytes, so that pushing one archive
twice (or to two registries) gives the same manifest digest:

- the gzip header is fixed: no file name, mtime 0, no extra flags, OS 255
  ("unknown", as Go's ``compress/gzip`` writes it), so nothing depends on the
  clock, the file name or the machine;
- the deflate level is fixed (:data:`GZIP_LEVEL`) and the stream is cut into
  deflate calls at fixed offsets;
- the rewritten manifest keeps every other field, in the original order.

The compressed bytes are produced by the zlib that Python links; two zlib
builds (zlib and zlib-ng, say) may compress differently, so the guarantee is
"same archive, same sneaker installation, same digests".

Everything streams: the layer is read in chunks, hashed (its uncompressed
digest is checked against the descriptor), compressed into a temporary file
and hashed again; nothing holds a whole layer in memory.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import ManifestInvalid
from ..image import mediatypes as mt
from ..image.digest import ContentCheck, Digest
from ..image.model import Descriptor, Index, Manifest, parse_manifest

__all__ = [
    "GZIP_LEVEL",
    "CompressedLayer",
    "gzip_layer_to_dir",
    "gzip_stream",
    "needs_compression",
    "rewrite_index",
    "rewrite_manifest",
]

#: zlib level: 6 is gzip's own default and a good size/speed balance.
GZIP_LEVEL = 6

_CHUNK = 1 << 20
# magic, CM=deflate, FLG=0, MTIME=0, XFL=0, OS=255 (unknown)
_GZIP_HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"

#: uncompressed media type -> its gzip counterpart
_COMPRESSED_TYPE = {mt.DOCKER_LAYER_TAR: mt.DOCKER_LAYER, mt.OCI_LAYER: mt.OCI_LAYER_GZIP}


def needs_compression(desc: Descriptor, *, synthesised: bool = False) -> bool:
    """Is ``desc`` a layer that ``push`` gzips first?

    Always for the uncompressed Docker layer type (only legacy ``docker save``
    archives yield it); an uncompressed OCI layer only when its manifest was
    ``synthesised`` by the archive reader (a legacy archive that also holds zstd
    layers): a manifest that came with the archive is pushed as it is.
    """
    if desc.media_type == mt.DOCKER_LAYER_TAR:
        return True
    return synthesised and desc.media_type == mt.OCI_LAYER


@dataclass(frozen=True)
class CompressedLayer:
    """One layer after compression: where the gzip is and how to describe it."""

    source: Descriptor
    descriptor: Descriptor
    path: Path

    @property
    def uncompressed_digest(self) -> Digest:
        return self.source.digest


def gzip_stream(
    source: IO[bytes],
    out: IO[bytes],
    *,
    level: int = GZIP_LEVEL,
    expected: Digest | None = None,
    expected_size: int | None = None,
    what: str = "layer",
) -> tuple[Digest, int]:
    """Gzip ``source`` into ``out`` deterministically; return the gzip's sha256 and size.

    When ``expected``/``expected_size`` are given, the uncompressed bytes read
    must hash to and measure exactly that, or :class:`IntegrityError` is raised.
    """
    check = ContentCheck(expected, expected_size, what=what)
    out_hash = Digest("sha256", "0" * 64).hasher()
    written = 0
    crc = 0

    def emit(data: bytes) -> None:
        nonlocal written
        if data:
            out.write(data)
            out_hash.update(data)
            written += len(data)

    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY)
    emit(_GZIP_HEADER)
    while True:
        chunk = source.read(_CHUNK)
        if not chunk:
            break
        check.update(chunk)
        crc = zlib.crc32(chunk, crc)
        emit(compressor.compress(chunk))
    emit(compressor.flush(zlib.Z_FINISH))
    emit(struct.pack("<II", crc & 0xFFFFFFFF, check.count & 0xFFFFFFFF))
    check.check()
    return Digest("sha256", out_hash.hexdigest()), written


def gzip_layer_to_dir(
    source: IO[bytes], desc: Descriptor, directory: Path, *, level: int = GZIP_LEVEL
) -> CompressedLayer:
    """Compress the uncompressed layer ``desc`` (read from ``source``) into ``directory``.

    The file is written under a temporary name and renamed to its digest once
    complete; the uncompressed content is checked against ``desc``.
    """
    new_type = _COMPRESSED_TYPE.get(desc.media_type, mt.DOCKER_LAYER)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".gz-", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = gzip_stream(
                source,
                out,
                level=level,
                expected=desc.digest,
                expected_size=desc.size,
                what=f"layer {desc.digest}",
            )
        final = directory / f"{digest.algorithm}-{digest.hex}.gz"
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    compressed = Descriptor(
        media_type=new_type,
        digest=digest,
        size=size,
        annotations=desc.annotations,
        urls=desc.urls,
    )
    return CompressedLayer(desc, compressed, final)


def _dump(doc: Any) -> bytes:
    # Three-space indent is what docker itself writes for schema 2 manifests.
    return json.dumps(doc, indent=3, ensure_ascii=False).encode()


def _replace_descriptor(entry: Any, new: Descriptor) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ManifestInvalid("descriptor is not an object")
    out = dict(entry)
    out["mediaType"] = new.media_type
    out["digest"] = str(new.digest)
    out["size"] = new.size
    return out


def _replaced(
    raw: bytes,
    key: str,
    parsed: Sequence[Descriptor],
    new: Mapping[Digest, Descriptor],
    what: str,
) -> dict[str, Any]:
    """The JSON document ``raw`` with each entry of its list ``key`` whose digest is in ``new``
    pointing at the new descriptor; the other entries and fields stay as they were."""
    doc: dict[str, Any] = json.loads(raw)
    entries = doc.get(key)
    if not isinstance(entries, list) or len(entries) != len(parsed):
        raise ManifestInvalid(f"{what} do not match its parsed form")
    doc[key] = [
        _replace_descriptor(entry, new[desc.digest]) if desc.digest in new else entry
        for entry, desc in zip(entries, parsed, strict=True)
    ]
    return doc


def rewrite_manifest(manifest: Manifest, layers: Mapping[Digest, Descriptor]) -> Manifest:
    """``manifest`` with each layer found in ``layers`` (by old digest) replaced.

    Only ``mediaType``, ``digest`` and ``size`` of those layer entries change;
    the config and every other field stay as they were. The manifest's own
    media type becomes Docker schema 2 when it had none. Returns ``manifest``
    itself when nothing is replaced.
    """
    if not any(layer.digest in layers for layer in manifest.layers):
        return manifest
    doc = _replaced(manifest.raw, "layers", manifest.layers, layers, "manifest layers")
    doc.setdefault("mediaType", manifest.media_type)
    parsed = parse_manifest(_dump(doc), manifest.media_type, where="rewritten manifest")
    assert isinstance(parsed, Manifest)
    return parsed


def rewrite_index(index: Index, children: Mapping[Digest, Descriptor]) -> Index:
    """``index`` with each entry found in ``children`` (by old digest) pointing at the new one.

    Platforms, annotations and the order of entries are kept. Returns ``index``
    itself when nothing is replaced.
    """
    if not any(entry.digest in children for entry in index.manifests):
        return index
    doc = _replaced(index.raw, "manifests", index.manifests, children, "index entries")
    parsed = parse_manifest(_dump(doc), index.media_type, where="rewritten index")
    assert isinstance(parsed, Index)
    return parsed
