"""Reading image archives and layouts back, without extracting anything.

:func:`open_archive` recognises:

``docker-archive``
    a tar holding an OCI image layout *and* ``manifest.json``: what sneaker
    writes and what ``docker save`` writes since docker 25. Read through
    ``index.json``; ``manifest.json`` is checked and lends its ``RepoTags`` to
    entries ``index.json`` leaves unnamed.
``oci-archive``
    a tar of an OCI image layout (skopeo ``oci-archive:``, ``podman save
    --format oci-archive``, sneaker).
``oci-layout``
    an OCI image layout directory.
``docker-legacy``
    an archive with ``manifest.json`` and no OCI layout: ``docker save`` before
    docker 25 (``<id>/layer.tar`` layers, often symlinks to each other), and the
    ``docker-archive:`` of skopeo and ``podman save`` (``<hex>.tar`` layers,
    ``<hex>.json`` config). Such archives hold no manifests, so each image is
    presented as a Docker schema 2 manifest **synthesised** here from its
    config and layer files. An uncompressed layer (the usual case) is described
    as ``application/vnd.docker.image.rootfs.diff.tar`` with its diff_id from
    the config as digest (the sha256 of an uncompressed layer is its diff_id;
    the digest is checked by whoever reads the blob, not at open). A compressed
    layer is hashed once at open. The synthesised manifest's digest is sneaker's
    own, not any registry's; ``push`` compresses such layers and so writes
    manifests of its own anyway.

A split archive (``OUT.000``, ``OUT.001``, ... see :mod:`sneaker.archive.split`)
is opened by its base name ``OUT``, or by naming ``OUT.000``.

Nothing is extracted: the tar's members are indexed once (name, offset, size;
links resolved inside the archive) and blobs are served as bounded views read
with ``pread``, so one :class:`ArchiveSource` serves many threads at once and
memory stays flat whatever the archive's size. Hostile content is refused with
:class:`~sneaker.errors.ArchiveError` or :class:`~sneaker.errors.UnsafePath`:
absolute or ``..`` member names, links leading out of the archive or in a
circle, duplicate members, device files, ``manifest.json``/``index.json``
paths outside the archive or to missing blobs, indexes that nest in a loop or
too deep, ``index.json``, ``manifest.json`` or a manifest over 4 MiB, and
malformed JSON.

An index may lack some of its child manifests (``docker save`` of one
platform of a multi-platform image does that): absent children are left out
of :attr:`ImageRecord.children`. Every manifest that is present must have its
config and layers (bar non-distributable layers that carry ``urls``, and
the layers a delta's marker lists).

A *delta* (see :mod:`sneaker.archive.delta`: an OCI layout with a
``sneaker-delta.json`` marker, leaving out layers the other side has) opens
only with ``allow_delta=True`` (``push``, ``inventory``); its marker is then
:attr:`ArchiveSource.delta`. Without ``allow_delta`` it is refused with
:func:`sneaker.archive.delta.delta_refusal`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, cast

from ..errors import (
    ArchiveError,
    IntegrityError,
    InvalidDigest,
    InvalidReference,
    ManifestInvalid,
    NotFound,
    UnsafePath,
    UnsupportedError,
    UsageError,
)
from ..image import mediatypes as mt
from ..image.config import MAX_CONFIG_BYTES
from ..image.digest import Digest
from ..image.model import MAX_MANIFEST_BYTES, Descriptor, Index, Manifest, parse_manifest
from ..image.records import ImageRecord, ImageSource
from ..image.reference import Reference, parse_reference
from ..layers.apply import BoundedTarInfo
from ..layers.compression import SNIFF_BYTES, sniff_compression
from ..util.closing import Closing
from ..util.oserrors import reporting
from ..util.streams import PositionalReader
from ._layout import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME
from .delta import DELTA_MARKER, MAX_MARKER_BYTES, DeltaMarker, delta_refusal
from .split import SplitReader, part_path, preadinto, split_parts
from .tar import blob_member

__all__ = [
    "FORMATS",
    "MAX_CONFIG_BYTES",
    "ArchiveSource",
    "missing_archive",
    "open_archive",
]

FORMATS = ("docker-archive", "docker-legacy", "oci-archive", "oci-layout")
#: image configs larger than this are refused.
MAX_MEMBERS = 1_000_000
MAX_NESTING = 8
MAX_LINK_HOPS = 32
_HASH_CHUNK = 1 << 20

_BLOB_PATH = re.compile(r"^blobs/([a-z0-9]+)/([a-f0-9]+)$")

PRead = Callable[[memoryview, int], int]


# -- names --------------------------------------------------------------------


def clean_name(name: str, *, where: str) -> str:
    """A member name or archive path made canonical (``./a//b/`` -> ``a/b``).

    Raises :class:`UnsafePath` for an absolute name or one with a ``..`` part.
    """
    if name.startswith("/") or name.startswith("\\"):
        raise UnsafePath(f"{where}: absolute name {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"{where}: name {name!r} leads out of the archive ('..')")
    if "\x00" in name:
        raise UnsafePath(f"{where}: name {name!r} contains a NUL byte")
    return "/".join(parts)


# -- stores: where the members live -------------------------------------------


class _Section(PositionalReader):
    """A read-only, seekable view of ``size`` bytes at ``start``, read with pread."""

    def __init__(self, pread: PRead, start: int, size: int, label: str) -> None:
        super().__init__()
        self._pread = pread
        self._start = start
        self.size = size
        self._label = label

    def read_at(self, buf: memoryview, offset: int) -> int:
        want = min(len(buf), self.size - offset)
        if want <= 0:
            return 0
        got = self._pread(buf[:want], self._start + offset)
        if got < want:
            raise ArchiveError(f"{self._label} ends early: the file was truncated")
        return got


def _fd_pread(fd: int) -> PRead:
    def pread(buf: memoryview, offset: int) -> int:
        done = 0
        while done < len(buf):
            n = preadinto(fd, buf[done:], offset + done)
            if n == 0:
                break
            done += n
        return done

    return pread


class _Member(NamedTuple):
    kind: str  # "file", "dir" or "link"
    offset: int
    size: int
    target: str


class _Store:
    """Members by name: regular files, read whole (small) or as streams."""

    label: str

    def size(self, name: str) -> int | None:
        """Size of the regular file ``name`` (links followed), None when there is none."""
        raise NotImplementedError

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def path(self, name: str) -> Path | None:
        return None

    def extent(self, name: str) -> tuple[Path, int, int] | None:
        """(file, offset, size) of member ``name`` when one local file holds it in one piece."""
        return None

    def close(self) -> None:
        pass

    def read(self, name: str, limit: int) -> bytes:
        size = self.size(name)
        if size is None:
            raise ArchiveError(f"{self.label}: {name} is missing")
        if size > limit:
            raise ArchiveError(
                f"{self.label}: {name} is {size} bytes, larger than the {limit >> 20} MiB limit"
            )
        with self.open(name) as fh:
            return fh.read()

    def head(self, name: str, n: int) -> bytes:
        with self.open(name) as fh:
            return fh.read(n)

    def digest(self, name: str) -> Digest:
        hasher = hashlib.sha256()
        buf = bytearray(_HASH_CHUNK)
        mv = memoryview(buf)
        with self.open(name) as fh:
            readinto = cast(io.RawIOBase, fh).readinto
            while n := readinto(mv):
                hasher.update(mv[:n])
        return Digest("sha256", hasher.hexdigest())


class _TarStore(_Store):
    def __init__(
        self,
        fileobj: BinaryIO,
        pread: PRead,
        label: str,
        locate: Callable[[int, int], tuple[Path, int] | None],
    ) -> None:
        self.label = label
        self._fileobj = fileobj
        self._pread = pread
        self._locate = locate
        self._members = self._index()

    def extent(self, name: str) -> tuple[Path, int, int] | None:
        member = self._resolve(name)
        if member is None or member.kind != "file":
            return None
        place = self._locate(member.offset, member.size)
        return (place[0], place[1], member.size) if place is not None else None

    def _index(self) -> dict[str, _Member]:
        label = self.label
        members: dict[str, _Member] = {}
        try:
            tf = tarfile.open(  # noqa: SIM115
                fileobj=self._fileobj, mode="r:", tarinfo=BoundedTarInfo
            )
        except tarfile.TarError as exc:
            raise ArchiveError(f"{label} is not a tar archive ({exc})") from None
        if getattr(tf, "firstmember", None) is None and tf.offset == 0:
            # the tar starts with its end-of-archive block: no members (Python 3.10's
            # next() would seek to offset -1 here and fail with EINVAL)
            return members
        try:
            while True:
                info = tf.next()
                if info is None:
                    break
                tf.members = []  # type: ignore[attr-defined]  # keep memory flat
                if len(members) >= MAX_MEMBERS:
                    raise ArchiveError(f"{label} has more than {MAX_MEMBERS} members")
                name = clean_name(info.name, where=label)
                if not name:
                    continue
                member = self._member(info, name)
                earlier = members.get(name)
                if earlier is not None:
                    if earlier.kind == "dir" and member.kind == "dir":
                        continue
                    raise ArchiveError(f"{label}: member {name!r} appears twice")
                members[name] = member
        except tarfile.TarError as exc:
            raise ArchiveError(f"{label}: damaged tar archive ({exc})") from None
        return members

    def _member(self, info: tarfile.TarInfo, name: str) -> _Member:
        label = self.label
        if info.issparse():
            raise ArchiveError(f"{label}: member {name!r} is a sparse file")
        if info.isreg():
            return _Member("file", info.offset_data, info.size, "")
        if info.isdir():
            return _Member("dir", 0, 0, "")
        if info.issym():
            target = info.linkname
            if target.startswith("/"):
                raise UnsafePath(f"{label}: symlink {name!r} points at absolute path {target!r}")
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if joined == ".." or joined.startswith("../") or joined.startswith("/"):
                raise UnsafePath(
                    f"{label}: symlink {name!r} -> {target!r} leads out of the archive"
                )
            return _Member("link", 0, 0, clean_name(joined, where=label))
        if info.islnk():
            return _Member("link", 0, 0, clean_name(info.linkname, where=f"{label} hard link"))
        raise ArchiveError(
            f"{label}: member {name!r} is a device, FIFO or other special file, "
            "which image archives never hold"
        )

    def _resolve(self, name: str) -> _Member | None:
        start = name
        for _ in range(MAX_LINK_HOPS):
            member = self._members.get(name)
            if member is None or member.kind != "link":
                return member
            name = member.target
        raise ArchiveError(f"{self.label}: links starting at {start!r} go round in a circle")

    def size(self, name: str) -> int | None:
        member = self._resolve(name)
        return member.size if member is not None and member.kind == "file" else None

    def open(self, name: str) -> BinaryIO:
        member = self._resolve(name)
        if member is None or member.kind != "file":
            raise ArchiveError(f"{self.label}: {name} is missing")
        section = _Section(self._pread, member.offset, member.size, f"{self.label}: {name}")
        return cast(BinaryIO, section)

    def close(self) -> None:
        self._fileobj.close()


class _DirStore(_Store):
    def __init__(self, root: Path) -> None:
        self.label = f"layout {root}"
        self._root = os.path.realpath(root)

    def path(self, name: str) -> Path | None:
        real = os.path.realpath(os.path.join(self._root, name))
        if real != self._root and not real.startswith(self._root + os.sep):
            raise UnsafePath(f"{self.label}: {name} leads outside the directory (symlink)")
        return Path(real) if os.path.isfile(real) else None

    def size(self, name: str) -> int | None:
        path = self.path(name)
        return path.stat().st_size if path is not None else None

    def open(self, name: str) -> BinaryIO:
        path = self.path(name)
        if path is None:
            raise ArchiveError(f"{self.label}: {name} is missing")
        return path.open("rb")

    def extent(self, name: str) -> tuple[Path, int, int] | None:
        path = self.path(name)
        return (path, 0, path.stat().st_size) if path is not None else None


# -- the source ----------------------------------------------------------------


class ArchiveSource(Closing):
    """An archive or layout opened for reading: an :class:`~sneaker.image.records.ImageSource`.

    ``records`` are the named images; ``names`` (same order) the name each
    record has in the archive as written there: a full reference, or a bare
    OCI ref name such as ``latest`` (the record's ``reference`` is then None,
    since a tag alone names no repository), or None. ``format`` is one of
    :data:`FORMATS`; ``delta`` is the marker of a delta archive (opened with
    ``allow_delta=True``), else None. Thread-safe for reading; close it (or use
    ``with``) when done.
    """

    def __init__(self, path: Path, store: _Store, fmt: str) -> None:
        self.path = path
        self.format = fmt
        self.records: list[ImageRecord] = []
        self.names: list[str | None] = []
        self.delta: DeltaMarker | None = None
        self._store = store
        self._oci = fmt != "docker-legacy"
        self._members: dict[Digest, str] = {}
        self._memory: dict[Digest, bytes] = {}

    # -- ImageSource -------------------------------------------------------

    def _member_of(self, digest: Digest) -> str | None:
        name = self._members.get(digest)
        if name is None and self._oci:
            name = blob_member(digest)
        return name

    def has_blob(self, digest: Digest) -> bool:
        return self.blob_size(digest) is not None

    def blob_size(self, digest: Digest) -> int | None:
        data = self._memory.get(digest)
        if data is not None:
            return len(data)
        name = self._member_of(digest)
        return self._store.size(name) if name is not None else None

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """A stream of the blob's bytes; :class:`NotFound` when the archive lacks it."""
        size = self.blob_size(desc.digest)
        if size is None:
            raise NotFound(f"blob {desc.digest} is not in {self._store.label}")
        if size != desc.size:
            raise IntegrityError(
                f"blob {desc.digest} in {self._store.label} is {size} bytes, "
                f"its descriptor declares {desc.size}"
            )
        data = self._memory.get(desc.digest)
        if data is not None:
            return io.BytesIO(data)
        name = self._member_of(desc.digest)
        assert name is not None
        return self._store.open(name)

    def blob_path(self, desc: Descriptor) -> Path | None:
        """The blob's own file in a layout directory; None inside a tar."""
        name = self._member_of(desc.digest)
        if name is None or desc.digest in self._memory:
            return None
        path = self._store.path(name)
        if path is None or path.stat().st_size != desc.size:
            return None
        return path

    def blob_extent(self, desc: Descriptor) -> tuple[Path, int] | None:
        """Where the blob lies in one piece of one local file: ``(file, offset)``.

        The blob's own file in a layout directory (offset 0), the tar itself for
        a member of a tar, the part for a member of a split archive that one
        part holds whole; None otherwise (a blob straddling two parts, a
        synthesised manifest) or when the size differs from ``desc.size``. For
        ``sendfile`` straight out of an archive (``serve``). The content is
        not checked here.
        """
        if desc.digest in self._memory:
            return None
        name = self._member_of(desc.digest)
        extent = self._store.extent(name) if name is not None else None
        if extent is None or extent[2] != desc.size:
            return None
        return extent[0], extent[1]

    def close(self) -> None:
        self._store.close()

    def __repr__(self) -> str:
        return f"<ArchiveSource {self.format} {self.path} images={len(self.records)}>"


if TYPE_CHECKING:  # mypy proves that an ArchiveSource is an ImageSource
    _source: type[ImageSource] = ArchiveSource


# -- opening -------------------------------------------------------------------


def missing_archive(path: Path | str) -> UsageError:
    """The error for an archive path that does not exist (nor its split parts): a usage
    error (exit 2), as for any path argument that names nothing."""
    name = Path(path).name
    return UsageError(
        f"{path}: no such file or directory",
        hint=f"check the path; a split archive is opened by its base name "
        f"({name} for {part_path(Path(name), 0).name}, {part_path(Path(name), 1).name}, ...)",
    )


def open_archive(path: Path, *, allow_delta: bool = False) -> ArchiveSource:
    """Open an archive, a layout directory or a split archive for reading (see module doc).

    A delta archive (:mod:`sneaker.archive.delta`) is opened only with ``allow_delta``;
    otherwise it is refused with an error saying what to do with it.
    """
    path = Path(path)
    store: _Store
    if path.is_dir():
        store = _DirStore(path)
    else:
        base = path.with_suffix("")
        if path.suffix == ".000" and not base.exists() and split_parts(base):
            path = base
        parts = None if path.exists() else split_parts(path)
        if path.is_file():
            with reporting("read", path):
                fh = path.open("rb")
            try:
                _refuse_compressed(fh.read(8), path)
                fh.seek(0)
                whole = path.resolve()
                store = _TarStore(
                    fh,
                    _fd_pread(fh.fileno()),
                    f"archive {path}",
                    lambda offset, size: (whole, offset),
                )
            except BaseException:
                fh.close()
                raise
        elif parts:
            reader = SplitReader(parts)
            try:
                head = bytearray(8)
                reader.preadinto(memoryview(head), 0)
                _refuse_compressed(bytes(head), path)
                store = _TarStore(
                    cast(BinaryIO, reader), reader.preadinto, f"split archive {path}", reader.locate
                )
            except BaseException:
                reader.close()
                raise
        elif path.exists():
            raise ArchiveError(f"{path} is neither a file nor a directory")
        else:
            raise missing_archive(path)
    try:
        source = _load(path, store)
    except BaseException:
        store.close()
        raise
    if source.delta is not None and not allow_delta:
        source.close()
        raise delta_refusal(path, source.delta)
    return source


def _refuse_compressed(head: bytes, path: Path) -> None:
    kind = sniff_compression(head)
    if kind is not None:
        raise UnsupportedError(
            f"{path} is {kind}-compressed; sneaker reads uncompressed tar archives",
            hint=f"decompress it first (its layers inside are compressed already), e.g. "
            f"{'gunzip' if kind == 'gzip' else kind + ' -d'}",
        )


def _load(path: Path, store: _Store) -> ArchiveSource:
    has_index = store.size("index.json") is not None
    has_manifest = store.size("manifest.json") is not None
    if has_index:
        if isinstance(store, _DirStore):
            fmt = "oci-layout"
        else:
            fmt = "docker-archive" if has_manifest else "oci-archive"
        source = ArchiveSource(path, store, fmt)
        _load_oci(source, store, has_manifest)
        return source
    if has_manifest:
        source = ArchiveSource(path, store, "docker-legacy")
        _load_docker(source, store)
        return source
    raise ArchiveError(
        f"{store.label} is not an image archive: it has neither index.json nor manifest.json",
        hint="sneaker reads docker save archives, OCI archives and OCI layout directories",
    )


def _read_json(store: _Store, name: str, limit: int = MAX_MANIFEST_BYTES) -> Any:
    raw = store.read(name, limit)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArchiveError(f"{store.label}: {name} is not valid JSON ({exc})") from None


def _is_image(desc: Descriptor) -> bool:
    """A manifest or index by its descriptor (an empty media type: let the document say)."""
    kind = desc.media_type
    return not kind or mt.is_index(kind) or mt.is_manifest(kind)


def walk_children(
    root: Manifest | Index, load: Callable[[Descriptor], Manifest | Index | None]
) -> dict[Digest, Manifest | Index]:
    """Every manifest and index reachable below ``root``, loaded with ``load`` (None: absent).

    Raises :class:`ArchiveError` when indexes refer to each other in a loop or
    nest deeper than :data:`MAX_NESTING`.
    """
    found: dict[Digest, Manifest | Index] = {}

    def visit(node: Manifest | Index, path: tuple[Digest, ...]) -> None:
        if not isinstance(node, Index):
            return
        if len(path) > MAX_NESTING:
            raise ArchiveError(f"indexes nest more than {MAX_NESTING} deep below {path[0]}")
        for desc in node.manifests:
            if desc.media_type and not (
                mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type)
            ):
                continue
            if desc.digest in path:
                raise ArchiveError(
                    f"index {node.digest} refers back to {desc.digest}: the manifests loop"
                )
            if desc.digest in found:
                continue
            child = load(desc)
            if child is None:
                continue
            found[desc.digest] = child
            visit(child, (*path, desc.digest))

    visit(root, (root.digest,))
    return found


def _manifest_loader(
    store: _Store,
) -> Callable[[Descriptor, bool], Manifest | Index | None]:
    cache: dict[Digest, Manifest | Index] = {}

    def load(desc: Descriptor, required: bool) -> Manifest | Index | None:
        hit = cache.get(desc.digest)
        if hit is not None:
            return hit
        name = blob_member(desc.digest)
        size = store.size(name)
        if size is None:
            if required:
                raise ArchiveError(
                    f"{store.label}: index.json points at {desc.digest}, which is missing"
                )
            return None
        if size > MAX_MANIFEST_BYTES:
            raise ArchiveError(
                f"{store.label}: manifest {desc.digest} is {size} bytes, "
                "larger than the 4 MiB limit"
            )
        raw = store.read(name, MAX_MANIFEST_BYTES)
        try:
            node = parse_manifest(
                raw, desc.media_type or None, expected=desc.digest, where=f"manifest {desc.digest}"
            )
        except ManifestInvalid as exc:
            raise ArchiveError(f"{store.label}: {exc.message}") from None
        cache[desc.digest] = node
        return node

    return load


def _names_from(annotations: Mapping[str, str]) -> tuple[Reference | None, str | None]:
    image = annotations.get(ANNOTATION_IMAGE_NAME) or None
    ref_name = annotations.get(ANNOTATION_REF_NAME) or None
    for text in (image, ref_name):
        if text is None or (text is ref_name and not any(c in text for c in "/:@")):
            continue
        try:
            return parse_reference(text, default_tag=None), text
        except InvalidReference:
            continue
    return None, image or ref_name


def _check_blobs(store: _Store, manifest: Manifest, omitted: Container[Digest] = ()) -> None:
    for desc in manifest.blobs:
        size = store.size(blob_member(desc.digest))
        if size is None:
            if desc.urls or desc.digest in omitted:
                continue
            raise ArchiveError(
                f"{store.label}: manifest {manifest.digest} needs blob {desc.digest}, "
                "which is missing"
            )
        if size != desc.size:
            raise IntegrityError(
                f"{store.label}: blob {desc.digest} is {size} bytes, "
                f"manifest {manifest.digest.short} declares {desc.size}"
            )


def _delta_marker(store: _Store) -> DeltaMarker | None:
    """The marker of a delta archive (layers it leaves out may be missing), else None."""
    if store.size(DELTA_MARKER) is None:
        return None
    raw = store.read(DELTA_MARKER, MAX_MARKER_BYTES)
    return DeltaMarker.from_bytes(raw, where=f"{store.label}: {DELTA_MARKER}")


def _load_oci(source: ArchiveSource, store: _Store, has_manifest: bool) -> None:
    label = store.label
    if store.size("oci-layout") is not None:
        layout = _read_json(store, "oci-layout", 65536)
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if not isinstance(version, str):
            raise ArchiveError(f"{label}: oci-layout has no imageLayoutVersion")
        if not version.startswith("1."):
            raise UnsupportedError(f"{label}: OCI image layout version {version} is not supported")
    index = _read_json(store, "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ArchiveError(f"{label}: index.json is not an image index with a 'manifests' list")
    source.delta = _delta_marker(store)
    omitted = source.delta.omitted if source.delta is not None else {}
    try:
        entries = [
            Descriptor.from_json(e, where=f"index.json manifests[{i}]")
            for i, e in enumerate(index["manifests"])
        ]
    except ManifestInvalid as exc:
        raise ArchiveError(f"{label}: {exc.message}") from None
    tags = _docker_tags(store) if has_manifest else {}
    load = _manifest_loader(store)
    for desc in entries:
        if desc.media_type and not (
            mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type)
        ):
            continue  # an artifact, not an image
        root = load(desc, True)
        assert root is not None
        children = walk_children(root, lambda d: load(d, False))
        for node in (root, *children.values()):
            if isinstance(node, Manifest):
                _check_blobs(store, node, omitted)
        reference, name = _names_from(desc.annotations)
        if reference is None and name is None and isinstance(root, Manifest):
            repo_tags = tags.get(root.config.digest, [])
            for tag in repo_tags:
                source.records.append(ImageRecord(_parse_tag(tag, label), root, children))
                source.names.append(tag)
            if repo_tags:
                continue
        rewritten = bool(reference and reference.digest and reference.digest != root.digest)
        source.records.append(ImageRecord(reference, root, children, rewritten))
        source.names.append(name)


def _parse_tag(tag: str, label: str) -> Reference:
    try:
        return parse_reference(tag)
    except InvalidReference as exc:
        raise ArchiveError(f"{label}: manifest.json: {exc.message}") from None


def _docker_entries(store: _Store) -> list[dict[str, Any]]:
    doc = _read_json(store, "manifest.json")
    if not isinstance(doc, list):
        raise ArchiveError(f"{store.label}: manifest.json is not a list of images")
    for i, entry in enumerate(doc):
        where = f"{store.label}: manifest.json entry {i}"
        if not isinstance(entry, dict):
            raise ArchiveError(f"{where} is not an object")
        if not isinstance(entry.get("Config"), str):
            raise ArchiveError(f"{where} has no Config path")
        layers = entry.get("Layers")
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise ArchiveError(f"{where}: Layers must be a list of paths")
        repo_tags = entry.get("RepoTags") or []
        if not isinstance(repo_tags, list) or not all(isinstance(x, str) for x in repo_tags):
            raise ArchiveError(f"{where}: RepoTags must be a list of names")
        for text in [entry["Config"], *layers]:
            name = clean_name(text, where=f"{where}")
            if not name or store.size(name) is None:
                raise ArchiveError(f"{where} points at {text!r}, which is not in the archive")
    return doc


def _docker_tags(store: _Store) -> dict[Digest, list[str]]:
    """RepoTags of a docker-archive's ``manifest.json``, by config digest."""
    tags: dict[Digest, list[str]] = {}
    for entry in _docker_entries(store):
        config = clean_name(entry["Config"], where=store.label)
        match = _BLOB_PATH.match(config)
        try:
            digest = Digest.parse(f"{match[1]}:{match[2]}") if match else store.digest(config)
        except InvalidDigest:
            digest = store.digest(config)
        tags.setdefault(digest, []).extend(entry.get("RepoTags") or [])
    return tags


def _load_docker(source: ArchiveSource, store: _Store) -> None:
    label = store.label
    hashed: dict[str, Digest] = {}
    for i, entry in enumerate(_docker_entries(store)):
        where = f"{label}: manifest.json entry {i}"
        config_name = clean_name(entry["Config"], where=where)
        config_raw = store.read(config_name, MAX_CONFIG_BYTES)
        try:
            config = json.loads(config_raw)
            diff_ids = [Digest.parse(str(d)) for d in config["rootfs"]["diff_ids"]]
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ArchiveError(f"{where}: config {config_name} is not valid JSON ({exc})") from None
        except (KeyError, TypeError):
            raise ArchiveError(f"{where}: config {config_name} has no rootfs.diff_ids") from None
        except InvalidDigest as exc:
            raise ArchiveError(f"{where}: config {config_name}: {exc.message}") from None
        layer_names = [clean_name(p, where=where) for p in entry["Layers"]]
        if len(layer_names) != len(diff_ids):
            raise ArchiveError(
                f"{where} lists {len(layer_names)} layers, its config has {len(diff_ids)} diff_ids"
            )
        layers: list[dict[str, Any]] = []
        oci = False
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            size = store.size(name)
            assert size is not None
            kind = sniff_compression(store.head(name, SNIFF_BYTES))
            if kind is None:
                digest, media_type = diff_id, mt.DOCKER_LAYER_TAR
            elif kind in ("gzip", "zstd"):
                digest = hashed.get(name) or store.digest(name)
                hashed[name] = digest
                media_type = mt.DOCKER_LAYER if kind == "gzip" else mt.OCI_LAYER_ZSTD
                oci = oci or kind == "zstd"
            else:
                raise UnsupportedError(f"{where}: layer {name} is {kind}-compressed")
            source._members[digest] = name
            layers.append({"mediaType": media_type, "size": size, "digest": str(digest)})
        config_digest = Digest.of_bytes(config_raw)
        source._members[config_digest] = config_name
        if oci:
            for layer in layers:
                layer["mediaType"] = {
                    mt.DOCKER_LAYER_TAR: mt.OCI_LAYER,
                    mt.DOCKER_LAYER: mt.OCI_LAYER_GZIP,
                }.get(layer["mediaType"], layer["mediaType"])
        manifest_doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG,
                "size": len(config_raw),
                "digest": str(config_digest),
            },
            "layers": layers,
        }
        raw = json.dumps(manifest_doc, separators=(",", ":")).encode()
        manifest = parse_manifest(raw, where=f"{where} (synthesised manifest)")
        assert isinstance(manifest, Manifest)
        source._memory[manifest.digest] = raw
        repo_tags = entry.get("RepoTags") or []
        for tag in repo_tags:
            source.records.append(ImageRecord(_parse_tag(tag, label), manifest))
            source.names.append(tag)
        if not repo_tags:
            source.records.append(ImageRecord(None, manifest))
            source.names.append(None)
