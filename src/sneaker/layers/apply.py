"""Layer tars: decompressing them (bounded) and applying them to a directory, safely.

Three pieces, each streaming (nothing holds a whole layer in memory):

- :func:`open_layer_stream` turns a layer blob into a readable tar stream. The
  compression is sniffed from the magic bytes (gzip, zstd, xz, bzip2 or none);
  the media type only decides what an error says. The uncompressed total is
  capped (:class:`LayerLimits`) so a decompression bomb stops with
  :class:`~sneaker.errors.IntegrityError` instead of filling the disk.
- :func:`diff_id_of` hashes the uncompressed tar: the layer's ``diff_id``.
- :class:`LayerApplier` (and :func:`apply_layer` for one layer) extracts layers
  in order into a root directory with the OCI whiteout rules, as docker does.

Nothing is ever written outside the destination. Member names are taken
relative to it (a leading ``/`` is dropped, as docker does); a name, or a
hardlink's target, whose ``..`` climbs out of it is refused with
:class:`~sneaker.errors.UnsafePath`. Symlinks met on the way to a member are
resolved as if the destination were the root of a chroot, as docker does: an
absolute target starts again from the destination (with ``var/run -> /run``,
``var/run/x.pid`` lands in ``DEST/run/x.pid``) and ``..`` above the destination
stays there, so no symlink leads out. Symlinks themselves are created as they
are (absolute targets included). Every write replaces the final path component
without following it.

Whiteouts: ``.wh.NAME`` removes NAME as lower layers left it, and
``.wh..wh..opq`` empties its directory of lower-layer content; what the same
layer adds, before or after the marker, stays. Device nodes are never created
(a warning names each one); fifos are. Owners are applied only when running
as root; extended attributes are ignored. Directory modes and times are
applied once their content is in place (:meth:`LayerApplier.finish`), so a
read-only directory can still be filled by a later layer, without root too.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from ..errors import ArchiveError, IntegrityError, UnsafePath, UnsupportedError
from ..image.digest import Digest
from ..util.streams import HashingReader, Prefixed, Readable
from .compression import SNIFF_BYTES, sniff_compression
from .zstd import load_zstd

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_TAR_HEADER_BYTES",
    "BoundedTarInfo",
    "LayerApplier",
    "LayerLimits",
    "LayerStats",
    "Readable",
    "apply_layer",
    "diff_id_of",
    "open_layer_stream",
    "remove_tree",
]

_CHUNK = 1024 * 1024
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_MAX_SYMLINK_HOPS = 40

_GiB = 1024 * 1024 * 1024

#: the most a PAX extended header or a GNU long name/link record may hold (Go's tar reader
#: has the same limit): tarfile reads such a record whole into memory.
MAX_TAR_HEADER_BYTES = 1024 * 1024
#: a member size beyond any real file (1 PiB): base-256 sizes can reach 2**95
_MAX_MEMBER_BYTES = 1 << 50
_EXTENDED_HEADERS = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)


class BoundedTarInfo(tarfile.TarInfo):
    """A :class:`tarfile.TarInfo` refusing extended headers over :data:`MAX_TAR_HEADER_BYTES`.

    Pass it as ``tarfile.open(..., tarinfo=BoundedTarInfo)``: a hostile tar whose PAX
    header or GNU long name claims gigabytes then raises :class:`tarfile.ReadError`
    instead of making tarfile allocate them, and so does a member whose size is
    negative or absurd (tarfile would overflow seeking past it).
    """

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_HEADERS and self.size > MAX_TAR_HEADER_BYTES:
            raise tarfile.ReadError(
                f"extended header of {self.size} bytes, over the "
                f"{MAX_TAR_HEADER_BYTES >> 20} MiB limit"
            )
        # tarfile's own dispatch, unchanged (typeshed does not list it); after a PAX
        # header, ``member`` is the next header with the PAX values (size too) applied
        member: tarfile.TarInfo = super()._proc_member(tarfile_)  # type: ignore[misc]
        if not 0 <= member.size <= _MAX_MEMBER_BYTES:
            raise tarfile.ReadError(
                f"member {member.name!r} claims an impossible size {member.size}"
            )
        return member


@dataclass(frozen=True)
class LayerLimits:
    """How far a layer may expand when decompressed.

    The cap is ``ratio`` times the compressed size (when it is known), never
    below ``floor`` (small layers of zero-filled files are legitimate) and never
    above ``absolute``. A stream of unknown size gets ``absolute`` alone.
    """

    ratio: int = 64
    floor: int = 1 * _GiB
    absolute: int = 64 * _GiB

    def cap_for(self, compressed_size: int | None) -> int:
        if compressed_size is None:
            return self.absolute
        return min(self.absolute, max(self.floor, self.ratio * compressed_size))


DEFAULT_LIMITS = LayerLimits()


@dataclass
class LayerStats:
    """What applying one layer did."""

    files: int = 0
    directories: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    fifos: int = 0
    whiteouts: int = 0
    skipped: int = 0
    bytes_written: int = 0

    def add(self, other: LayerStats) -> None:
        self.files += other.files
        self.directories += other.directories
        self.symlinks += other.symlinks
        self.hardlinks += other.hardlinks
        self.fifos += other.fifos
        self.whiteouts += other.whiteouts
        self.skipped += other.skipped
        self.bytes_written += other.bytes_written


# --------------------------------------------------------------------------- decompression


class _Bounded(io.RawIOBase):
    """Reads a decompressor, counting; past ``cap`` bytes it raises IntegrityError.

    Decoder failures (a corrupt or truncated stream) become IntegrityError too.
    Not a ``util.streams`` wrapper: it bounds what a decompressor produces (asking
    for at most one byte past the cap, so a bomb is caught before it lands) and
    translates each codec's errors, which only layer streams need.
    """

    def __init__(
        self,
        inner: Readable,
        cap: int,
        *,
        what: str,
        codec: str,
        decode_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._inner = inner
        self._cap = cap
        self._what = what
        self._codec = codec
        self._decode_errors: tuple[type[BaseException], ...] = (
            EOFError,
            zlib.error,
            lzma.LZMAError,
            *decode_errors,
        )
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        # Never ask for more than one byte past the cap: a bomb is caught before it lands.
        want = min(len(view), self._cap - self.count + 1)
        try:
            data = self._inner.read(want)
        except self._decode_errors as exc:
            raise self._damaged(exc) from None
        except OSError as exc:
            if exc.errno is not None:
                raise  # a real I/O error from the file underneath
            raise self._damaged(exc) from None  # gzip and bz2 complain with errno-less OSErrors
        n = len(data)
        self.count += n
        if self.count > self._cap:
            raise IntegrityError(
                f"{self._what}: expands to more than {self._cap} bytes uncompressed",
                hint="refused as a likely decompression bomb; raise the layer size limit "
                "if the layer is genuine",
            )
        view[:n] = data
        return n

    def _damaged(self, exc: BaseException) -> IntegrityError:
        return IntegrityError(f"{self._what}: damaged {self._codec} data ({exc})")


def open_layer_stream(
    stream: Readable,
    media_type: str = "",
    *,
    compressed_size: int | None = None,
    limits: LayerLimits = DEFAULT_LIMITS,
    what: str = "layer",
) -> BinaryIO:
    """The uncompressed tar stream of a layer blob, read lazily from ``stream``.

    The codec is sniffed from the first bytes (gzip, zstd, xz, bzip2, else a
    plain tar) rather than taken from ``media_type``, which docker gets wrong
    (its archives label plain tars as gzip); the media type still refuses an
    encrypted layer (``+encrypted``) with UnsupportedError. A zstd layer needs a
    zstd module (:mod:`sneaker.layers.zstd`): UnsupportedError names them when missing.
    Reading past the limit (see :class:`LayerLimits`; ``compressed_size`` is the
    blob's size, usually the descriptor's) raises IntegrityError, and so does a
    damaged compressed stream. ``what`` names the layer in errors.
    """
    base_type = media_type.split(";")[0].strip()
    if base_type.endswith("+encrypted"):
        raise UnsupportedError(f"{what} is encrypted ({base_type}), which sneaker cannot read")
    magic = b""
    while len(magic) < SNIFF_BYTES:
        more = stream.read(SNIFF_BYTES - len(magic))
        if not more:
            break
        magic += more
    codec = sniff_compression(magic) or "tar"
    raw: IO[bytes] = io.BufferedReader(Prefixed(magic, stream), _CHUNK)
    inner: Readable
    decode_errors: tuple[type[BaseException], ...] = ()
    if codec == "gzip":
        inner = gzip.GzipFile(fileobj=raw, mode="rb")
    elif codec == "zstd":
        zstd = load_zstd(what)
        inner = zstd.open(raw)
        decode_errors = zstd.errors
    elif codec == "xz":
        inner = lzma.LZMAFile(raw, mode="rb")  # noqa: SIM115 - handed to the caller
    elif codec == "bzip2":
        inner = bz2.BZ2File(raw, mode="rb")
    else:
        inner = raw
    bounded = _Bounded(
        inner,
        limits.cap_for(compressed_size),
        what=what,
        codec=codec,
        decode_errors=decode_errors,
    )
    return io.BufferedReader(bounded, _CHUNK)


def diff_id_of(
    stream: Readable,
    media_type: str = "",
    *,
    compressed_size: int | None = None,
    limits: LayerLimits = DEFAULT_LIMITS,
    what: str = "layer",
) -> tuple[Digest, int]:
    """sha256 of the uncompressed layer (its ``diff_id``) and the uncompressed size."""
    tar = open_layer_stream(
        stream, media_type, compressed_size=compressed_size, limits=limits, what=what
    )
    reader = HashingReader(tar, hashlib.sha256())
    reader.drain(_CHUNK)
    return Digest("sha256", reader.hasher.hexdigest()), reader.count


# --------------------------------------------------------------------------- applying


def _rmtree(path: str, as_root: bool) -> None:
    if not as_root:
        # A read-only directory of an earlier layer cannot be emptied otherwise.
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
    with os.scandir(path) as entries:
        children = list(entries)
    for entry in children:
        if entry.is_dir(follow_symlinks=False):
            _rmtree(entry.path, as_root)
        else:
            os.unlink(entry.path)
    os.rmdir(path)


def remove_tree(path: Path) -> None:
    """Remove a (partly) unpacked tree, read-only directories included; never follows links."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        _rmtree(str(path), _running_as_root())
    else:
        os.unlink(path)


def _no_warning(_message: str) -> None:
    return None


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class _PendingDir:
    mode: int
    mtime: float
    inode: tuple[int, int]


class LayerApplier:
    """Applies layers, lowest first, to one root directory.

    Call :meth:`apply` for each layer in order, then :meth:`finish` once, which
    sets directory modes and times (deferred so that read-only directories can
    still be filled, by later layers too). ``dest`` is created if missing.
    """

    def __init__(self, dest: Path, *, warn: Callable[[str], None] = _no_warning) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(dest))
        if not self.root.is_dir():
            raise ArchiveError(f"{dest} is not a directory")
        self._warn = warn
        self._as_root = _running_as_root()
        self._pending: dict[str, _PendingDir] = {}
        # Relative paths known to be real directories (not symlinks); cleared on any removal.
        self._known_dirs: set[str] = set()
        # Per layer: what the layer itself created, and every ancestor of those.
        self._added: set[str] = set()
        self._added_parents: set[str] = set()
        self._what = "layer"

    # -- public ---------------------------------------------------------------------------

    def apply(self, tar_stream: Readable, *, what: str = "layer") -> LayerStats:
        """Extract one uncompressed layer tar (``what`` names it in errors and warnings)."""
        self._what = what
        self._added = set()
        self._added_parents = set()
        stats = LayerStats()
        try:
            fileobj = cast(IO[bytes], tar_stream)
            tar = tarfile.open(  # noqa: SIM115 - closed below
                fileobj=fileobj, mode="r|", tarinfo=BoundedTarInfo
            )
        except tarfile.TarError as exc:
            raise ArchiveError(f"{what}: not a tar stream ({exc})") from None
        with tar:
            try:
                for member in self._members(tar):
                    self._apply_member(tar, member, stats)
            except tarfile.TarError as exc:  # a member's data cut short, say
                raise ArchiveError(f"{what}: damaged tar ({exc})") from None
        return stats

    def finish(self) -> None:
        """Apply the recorded directory modes and times, deepest first."""
        for rel in sorted(self._pending, key=lambda r: r.count("/"), reverse=True):
            pending = self._pending[rel]
            path = self._abs(rel)
            if not self._is_real(rel):
                continue  # a parent became a symlink since: never follow it
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed since, or a parent became a file
            if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != pending.inode:
                continue  # removed or replaced since
            os.chmod(path, pending.mode)
            os.utime(path, (pending.mtime, pending.mtime), follow_symlinks=False)
        self._pending.clear()

    # -- reading --------------------------------------------------------------------------

    def _members(self, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        while True:
            try:
                member = tar.next()
            except tarfile.TarError as exc:
                raise ArchiveError(f"{self._what}: damaged tar ({exc})") from None
            if member is None:
                return
            yield member
            # Streaming mode keeps every header it read; a big layer needs none of them.
            members = getattr(tar, "members", None)
            if isinstance(members, list):
                members.clear()

    # -- paths ----------------------------------------------------------------------------

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else str(self.root)

    def _unsafe(self, name: str, why: str) -> UnsafePath:
        return UnsafePath(
            f"{self._what}: member {name!r} {why}",
            hint="the layer reaches outside the destination; nothing was done there",
        )

    def _lexical_parts(
        self, text: str, name: str, why: str = "escapes the destination with '..'"
    ) -> list[str]:
        """Components of ``text`` (member ``name``'s path or link), relative to the root.

        A leading ``/`` is dropped, as docker does; a ``..`` climbing out is refused.
        """
        parts: list[str] = []
        for part in text.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise self._unsafe(name, why)
                parts.pop()
                continue
            parts.append(part)
        return parts

    def _resolve(self, name: str, parts: list[str], *, follow_last: bool = False) -> list[str]:
        """The real location of ``parts`` below the root, as components.

        Symlinks met on the way are followed as in a chroot at the root: an
        absolute target starts again from the root, and ``..`` at the root stays
        there, so the result is always below the root. The last component is
        followed only with ``follow_last``. Components that do not exist (yet)
        are kept as named. A chain of more than 40 symlinks raises UnsafePath.
        """
        resolved: list[str] = []
        queue = list(parts)
        hops = 0
        while queue:
            part = queue.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if resolved:  # above the root is the root, as in a chroot
                    resolved.pop()
                continue
            if not queue and not follow_last:
                resolved.append(part)
                break
            rel = "/".join([*resolved, part])
            if rel in self._known_dirs:
                resolved.append(part)
                continue
            try:
                st = os.lstat(self._abs(rel))
            except (FileNotFoundError, NotADirectoryError):
                resolved.append(part)
                continue
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(self._abs(rel))
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise self._unsafe(name, "goes through too many symlinks")
                if target.startswith("/"):
                    resolved = []  # absolute: from the root of the destination
                queue = [*target.split("/"), *queue]
                continue
            if stat.S_ISDIR(st.st_mode):
                self._known_dirs.add(rel)
            resolved.append(part)
        return resolved

    def _is_real(self, rel: str) -> bool:
        """Is ``rel`` reached from the root without going through any symlink?"""
        try:
            return "/".join(self._resolve(rel, rel.split("/"))) == rel
        except UnsafePath:
            return False

    def _make_parents(self, name: str, resolved: list[str]) -> None:
        """Create the missing directories above ``resolved`` (never through a symlink)."""
        for depth in range(1, len(resolved)):
            rel = "/".join(resolved[:depth])
            if rel in self._known_dirs:
                continue
            path = self._abs(rel)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                self._known_dirs.add(rel)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise ArchiveError(f"{self._what}: member {name!r}: {rel!r} is not a directory")
            self._known_dirs.add(rel)

    def _mark_added(self, rel: str) -> None:
        self._added.add(rel)
        parent = posixpath.dirname(rel)
        while parent and parent not in self._added_parents:
            self._added_parents.add(parent)
            parent = posixpath.dirname(parent)

    # -- removal --------------------------------------------------------------------------

    def _remove(self, path: str) -> None:
        """Remove whatever is at ``path`` (a directory with its content), never following."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._known_dirs.clear()
            _rmtree(path, self._as_root)
        else:
            os.unlink(path)

    def _remove_lower(self, rel: str) -> None:
        """Remove ``rel`` as lower layers left it, keeping what this layer added."""
        if rel not in self._added and rel not in self._added_parents:
            self._remove(self._abs(rel))
            return
        path = self._abs(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            return  # added by this layer: kept
        with os.scandir(path) as entries:
            names = [entry.name for entry in entries]
        for child in names:
            self._remove_lower(f"{rel}/{child}")
        if rel not in self._added and rel not in self._added_parents:
            self._remove(path)

    # -- members --------------------------------------------------------------------------

    def _apply_member(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, stats: LayerStats
    ) -> None:
        name = member.name
        parts = self._lexical_parts(name, name)
        if not parts:
            return  # the root itself: its mode is the destination's business
        base = parts[-1]
        if base.startswith(_WHITEOUT):
            self._whiteout(name, parts, stats)
            return
        if member.ischr() or member.isblk():
            self._warn(f"{self._what}: skipped device node {name!r}")
            stats.skipped += 1
            return
        if not (
            member.isreg() or member.isdir() or member.issym() or member.islnk() or member.isfifo()
        ):
            self._warn(f"{self._what}: skipped {name!r} of unknown tar type {member.type!r}")
            stats.skipped += 1
            return

        resolved = self._resolve(name, parts)
        rel = "/".join(resolved)
        path = self._abs(rel)
        self._make_parents(name, resolved)

        if member.isdir():
            self._directory(rel, path, member)
            stats.directories += 1
        elif member.islnk():
            self._hardlink(name, rel, path, member)
            stats.hardlinks += 1
        else:
            self._replace_existing(path)
            if member.isreg():
                stats.bytes_written += self._regular(tar, name, path, member)
                stats.files += 1
            elif member.issym():
                if not member.linkname or "\x00" in member.linkname:
                    raise ArchiveError(
                        f"{self._what}: member {name!r} is a symlink to {member.linkname!r}, "
                        "which no file system can hold"
                    )
                os.symlink(member.linkname, path)
                self._own(path, member)
                stats.symlinks += 1
            else:
                os.mkfifo(path, 0o600)
                self._own(path, member)
                os.chmod(path, member.mode & 0o7777)
                stats.fifos += 1
            self._set_mtime(path, member)
        self._mark_added(rel)

    def _whiteout(self, name: str, parts: list[str], stats: LayerStats) -> None:
        base = parts[-1]
        stats.whiteouts += 1
        parent = self._resolve(name, parts[:-1], follow_last=True) if len(parts) > 1 else []
        parent_rel = "/".join(parent)
        if base == _OPAQUE:
            path = self._abs(parent_rel)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return
            if not stat.S_ISDIR(st.st_mode):
                return
            with os.scandir(path) as entries:
                names = [entry.name for entry in entries]
            for child in names:
                self._remove_lower(f"{parent_rel}/{child}" if parent_rel else child)
            return
        if base.startswith(_WHITEOUT + _WHITEOUT):
            return  # other aufs metadata (.wh..wh.plnk and the like): not content
        victim = base[len(_WHITEOUT) :]
        if victim in ("", ".", ".."):
            raise self._unsafe(name, "is a whiteout of its own directory or parent")
        try:
            st = os.lstat(self._abs(parent_rel))
        except (FileNotFoundError, NotADirectoryError):
            return
        if not stat.S_ISDIR(st.st_mode):
            return
        self._remove_lower(f"{parent_rel}/{victim}" if parent_rel else victim)

    def _replace_existing(self, path: str) -> None:
        try:
            os.lstat(path)
        except FileNotFoundError:
            return
        self._remove(path)

    def _directory(self, rel: str, path: str, member: tarfile.TarInfo) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self._remove(path)
            st = None
        if st is None:
            os.mkdir(path, 0o700)
            st = os.lstat(path)
        elif not self._as_root:
            os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
        self._known_dirs.add(rel)
        self._own(path, member)
        self._pending[rel] = _PendingDir(
            member.mode & 0o7777, float(member.mtime), (st.st_dev, st.st_ino)
        )

    def _regular(self, tar: tarfile.TarFile, name: str, path: str, member: tarfile.TarInfo) -> int:
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - only for non-regular members
            raise ArchiveError(f"{self._what}: member {name!r} has no content")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
        written = 0
        with os.fdopen(fd, "wb", closefd=True) as out:
            while True:
                chunk = source.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                written += len(chunk)
            out.flush()
            if self._as_root:
                os.fchown(out.fileno(), member.uid, member.gid)
            os.fchmod(out.fileno(), member.mode & 0o7777)
        return written

    def _hardlink(self, name: str, rel: str, path: str, member: tarfile.TarInfo) -> None:
        target_parts = self._lexical_parts(
            member.linkname,
            name,
            f"is a hardlink to {member.linkname!r}, outside the destination",
        )
        if not target_parts:
            raise self._unsafe(name, f"is a hardlink to {member.linkname!r}, not a file")
        target = self._resolve(name, target_parts)
        target_rel = "/".join(target)
        target_path = self._abs(target_rel)
        try:
            st = os.lstat(target_path)
        except (FileNotFoundError, NotADirectoryError):
            raise ArchiveError(
                f"{self._what}: member {name!r} is a hardlink to {member.linkname!r}, "
                "which does not exist"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise ArchiveError(
                f"{self._what}: member {name!r} is a hardlink to the directory {member.linkname!r}"
            )
        if target_rel == rel:
            return  # a link to itself: nothing to do
        self._replace_existing(path)
        os.link(target_path, path, follow_symlinks=False)

    def _own(self, path: str, member: tarfile.TarInfo) -> None:
        if self._as_root:
            os.lchown(path, member.uid, member.gid)

    def _set_mtime(self, path: str, member: tarfile.TarInfo) -> None:
        mtime = float(member.mtime)
        try:
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        except OSError as exc:  # pragma: no cover - lutimes is missing on a few systems
            if exc.errno not in (errno.ENOSYS, errno.EOPNOTSUPP):
                raise


def apply_layer(
    tar_stream: Readable, dest: Path, *, warn: Callable[[str], None] = _no_warning
) -> LayerStats:
    """Apply one uncompressed layer tar to ``dest`` and set its directories' modes.

    For a whole image, use one :class:`LayerApplier` for every layer instead.
    """
    applier = LayerApplier(dest, warn=warn)
    stats = applier.apply(tar_stream)
    applier.finish()
    return stats
