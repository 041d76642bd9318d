"""``push``: the images of an archive -> a registry, with the digests they have in the archive.

Composition only: reading is :func:`sneaker.archive.open_archive`, the wire is
:class:`sneaker.registry.RegistryClient`, compression of legacy layers is
:mod:`sneaker.layers.recompress`. The order is the one registries need:

1. blobs (configs and layers), several at once: a HEAD first (the registry may
   have it already), then a cross-repository mount when the blob is known to be
   in another repository of the same registry (pushed there earlier in this run,
   or the repository the archive's image was pulled from), else an upload
   (chunked for large blobs);
2. child manifests by digest, image manifests before the indexes that list them;
3. the image's own manifest or index, under its tag.

A delta archive (:mod:`sneaker.archive.delta`) leaves out layers its base had: each
is looked for in the target repository, then mounted from the repositories the
delta's marker recorded (on the target registry, as they are and renamed as
this push renames images). Those go first, and one found nowhere stops the
push before anything is uploaded, with an error naming the blob.

Manifests go up byte for byte, so their digests are the archive's; the digest
the registry answers must be ours. The one exception is a legacy ``docker
save`` (before docker 25), which holds no manifest at all: its uncompressed
layers are gzip-compressed once, deterministically, and the manifest the
reader synthesised is rewritten to name them, so the same archive always
pushes the same digests.

Where images go (``target``):

- None: back to the references the archive names (where they were pulled from);
- a reference with a tag or digest (``host/repo:tag``): the one image of a
  one-image archive, under that name;
- otherwise ``registry[/prefix]``: every image keeps its repository path and tag
  below it (``docker.io/library/ubuntu:22.04`` with ``localhost:5000/mirror``
  goes to ``localhost:5000/mirror/library/ubuntu:22.04``).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from ..archive import open_archive
from ..errors import (
    ArchiveError,
    AuthError,
    IntegrityError,
    Interrupted,
    InvalidReference,
    NotFound,
    UsageError,
)
from ..image.digest import Digest
from ..image.model import Descriptor, Index, Manifest
from ..image.records import ImageRecord
from ..image.reference import Reference, bare_registry_host, parse_reference
from ..layers.recompress import (
    CompressedLayer,
    gzip_layer_to_dir,
    needs_compression,
    rewrite_index,
    rewrite_manifest,
)
from ..registry.mirrors import TargetClientFactory
from ..registry.options import RegistryOptions
from ..settings import load_settings
from ..util.progress import NullProgress, Progress

if TYPE_CHECKING:
    from ..archive import ArchiveSource
    from ..registry.client import RegistryClient

__all__ = [
    "PushResult",
    "PushedImage",
    "TargetPrefix",
    "mount_sources",
    "parse_target",
    "plan_targets",
    "push",
]

T = TypeVar("T")

TARGET_RULE = (
    "TARGET with a tag or digest (localhost:5000/team/app:1) is the full name of the one "
    "image of a one-image archive; TARGET without one is registry[/prefix] "
    "(localhost:5000/mirror) and every image keeps its repository path and tag below it"
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PushedImage:
    """One image pushed: where to, with which digest, and what its blobs needed."""

    target: str
    digest: str
    source: str | None = None
    source_digest: str = ""
    uploaded: int = 0
    skipped: int = 0
    mounted: int = 0

    @property
    def recompressed(self) -> bool:
        """True when the archive's layers were compressed here (a legacy docker save)."""
        return bool(self.source_digest) and self.source_digest != self.digest

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "digest": self.digest,
            "source": self.source,
            "source_digest": self.source_digest,
            "recompressed": self.recompressed,
            "blobs": {
                "uploaded": self.uploaded,
                "skipped": self.skipped,
                "mounted": self.mounted,
            },
        }


@dataclass
class PushResult:
    archive: Path
    format: str
    images: list[PushedImage] = field(default_factory=list)

    @property
    def uploaded(self) -> int:
        return sum(i.uploaded for i in self.images)

    @property
    def skipped(self) -> int:
        return sum(i.skipped for i in self.images)

    @property
    def mounted(self) -> int:
        return sum(i.mounted for i in self.images)

    def to_json(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "format": self.format,
            "images": [i.to_json() for i in self.images],
            "blobs": {
                "uploaded": self.uploaded,
                "skipped": self.skipped,
                "mounted": self.mounted,
            },
        }


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class TargetPrefix:
    """``registry[/prefix]``: images keep their repository path and tag below it."""

    registry: str
    path: str = ""

    def apply(self, ref: Reference) -> Reference:
        repository = f"{self.path}/{ref.repository}" if self.path else ref.repository
        # re-parse: the joined name must still be a valid (and short enough) reference
        checked = parse_reference(f"{self.registry}/{repository}", default_tag=None)
        tag = ref.tag
        digest = None if tag else ref.digest
        return Reference(checked.registry, checked.repository, tag, digest)

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}" if self.path else self.registry


def parse_target(text: str) -> Reference | TargetPrefix:
    """A full reference (it has a tag or digest) or a ``registry[/prefix]``."""
    text = text.strip().rstrip("/")
    if not text:
        raise UsageError("empty TARGET", hint=TARGET_RULE)
    if "/" not in text:
        host = bare_registry_host(text)
        if host is not None:
            return TargetPrefix(host)
    ref = parse_reference(text, default_tag=None)
    if ref.tag is not None or ref.digest is not None:
        return ref
    first, _, path = text.partition("/")
    host = bare_registry_host(first)
    if not path or host is None:
        raise UsageError(
            f"TARGET {text!r} has no tag and does not start with a registry host",
            hint=f"{TARGET_RULE}; for Docker Hub write docker.io/{text}",
        )
    # the path as written: docker's library/ is for image names, not for a prefix
    return TargetPrefix(host, path)


def _record_label(record: ImageRecord, number: int, name: str | None) -> str:
    if record.reference is not None:
        return record.reference.familiar
    return name or f"image {number} ({record.root.digest.short})"


def plan_targets(
    records: Sequence[ImageRecord],
    target: str | Reference | TargetPrefix | None,
    names: Sequence[str | None] = (),
) -> list[Reference]:
    """Where each record goes (same order); raises UsageError when that cannot be decided."""
    if not records:
        raise ArchiveError("the archive holds no image to push")
    parsed = parse_target(target) if isinstance(target, str) else target
    labels = [
        _record_label(r, i + 1, names[i] if i < len(names) else None) for i, r in enumerate(records)
    ]
    if isinstance(parsed, Reference):
        if len(records) != 1:
            prefix = parsed.name.rsplit("/", 1)[0] if "/" in parsed.repository else parsed.registry
            raise UsageError(
                f"TARGET {parsed.familiar} names one image, and the archive holds "
                f"{len(records)}: {', '.join(labels)}",
                hint=f"give a registry or registry/prefix instead (e.g. {prefix}): each image "
                "then keeps its own repository and tag below it",
            )
        return [parsed]
    out: list[Reference] = []
    for record, label in zip(records, labels, strict=True):
        ref = record.reference
        if ref is None:
            if parsed is None:
                raise UsageError(
                    f"{label} has no name in the archive, so there is nowhere to push it back to",
                    hint="give a TARGET: " + TARGET_RULE,
                )
            raise UsageError(
                f"{label} has no name in the archive to keep below {parsed}",
                hint="push it with a full TARGET reference, e.g. "
                f"{parsed.registry}/{parsed.path or 'team'}/app:1"
                if len(records) == 1
                else "name the images in the archive (sneaker pull names them)",
            )
        if parsed is not None:
            ref = parsed.apply(ref)
        elif ref.tag is not None:
            ref = ref.without_digest()
        out.append(ref)
    return out


# --------------------------------------------------------------------------- helpers


class _ProgressReader:
    """A blob stream that reports what is read; a rewind (a retried request) resets it.

    Not ``util.streams.HashingReader``: it hashes nothing (the client does), stops an
    upload when cancelled, and passes ``seek``/``tell`` through for a retry.
    """

    def __init__(self, raw: BinaryIO, progress: Progress, key: str, cancel: threading.Event):
        self._raw = raw
        self._progress = progress
        self._key = key
        self._cancel = cancel

    def read(self, amount: int = -1) -> bytes:
        if self._cancel.is_set():
            raise Interrupted("push cancelled")
        data = self._raw.read(amount)
        if data:
            self._progress.advance(self._key, len(data))
        return data

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._raw.seek(offset, whence)
        self._progress.reset(self._key, position)
        return position


def _run_parallel(
    work: Sequence[T],
    action: Callable[[T], Any],
    parallel: int,
    cancel: threading.Event,
) -> list[Any]:
    """``action`` on every item with ``parallel`` threads; the first failure is raised."""
    if not work:
        return []
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="push") as pool:
        futures: list[Future[Any]] = [pool.submit(action, item) for item in work]
        try:
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:
            cancel.set()
            for fut in futures:
                fut.cancel()
            raise
        if pending:
            cancel.set()
            for fut in pending:
                fut.cancel()
        # the first real failure wins over the cancellations it caused
        for fut in futures:
            if fut.done() and not fut.cancelled():
                exc = fut.exception()
                if exc is not None and not isinstance(exc, Interrupted):
                    raise exc
        results: list[Any] = []
        for fut in futures:
            if fut.cancelled():
                raise Interrupted("push cancelled")
            results.append(fut.result())
        return results


def _post_order(record: ImageRecord) -> Iterator[Manifest | Index]:
    """Every child of ``record`` once, each after the children it lists."""
    seen: set[Digest] = set()

    def visit(node: Manifest | Index) -> Iterator[Manifest | Index]:
        if isinstance(node, Index):
            for desc in node.manifests:
                child = record.children.get(desc.digest)
                if child is None or desc.digest in seen:
                    continue
                seen.add(desc.digest)
                yield from visit(child)
                yield child

    yield from visit(record.root)
    for digest, child in record.children.items():
        if digest not in seen:  # not reachable from the root: still push it, children first
            seen.add(digest)
            yield from visit(child)
            yield child


def _rewrite_record(record: ImageRecord, layers: dict[Digest, Descriptor]) -> ImageRecord:
    """``record`` with compressed layers in its manifests (and indexes that list them)."""
    if not layers:
        return record
    memo: dict[Digest, Manifest | Index] = {}

    def convert(node: Manifest | Index, depth: int) -> Manifest | Index:
        done = memo.get(node.digest)
        if done is not None:
            return done
        if depth > 16:
            raise ArchiveError(f"indexes nest too deep below {record.root.digest}")
        new: Manifest | Index
        if isinstance(node, Manifest):
            new = rewrite_manifest(node, layers)
        else:
            moved: dict[Digest, Descriptor] = {}
            for desc in node.manifests:
                child = record.children.get(desc.digest)
                if child is None:
                    continue
                new_child = convert(child, depth + 1)
                if new_child is not child:
                    moved[desc.digest] = new_child.descriptor
            new = rewrite_index(node, moved)
        memo[node.digest] = new
        return new

    root = convert(record.root, 0)
    children: dict[Digest, Manifest | Index] = {}
    for child in record.children.values():
        new_child = convert(child, 1)
        children[new_child.digest] = new_child
    if root is record.root and all(children.get(d) is c for d, c in record.children.items()):
        return record
    return ImageRecord(record.reference, root, children, record.rewritten)


@dataclass
class _BlobWork:
    """One blob for one registry, and the repositories there that need it (in order)."""

    registry: str
    desc: Descriptor
    repositories: list[str] = field(default_factory=list)
    mount_from: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the verb


def push(
    archive: Path | str,
    target: str | Reference | TargetPrefix | None = None,
    *,
    options: RegistryOptions | None = None,
    jobs: int = 4,
    progress: Progress | None = None,
    chunk_size: int | None = None,
    work_dir: Path | None = None,
    client_factory: Callable[[str], RegistryClient] | None = None,
) -> PushResult:
    """Push every image of ``archive`` (see the module doc for ``target``).

    ``jobs`` blobs go up at once; ``chunk_size`` (bytes) is the largest blob sent
    in one request, larger ones go in chunks of that size; ``work_dir`` holds
    the compressed copies of legacy layers while they are pushed (default: the
    system temp directory).
    """
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    progress = progress or NullProgress()
    archive_path = Path(archive)
    cancel = threading.Event()

    with ExitStack() as stack:
        source: ArchiveSource = stack.enter_context(open_archive(archive_path, allow_delta=True))
        parsed = parse_target(target) if isinstance(target, str) else target
        # a delta leaves out layers the target must have already (see sneaker.archive.delta)
        omitted = source.delta.omitted if source.delta is not None else {}
        rename = parsed.apply if isinstance(parsed, TargetPrefix) else None
        targets = plan_targets(source.records, parsed, source.names)
        synthesised = source.format == "docker-legacy"

        if client_factory is None:
            opts = options or RegistryOptions()
            # registries.conf and daemon.json: a blocked target is refused before any
            # request (exit 3, naming the file and line); an insecure one is reached as
            # they say. Mirrors and locations are for reading: pushes go to the target.
            settings = load_settings(plain_http=opts.plain_http)
            for ref in targets:
                settings.check_blocked(f"{ref.registry}/{ref.repository}")
            client_factory = stack.enter_context(TargetClientFactory(settings, opts))
            # each target registry once, first: one that is down fails the push here, with
            # one error, instead of in every upload thread
            for registry in dict.fromkeys(ref.registry for ref in targets):
                client_factory(registry).check_reachable()

        # -- 1. legacy layers: gzip each distinct one once ------------------------------
        to_compress: dict[Digest, Descriptor] = {}
        for record in source.records:
            for manifest in record.manifests():
                for layer in manifest.layers:
                    if needs_compression(layer, synthesised=synthesised):
                        to_compress.setdefault(layer.digest, layer)
        compressed: dict[Digest, CompressedLayer] = {}
        if to_compress:
            # compressing takes a while: reach every target repository first, so that a
            # refused login, a TLS problem or a typo in TARGET shows at once
            probed: set[tuple[str, str]] = set()
            for record, ref in zip(source.records, targets, strict=True):
                first = next(record.blobs(), None)
                if first is not None and (ref.registry, ref.repository) not in probed:
                    probed.add((ref.registry, ref.repository))
                    client_factory(ref.registry).blob_exists(ref.repository, first.digest)
            gz_dir = Path(
                stack.enter_context(
                    tempfile.TemporaryDirectory(prefix=".sneaker-push-", dir=work_dir)
                )
            )
            progress.message(f"compressing {len(to_compress)} uncompressed layers")

            def compress(desc: Descriptor) -> CompressedLayer:
                key = f"gzip {desc.digest}"
                progress.start(key, f"compress {desc.digest.short}", desc.size)
                with source.open_blob(desc) as raw:
                    layer = gzip_layer_to_dir(
                        cast(BinaryIO, _ProgressReader(raw, progress, key, cancel)),
                        desc,
                        gz_dir,
                    )
                progress.finish(key, "compressed")
                return layer

            ordered = sorted(to_compress.values(), key=lambda d: -d.size)
            for layer in _run_parallel(ordered, compress, jobs, cancel):
                compressed[layer.source.digest] = layer
        new_layers = {old: layer.descriptor for old, layer in compressed.items()}
        gz_paths = {layer.descriptor.digest: layer.path for layer in compressed.values()}
        records = [_rewrite_record(r, new_layers) for r in source.records]

        # -- 2. what goes where -------------------------------------------------------------
        plan: list[tuple[int, ImageRecord, Reference]] = []
        seen_targets: dict[tuple[str, str, str], Digest] = {}
        for number, (record, ref) in enumerate(zip(records, targets, strict=True)):
            if ref.tag is None and ref.digest is not None and ref.digest != record.root.digest:
                if isinstance(parsed, Reference):
                    raise UsageError(
                        f"TARGET digest {ref.digest} is not the image's digest "
                        f"{record.root.digest}",
                        hint="leave the digest out of TARGET, or give a tag",
                    )
                ref = ref.with_digest(record.root.digest)
            elif ref.tag is None and ref.digest is None:
                ref = ref.with_digest(record.root.digest)
            elif ref.digest is not None and ref.digest != record.root.digest:
                raise UsageError(
                    f"TARGET {ref} asks for digest {ref.digest}, and the image's is "
                    f"{record.root.digest}",
                    hint="leave the digest out of TARGET",
                )
            key = (ref.registry, ref.repository, ref.tag or str(ref.digest))
            if key in seen_targets:
                if seen_targets[key] != record.root.digest:
                    raise UsageError(
                        f"two different images of the archive would both be pushed as {ref}",
                        hint="push them one at a time with full TARGET references",
                    )
                continue
            seen_targets[key] = record.root.digest
            plan.append((number, record, ref))

        works: dict[tuple[str, Digest], _BlobWork] = {}
        for _, record, ref in plan:
            origin = record.reference  # where the archive's image came from
            for desc in record.blobs():
                if desc.urls and not _available(source, gz_paths, desc):
                    continue  # a non-distributable layer the archive does not carry
                work = works.setdefault((ref.registry, desc.digest), _BlobWork(ref.registry, desc))
                if ref.repository not in work.repositories:
                    work.repositories.append(ref.repository)
                if (
                    origin is not None
                    and origin.registry == ref.registry
                    and origin.repository != ref.repository
                    and origin.repository not in work.mount_from
                ):
                    work.mount_from.append(origin.repository)

        # an index whose children are not in the archive: the registry must have them
        for _, record, ref in plan:
            client = client_factory(ref.registry)
            for node in (record.root, *record.children.values()):
                if not isinstance(node, Index):
                    continue
                for desc in node.manifests:
                    if desc.digest in record.children:
                        continue
                    if client.head_manifest(ref.repository, str(desc.digest)) is None:
                        raise ArchiveError(
                            f"index {node.digest.short} of {ref.familiar} lists manifest "
                            f"{desc.digest}, which neither the archive nor {ref.registry} has",
                            hint="registries refuse an index whose manifests are missing; "
                            "pull the image again with --platform all, or push a "
                            "single-platform archive",
                        )

        # -- 3. blobs -------------------------------------------------------------------------
        def open_upload(desc: Descriptor) -> BinaryIO:
            path = gz_paths.get(desc.digest)
            if path is not None:
                return path.open("rb")
            return source.open_blob(desc)

        upload_kwargs: dict[str, Any] = {}
        if chunk_size is not None:
            if chunk_size <= 0:
                raise UsageError("chunk size must be positive")
            upload_kwargs["chunk_size"] = chunk_size

        def push_blob(work: _BlobWork) -> dict[str, str]:
            client = client_factory(work.registry)
            desc = work.desc
            outcomes: dict[str, str] = {}
            have: str | None = None
            for repository in work.repositories:
                if cancel.is_set():
                    raise Interrupted("push cancelled")
                key = f"{work.registry}/{repository}@{desc.digest}"
                label = f"{repository} {desc.digest.short}"
                progress.start(key, label, desc.size)
                if client.blob_exists(repository, desc.digest) is not None:
                    outcomes[repository] = "skipped"
                    have = have or repository
                    progress.finish(key, "exists")
                    continue
                candidates = [have] if have else []
                candidates += [r for r in work.mount_from if r != repository and r != have]
                if desc.digest in omitted:
                    candidates += [
                        r
                        for r in mount_sources(
                            omitted[desc.digest].repositories, work.registry, repository, rename
                        )
                        if r not in candidates
                    ]
                mounted_from = None
                for origin_repo in candidates:
                    try:
                        if client.mount_blob(repository, desc.digest, origin_repo):
                            mounted_from = origin_repo
                            break
                    except AuthError:
                        if origin_repo == have:
                            raise
                        continue  # no read access to the origin: upload instead
                if mounted_from is not None:
                    outcomes[repository] = "mounted"
                    progress.finish(key, f"mounted from {mounted_from}")
                elif desc.digest in omitted:
                    raise _base_missing(archive_path, work.registry, repository, desc, candidates)
                else:
                    with open_upload(desc) as raw:
                        client.upload_blob(
                            repository,
                            desc,
                            cast(BinaryIO, _ProgressReader(raw, progress, key, cancel)),
                            **upload_kwargs,
                        )
                    outcomes[repository] = "uploaded"
                    progress.finish(key)
                have = repository
            return outcomes

        ordered_works = sorted(works.values(), key=lambda w: -w.desc.size)
        outcome_of: dict[tuple[str, str, Digest], str] = {}
        # a delta's omitted layers first: a target without the base fails before any upload
        for batch in (
            [w for w in ordered_works if w.desc.digest in omitted],
            [w for w in ordered_works if w.desc.digest not in omitted],
        ):
            for work, outcomes in zip(
                batch, _run_parallel(batch, push_blob, jobs, cancel), strict=True
            ):
                for repository, outcome in outcomes.items():
                    outcome_of[(work.registry, repository, work.desc.digest)] = outcome

        # -- 4. manifests, children first, then the tag ----------------------------------------
        result = PushResult(archive_path, source.format)
        counted: set[tuple[str, str, Digest]] = set()
        put_done: set[tuple[str, str, Digest]] = set()
        for number, record, ref in plan:
            client = client_factory(ref.registry)
            counts = {"uploaded": 0, "skipped": 0, "mounted": 0}
            for desc in record.blobs():
                blob_key = (ref.registry, ref.repository, desc.digest)
                outcome = outcome_of.get(blob_key)
                if outcome is None:
                    continue
                counts["skipped" if blob_key in counted else outcome] += 1
                counted.add(blob_key)
            for child in _post_order(record):
                child_key = (ref.registry, ref.repository, child.digest)
                if child_key in put_done:
                    continue
                _put(client, ref, str(child.digest), child)
                put_done.add(child_key)
            identifier = ref.tag or str(record.root.digest)
            _put(client, ref, identifier, record.root)
            put_done.add((ref.registry, ref.repository, record.root.digest))
            shown = ref.without_digest() if ref.tag else ref.with_digest(record.root.digest)
            original = source.records[number].root.digest
            result.images.append(
                PushedImage(
                    target=str(shown),
                    digest=str(record.root.digest),
                    source=source.names[number] if number < len(source.names) else None,
                    source_digest=str(original),
                    **counts,
                )
            )
        return result


def _base_missing(
    archive: Path, registry: str, repository: str, desc: Descriptor, tried: Sequence[str]
) -> NotFound:
    """The error for a delta's omitted layer that the target neither has nor can mount."""
    where = f"{registry}/{repository}"
    mounts = f", nor could it be mounted from {', '.join(tried)}" if tried else ""
    return NotFound(
        f"{archive} is a delta archive that leaves out layer {desc.digest} (its base had it), "
        f"and {where} does not have it{mounts}: the target lacks the delta's base",
        hint=f"push the base archive (the OLD of --since, or the images the --have inventory "
        f"listed) to {registry} first, the same way as this delta, then push the delta again; "
        "or pull a full archive (without --since/--have)",
    )


def _available(source: ArchiveSource, gz_paths: dict[Digest, Path], desc: Descriptor) -> bool:
    return desc.digest in gz_paths or source.has_blob(desc.digest)


def _put(client: RegistryClient, ref: Reference, identifier: str, node: Manifest | Index) -> None:
    answered = client.put_manifest(ref.repository, identifier, node.raw, node.media_type)
    if answered != node.digest:
        raise IntegrityError(
            f"{ref.registry} stored {ref.repository}:{identifier} as {answered}, "
            f"not as {node.digest}"
        )


def mount_sources(
    repositories: Iterable[str],
    registry: str,
    repository: str,
    rename: Callable[[Reference], Reference] | None = None,
) -> list[str]:
    """Repositories of ``registry`` worth asking to mount an omitted blob from, best first.

    ``repositories`` are where the base knew the blob (``registry/path``). In
    order: those on ``registry`` itself; those renamed as the push renames its
    images (``rename``, e.g. a target prefix: ``old.example/team/base`` pushed
    below ``registry/mirror`` is ``mirror/team/base`` there); the same paths on
    ``registry`` (the base was pushed under its own names). ``repository``, the
    push's own target, is left out: a HEAD there comes first anyway.
    """
    parsed: list[Reference] = []
    for text in repositories:
        try:
            parsed.append(parse_reference(text, default_tag=None))
        except InvalidReference:
            continue
    found: list[str] = []

    def add(path: str) -> None:
        if path != repository and path not in found:
            found.append(path)

    for ref in parsed:
        if ref.registry == registry:
            add(ref.repository)
    if rename is not None:
        for ref in parsed:
            try:
                renamed = rename(ref)
            except UsageError:
                continue
            if renamed.registry == registry:
                add(renamed.repository)
    for ref in parsed:
        add(ref.repository)
    return found
