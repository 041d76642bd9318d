"""Content digests (``algorithm:hex``), and checking bytes against one while they pass."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import IntegrityError, InvalidDigest

__all__ = ["ContentCheck", "Digest", "DigestingWriter", "sha256_of_bytes"]

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")


@dataclass(frozen=True, order=True)
class Digest:
    """A validated digest. Only sha256 and sha512 are accepted (as distribution does)."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, hexpart = text.partition(":")
        if not sep or not algorithm or not hexpart:
            raise InvalidDigest(f"invalid digest {text!r}: expected algorithm:hex")
        expected = _HEX_LENGTH.get(algorithm)
        if expected is None:
            raise InvalidDigest(
                f"invalid digest {text!r}: unsupported algorithm {algorithm!r}",
                hint="sneaker accepts sha256 and sha512 digests",
            )
        if len(hexpart) != expected or not _HEX.match(hexpart):
            raise InvalidDigest(
                f"invalid digest {text!r}: {algorithm} needs {expected} lowercase hex characters"
            )
        return cls(algorithm, hexpart)

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @property
    def short(self) -> str:
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def sha256_of_bytes(data: bytes) -> Digest:
    return Digest.of_bytes(data, "sha256")


class ContentCheck:
    """Bytes checked against what a descriptor promises, as they pass.

    Each piece is counted (:meth:`add`) and, when a digest is expected, hashed
    (:meth:`update`); a piece that goes past ``size`` is refused at once.
    :meth:`check` at the end raises :class:`IntegrityError` when the count or the
    digest differs. ``expected`` or ``size`` may be None: that part is not checked.
    ``what`` names the content in messages (``blob sha256:...``). The one owner of
    these three messages, for every copy that verifies while it writes.
    """

    def __init__(self, expected: Digest | None, size: int | None, *, what: str) -> None:
        self.expected = expected
        self.size = size
        self.hasher = expected.hasher() if expected is not None else None
        self.count = 0
        self._what = what

    def add(self, n: int) -> None:
        """Count ``n`` more bytes (hashed elsewhere, e.g. on a helper thread)."""
        if self.size is not None and self.count + n > self.size:
            raise IntegrityError(
                f"{self._what}: more data than the {self.size} bytes its descriptor declares"
            )
        self.count += n

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Count and hash ``data``."""
        self.add(len(data))
        if self.hasher is not None:
            self.hasher.update(data)

    def check(self) -> None:
        if self.size is not None and self.count != self.size:
            raise IntegrityError(
                f"{self._what}: got {self.count} bytes, descriptor declares {self.size}"
            )
        if self.expected is None or self.hasher is None:
            return
        actual = self.hasher.hexdigest()
        if actual != self.expected.hex:
            raise IntegrityError(
                f"digest mismatch for {self._what}: content hashes to "
                f"{self.expected.algorithm}:{actual}"
            )


class DigestingWriter(ContentCheck):
    """Wraps a binary file: hashes and counts what is written, refuses more than ``size``.

    Call :meth:`check` once the writing is done; it raises :class:`IntegrityError`
    when the digest or the size does not match what the descriptor promised.
    """

    expected: Digest

    def __init__(
        self, out: BinaryIO, expected: Digest, size: int | None, *, what: str = ""
    ) -> None:
        super().__init__(expected, size, what=what or str(expected))
        self._out = out

    @property
    def written(self) -> int:
        return self.count

    def prime(self, data: bytes) -> None:
        """Feed bytes already on disk (a resumed download) into the hash and count."""
        assert self.hasher is not None
        self.hasher.update(data)
        self.count += len(data)

    def write(self, data: bytes | memoryview) -> int:
        self.update(data)
        self._out.write(data)
        return len(data)
