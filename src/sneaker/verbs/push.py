"""``push``: the images of an archive -> a registry, with the digests they have in the archive.

Composition only: reading is :func:`sneaker.archive.open_archive`, the wire is
:class:`sneaker.registry.RegistryClient`, compression of legacy layers is
:mod:`sneaker.layers.recompress`, and what goes where, in which order, is
decided first and without I/O by :func:`sneaker.verbs.pushplan.plan_push`
(its module doc states the rules); this module carries that plan out. The
order is the one registries need:

1. blobs (configs and layers), several at once: a HEAD first (the registry may
   have it already), then a cross-repository mount when the blob is known to be
   in another repository of the same registry (pushed there earlier in this run,
   or the repository the archive's image was pulled from), else an upload
   (chunked for large blobs);
2. child manifests by digest, image manifests before the indexes that list them;
3. the image's own manifest or index, under its tag;
4. for a registry without the referrers API (it did not answer a manifest with a
   ``subject`` with ``OCI-Subject``, as distribution 2.8 does not), the fallback tag
   ``sha256-<hex>`` of each subject: the OCI index there gets the pushed referrers
   appended (its own entries kept), as the distribution spec asks of clients, so
   the registry answers the same referrers the archive's source did.

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

import json
import tempfile
import threading
from collections.abc import Callable, Sequence
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
    NotFound,
    UnsupportedError,
    UsageError,
    summarize,
)
from ..image import mediatypes as mt
from ..image.artifacts import (
    attachment_of,
    digest_tag,
    merge_referrers_index,
    referrer_descriptor,
)
from ..image.digest import Digest
from ..image.model import Descriptor, Index, Manifest, parse_manifest
from ..image.records import ImageRecord
from ..image.reference import Reference
from ..layers.recompress import CompressedLayer, gzip_layer_to_dir
from ..registry.mirrors import TargetClientFactory
from ..registry.options import RegistryOptions
from ..settings import load_settings
from ..util.progress import NullProgress, Progress
from ..util.tempfiles import temporary_directory
from .pushplan import (
    BlobPush,
    PushPlan,
    TargetPrefix,
    layers_to_compress,
    parse_target,
    plan_push,
    plan_targets,
)

if TYPE_CHECKING:
    from ..archive import ArchiveSource
    from ..registry.client import RegistryClient, StoredManifest

__all__ = [
    "PushResult",
    "PushedImage",
    "ReferrersTag",
    "TargetPrefix",
    "parse_target",
    "plan_targets",
    "push",
]

T = TypeVar("T")


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
    #: what it refers to (an OCI 1.1 subject, or the digest its cosign tag names), if anything
    subject: str | None = None

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
            "subject": self.subject,
            "blobs": {
                "uploaded": self.uploaded,
                "skipped": self.skipped,
                "mounted": self.mounted,
            },
        }


@dataclass(frozen=True)
class ReferrersTag:
    """A fallback tag ``sha256-<hex>`` written for a registry without the referrers API."""

    target: str  # host/repo:sha256-<hex>
    subject: str
    digest: str  # of the index now under the tag
    listed: int  # referrers it lists
    added: int  # of which this push added

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "subject": self.subject,
            "digest": self.digest,
            "listed": self.listed,
            "added": self.added,
        }


@dataclass
class PushResult:
    archive: Path
    format: str
    images: list[PushedImage] = field(default_factory=list)
    #: referrers a registry with the referrers API took (it answered OCI-Subject)
    referrers_by_api: int = 0
    #: fallback tags written for registries without the API
    referrers_tags: list[ReferrersTag] = field(default_factory=list)

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
            "referrers": {
                "by_api": self.referrers_by_api,
                "tags": [t.to_json() for t in self.referrers_tags],
            },
            "blobs": {
                "uploaded": self.uploaded,
                "skipped": self.skipped,
                "mounted": self.mounted,
            },
        }


# --------------------------------------------------------------------------- helpers


class _ProgressReader:
    """A blob stream that reports what is read; a rewind (a retried request) resets it.

    Not ``util.streams.HashingReader``: it hashes nothing (the client does), stops an
    upload when cancelled, and passes ``seek``/``tell`` through for a retry.
    """

    def __init__(self, raw: BinaryIO, progress: Progress, key: str, cancel: threading.Event):
        self._raw = raw
        self.progress = progress
        self._key = key
        self.cancel = cancel

    def read(self, amount: int = -1) -> bytes:
        if self.cancel.is_set():
            raise Interrupted("push cancelled")
        data = self._raw.read(amount)
        if data:
            self.progress.advance(self._key, len(data))
        return data

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._raw.seek(offset, whence)
        self.progress.reset(self._key, position)
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
        targets = plan_targets(source.records, parsed, source.names)
        if client_factory is None:
            client_factory = _target_clients(stack, targets, options)
        run = _Run(archive_path, source, client_factory, progress, cancel, jobs)
        legacy = layers_to_compress(source.records, synthesised=source.format == "docker-legacy")
        if legacy:
            # compressing takes a while: reach every target repository first, so that a
            # refused login, a TLS problem or a typo in TARGET shows at once
            _probe(client_factory, source.records, targets)
            where = work_dir or Path(tempfile.gettempdir())
            gz_dir = stack.enter_context(temporary_directory(where, "sneaker-push"))
            run.compress(legacy, gz_dir)
        # a delta leaves out layers the target must have already (see sneaker.archive.delta)
        omitted = source.delta.omitted if source.delta is not None else {}
        plan = plan_push(
            source.records,
            parsed,
            names=source.names,
            compressed=run.compressed,
            has_blob=source.has_blob,
            omitted={digest: blob.repositories for digest, blob in omitted.items()},
        )
        run.check_listed(plan)
        if chunk_size is not None and chunk_size <= 0:
            raise UsageError("chunk size must be positive")
        outcomes = run.push_blobs(plan, chunk_size)
        return run.put_manifests(plan, outcomes, source.format)


def _target_clients(
    stack: ExitStack, targets: Sequence[Reference], options: RegistryOptions | None
) -> Callable[[str], RegistryClient]:
    """Clients for the target registries, each checked once: one that is down fails here."""

    opts = options or RegistryOptions()
    # registries.conf and daemon.json: a blocked target is refused before any
    # request (exit 3, naming the file and line); an insecure one is reached as
    # they say. Mirrors and locations are for reading: pushes go to the target.
    settings = load_settings(plain_http=opts.plain_http)
    for ref in targets:
        settings.check_blocked(f"{ref.registry}/{ref.repository}")
    clients = stack.enter_context(TargetClientFactory(settings, opts))
    # each target registry once, first: one that is down fails the push here, with
    # one error, instead of in every upload thread
    for registry in dict.fromkeys(ref.registry for ref in targets):
        clients(registry).check_reachable()
    return clients


def _probe(
    clients: Callable[[str], RegistryClient],
    records: Sequence[ImageRecord],
    targets: Sequence[Reference],
) -> None:
    """A HEAD in every target repository, which needs the access the push needs."""
    probed: set[tuple[str, str]] = set()
    for record, ref in zip(records, targets, strict=True):
        first = next(record.blobs(), None)
        if first is not None and (ref.registry, ref.repository) not in probed:
            probed.add((ref.registry, ref.repository))
            clients(ref.registry).blob_exists(ref.repository, first.digest)


def _gzip_key(desc: Descriptor) -> str:
    """The progress key of compressing a legacy layer."""
    return f"gzip {desc.digest}"


def _blob_key(blob: BlobPush, repository: str) -> str:
    """The progress key of one blob into one repository."""
    return f"{blob.registry}/{repository}@{blob.desc.digest}"


@dataclass
class _Run:
    """One push carrying out its plan: compress, check, HEAD/mount/upload blobs, put manifests."""

    archive: Path
    source: ArchiveSource
    clients: Callable[[str], RegistryClient]
    progress: Progress
    cancel: threading.Event
    jobs: int
    #: legacy layer digest -> its gzip copy's descriptor (filled by :meth:`compress`)
    compressed: dict[Digest, Descriptor] = field(default_factory=dict)
    #: gzip copy's digest -> where the copy is
    gz_paths: dict[Digest, Path] = field(default_factory=dict)
    upload_kwargs: dict[str, Any] = field(default_factory=dict)

    def _reader(self, raw: BinaryIO, key: str) -> BinaryIO:
        return cast(BinaryIO, _ProgressReader(raw, self.progress, key, self.cancel))

    def compress(self, layers: Sequence[Descriptor], gz_dir: Path) -> None:
        """Gzip each legacy layer into ``gz_dir``, several at once."""
        self.progress.message(f"compressing {len(layers)} uncompressed layers")
        self.progress.expect({_gzip_key(desc): desc.size for desc in layers})

        def compress(desc: Descriptor) -> CompressedLayer:
            key = _gzip_key(desc)
            self.progress.start(key, f"compress {desc.digest.short}", desc.size)
            with self.source.open_blob(desc) as raw:
                layer = gzip_layer_to_dir(self._reader(raw, key), desc, gz_dir)
            self.progress.finish(key, "compressed")
            return layer

        for layer in _run_parallel(layers, compress, self.jobs, self.cancel):
            self.compressed[layer.source.digest] = layer.descriptor
            self.gz_paths[layer.descriptor.digest] = layer.path

    def check_listed(self, plan: PushPlan) -> None:
        """An index whose children are not in the archive: the registry must have them."""
        for image in plan.images:
            ref = image.ref
            client = self.clients(ref.registry)
            for listed in image.listed:
                if client.head_manifest(ref.repository, str(listed.digest)) is None:
                    raise ArchiveError(
                        f"index {listed.index.short} of {ref.familiar} lists manifest "
                        f"{listed.digest}, which neither the archive nor {ref.registry} has",
                        hint="registries refuse an index whose manifests are missing; "
                        "pull the image again with --platform all, or push a "
                        "single-platform archive",
                    )

    def push_blobs(
        self, plan: PushPlan, chunk_size: int | None
    ) -> dict[tuple[str, str, Digest], str]:
        """Every blob of the plan, batch after batch: (registry, repository, digest) -> outcome."""
        if chunk_size is not None:
            self.upload_kwargs["chunk_size"] = chunk_size
        outcome_of: dict[tuple[str, str, Digest], str] = {}
        self.progress.expect(
            {
                _blob_key(blob, destination.repository): blob.desc.size
                for batch in plan.batches
                for blob in batch
                for destination in blob.destinations
            }
        )
        for batch in plan.batches:
            done = _run_parallel(batch, self._push_blob, self.jobs, self.cancel)
            for blob, outcomes in zip(batch, done, strict=True):
                for repository, outcome in outcomes.items():
                    outcome_of[(blob.registry, repository, blob.desc.digest)] = outcome
        return outcome_of

    def _push_blob(self, blob: BlobPush) -> dict[str, str]:
        """One blob into each repository that needs it: ``skipped``, ``mounted`` or ``uploaded``."""
        client = self.clients(blob.registry)
        desc = blob.desc
        outcomes: dict[str, str] = {}
        have: str | None = None  # a repository that has the blob by now
        for destination in blob.destinations:
            if self.cancel.is_set():
                raise Interrupted("push cancelled")
            repository = destination.repository
            key = _blob_key(blob, repository)
            self.progress.start(key, f"{repository} {desc.digest.short}", desc.size)
            if client.blob_exists(repository, desc.digest) is not None:
                outcomes[repository] = "skipped"
                have = have or repository
                self.progress.finish(key, "exists")
                continue
            candidates = [have] if have else []
            candidates += [r for r in destination.mount_from if r != have]
            mounted_from = _mount(client, repository, desc.digest, candidates, have)
            if mounted_from is not None:
                outcomes[repository] = "mounted"
                self.progress.finish(key, f"mounted from {mounted_from}")
            elif blob.from_base:
                raise _base_missing(self.archive, blob.registry, repository, desc, candidates)
            else:
                self._upload(client, repository, blob, key)
                outcomes[repository] = "uploaded"
                self.progress.finish(key)
            have = repository
        return outcomes

    def _upload(self, client: RegistryClient, repository: str, blob: BlobPush, key: str) -> None:
        opened = (
            self.gz_paths[blob.desc.digest].open("rb")
            if blob.recompressed
            else self.source.open_blob(blob.desc)
        )
        with opened as raw:
            client.upload_blob(repository, blob.desc, self._reader(raw, key), **self.upload_kwargs)

    def put_manifests(
        self, plan: PushPlan, outcome_of: dict[tuple[str, str, Digest], str], format: str
    ) -> PushResult:
        """Each image's manifests, children first, then the tag; what each image's blobs needed.
        Then, where a registry did not say it took a referrer (``OCI-Subject``), the fallback
        tags of the subjects (:meth:`index_referrers`)."""
        result = PushResult(self.archive, format)
        unlisted: dict[tuple[str, str, Digest], list[Descriptor]] = {}
        for image in plan.images:
            ref = image.ref
            counts = {"uploaded": 0, "skipped": image.repeated, "mounted": 0}
            for digest in image.counted:
                counts[outcome_of[(ref.registry, ref.repository, digest)]] += 1
            client = self.clients(ref.registry)
            for put in image.manifests:
                stored = _put(client, ref, put.identifier, put.node)
                subject = put.node.subject
                if subject is None:
                    continue
                if stored.subject is not None:
                    result.referrers_by_api += 1
                    continue
                key = (ref.registry, ref.repository, subject.digest)
                unlisted.setdefault(key, []).append(referrer_descriptor(put.node))
            attached = attachment_of(image.record)
            result.images.append(
                PushedImage(
                    target=str(image.shown),
                    digest=str(image.record.root.digest),
                    source=image.name,
                    source_digest=str(image.source_digest),
                    subject=str(attached.subject) if attached is not None else None,
                    **counts,
                )
            )
        for (registry, repository, subject_digest), listed in unlisted.items():
            written = self.index_referrers(registry, repository, subject_digest, listed)
            if written is not None:
                result.referrers_tags.append(written)
        return result

    def index_referrers(
        self, registry: str, repository: str, subject: Digest, listed: Sequence[Descriptor]
    ) -> ReferrersTag | None:
        """List ``listed`` under the fallback tag of ``subject``, as the distribution spec asks
        of a client when the registry has no referrers API: the index under the tag (if any)
        keeps its entries and gets the new ones appended. None when it listed them all."""
        client = self.clients(registry)
        tag = digest_tag(subject)
        where = f"{registry}/{repository}:{tag}"
        try:
            raw, media_type = client.get_manifest(repository, tag, (mt.OCI_INDEX,))
        except NotFound:
            existing: bytes | None = None
        else:
            node = parse_manifest(raw, media_type, where=where)
            if not isinstance(node, Index):
                raise UnsupportedError(
                    f"{where} should list the referrers of {subject}, and holds a "
                    f"{node.media_type} instead: not overwriting it",
                    hint="a registry without the referrers API keeps them under that tag; "
                    "move what is there, or push to a registry with the referrers API",
                )
            existing = raw
        merged = merge_referrers_index(existing, listed)
        if merged is None:
            return None
        digest = client.put_manifest(repository, tag, merged, mt.OCI_INDEX)
        before = len(json.loads(existing)["manifests"]) if existing is not None else 0
        after = len(json.loads(merged)["manifests"])
        return ReferrersTag(where, str(subject), str(digest), after, after - before)


def _mount(
    client: RegistryClient,
    repository: str,
    digest: Digest,
    candidates: Sequence[str],
    have: str | None,
) -> str | None:
    """The first of ``candidates`` the registry mounts ``digest`` from, or None."""
    for origin in candidates:
        try:
            if client.mount_blob(repository, digest, origin):
                return origin
        except AuthError:
            if origin == have:
                raise
            continue  # no read access to the origin: upload instead
    return None


def _base_missing(
    archive: Path, registry: str, repository: str, desc: Descriptor, tried: Sequence[str]
) -> NotFound:
    """The error for a delta's omitted layer that the target neither has nor can mount."""
    where = f"{registry}/{repository}"
    mounts = f", nor could it be mounted from {summarize(tried)}" if tried else ""
    return NotFound(
        f"{archive} is a delta archive that leaves out layer {desc.digest} (its base had it), "
        f"and {where} does not have it{mounts}: the target lacks the delta's base",
        hint=f"push the base archive (the OLD of --since, or the images the --have inventory "
        f"listed) to {registry} first, the same way as this delta, then push the delta again; "
        "or pull a full archive (without --since/--have)",
    )


def _put(
    client: RegistryClient, ref: Reference, identifier: str, node: Manifest | Index
) -> StoredManifest:
    stored = client.store_manifest(ref.repository, identifier, node.raw, node.media_type)
    if stored.digest != node.digest:
        raise IntegrityError(
            f"{ref.registry} stored {ref.repository}:{identifier} as {stored.digest}, "
            f"not as {node.digest}"
        )
    return stored
