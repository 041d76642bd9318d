"""The versioned JSON documents sneaker writes and reads back: one reader for all of them.

Each document is a JSON object carrying ``"format"`` (what it is) and
``"version"`` (an integer, 1 and up): an inventory (``sneaker inventory -o``),
the marker of a delta archive (``sneaker-delta.json``), a download plan
(``plan.json``). A :class:`DocumentKind` says, for one of them, its format, the
newest version this sneaker reads, its size cap and which error a malformed one
raises (a file the user names is a usage error; one inside an archive or a
plan directory is an archive error). :func:`read_document` reads a file with
the cap; :func:`parse_document` checks size, JSON, format and version
(:func:`check_document` the last two), naming the file in every error. What
the fields inside mean is each document's own business.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SneakerError, UnsupportedError

__all__ = ["DocumentKind", "check_document", "parse_document", "read_document"]


@dataclass(frozen=True)
class DocumentKind:
    """One kind of versioned JSON document.

    ``noun`` names it in messages (``plan``: "not a sneaker plan"); ``error`` is raised for a
    document that is too large, not JSON or not of this kind, with ``hint``;
    a version newer than ``version`` raises :class:`UnsupportedError` with
    ``version_hint``. ``missing`` builds the error for a file that is not there
    (default: ``error``).
    """

    format: str
    version: int
    noun: str
    max_bytes: int
    error: type[SneakerError]
    missing: Callable[[Path], SneakerError] | None = None
    hint: str | None = None
    version_hint: str | None = None

    def fields(self) -> dict[str, Any]:
        """The ``format`` and ``version`` fields a writer puts first."""
        return {"format": self.format, "version": self.version}


def read_document(path: Path, kind: DocumentKind) -> bytes:
    """The bytes of the document file ``path``, at most ``kind.max_bytes`` of them."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(kind.max_bytes + 1)
    except FileNotFoundError:
        if kind.missing is not None:
            raise kind.missing(path) from None
        raise kind.error(f"{path} is missing") from None
    except IsADirectoryError:
        raise kind.error(f"{path} is a directory, not a sneaker {kind.noun} file") from None
    _check_size(raw, kind, str(path))
    return raw


def parse_document(raw: bytes, kind: DocumentKind, where: str) -> dict[str, Any]:
    """The JSON object in ``raw``, checked to be a document of ``kind`` that this
    sneaker reads; ``where`` names it in errors."""
    _check_size(raw, kind, where)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise kind.error(f"{where} is not valid JSON ({exc})") from None
    return check_document(doc, kind, where)


def check_document(doc: Any, kind: DocumentKind, where: str) -> dict[str, Any]:
    """``doc`` (parsed JSON), checked to be a document of ``kind`` that this sneaker reads."""
    if not isinstance(doc, dict) or doc.get("format") != kind.format:
        raise kind.error(f"{where} is not a sneaker {kind.noun}", hint=kind.hint)
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise kind.error(f"{where}: 'version' must be an integer")
    if not 1 <= version <= kind.version:
        raise UnsupportedError(
            f"{where} is a version {version} {kind.noun}; "
            f"this sneaker reads version {kind.version}",
            hint=kind.version_hint,
        )
    return doc


def _check_size(raw: bytes, kind: DocumentKind, where: str) -> None:
    if len(raw) > kind.max_bytes:
        raise kind.error(f"{where} is larger than the {kind.max_bytes >> 20} MiB limit")
