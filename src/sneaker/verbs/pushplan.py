"""Where ``push`` sends each image and blob, decided before the first request: the push plan.

Pure: nothing here opens a file or a socket. :func:`plan_targets` names where
each image of an archive goes (the TARGET rule, see :mod:`sneaker.verbs.push`);
:func:`plan_push` turns what the archive holds (image records, which blobs it
carries, a delta's omitted layers) and that naming into a frozen
:class:`PushPlan`, which :func:`sneaker.verbs.push.push` carries out against
the registry. The rules:

- each image goes under its tag, or by its digest when the target has no tag;
  a digest in TARGET must be the image's own; two different images of the
  archive for one name are refused, the same image twice is pushed once;
- each blob goes to a registry once, into every repository there whose images
  use it, in the order of the images; a non-distributable layer (one with
  ``urls``) that the archive does not carry is left out;
- a repository without the blob mounts it, in this order: from the repository
  of the same registry that got it earlier in this run (only the executor
  knows which, so it is not in the plan), from the repository the image was
  pulled from, and, for a layer a delta left out (:mod:`sneaker.archive.delta`), from
  the repositories its marker recorded; only then is it uploaded. A delta's
  omitted layer is never uploaded: the target has it, or can mount it, or the
  push stops;
- order: the omitted layers of a delta first (a target without the base fails
  before any upload), then the other blobs, largest first in each batch; then,
  image after image, its child manifests by digest, children before the
  indexes that list them, each once per repository; last the image's own
  manifest or index under its tag (or digest). Manifests are the archive's
  bytes;
- a legacy ``docker save`` holds uncompressed layers: :func:`layers_to_compress`
  lists them; once they are compressed, :func:`plan_push` is given their gzip
  descriptors, rewrites the manifests (and the indexes above them) to name
  them, and marks those blobs to be uploaded from the compressed copies.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ArchiveError, InvalidReference, UsageError
from ..image.artifacts import attachment_of
from ..image.digest import Digest
from ..image.model import Descriptor, Index, Manifest
from ..image.records import ImageRecord
from ..image.reference import Reference, bare_registry_host, parse_reference
from ..layers.recompress import needs_compression, rewrite_index, rewrite_manifest

__all__ = [
    "TARGET_RULE",
    "BlobDestination",
    "BlobPush",
    "ImagePush",
    "ListedManifest",
    "ManifestPut",
    "PushPlan",
    "TargetPrefix",
    "layers_to_compress",
    "mount_sources",
    "parse_target",
    "plan_push",
    "plan_targets",
]

TARGET_RULE = (
    "TARGET with a tag or digest (localhost:5000/team/app:1) is the full name of the one "
    "image of a one-image archive; TARGET without one is registry[/prefix] "
    "(localhost:5000/mirror) and every image keeps its repository path and tag below it"
)


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


def _beside(target: Reference, record: ImageRecord) -> Reference:
    """Where a referrer or cosign attachment of the image pushed as ``target`` goes: the
    same repository, under its own (cosign) tag, else by its digest."""
    tag = record.reference.tag if record.reference is not None else None
    return Reference(target.registry, target.repository, tag, None if tag else record.root.digest)


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
    if isinstance(parsed, Reference) and len(records) == 1:
        return [parsed]
    if isinstance(parsed, Reference):
        # an image's referrers and cosign attachments go with it, into the same repository
        attached = [attachment_of(r) is not None for r in records]
        main = [label for label, extra in zip(labels, attached, strict=True) if not extra]
        if len(main) != 1:
            prefix = parsed.name.rsplit("/", 1)[0] if "/" in parsed.repository else parsed.registry
            raise UsageError(
                f"TARGET {parsed.familiar} names one image, and the archive holds "
                f"{len(main)}: {', '.join(main)}",
                hint=f"give a registry or registry/prefix instead (e.g. {prefix}): each image "
                "then keeps its own repository and tag below it",
            )
        return [
            _beside(parsed, record) if extra else parsed
            for record, extra in zip(records, attached, strict=True)
        ]
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


# --------------------------------------------------------------------------- records


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


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class BlobDestination:
    """A repository that needs a blob, and the other repositories to try to mount it from.

    A repository of the same registry that got the blob earlier in this run
    comes before these; the executor knows which one that is.
    """

    repository: str
    mount_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlobPush:
    """One blob for one registry, and the repositories there that need it (in order)."""

    registry: str
    desc: Descriptor
    destinations: tuple[BlobDestination, ...]
    #: a layer a delta left out: the target has it or mounts it; it is never uploaded
    from_base: bool = False
    #: a legacy layer: uploaded from its gzip copy, not from the archive
    recompressed: bool = False


@dataclass(frozen=True)
class ManifestPut:
    """One manifest or index to put, under a tag or its digest."""

    identifier: str
    node: Manifest | Index


@dataclass(frozen=True)
class ListedManifest:
    """A manifest an index lists and the archive lacks: the registry must have it already."""

    index: Digest
    digest: Digest


@dataclass(frozen=True)
class ImagePush:
    """One image of the archive: where it goes and what is put there for it."""

    number: int  # its place in the archive
    name: str | None  # the archive's name for it, if any
    ref: Reference  # where it goes: a tag, or its digest
    record: ImageRecord  # as pushed (legacy layers compressed)
    source_digest: Digest  # the root's digest in the archive
    listed: tuple[ListedManifest, ...]  # checked on the registry before any blob
    manifests: tuple[ManifestPut, ...]  # children first, the root last
    #: the blobs this image reports as uploaded, mounted or skipped, as they went
    counted: tuple[Digest, ...]
    #: blobs an earlier image of the same repository reported already: "skipped" here
    repeated: int

    @property
    def shown(self) -> Reference:
        """The name printed for it: the tag, or the digest."""
        if self.ref.tag:
            return self.ref.without_digest()
        return self.ref.with_digest(self.record.root.digest)


@dataclass(frozen=True)
class PushPlan:
    """Everything a push does, in order: the blobs (batch after batch), then the images."""

    images: tuple[ImagePush, ...]
    #: a delta's omitted layers, then the rest; largest first in each
    batches: tuple[tuple[BlobPush, ...], ...]


def layers_to_compress(records: Sequence[ImageRecord], *, synthesised: bool) -> list[Descriptor]:
    """The uncompressed layers ``push`` gzips first (each once, largest first).

    ``synthesised``: the archive (a legacy ``docker save``) came without manifests.
    """
    found: dict[Digest, Descriptor] = {}
    for record in records:
        for manifest in record.manifests():
            for layer in manifest.layers:
                if needs_compression(layer, synthesised=synthesised):
                    found.setdefault(layer.digest, layer)
    return sorted(found.values(), key=lambda d: -d.size)


def plan_push(
    records: Sequence[ImageRecord],
    target: str | Reference | TargetPrefix | None,
    *,
    names: Sequence[str | None] = (),
    compressed: Mapping[Digest, Descriptor] | None = None,
    has_blob: Callable[[Digest], bool] | None = None,
    omitted: Mapping[Digest, Sequence[str]] | None = None,
) -> PushPlan:
    """The plan to push ``records`` (an archive's images, in order) to ``target``.

    ``names`` are the archive's names for the records (for messages);
    ``compressed`` maps each legacy layer's digest to its gzip copy's descriptor;
    ``has_blob`` says whether the archive carries a blob (default: every one);
    ``omitted`` maps each layer a delta left out to the repositories (``host/path``)
    its base had it in. Raises :class:`UsageError` when TARGET cannot be honoured.
    """
    parsed = parse_target(target) if isinstance(target, str) else target
    targets = plan_targets(records, parsed, names)
    layers = dict(compressed or {})
    gz_digests = {desc.digest for desc in layers.values()}
    left_out = dict(omitted or {})
    rename = parsed.apply if isinstance(parsed, TargetPrefix) else None

    def carried(desc: Descriptor) -> bool:
        """False for a non-distributable layer that the archive does not carry."""
        if not desc.urls or desc.digest in gz_digests:
            return True
        return has_blob is None or has_blob(desc.digest)

    rewritten = [_rewrite_record(r, layers) for r in records]
    chosen = _choose_refs(rewritten, targets, exact=isinstance(parsed, Reference))
    blobs = _plan_blobs(chosen, carried, left_out, rename, gz_digests)
    images = _plan_images(chosen, records, names, carried)
    base = tuple(b for b in blobs if b.from_base)
    return PushPlan(images, (base, tuple(b for b in blobs if not b.from_base)))


def _plan_images(
    chosen: Sequence[tuple[int, ImageRecord, Reference]],
    records: Sequence[ImageRecord],
    names: Sequence[str | None],
    carried: Callable[[Descriptor], bool],
) -> tuple[ImagePush, ...]:
    """What is put for each image, and which blobs' outcomes it reports."""
    images: list[ImagePush] = []
    counted: set[tuple[str, str, Digest]] = set()
    put: set[tuple[str, str, Digest]] = set()
    for number, record, ref in chosen:
        mine: list[Digest] = []
        repeated = 0
        for desc in record.blobs():
            if not carried(desc):
                continue
            key = (ref.registry, ref.repository, desc.digest)
            if key in counted:
                repeated += 1
            else:
                counted.add(key)
                mine.append(desc.digest)
        manifests: list[ManifestPut] = []
        for child in _post_order(record):
            if (ref.registry, ref.repository, child.digest) not in put:
                manifests.append(ManifestPut(str(child.digest), child))
                put.add((ref.registry, ref.repository, child.digest))
        manifests.append(ManifestPut(ref.tag or str(record.root.digest), record.root))
        put.add((ref.registry, ref.repository, record.root.digest))
        images.append(
            ImagePush(
                number=number,
                name=names[number] if number < len(names) else None,
                ref=ref,
                record=record,
                source_digest=records[number].root.digest,
                listed=tuple(_listed_elsewhere(record)),
                manifests=tuple(manifests),
                counted=tuple(mine),
                repeated=repeated,
            )
        )
    return tuple(images)


def _choose_refs(
    records: Sequence[ImageRecord], targets: Sequence[Reference], *, exact: bool
) -> list[tuple[int, ImageRecord, Reference]]:
    """Each image's final name (a tag, or its digest), each name once: (number, record, ref).

    ``exact``: TARGET was one full reference, so a digest in it that is not the
    image's is the user's mistake (else it was the source's, and ours may differ).
    """
    chosen: list[tuple[int, ImageRecord, Reference]] = []
    seen: dict[tuple[str, str, str], Digest] = {}
    for number, (record, ref) in enumerate(zip(records, targets, strict=True)):
        digest = record.root.digest
        if ref.tag is None and ref.digest is not None and ref.digest != digest:
            if exact:
                raise UsageError(
                    f"TARGET digest {ref.digest} is not the image's digest {digest}",
                    hint="leave the digest out of TARGET, or give a tag",
                )
            ref = ref.with_digest(digest)
        elif ref.tag is None and ref.digest is None:
            ref = ref.with_digest(digest)
        elif ref.digest is not None and ref.digest != digest:
            raise UsageError(
                f"TARGET {ref} asks for digest {ref.digest}, and the image's is {digest}",
                hint="leave the digest out of TARGET",
            )
        key = (ref.registry, ref.repository, ref.tag or str(ref.digest))
        if key in seen:
            if seen[key] != digest:
                raise UsageError(
                    f"two different images of the archive would both be pushed as {ref}",
                    hint="push them one at a time with full TARGET references",
                )
            continue
        seen[key] = digest
        chosen.append((number, record, ref))
    return chosen


@dataclass
class _BlobWork:
    """A :class:`BlobPush` while it is being gathered."""

    desc: Descriptor
    repositories: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)


def _plan_blobs(
    chosen: Sequence[tuple[int, ImageRecord, Reference]],
    carried: Callable[[Descriptor], bool],
    omitted: Mapping[Digest, Sequence[str]],
    rename: Callable[[Reference], Reference] | None,
    gz_digests: Collection[Digest],
) -> list[BlobPush]:
    """Every blob for every registry, largest first, with where each may be mounted from."""
    works: dict[tuple[str, Digest], _BlobWork] = {}
    for _, record, ref in chosen:
        origin = record.reference  # where the archive's image came from
        for desc in record.blobs():
            if not carried(desc):
                continue
            work = works.setdefault((ref.registry, desc.digest), _BlobWork(desc))
            if ref.repository not in work.repositories:
                work.repositories.append(ref.repository)
            if (
                origin is not None
                and origin.registry == ref.registry
                and origin.repository != ref.repository
                and origin.repository not in work.origins
            ):
                work.origins.append(origin.repository)
    blobs: list[BlobPush] = []
    for (registry, digest), work in works.items():
        destinations: list[BlobDestination] = []
        for repository in work.repositories:
            mount_from = [r for r in work.origins if r != repository]
            if digest in omitted:
                base = mount_sources(omitted[digest], registry, repository, rename)
                mount_from += [r for r in base if r not in mount_from]
            destinations.append(BlobDestination(repository, tuple(mount_from)))
        blobs.append(
            BlobPush(
                registry,
                work.desc,
                tuple(destinations),
                from_base=digest in omitted,
                recompressed=digest in gz_digests,
            )
        )
    return sorted(blobs, key=lambda b: -b.desc.size)


def _listed_elsewhere(record: ImageRecord) -> Iterator[ListedManifest]:
    """The manifests ``record``'s indexes list and the archive does not hold."""
    for node in (record.root, *record.children.values()):
        if isinstance(node, Index):
            for desc in node.manifests:
                if desc.digest not in record.children:
                    yield ListedManifest(node.digest, desc.digest)


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
