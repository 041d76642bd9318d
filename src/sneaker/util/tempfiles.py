"""Hidden temporary names beside a final name, and removing those a killed run left behind.

Every temporary file or directory sneaker makes next to what it writes (an archive, its
split parts, a layout's blobs, a plan directory, an unpacked tree, a ``--no-cache``
cache) is named by :func:`temp_name`::

    .NAME.sneaker-PID-HOST-BOOT-RANDOM.tmp

- ``NAME`` is the final name, shortened at a character boundary when the whole would
  pass :data:`NAME_MAX` bytes: a valid 255-byte output name never gets a temporary name
  the file system refuses;
- ``PID`` is the process writing it; ``HOST`` six hex digits of a hash of this machine's
  host name; ``BOOT`` six hex digits of a hash of the kernel's boot id (Linux;
  ``000000`` where there is none).

A run killed with SIGKILL (or by a power cut) cannot remove its temporary files; the
next run into the same directory does: :func:`remove_stale` removes the names of that
form whose owner is certainly gone (written on this host, in an earlier boot or by a
process that no longer exists). Names of other tools, of other hosts (a network
directory, a container with a host name of its own) and of live processes are left
alone, and so is everything on systems without POSIX process signals.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "NAME_MAX",
    "is_temp_name",
    "name_max",
    "remove_stale",
    "remove_tree",
    "temp_name",
    "temporary_directory",
]

#: the longest file name (in bytes) common file systems take
NAME_MAX = 255
_UNKNOWN_BOOT = "000000"
_TEMP = re.compile(
    r"\A\.(?P<name>.*)\.sneaker-(?P<pid>[0-9]{1,10})-(?P<host>[0-9a-f]{6})"
    r"-(?P<boot>[0-9a-f]{6})-[0-9a-f]{6}\.tmp\Z",
    re.DOTALL,
)


def _tag(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:6]


@functools.cache
def _host_tag() -> str:
    return _tag(socket.gethostname())


@functools.cache
def _boot_tag() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot_id = handle.read().strip()
    except (OSError, ValueError):
        return _UNKNOWN_BOOT
    return _tag(boot_id) if boot_id else _UNKNOWN_BOOT


def _shorten(name: str, most: int) -> str:
    """``name`` cut to at most ``most`` bytes, never inside a UTF-8 character."""
    raw = os.fsencode(name)
    if len(raw) <= most:
        return name
    cut = max(most, 0)
    while cut > 0 and raw[cut] & 0xC0 == 0x80:  # a continuation byte: step back
        cut -= 1
    return os.fsdecode(raw[:cut])


def name_max(directory: Path) -> int:
    """The longest file name (bytes) the file system of ``directory`` holds."""
    try:
        most = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX, or the file system will not say
        return NAME_MAX
    return most if most > 0 else NAME_MAX


def temp_name(final: Path) -> Path:
    """A hidden, unique temporary name in the directory of ``final``, never over NAME_MAX."""
    suffix = f".sneaker-{os.getpid()}-{_host_tag()}-{_boot_tag()}-{secrets.token_hex(3)}.tmp"
    stem = _shorten(final.name, NAME_MAX - 1 - len(suffix))
    return final.with_name(f".{stem}{suffix}")


@contextlib.contextmanager
def temporary_directory(parent: Path, name: str) -> Iterator[Path]:
    """A private (0700) directory ``parent/.NAME.sneaker-...tmp`` for the block, removed
    after it; those a killed run left in ``parent`` are removed first."""
    remove_stale(parent)
    path = temp_name(parent / name)
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            remove_tree(path)


def is_temp_name(name: str) -> bool:
    """Is ``name`` one :func:`temp_name` makes (of this process or another)?"""
    return _TEMP.match(name) is not None


def _owner_gone(name: str) -> bool:
    match = _TEMP.match(name)
    if match is None or match["host"] != _host_tag():
        return False
    boot, mine = match["boot"], _boot_tag()
    if _UNKNOWN_BOOT not in (boot, mine) and boot != mine:
        return True  # written before this machine last started
    pid = int(match["pid"])
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, and someone else's; or we cannot tell
        return False
    return False


def remove_stale(directory: Path) -> list[Path]:
    """Remove the temporary files and directories a killed sneaker left in ``directory``.

    Only names of :func:`temp_name`'s form whose owner is gone (see the module doc) are
    removed; anything that cannot be removed is left. Returns what was removed.
    """
    if os.name != "posix":
        return []
    removed: list[Path] = []
    try:
        with os.scandir(directory) as entries:
            stale = [
                Path(entry.path)
                for entry in entries
                if entry.name.endswith(".tmp") and _owner_gone(entry.name)
            ]
    except OSError:
        return []
    for path in stale:
        with contextlib.suppress(OSError):
            remove_tree(path)
            removed.append(path)
    return removed


def _rmtree(path: str, as_root: bool) -> None:
    if not as_root:
        # A read-only directory cannot be emptied otherwise.
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


def remove_tree(path: Path | str) -> None:
    """Remove a file or a tree, read-only directories included; never follows links."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        _rmtree(str(path), hasattr(os, "geteuid") and os.geteuid() == 0)
    else:
        os.unlink(path)
