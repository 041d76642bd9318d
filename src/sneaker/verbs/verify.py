"""``verify``: check every digest, size and link of an archive, and say what is wrong.

For each image of the source: every index entry's manifest is present and
hashes to its descriptor; every manifest's config and layers are present, of
the declared size and digest (streamed, each blob once however many images
share it); each image config parses as JSON and its ``rootfs.diff_ids`` has
one entry per layer. An artifact (a Helm chart, a signature, an SBOM:
:func:`sneaker.image.artifacts.is_artifact`) has its blobs checked the same way,
and nothing more: it has no image config. With ``deep``, every layer is also decompressed (bounded,
see :mod:`sneaker.layers.apply`) and its ``diff_id`` compared with the config's.

Problems are collected, not raised: one line each, naming the image, the
blob and what is wrong (:func:`verify_archive` opens a path first), e.g.
``docker.io/library/app:1: layer sha256:ab12...: digest mismatch (content hashes to sha256:...)``.
:func:`verify_or_raise` raises :class:`~sneaker.errors.VerificationFailed` with them.
An archive the reader cannot open at all (not an archive, a hostile member, a
missing blob) raises the reader's own :class:`~sneaker.errors.ArchiveError`,
as every other verb does. A split set is first checked part by part against
its ``OUT.sha256``, so a damaged part is named.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archive import open_archive
from ..archive.split import part_path, split_parts
from ..errors import ArchiveError, IntegrityError, SneakerError, VerificationFailed
from ..image.artifacts import is_artifact
from ..image.config import MAX_CONFIG_BYTES
from ..image.digest import Digest
from ..image.model import MAX_MANIFEST_BYTES, Descriptor, Index, Manifest, parse_manifest
from ..image.platform import Platform
from ..image.records import ImageRecord, ImageSource
from ..layers.apply import DEFAULT_LIMITS, LayerLimits, diff_id_of
from ..util.progress import NullProgress, Progress
from ..util.streams import HashingReader

__all__ = [
    "MAX_CONFIG_BYTES",
    "verify",
    "verify_archive",
    "verify_or_raise",
]

_CHUNK = 1024 * 1024
_MAX_NESTING = 4
_MAX_CHECKSUM_LINES = 4096
_HEXDIGITS = frozenset(string.hexdigits)


@dataclass
class _BlobCheck:
    """What reading one blob found: ``problem`` is None when it matches its descriptor."""

    problem: str | None
    data: bytes | None = None  # kept for configs and manifests
    keep: int = 0  # the most bytes this read would have kept


def _is_foreign(desc: Descriptor) -> bool:
    return bool(desc.urls) or "foreign" in desc.media_type or "nondistributable" in desc.media_type


def _label(name: str, platform: Platform | None, attestation: bool) -> str:
    """How a problem line names one manifest of an index: the image and its platform."""
    if attestation:
        return f"{name} (attestation)"
    return f"{name} ({platform})" if platform is not None else name


def _rest_of(exc: SneakerError, what: str) -> str:
    """An error's message without the ``what`` it starts with (it is in the line already)."""
    message = exc.message
    if message.startswith(what):
        message = message[len(what) :].lstrip(" :")
    return message


class _Verifier:
    def __init__(
        self, source: ImageSource, deep: bool, limits: LayerLimits, progress: Progress
    ) -> None:
        self.source = source
        self.deep = deep
        self.limits = limits
        self.progress = progress
        self.problems: list[str] = []
        self._seen_problems: set[str] = set()
        self._blobs: dict[tuple[Digest, int], _BlobCheck] = {}
        self._diff_ids: dict[Digest, Digest | str] = {}

    def problem(self, label: str, kind: str, digest: Digest, what: str) -> None:
        line = f"{label}: {kind} {digest}: {what}"
        if line not in self._seen_problems:
            self._seen_problems.add(line)
            self.problems.append(line)

    # -- blobs ------------------------------------------------------------------------------

    def check_blob(self, desc: Descriptor, *, keep: int = 0) -> _BlobCheck:
        """Presence, size and digest of one blob; its bytes are kept when at most ``keep``."""
        key = (desc.digest, desc.size)
        cached = self._blobs.get(key)
        if cached is not None and (cached.problem is not None or keep <= cached.keep):
            return cached
        result = self._read_blob(desc, keep)
        self._blobs[key] = result
        return result

    def _read_blob(self, desc: Descriptor, keep: int) -> _BlobCheck:
        if not self.source.has_blob(desc.digest):
            return _BlobCheck("blob missing")
        stored = self.source.blob_size(desc.digest)
        if stored is not None and stored != desc.size:
            return _BlobCheck(f"size {stored}, descriptor says {desc.size}")
        key = f"verify:{desc.digest}"
        self.progress.start(key, f"verify {desc.digest.short}", desc.size)
        result = _BlobCheck("not read")
        try:
            result = self._hash_blob(desc, keep, key)
        finally:
            # a blob that fails is marked so, never shown as plainly done
            self.progress.finish(key, "" if result.problem is None else "FAILED")
        return result

    def _hash_blob(self, desc: Descriptor, keep: int, key: str) -> _BlobCheck:
        kept: list[bytes] = []
        try:
            with self.source.open_blob(desc) as stream:
                reader = HashingReader(
                    stream, desc.digest.hasher(), lambda n: self.progress.advance(key, n)
                )
                while chunk := reader.read(_CHUNK):
                    if reader.count <= keep:
                        kept.append(chunk)
        except SneakerError as exc:
            return _BlobCheck(_rest_of(exc, str(desc.digest)) or type(exc).__name__)
        except OSError as exc:
            return _BlobCheck(f"unreadable ({exc.strerror or exc})")
        count = reader.count
        if count != desc.size:
            return _BlobCheck(f"size {count}, descriptor says {desc.size}")
        actual = reader.hasher.hexdigest()
        if actual != desc.digest.hex:
            return _BlobCheck(
                f"digest mismatch (content hashes to {desc.digest.algorithm}:{actual})"
            )
        return _BlobCheck(None, b"".join(kept) if count <= keep else None, keep)

    def diff_id(self, desc: Descriptor, what: str) -> Digest | str:
        """The layer's diff_id, or a description of why it cannot be computed."""
        cached = self._diff_ids.get(desc.digest)
        if cached is not None:
            return cached
        result: Digest | str
        try:
            with self.source.open_blob(desc) as stream:
                result, _size = diff_id_of(
                    stream,
                    desc.media_type,
                    compressed_size=desc.size,
                    limits=self.limits,
                    what=what,
                )
        except SneakerError as exc:
            result = _rest_of(exc, what)
        except OSError as exc:
            result = f"unreadable ({exc.strerror or exc})"
        self._diff_ids[desc.digest] = result
        return result

    # -- the tree ---------------------------------------------------------------------------

    def record(self, record: ImageRecord, number: int) -> None:
        if record.reference is not None:
            name = str(record.reference.without_digest())
            wanted = record.reference.digest
            if wanted is not None and not record.rewritten and wanted != record.root.digest:
                self.problem(
                    name,
                    "manifest",
                    record.root.digest,
                    f"the reference names {wanted}, the archive holds this one",
                )
        else:
            name = f"image {number + 1}"
        self.node(record, record.root, name, name, attestation=False, depth=0)

    def node(
        self,
        record: ImageRecord,
        node: Manifest | Index,
        name: str,
        label: str,
        *,
        attestation: bool,
        depth: int,
    ) -> None:
        if isinstance(node, Manifest):
            self.manifest(node, label, checkable=not attestation)
            return
        if depth >= _MAX_NESTING:
            self.problem(label, "index", node.digest, f"nested deeper than {_MAX_NESTING} levels")
            return
        for desc in node.manifests:
            is_attestation = attestation or desc.is_attestation
            child_label = _label(name, desc.platform, is_attestation)
            child = self.child(record, desc, child_label)
            if child is not None:
                self.node(
                    record,
                    child,
                    name,
                    child_label,
                    attestation=is_attestation,
                    depth=depth + 1,
                )

    def child(self, record: ImageRecord, desc: Descriptor, label: str) -> Manifest | Index | None:
        known = record.children.get(desc.digest)
        if known is not None:
            actual = known.digest
            if actual != desc.digest:
                self.problem(
                    label, "manifest", desc.digest, f"digest mismatch (content hashes to {actual})"
                )
                return None
            if len(known.raw) != desc.size:
                self.problem(
                    label,
                    "manifest",
                    desc.digest,
                    f"size {len(known.raw)}, descriptor says {desc.size}",
                )
            return known
        check = self.check_blob(desc, keep=MAX_MANIFEST_BYTES)
        if check.problem is not None:
            self.problem(label, "manifest", desc.digest, check.problem)
            return None
        if check.data is None:
            self.problem(label, "manifest", desc.digest, "larger than the 4 MiB manifest limit")
            return None
        try:
            return parse_manifest(
                check.data, desc.media_type, expected=desc.digest, where="manifest"
            )
        except SneakerError as exc:
            self.problem(label, "manifest", desc.digest, _rest_of(exc, "manifest"))
            return None

    def manifest(self, manifest: Manifest, label: str, *, checkable: bool) -> None:
        # an artifact (a Helm chart, a signature) has no image config: digests and sizes only
        image_config = checkable and not is_artifact(manifest)
        config = self.check_blob(manifest.config, keep=MAX_CONFIG_BYTES if image_config else 0)
        if config.problem is not None:
            self.problem(label, "config", manifest.config.digest, config.problem)
        layer_ok: list[bool] = []
        for desc in manifest.layers:
            if _is_foreign(desc) and not self.source.has_blob(desc.digest):
                layer_ok.append(False)  # fetched from its URLs by whoever runs it
                continue
            check = self.check_blob(desc)
            if check.problem is not None:
                self.problem(label, "layer", desc.digest, check.problem)
            layer_ok.append(check.problem is None)
        if not image_config or config.problem is not None:
            return
        diff_ids = self.config_diff_ids(manifest, label, config.data)
        if not self.deep or diff_ids is None:
            return
        for index, (desc, ok, expected) in enumerate(
            zip(manifest.layers, layer_ok, diff_ids, strict=True)
        ):
            if not ok:
                continue
            what = f"{label}: layer {desc.digest}"
            actual = self.diff_id(desc, what)
            if isinstance(actual, str):
                self.problem(label, "layer", desc.digest, actual)
            elif actual != expected:
                self.problem(
                    label,
                    "layer",
                    desc.digest,
                    f"uncompressed content hashes to {actual}, "
                    f"rootfs.diff_ids[{index}] says {expected}",
                )

    def config_diff_ids(
        self, manifest: Manifest, label: str, data: bytes | None
    ) -> list[Digest] | None:
        digest = manifest.config.digest
        if data is None:
            self.problem(label, "config", digest, f"larger than {MAX_CONFIG_BYTES} bytes")
            return None
        try:
            doc: Any = json.loads(data)
        except ValueError as exc:
            self.problem(label, "config", digest, f"not valid JSON ({exc})")
            return None
        if not isinstance(doc, dict):
            self.problem(label, "config", digest, "not a JSON object")
            return None
        rootfs = doc.get("rootfs")
        raw = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(raw, list):
            self.problem(label, "config", digest, "rootfs.diff_ids is missing")
            return None
        if len(raw) != len(manifest.layers):
            self.problem(
                label,
                "config",
                digest,
                f"rootfs.diff_ids lists {len(raw)} layers, the manifest has {len(manifest.layers)}",
            )
            return None
        diff_ids: list[Digest] = []
        for index, text in enumerate(raw):
            try:
                diff_ids.append(Digest.parse(str(text)))
            except SneakerError as exc:
                self.problem(label, "config", digest, f"rootfs.diff_ids[{index}]: {exc.message}")
                return None
        return diff_ids


def verify(
    source: ImageSource | str | os.PathLike[str],
    *,
    deep: bool = False,
    limits: LayerLimits = DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> list[str]:
    """Every problem found in ``source``, one line each; an empty list means all is well.

    ``source`` is an opened archive or the path of one (see :func:`verify_archive`).
    """
    if isinstance(source, (str, os.PathLike)):
        return verify_archive(Path(source), deep=deep, limits=limits, progress=progress)
    verifier = _Verifier(source, deep, limits, progress or NullProgress())
    for number, record in enumerate(source.records):
        verifier.record(record, number)
    return verifier.problems


def verify_or_raise(
    source: ImageSource,
    *,
    deep: bool = False,
    limits: LayerLimits = DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> None:
    """Like :func:`verify`, raising :class:`VerificationFailed` listing the problems."""
    problems = verify(source, deep=deep, limits=limits, progress=progress)
    if problems:
        raise VerificationFailed(problems)


def verify_archive(
    path: Path,
    *,
    deep: bool = False,
    limits: LayerLimits = DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> list[str]:
    """:func:`verify` of the archive or layout at ``path`` (a split set by its base name).

    An archive the reader refuses to open (not an archive, a damaged tar or
    ``manifest.json``, a hostile member, a missing blob) raises the reader's
    :class:`~sneaker.errors.ArchiveError`, as ``inspect`` or ``unpack`` would.
    Content the reader finds damaged while opening (a manifest or blob that does
    not match its descriptor) is one problem line naming the path. A split set
    with ``OUT.sha256`` has its parts checked first: a damaged part is a problem
    line naming it (``OUT.001: checksum mismatch ...``), and then a failure to
    open the joined parts is one more problem line instead of an error.
    """
    path = Path(path)
    problems: list[str] = []
    if not path.exists() and split_parts(path):
        problems = _check_split_parts(path, progress or NullProgress())
    try:
        source = open_archive(path)
    except (ArchiveError, IntegrityError) as exc:
        if isinstance(exc, ArchiveError) and not problems:
            raise
        return [*problems, f"{path}: {exc.message}"]
    with source:
        return problems + verify(source, deep=deep, limits=limits, progress=progress)


def _read_checksums(checksum: Path) -> list[tuple[str, str]]:
    """(hex digest, file name) of each ``sha256sum`` line of ``checksum``."""
    listed: list[tuple[str, str]] = []
    with checksum.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if number > _MAX_CHECKSUM_LINES:
                raise ArchiveError(f"{checksum}: more than {_MAX_CHECKSUM_LINES} lines")
            text = line.rstrip("\n")
            if not text.strip():
                continue
            digest, sep, name = text.partition("  ")
            if not sep:
                digest, sep, name = text.partition(" *")
            if not sep or len(digest) != 64 or not all(c in _HEXDIGITS for c in digest):
                raise ArchiveError(f"{checksum}: line {number} is not '<sha256>  <name>'")
            listed.append((digest.lower(), name.lstrip("*")))
    return listed


def _check_split_parts(base: Path, progress: Progress) -> list[str]:
    """Each part of split set ``base`` against ``OUT.sha256`` (and the parts joined, when
    the file has a line for them, as sneaker once wrote)."""
    checksum = base.with_name(f"{base.name}.sha256")
    if not checksum.is_file():
        return []
    parts = split_parts(base) or []
    listed = {name: digest for digest, name in _read_checksums(checksum)}
    whole = hashlib.sha256()
    problems: list[str] = []
    for number, part in enumerate(parts):
        expected = listed.get(part.name)
        hasher = hashlib.sha256()
        key = f"verify:{part.name}"
        size = part.stat().st_size
        progress.start(key, f"verify {part.name}", size)
        failed = True
        try:
            with part.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    hasher.update(chunk)
                    whole.update(chunk)
                    progress.advance(key, len(chunk))
        except OSError as exc:
            raise ArchiveError(f"{part}: unreadable ({exc.strerror or exc})") from None
        else:
            actual = hasher.hexdigest()
            failed = expected is not None and actual != expected
        finally:
            progress.finish(key, "FAILED" if failed else "")
        name = part_path(base, number).name
        if expected is None:
            problems.append(f"{name}: not listed in {checksum.name}")
        elif failed:
            problems.append(
                f"{name}: checksum mismatch (content hashes to sha256:{actual}, "
                f"{checksum.name} says sha256:{expected})"
            )
    expected_whole = listed.get(base.name)
    if not problems and expected_whole is not None and whole.hexdigest() != expected_whole:
        problems.append(
            f"{base.name}: checksum mismatch of the joined parts (they hash to "
            f"sha256:{whole.hexdigest()}, {checksum.name} says sha256:{expected_whole})"
        )
    return problems
