"""Every error sneaker raises on purpose, in one tree.

The CLI renders any of these as a single line, ``error: <message>``, followed by
``hint: <hint>`` when one helps, and exits with the class's ``exit_code``.
Anything that is not a ``SneakerError`` is a bug and is shown with ``--debug``.

    SneakerError                      exit 1
    ├── FileError                     exit 1   a local file could not be read or written
    │   └── DiskFull                           no space left, or over a disk quota
    ├── UsageError                    exit 2   bad arguments or options
    │   ├── InvalidReference                   reference grammar
    │   ├── InvalidDigest                      digest grammar or unknown algorithm
    │   └── InvalidPlatform                    platform grammar
    ├── ConfigError                   exit 3   config.json, registries.conf, daemon.json
    │   └── RegistryBlocked                    a settings file blocks the registry
    ├── AuthError                     exit 4   credentials refused or missing
    ├── NotFound                      exit 5   repository, tag, digest or blob unknown
    │   └── NoMatchingPlatform                 the image has no such platform
    ├── NetworkError                  exit 6   connection, TLS, retries exhausted
    │   ├── TLSError
    │   ├── RateLimited                        429 after every retry
    │   └── TooSlow                            a body slower than the low-speed limit
    ├── RegistryError                 exit 6   the registry answered with an error
    ├── IntegrityError                exit 7   digest or size mismatch, damaged content
    │   ├── ManifestInvalid                    manifest, index or config breaks its schema
    │   └── VerificationFailed                 ``verify`` found problems (lists them)
    ├── ArchiveError                  exit 8   unreadable or hostile archive or layout
    │   └── UnsafePath                         traversal, absolute name, link escape
    ├── UnsupportedError              exit 9   a format sneaker does not handle
    └── Interrupted                   exit 130 Ctrl-C

An ``OSError`` becomes a :class:`FileError` naming the path and what was being done
to it in one place, :func:`sneaker.util.oserrors.file_error`. Error lines stay short:
a list joined into a message goes through :func:`summarize` (what fits, then a count
of the rest), and the CLI cuts any line still longer than :data:`MAX_LINE` (:func:`cap`).

Messages never contain a password or a token: code that builds an error from a
request must pass URLs through :func:`sneaker.registry.redact.redact_url` first.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "LIST_BUDGET",
    "MAX_LINE",
    "ArchiveError",
    "AuthError",
    "ConfigError",
    "DiskFull",
    "FileError",
    "IntegrityError",
    "Interrupted",
    "InvalidDigest",
    "InvalidPlatform",
    "InvalidReference",
    "ManifestInvalid",
    "NetworkError",
    "NoMatchingPlatform",
    "NotFound",
    "RateLimited",
    "RegistryBlocked",
    "RegistryError",
    "SneakerError",
    "TLSError",
    "TooSlow",
    "UnsafePath",
    "UnsupportedError",
    "UsageError",
    "VerificationFailed",
    "cap",
    "summarize",
]

#: the longest error or hint line the CLI prints (characters)
MAX_LINE = 1000
#: how much of a message a list may take before the rest is only counted
LIST_BUDGET = 600


def summarize(items: Iterable[str], *, sep: str = ", ", budget: int = LIST_BUDGET) -> str:
    """``a, b, c and 23,997 more``: the items joined while they fit in ``budget``
    characters (the first always, cut to fit), the rest counted."""
    shown: list[str] = []
    used = 0
    more = 0
    for item in items:
        if more or (shown and used + len(sep) + len(item) > budget):
            more += 1
            continue
        text = cap(item, budget)
        used += len(text) + (len(sep) if shown else 0)
        shown.append(text)
    joined = sep.join(shown)
    return f"{joined} and {more:,} more" if more else joined


def cap(text: str, limit: int = MAX_LINE) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 1)
    return f"{text[:keep]}... ({len(text) - keep:,} more characters)"


class SneakerError(Exception):
    """Base of every error sneaker raises deliberately."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class FileError(SneakerError):
    """A local file or directory could not be read or written: ``path`` names it."""

    def __init__(self, message: str, *, path: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class DiskFull(FileError):
    """No space left on a device (ENOSPC), or over a disk quota (EDQUOT).

    ``needed`` is how many bytes the write needed, when known.
    """

    def __init__(
        self, message: str, *, path: str = "", needed: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, path=path, hint=hint)
        self.needed = needed


class UsageError(SneakerError):
    exit_code = 2


class InvalidReference(UsageError):
    pass


class InvalidDigest(UsageError):
    pass


class InvalidPlatform(UsageError):
    pass


class ConfigError(SneakerError):
    exit_code = 3


class RegistryBlocked(ConfigError):
    pass


class AuthError(SneakerError):
    exit_code = 4


class NotFound(SneakerError):
    exit_code = 5


class NoMatchingPlatform(NotFound):
    pass


class NetworkError(SneakerError):
    exit_code = 6


class TLSError(NetworkError):
    pass


class RateLimited(NetworkError):
    pass


class TooSlow(NetworkError):
    """A response body arrived slower than the low-speed limit (or stopped): abandoned."""


class RegistryError(SneakerError):
    """The registry answered with an error the client cannot act on.

    ``status`` is the HTTP status, ``codes`` the distribution error codes
    (``MANIFEST_INVALID``, ``BLOB_UNKNOWN``, ...) from the body.
    """

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.codes = codes


class IntegrityError(SneakerError):
    exit_code = 7


class ManifestInvalid(IntegrityError):
    pass


class VerificationFailed(IntegrityError):
    def __init__(self, problems: list[str]) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun} found: " + summarize(problems, sep="; "))
        self.problems = problems


class ArchiveError(SneakerError):
    exit_code = 8


class UnsafePath(ArchiveError):
    pass


class UnsupportedError(SneakerError):
    exit_code = 9


class Interrupted(SneakerError):
    exit_code = 130
