"""``assemble``: check a fetched plan directory file by file, then write an archive from it.

Every manifest, index, config and layer the plan names is checked for size
and digest before anything is written; the manifests (whose digests are in
``plan.json``) say which blobs must be there, so a file the download team did
not bring, or brought changed, is found whatever ``urls.txt`` said. All the
problems are reported at once, each naming the file and the image it belongs
to: :class:`~sneaker.errors.NotFound` when files are only missing,
:class:`~sneaker.errors.IntegrityError` when any is damaged.

``plan_digest`` (``--plan-digest``) pins ``plan.json`` itself to the digest
``sneaker plan`` printed, so nothing in the directory has to be trusted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archive.docker_archive import check_docker_records, write_docker_archive
from ..archive.oci_layout import write_oci_layout
from ..archive.split import split_parts
from ..archive.tar import check_archive_output
from ..errors import (
    ArchiveError,
    IntegrityError,
    InvalidDigest,
    InvalidReference,
    NotFound,
    SneakerError,
    UsageError,
)
from ..image import mediatypes as mt
from ..image.digest import Digest
from ..image.model import MAX_MANIFEST_BYTES, Descriptor, Index, Manifest, parse_manifest
from ..image.records import ImageRecord
from ..image.reference import parse_reference
from ..transfer.cache import BlobCache
from ..transfer.remote import MAX_INDEX_DEPTH
from ..util.jsondoc import parse_document, read_document
from ..util.progress import NullProgress, Progress
from .output import WrittenOutput
from .plan import PLAN_FILE, PLAN_KIND, blob_relpath, manifest_relpath

__all__ = ["AssembleResult", "AssembledImage", "CheckedPlan", "assemble", "check_plan"]

FORMATS = ("docker", "oci")
CHUNK = 1 << 20
#: how many problems one error message lists before it only counts the rest
MAX_LISTED = 10


@dataclass(frozen=True)
class AssembledImage:
    reference: str
    digest: str
    platforms: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "platforms": list(self.platforms),
        }


@dataclass
class AssembleResult(WrittenOutput):
    images: list[AssembledImage] = field(default_factory=list)
    checked_files: int = 0
    checked_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            **self.output_json(),
            "images": [i.to_json() for i in self.images],
            "checked": {"files": self.checked_files, "bytes": self.checked_bytes},
        }


@dataclass(frozen=True)
class _Problem:
    message: str
    damaged: bool


@dataclass
class CheckedPlan:
    """What :func:`check_plan` found: the records, and what it looked at."""

    records: list[ImageRecord]
    platforms: list[tuple[str, ...]]
    single: bool
    files: int = 0
    bytes: int = 0


def _read_plan(plan_dir: Path, plan_digest: Digest | None) -> dict[str, Any]:
    path = plan_dir / PLAN_FILE
    if not plan_dir.is_dir():
        raise NotFound(f"plan directory {plan_dir} does not exist")
    raw = read_document(path, PLAN_KIND)
    if plan_digest is not None:
        actual = Digest.of_bytes(raw, plan_digest.algorithm)
        if actual != plan_digest:
            raise IntegrityError(
                f"{path} does not match the plan digest {plan_digest}: it hashes to {actual}",
                hint="the plan was changed after `sneaker plan` wrote it",
            )
    doc = parse_document(raw, PLAN_KIND, str(path))
    images = doc.get("images")
    if not isinstance(images, list) or not images:
        raise ArchiveError(f"{path}: 'images' must be a non-empty list")
    return doc


def _field(entry: Any, key: str, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise ArchiveError(f"{where}: missing {key!r}")
    return entry[key]


def _hash_file(path: Path, algorithm: str, progress: Progress, key: str) -> str:
    hasher = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            hasher.update(chunk)
            progress.advance(key, len(chunk))
    return hasher.hexdigest()


class _Checker:
    def __init__(self, plan_dir: Path, progress: Progress) -> None:
        self.plan_dir = plan_dir
        self.progress = progress
        self.problems: list[_Problem] = []
        self.checked: dict[Digest, bool] = {}
        self.files = 0
        self.bytes = 0

    def check_file(self, relpath: str, digest: Digest, size: int, what: str) -> bool:
        """Is ``relpath`` there with ``size`` bytes hashing to ``digest``? Records the problem."""
        if digest in self.checked:
            return self.checked[digest]
        path = self.plan_dir / relpath
        ok = False
        try:
            actual_size = path.stat().st_size if path.is_file() else -1
        except OSError:
            actual_size = -1
        if actual_size < 0:
            self.problems.append(_Problem(f"{relpath} ({what}) is missing", damaged=False))
        elif actual_size != size:
            self.problems.append(
                _Problem(f"{relpath} ({what}) has {actual_size} bytes, expected {size}", True)
            )
        else:
            key = str(digest)
            self.progress.start(key, f"checking {relpath}", size)
            actual = _hash_file(path, digest.algorithm, self.progress, key)
            self.progress.finish(key)
            self.files += 1
            self.bytes += size
            if actual == digest.hex:
                ok = True
            else:
                self.problems.append(
                    _Problem(
                        f"{relpath} ({what}) does not match its digest: "
                        f"content hashes to {digest.algorithm}:{actual}",
                        damaged=True,
                    )
                )
        self.checked[digest] = ok
        return ok

    def load_manifest(self, desc: Descriptor, what: str, where: str) -> Manifest | Index | None:
        relpath = manifest_relpath(desc.digest)
        if desc.size > MAX_MANIFEST_BYTES:
            raise ArchiveError(f"{where}: {what} of {desc.size} bytes is larger than 4 MiB")
        if not self.check_file(relpath, desc.digest, desc.size, what):
            return None
        raw = (self.plan_dir / relpath).read_bytes()
        return parse_manifest(raw, desc.media_type or None, expected=desc.digest, where=relpath)

    def raise_problems(self) -> None:
        if not self.problems:
            return
        listed = [p.message for p in self.problems[:MAX_LISTED]]
        more = len(self.problems) - len(listed)
        if more:
            listed.append(f"and {more} more")
        if len(self.problems) == 1:
            text = f"plan {self.plan_dir}: {listed[0]}"
        else:
            text = (
                f"plan {self.plan_dir}: {len(self.problems)} files are missing or damaged: "
                + "; ".join(listed)
            )
        hint = (
            "run fetch.sh in the plan directory again (it fetches what is missing and "
            "replaces what is damaged), or fetch those files from urls.txt"
        )
        if any(p.damaged for p in self.problems):
            raise IntegrityError(text, hint=hint)
        raise NotFound(text, hint=hint)


def _platform_label(desc: Descriptor) -> str:
    return f"manifest for {desc.platform}" if desc.platform is not None else "manifest"


def _walk_index(
    checker: _Checker,
    index: Index,
    name: str,
    where: str,
    children: dict[Digest, Manifest | Index],
    path: tuple[Digest, ...],
) -> None:
    if len(path) > MAX_INDEX_DEPTH:
        raise ArchiveError(f"{where}: indexes nested deeper than {MAX_INDEX_DEPTH} levels")
    for desc in index.manifests:
        if desc.digest in path:
            raise ArchiveError(f"{where}: index {desc.digest} contains itself (a loop)")
        if desc.digest in children:
            continue
        child = checker.load_manifest(desc, f"{_platform_label(desc)} of {name}", where)
        if child is None:
            continue
        children[desc.digest] = child
        if isinstance(child, Index):
            _walk_index(checker, child, name, where, children, (*path, desc.digest))


def _manifests_of(
    root: Manifest | Index, children: dict[Digest, Manifest | Index]
) -> Iterator[Manifest]:
    if isinstance(root, Manifest):
        yield root
    for child in children.values():
        if isinstance(child, Manifest):
            yield child


def check_plan(
    plan_dir: Path | str, *, plan_digest: Digest | None = None, progress: Progress | None = None
) -> CheckedPlan:
    """Check every file of a plan; return its image records, or raise naming every problem."""
    directory = Path(plan_dir)
    progress = progress or NullProgress()
    doc = _read_plan(directory, plan_digest)
    checker = _Checker(directory, progress)
    where = str(directory / PLAN_FILE)
    records: list[ImageRecord] = []
    platforms: list[tuple[str, ...]] = []
    for number, image in enumerate(doc["images"]):
        here = f"{where} images[{number}]"
        try:
            name = str(_field(image, "reference", here))
            ref = parse_reference(name)
            root_entry = _field(image, "root", here)
            root_desc = Descriptor(
                str(_field(root_entry, "mediaType", f"{here} root")),
                Digest.parse(str(_field(root_entry, "digest", f"{here} root"))),
                int(_field(root_entry, "size", f"{here} root")),
            )
        except (InvalidReference, InvalidDigest, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, SneakerError) else str(exc)
            raise ArchiveError(f"{here}: {message}") from None
        label = ref.familiar
        kind = "index" if mt.is_index(root_desc.media_type) else "manifest"
        root = checker.load_manifest(root_desc, f"{kind} of {label}", here)
        if root is None:
            continue
        children: dict[Digest, Manifest | Index] = {}
        if isinstance(root, Index):
            _walk_index(checker, root, label, here, children, (root.digest,))
        for manifest in _manifests_of(root, children):
            prefix = "" if isinstance(root, Manifest) else f" ({manifest.digest.short})"
            checker.check_file(
                blob_relpath(manifest.config.digest),
                manifest.config.digest,
                manifest.config.size,
                f"config of {label}{prefix}",
            )
            total = len(manifest.layers)
            for position, layer in enumerate(manifest.layers, start=1):
                checker.check_file(
                    blob_relpath(layer.digest),
                    layer.digest,
                    layer.size,
                    f"layer {position}/{total} of {label}{prefix}",
                )
        rewritten = bool(image.get("rewritten", False)) if isinstance(image, dict) else False
        records.append(ImageRecord(ref, root, children, rewritten=rewritten))
        found = image.get("platforms") if isinstance(image, dict) else None
        platforms.append(tuple(str(p) for p in found) if isinstance(found, list) else ())
    checker.raise_problems()
    request = doc.get("platform")
    single = bool(request.get("single", True)) if isinstance(request, dict) else True
    return CheckedPlan(records, platforms, single, checker.files, checker.bytes)


def _output_kind(output: Path | str, fmt: str) -> str:
    """A trailing slash (kept only by the string: ``Path`` drops it) or a directory: a layout."""
    if fmt == "docker":
        return "docker-archive"
    if str(output).endswith(("/", "\\", os.sep)) or Path(output).is_dir():
        return "oci-layout"
    return "oci-archive"


def assemble(
    plan_dir: Path | str,
    output: Path | str,
    *,
    format: str = "docker",
    split: int | None = None,
    plan_digest: Digest | str | None = None,
    progress: Progress | None = None,
) -> AssembleResult:
    """Check the plan in ``plan_dir`` and write its images to ``output`` in ``format``."""
    if format not in FORMATS:
        raise UsageError(f"unknown format {format!r}", hint="use --format docker or --format oci")
    directory = Path(plan_dir)
    output_path = Path(output)
    kind = _output_kind(output, format)
    if split is not None and kind == "oci-layout":
        raise UsageError("--split applies to archives, not to an OCI layout directory")
    # before checking the plan: - is standard output (not a terminal, not split)
    check_archive_output(output_path, directory=kind == "oci-layout", split=split)
    pin = Digest.parse(plan_digest) if isinstance(plan_digest, str) else plan_digest
    progress = progress or NullProgress()

    if format == "docker":
        request = _read_plan(directory, pin).get("platform")
        if isinstance(request, dict) and not request.get("single", True):
            raise UsageError(
                f"plan {directory} was made for several platforms; "
                "a docker archive holds one platform per image",
                hint="assemble it with --format oci",
            )
    progress.message(f"checking {directory}")
    checked = check_plan(directory, plan_digest=pin, progress=progress)
    if format == "docker":
        several = [
            r.reference.familiar if r.reference else str(r.root.digest)
            for r in checked.records
            if isinstance(r.root, Index)
        ]
        if not checked.single or several:
            what = f" ({', '.join(several)})" if several else ""
            raise UsageError(
                f"plan {directory} was made for several platforms{what}; "
                "a docker archive holds one platform per image",
                hint="assemble it with --format oci",
            )
        check_docker_records(checked.records)  # an artifact (a chart, a signature)

    blobs = BlobCache(directory)
    progress.message(f"writing {output_path}")
    if kind == "docker-archive":
        write_docker_archive(checked.records, blobs, output_path, split=split)
    else:
        write_oci_layout(
            checked.records, blobs, output_path, as_tar=kind == "oci-archive", split=split
        )
    result = AssembleResult(
        output_path, kind, checked_files=checked.files, checked_bytes=checked.bytes
    )
    if split is not None:
        result.parts = split_parts(output_path) or []
    for record, platforms in zip(checked.records, checked.platforms, strict=True):
        ref = record.reference
        result.images.append(
            AssembledImage(
                reference=str(ref) if ref is not None else "",
                digest=str(record.root.digest),
                platforms=platforms,
            )
        )
    return result
