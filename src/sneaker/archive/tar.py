"""What both archive writers share: atomic outputs, tar headers, fast and checked blob copies.

Every header is deterministic: mtime 0, uid/gid 0, no user or group names,
mode 0644 for files and 0755 for directories, PAX format (a PAX record appears
only where USTAR cannot hold a value, e.g. a member over 8 GiB). The end of the
archive is two zero blocks, as Go's ``archive/tar`` writes it.

Blob bodies are copied with ``copy_file_range``/``sendfile`` when the source
has a local file (falling back to a 1 MiB loop), checking the size; a stream
without a local file is hashed on the way (on a helper thread, overlapping
the copy, for blobs of 4 MiB and more) and checked against its descriptor.
Outputs are written to a temporary name next to the target and renamed only
once complete, so an interrupted run never leaves a half file under the final
name (the data is not fsync'ed: the rename protects against a crash of sneaker,
not against a power cut).

Before any work, :func:`check_output_path` decides where an output named on the
command line really goes (a symlink is followed to its file; a device, fifo,
socket, directory or ``-`` is refused, since the rename would replace it), and
:func:`refuse_overwriting_inputs` refuses an output that is one of the inputs.

An archive may also go to standard output (``-o -``, :func:`check_archive_output`):
the tar is written in the writers' fixed order and never seeked back, so it
streams into ``docker load`` or ``ssh host docker load``. There is no temporary
name then: a run that fails midway has already written part of the archive, and
the reader sees it end early (the command exits non-zero).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import tarfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from ..errors import IntegrityError, SneakerError, UsageError
from ..image.digest import ContentCheck, Digest
from ..image.model import Descriptor
from ..image.records import BlobSource
from .split import (
    SplitWriter,
    describe_file_kind,
    preadinto,
    remove_split_set,
    split_parts,
    temp_name,
)

__all__ = [
    "BLOCK",
    "STDOUT",
    "FileSink",
    "Sink",
    "TarWriter",
    "atomic_file",
    "blob_member",
    "check_archive_output",
    "check_output_path",
    "copy_blob",
    "dump_json",
    "is_stdout",
    "output_sink",
    "refuse_overwriting_inputs",
    "temp_name",
]

BLOCK = 512
COPY_CHUNK = 1 << 20
#: the output name that means standard output (``-o -``)
STDOUT = "-"
_BIG_COPY = 1 << 30
#: blobs from this size on are hashed on a helper thread while they are copied.
_PIPELINE_MIN = 4 * COPY_CHUNK
_FALLBACK_ERRNOS = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF}
)


def dump_json(value: object) -> bytes:
    """Deterministic JSON: sorted keys, no white space, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def blob_member(digest: Digest) -> str:
    """Where a blob lives in an OCI image layout: ``blobs/sha256/<hex>``."""
    return f"blobs/{digest.algorithm}/{digest.hex}"


class Sink(Protocol):
    """Where a tar stream goes: a plain file or a :class:`~sneaker.archive.split.SplitWriter`."""

    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    def copy_from_fd(self, fd: int, offset: int, count: int) -> None: ...


class FileSink:
    """An unbuffered file descriptor that copies from other files inside the kernel."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._copy_file_range = hasattr(os, "copy_file_range")
        self._sendfile = hasattr(os, "sendfile")
        self._buf: bytearray | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        return total

    def copy_from_fd(self, fd: int, offset: int, count: int) -> None:
        """Append ``count`` bytes of ``fd`` starting at ``offset``; fail if it has fewer."""
        while count > 0:
            n = -1
            if self._copy_file_range:
                try:
                    n = os.copy_file_range(fd, self.fd, min(count, _BIG_COPY), offset)
                except OSError as exc:
                    if exc.errno not in _FALLBACK_ERRNOS:
                        raise
                    self._copy_file_range = False
                    continue
            elif self._sendfile:
                try:
                    n = os.sendfile(self.fd, fd, offset, min(count, _BIG_COPY))
                except OSError as exc:
                    if exc.errno not in _FALLBACK_ERRNOS:
                        raise
                    self._sendfile = False
                    continue
            else:
                if self._buf is None:
                    self._buf = bytearray(COPY_CHUNK)
                mv = memoryview(self._buf)[: min(count, COPY_CHUNK)]
                n = preadinto(fd, mv, offset)
                self.write(mv[:n])
            if n == 0:
                raise IntegrityError(f"file ended {count} bytes early while copying it")
            offset += n
            count -= n


def check_output_path(path: Path | str, *, directory: bool = False) -> Path:
    """Where the output named ``path`` is really written; refuse what cannot take it.

    Every writer calls it before any work (``pull`` too, before downloading).
    Writing goes through a temporary file renamed over the target, which would
    replace whatever is there, so: ``-`` is refused (this output is a file; the
    archive writers take ``-`` through :func:`check_archive_output`); a symlink
    is followed to the file it names, which is written (the link stays, nothing
    is said); an existing device, fifo, socket or directory is refused. The
    directory to write in must exist and be writable. With ``directory`` (an OCI
    layout directory, made with its parents when missing) the target may be a
    directory and anything else existing is refused; the target, or its nearest
    existing ancestor, must be writable.

    Returns the path to write: ``path``, or the target its symlink resolves to.
    Raises :class:`UsageError` ``cannot write OUT: ...``.
    """
    given = Path(path)
    if is_stdout(path):
        raise UsageError(
            "cannot write -: sneaker writes its output to files, not to standard output",
            hint="name a file with -o FILE",
        )
    target = given
    if given.is_symlink():
        target = Path(os.path.realpath(given))
        if target.is_symlink():
            raise UsageError(f"cannot write {given}: it is a symlink loop")
    try:
        mode: int | None = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None  # new (a parent that is no directory is named below)
    except OSError as exc:
        raise UsageError(f"cannot write {given}: {exc.strerror or exc}") from None
    if mode is not None:
        wanted = stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)
        if not wanted:
            raise UsageError(
                f"cannot write {given}: it is {describe_file_kind(mode)}",
                hint=None if directory else "name a regular file (or a new one) with -o",
            )
    parent = target.parent
    if directory:
        parent = target if mode is not None else _nearest_existing(target.absolute().parent)
    if not parent.is_dir():
        if parent.exists():
            raise UsageError(f"cannot write {given}: {parent} is not a directory")
        raise UsageError(f"cannot write {given}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {given}: directory {parent} is not writable")
    return target


def is_stdout(output: Path | str | None) -> bool:
    """Whether ``output`` names standard output (``-``)."""
    return output is not None and str(output) == STDOUT


def check_archive_output(
    path: Path | str, *, directory: bool = False, split: int | None = None
) -> Path:
    """Where an archive writer's output goes: :func:`check_output_path`'s answer, or ``-``
    (standard output) when it can take an archive: not a terminal, not ``--split``
    (parts are files), not an OCI layout directory. Raises :class:`UsageError`."""
    if not is_stdout(path):
        return check_output_path(path, directory=directory)
    if split is not None:
        raise UsageError(
            "--split writes its parts to files, so it cannot write to standard output (-o -)",
            hint="name the archive with -o FILE to split it",
        )
    if directory:
        raise UsageError(
            "an OCI layout directory cannot go to standard output (-o -)",
            hint="stream an archive instead (--format docker, or --format oci with -o -)",
        )
    try:
        terminal = os.isatty(sys.stdout.fileno())
    except (OSError, ValueError):
        raise UsageError("cannot write -: standard output is closed") from None
    if terminal:
        raise UsageError(
            "refusing to write an archive to a terminal (-o -)",
            hint="pipe it into a program (sneaker pull IMAGE -o - | docker load) or redirect "
            "it to a file",
        )
    return Path(STDOUT)


@contextmanager
def stdout_sink() -> Iterator[FileSink]:
    """A :class:`FileSink` on standard output; a reader that stops early is one error line."""
    sys.stdout.flush()  # anything printed before goes first
    fd = sys.stdout.fileno()
    if sys.platform == "win32":  # a text-mode descriptor would turn \n into \r\n
        import msvcrt

        msvcrt.setmode(fd, os.O_BINARY)
    try:
        yield FileSink(fd)
    except BrokenPipeError:
        raise SneakerError(
            "standard output was closed before the archive was complete",
            hint="the program reading it stopped early: see its own error",
        ) from None


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _files_of(path: Path) -> list[Path]:
    """``path``, and the parts and checksum file of a split set of that name."""
    files = [path]
    if not path.exists():
        files.extend(split_parts(path) or [])
        files.append(path.with_name(f"{path.name}.sha256"))
    return files


def refuse_overwriting_inputs(output: Path | str, inputs: Iterable[Path | str]) -> None:
    """Refuse (UsageError) an ``output`` that would replace one of ``inputs`` while reading it.

    An input is an archive (its split parts and ``.sha256`` count), an
    inventory file or a layout directory. The output is refused when it is an
    input (same resolved path, or same file), when the parts ``OUT.000``... or
    ``OUT.sha256`` a split output writes would be one, or when it lies inside an
    input directory. Call it before any work, with the output as given by ``-o``.
    """
    if is_stdout(output):
        return  # standard output replaces no file
    out = Path(os.path.realpath(output))
    out_names = {out.name, f"{out.name}.sha256"}

    def replaced_by_output(candidate: Path) -> bool:
        real = Path(os.path.realpath(candidate))
        if real == out:
            return True
        if real.parent == out.parent:
            name = real.name
            if name in out_names:
                return True
            suffix = name[len(out.name) + 1 :] if name.startswith(f"{out.name}.") else ""
            if len(suffix) == 3 and suffix.isdigit():
                return True
        try:
            return os.path.samefile(candidate, out)
        except OSError:
            return False

    for source in inputs:
        source = Path(source)
        real = Path(os.path.realpath(source))
        if real.is_dir() and real in out.parents:
            raise UsageError(
                f"cannot write {output}: it is inside the input {source}",
                hint="write the output somewhere else",
            )
        for candidate in _files_of(source):
            if (candidate.exists() or candidate.is_symlink()) and replaced_by_output(candidate):
                raise UsageError(
                    f"cannot write {output}: it would replace the input {source}",
                    hint="write the output to another file",
                )


@contextmanager
def atomic_file(out: Path) -> Iterator[FileSink]:
    """A :class:`FileSink` on a temporary file renamed to ``out`` when the block succeeds."""
    temp = temp_name(out)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            yield FileSink(fd)
        finally:
            os.close(fd)
        os.replace(temp, out)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextmanager
def output_sink(out: Path, split: int | None, written: list[Path]) -> Iterator[Sink]:
    """Where a writer's tar goes: ``out`` itself, or its parts ``out.000``... with ``split``.

    Once the block succeeds, ``written`` receives the files made: ``[out]``, or
    the parts in order followed by ``out.sha256``. The new archive replaces
    whatever archive had that name, whole or split: writing ``out`` whole
    removes an earlier ``out.000``... set, writing it split removes an earlier
    whole ``out``, so a reader never finds the old one first. ``out`` is checked first
    (:func:`check_archive_output`): a symlink is written through, a special file refused,
    and ``-`` is standard output, written as the tar goes.
    """
    out = check_archive_output(out, split=split)
    if is_stdout(out):
        with stdout_sink() as sink:
            yield sink
        written.append(out)
        return
    if split is None:
        with atomic_file(out) as sink:
            yield sink
        remove_split_set(out)
        written.append(out)
        return
    writer = SplitWriter(out, split)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.close()
    if out.is_file() and not out.is_symlink():
        out.unlink()
    written.extend(writer.parts)
    written.append(writer.checksum_path)


def copy_blob(blobs: BlobSource, desc: Descriptor, sink: Sink) -> None:
    """Copy exactly the blob ``desc`` names into ``sink``, checking it on the way.

    A blob with a local file (``blob_path``) is trusted for its content and
    checked for its size; a streamed blob is hashed and checked for both.
    Raises :class:`IntegrityError` on a mismatch (after writing at most
    ``desc.size`` bytes: the caller discards the output).
    """
    path = blobs.blob_path(desc)
    if path is not None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            size = os.fstat(fd).st_size
            if size != desc.size:
                raise IntegrityError(
                    f"blob {desc.digest}: {path} holds {size} bytes, "
                    f"its descriptor declares {desc.size}"
                )
            sink.copy_from_fd(fd, 0, size)
        finally:
            os.close(fd)
        return
    check = ContentCheck(desc.digest, desc.size, what=f"blob {desc.digest}")
    with blobs.open_blob(desc) as stream:
        _copy_hashing(stream, check, sink)
    check.check()


def _copy_hashing(stream: BinaryIO, check: ContentCheck, sink: Sink) -> None:
    """Copy ``stream`` to ``sink`` while ``check`` counts and hashes it.

    The loop stays here, not in a stream wrapper: it is the hot path of every
    archive write (``readinto`` into two reused buffers, no copies).

    For a large blob the hashing runs on a helper thread, one chunk behind the
    copy (hashlib and the file calls release the GIL), with two buffers taking
    turns: on two cores the copy then costs about what the slower half costs.
    """
    hasher = check.hasher
    assert hasher is not None  # a blob is always checked against its digest
    pipelined = (check.size or 0) >= _PIPELINE_MIN
    buffers = [bytearray(COPY_CHUNK), bytearray(COPY_CHUNK) if pipelined else bytearray(0)]
    pending: list[Future[None] | None] = [None, None]
    readinto = getattr(stream, "readinto", None)
    turn = 0
    pool = ThreadPoolExecutor(1, thread_name_prefix="sneaker-hash") if pipelined else None
    try:
        while True:
            waiting = pending[turn]
            if waiting is not None:
                waiting.result()  # this buffer is hashed: free to refill
            mv = memoryview(buffers[turn])
            if readinto is not None:
                n = readinto(mv)
                chunk = mv[:n] if n else mv[:0]
            else:
                chunk = memoryview(stream.read(COPY_CHUNK))
                n = len(chunk)
            if not n:
                break
            check.add(n)
            if pool is not None:
                pending[turn] = pool.submit(hasher.update, chunk)
                turn ^= 1
            else:
                hasher.update(chunk)
            sink.write(chunk)
        for waiting in pending:
            if waiting is not None:
                waiting.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _header(name: str, size: int, kind: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.mtime = 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


class TarWriter:
    """Writes a deterministic tar stream to a :class:`Sink`, one member at a time."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def add_dir(self, name: str) -> None:
        self.sink.write(_header(name, 0, tarfile.DIRTYPE))

    def add_bytes(self, name: str, data: bytes) -> None:
        self.sink.write(_header(name, len(data), tarfile.REGTYPE) + data + _padding(len(data)))

    def add_blob(self, name: str, desc: Descriptor, blobs: BlobSource) -> None:
        """A member holding blob ``desc``, copied (and checked) from ``blobs``."""
        self.sink.write(_header(name, desc.size, tarfile.REGTYPE))
        copy_blob(blobs, desc, self.sink)
        pad = _padding(desc.size)
        if pad:
            self.sink.write(pad)

    def finish(self) -> None:
        self.sink.write(bytes(2 * BLOCK))
