"""Content digests (``algorithm:hex``) and a writer that checks one while it writes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import IntegrityError, InvalidDigest

__all__ = ["Digest", "DigestingWriter", "sha256_of_bytes"]

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


class DigestingWriter:
    """Wraps a binary file: hashes and counts what is written, refuses more than ``size``.

    Call :meth:`check` once the writing is done; it raises :class:`IntegrityError`
    when the digest or the size does not match what the descriptor promised.
    """

    def __init__(
        self, out: BinaryIO, expected: Digest, size: int | None, *, what: str = ""
    ) -> None:
        self._out = out
        self._hash = expected.hasher()
        self.expected = expected
        self.size = size
        self.written = 0
        self._what = what or str(expected)

    def prime(self, data: bytes) -> None:
        """Feed bytes already on disk (a resumed download) into the hash and count."""
        self._hash.update(data)
        self.written += len(data)

    def write(self, data: bytes | memoryview) -> int:
        n = len(data)
        if self.size is not None and self.written + n > self.size:
            raise IntegrityError(
                f"{self._what}: more data than the {self.size} bytes its descriptor declares"
            )
        self._hash.update(data)
        self._out.write(data)
        self.written += n
        return n

    def check(self) -> None:
        if self.size is not None and self.written != self.size:
            raise IntegrityError(
                f"{self._what}: got {self.written} bytes, descriptor declares {self.size}"
            )
        actual = self._hash.hexdigest()
        if actual != self.expected.hex:
            raise IntegrityError(
                f"digest mismatch for {self._what}: content hashes to "
                f"{self.expected.algorithm}:{actual}"
            )
