"""``--split SIZE``: an archive cut into numbered parts, and a reader that joins them again.

A split archive ``OUT`` is the files ``OUT.000``, ``OUT.001``, ... (none larger
than SIZE) and ``OUT.sha256``; ``cat OUT.0* > OUT`` gives back the archive
byte for byte. ``OUT.sha256`` is in ``sha256sum`` format, one line per part and
nothing else, so ``sha256sum -c OUT.sha256`` in the directory of the parts
passes on intact parts and names each damaged or missing one (parts that check
out, joined in order, are the archive). A last line for ``OUT`` itself, which
sneaker wrote before, made that command fail until the parts were joined:
readers still accept such a file and :mod:`sneaker.verbs.verify` checks the line.

Sizes (:func:`parse_size`): a bare number is bytes; ``K``, ``M``, ``G``, ``T``
and ``KiB``, ``MiB``, ``GiB``, ``TiB`` are powers of 1024 (``4G`` is 4 GiB,
as ``split -b 4G`` reads it); ``KB``, ``MB``, ``GB``, ``TB`` are powers of 1000
(a DVD's "4.7 GB"). Case does not matter; a trailing ``B`` alone means bytes.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from ..errors import ArchiveError, IntegrityError, UsageError, summarize
from ..util.oserrors import file_error, is_file_error
from ..util.streams import PositionalReader
from ..util.tempfiles import name_max, temp_name

__all__ = [
    "SplitReader",
    "SplitWriter",
    "check_name_length",
    "describe_file_kind",
    "open_split",
    "parse_size",
    "part_path",
    "preadinto",
    "remove_split_set",
    "split_parts",
]

#: parts are numbered with three digits; more than this many parts is refused.
MAX_PARTS = 1000
_COPY_CHUNK = 1 << 20
_HAVE_PREADV = hasattr(os, "preadv")

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}
#: named media: the largest part each holds (FAT32's file limit is 4 GiB less one byte,
#: so a plain ``4G`` part would not fit on such a stick)
MEDIA_SIZES = {
    "fat32": 4 * 1024**3 - 1,
    "cd": 700 * 1024**2,
    "dvd": 4_700_000_000,
    "bd": 25_000_000_000,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """``"4G"`` -> 4294967296, ``"700M"``, ``"1.5GiB"``, ``"4.7GB"``, ``"123"`` (bytes).

    K/M/G/T (with or without ``iB``) are powers of 1024, KB/MB/GB/TB powers of
    1000; ``fat32``, ``cd``, ``dvd`` and ``bd`` name the largest file those media
    hold. Raises :class:`UsageError` for anything else or a size below one byte.
    """
    named = MEDIA_SIZES.get(text.strip().lower())
    if named is not None:
        return named
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UsageError(
            f"invalid size {text!r}",
            hint="write a number of bytes or a number with K, M, G or T (powers of 1024), "
            "or KB, MB, GB, TB (powers of 1000), e.g. 700M; or a medium: "
            "fat32, cd, dvd, bd",
        )
    value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise UsageError(f"invalid size {text!r}: must be at least one byte")
    return value


def part_path(base: Path, number: int) -> Path:
    """``OUT.000`` for part 0 of ``OUT``."""
    return base.with_name(f"{base.name}.{number:03d}")


def preadinto(fd: int, buf: memoryview, offset: int) -> int:
    """Read into ``buf`` from ``offset`` of ``fd`` without moving its position (one call)."""
    if _HAVE_PREADV:
        return os.preadv(fd, [buf], offset)
    data = os.pread(fd, len(buf), offset)
    buf[: len(data)] = data
    return len(data)


def _checksum_path(base: Path) -> Path:
    return base.with_name(f"{base.name}.sha256")


def describe_file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, for a message: ``a directory``, ``a fifo``..."""
    for test, kind in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe (fifo)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def check_name_length(given: Path, name: str, parent: Path) -> None:
    """Refuse ``name`` (written for output ``given``) when the file system of ``parent``
    cannot hold it: before any work, not after the download."""
    length = len(os.fsencode(name))
    most = name_max(parent)
    if length > most:
        what = "its name" if name == given.name else f"the name {name!r}"
        raise UsageError(
            f"cannot write {given}: {what} is {length} bytes long, and file names in "
            f"{parent} hold at most {most}",
            hint="choose a shorter name",
        )


def _check_part_names(base: Path) -> None:
    """Refuse when a name the split set will take (``OUT.000``..., ``OUT.sha256``) is held by
    something a rename would destroy (a device, fifo, socket or directory), or is longer
    than the file system holds."""
    check_name_length(base, _checksum_path(base).name, base.parent)
    prefix = f"{base.name}."
    names = [*base.parent.glob(f"{glob.escape(prefix)}[0-9][0-9][0-9]"), _checksum_path(base)]
    for path in names:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise UsageError(f"cannot write {path}: it is {describe_file_kind(mode)}")


class SplitWriter:
    """A write-only file object that cuts what it is given into ``OUT.000``, ``OUT.001``, ...

    Parts are written under temporary names; :meth:`close` renames them into
    place, writes ``OUT.sha256`` and removes parts left over from an earlier,
    longer archive of the same name. :meth:`abort` (or leaving a ``with`` block
    by an exception) removes every temporary file and leaves no part behind.
    A part name or ``OUT.sha256`` held by a device, fifo, socket or directory is
    refused (UsageError) before anything is written. A file error names the part (or
    ``OUT.sha256``) being written; a full disk says ``size``, what the whole archive
    needs, when given.
    """

    def __init__(self, base: Path, part_size: int, *, size: int | None = None) -> None:
        if part_size < 1:
            raise UsageError("the split size must be at least one byte")
        _check_part_names(base)
        self.base = base
        self.part_size = part_size
        self.parts: list[Path] = []
        self.checksum_path = _checksum_path(base)
        self._temps: list[Path] = []
        self._digests: list[str] = []
        self._part_hash = hashlib.sha256()
        self._fd: int | None = None
        self._in_part = 0
        self._written = 0
        self._closed = False
        self._buf = bytearray(_COPY_CHUNK)
        self._size = size
        self._writing = part_path(base, 0)

    @contextmanager
    def _reporting(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if not is_file_error(exc):
                raise
            raise file_error(exc, "write", self._writing, needed=self._size) from exc

    # -- writing ---------------------------------------------------------

    def _open_part(self) -> int:
        if len(self._temps) >= MAX_PARTS:
            raise UsageError(
                f"--split {self.part_size} would make more than {MAX_PARTS} parts",
                hint="choose a larger split size",
            )
        self._writing = part_path(self.base, len(self._temps))
        temp = temp_name(self._writing)
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644
        )
        self._temps.append(temp)
        self._fd = fd
        self._in_part = 0
        self._part_hash = hashlib.sha256()
        return fd

    def _finish_part(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._digests.append(self._part_hash.hexdigest())

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed SplitWriter")
        with self._reporting():
            return self._write(memoryview(data).cast("B"))

    def _write(self, view: memoryview) -> int:
        total = len(view)
        while view:
            fd = self._fd
            if fd is None or self._in_part >= self.part_size:
                self._finish_part()
                fd = self._open_part()
            room = self.part_size - self._in_part
            chunk = view[:room]
            self._part_hash.update(chunk)
            while chunk:
                n = os.write(fd, chunk)
                chunk = chunk[n:]
                self._in_part += n
                view = view[n:]
        self._written += total
        return total

    def copy_from_fd(self, fd: int, offset: int, count: int) -> None:
        """Copy ``count`` bytes of file ``fd`` from ``offset`` (the parts need hashing)."""
        buf = self._buf
        mv = memoryview(buf)
        while count > 0:
            n = preadinto(fd, mv[: min(count, len(buf))], offset)
            if n == 0:
                raise IntegrityError(f"file ended {count} bytes early while copying it")
            self.write(mv[:n])
            offset += n
            count -= n

    def tell(self) -> int:
        return self._written

    # -- finishing -------------------------------------------------------

    def close(self) -> None:
        """Rename the parts into place and write ``OUT.sha256``."""
        if self._closed:
            return
        with self._reporting():
            self._close()

    def _close(self) -> None:
        self._finish_part()
        if not self._temps:
            self._open_part()
            self._finish_part()
        checksum = _checksum_path(self.base)
        try:
            checksum.unlink(missing_ok=True)
            lines = []
            for number, (temp, digest) in enumerate(zip(self._temps, self._digests, strict=True)):
                final = self._writing = part_path(self.base, number)
                os.replace(temp, final)
                self.parts.append(final)
                lines.append(f"{digest}  {final.name}\n")
            self._temps = []
            self._writing = checksum
            temp = temp_name(checksum)
            try:
                temp.write_text("".join(lines), encoding="utf-8")
                os.replace(temp, checksum)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            self._remove_stale_parts()
        finally:
            self._closed = True
            self.abort()

    def _remove_stale_parts(self) -> None:
        """Parts numbered past the new last one, from an earlier and longer archive."""
        _remove_parts(self.base, len(self.parts))

    def abort(self) -> None:
        """Remove every temporary part; nothing is left under a final name by this writer."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for temp in self._temps:
            temp.unlink(missing_ok=True)
        self._temps = []
        self._closed = True

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _remove_parts(base: Path, first: int) -> None:
    prefix = f"{base.name}."
    for path in base.parent.glob(f"{glob.escape(prefix)}[0-9][0-9][0-9]"):
        if int(path.name[len(prefix) :]) >= first:
            path.unlink(missing_ok=True)


def _first_part_exists(base: Path) -> bool:
    """Is ``OUT.000`` there? Never, when that name is longer than a file name may be."""
    try:
        return part_path(base, 0).is_file()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise


def remove_split_set(base: Path) -> None:
    """Remove the parts and checksum file of a split archive ``base``, if there is one."""
    if _first_part_exists(base):
        _remove_parts(base, 0)
        _checksum_path(base).unlink(missing_ok=True)


# -- reading ------------------------------------------------------------------


def split_parts(base: Path) -> list[Path] | None:
    """The parts of split archive ``base``, in order, or None when ``base.000`` is absent.

    When ``OUT.sha256`` exists, the parts it lists are the parts (so a missing
    last part is noticed); otherwise ``OUT.000``, ``OUT.001``, ... until a gap.
    """
    if not _first_part_exists(base):
        return None
    checksum = _checksum_path(base)
    if checksum.is_file():
        names: list[str] = []
        with checksum.open("r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                _, _, name = line.rstrip("\n").partition("  ")
                name = name.lstrip("*")
                if name.startswith(f"{base.name}.") and name[len(base.name) + 1 :].isdigit():
                    names.append(name)
        if names:
            expected = [part_path(base, i).name for i in range(len(names))]
            if names != expected:
                raise ArchiveError(f"{checksum}: lists parts {names}, expected {expected}")
            parts = [base.with_name(n) for n in names]
            missing = [p.name for p in parts if not p.is_file()]
            if missing:
                raise ArchiveError(
                    f"split archive {base}: missing part(s) {summarize(missing)}",
                    hint=f"copy every part listed in {checksum.name} next to the others",
                )
            return parts
    parts = []
    while part_path(base, len(parts)).is_file():
        parts.append(part_path(base, len(parts)))
    return parts


class SplitReader(PositionalReader):
    """A read-only, seekable file over the parts of a split archive, as if joined.

    :meth:`preadinto` reads at an offset without moving the position and is
    safe to call from several threads at once.
    """

    def __init__(self, parts: list[Path]) -> None:
        super().__init__()
        self._paths = parts
        self._starts: list[int] = []
        self._sizes: list[int] = []
        total = 0
        for p in parts:
            size = p.stat().st_size
            self._starts.append(total)
            self._sizes.append(size)
            total += size
        self.size = total
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()

    def _fd(self, number: int) -> int:
        fd = self._fds.get(number)
        if fd is None:
            with self._lock:
                if self.closed:
                    raise ValueError("I/O on a closed SplitReader")
                fd = self._fds.get(number)
                if fd is None:
                    fd = os.open(self._paths[number], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    self._fds[number] = fd
        return fd

    def locate(self, offset: int, size: int) -> tuple[Path, int] | None:
        """The part and the offset in it holding ``size`` bytes from ``offset``, when one
        part holds them all (None when they straddle two parts)."""
        if size <= 0 or offset + size > self.size:
            return None
        number = self._part_at(offset)
        inner = offset - self._starts[number]
        if inner + size > self._sizes[number]:
            return None
        return self._paths[number], inner

    def _part_at(self, offset: int) -> int:
        lo, hi = 0, len(self._starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def preadinto(self, buf: memoryview, offset: int) -> int:
        """Fill ``buf`` from ``offset`` as far as the data goes; return the count."""
        done = 0
        want = len(buf)
        while done < want and offset < self.size:
            number = self._part_at(offset)
            inner = offset - self._starts[number]
            room = self._sizes[number] - inner
            if room <= 0:
                # an empty part: step over it
                offset = self._starts[number] + self._sizes[number]
                if number + 1 >= len(self._starts):
                    break
                continue
            n = preadinto(self._fd(number), buf[done : done + min(want - done, room)], inner)
            if n == 0:
                raise ArchiveError(f"{self._paths[number]} is shorter than when it was opened")
            done += n
            offset += n
        return done

    read_at = preadinto

    def close(self) -> None:
        with self._lock:
            fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
        super().close()


def open_split(base: Path) -> SplitReader:
    """Open split archive ``base`` (its parts ``base.000``, ...) as one seekable file."""
    parts = split_parts(base)
    if not parts:
        raise ArchiveError(f"{base}: no such archive, and no split parts {base.name}.000, ...")
    return SplitReader(parts)
