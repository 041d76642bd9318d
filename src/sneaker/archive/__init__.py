"""Archive formats: docker-loadable archives, OCI layouts and archives, split parts, a reader.

Sinks (:func:`write_docker_archive`, :func:`write_oci_layout`) take image
records and a :class:`~sneaker.image.records.BlobSource`; the source
(:func:`open_archive`) gives both back. Writers and reader share only the tar
helpers and the layout conventions, never each other.

Names are imported on first use: taking one writer (or ``sneaker.archive.tar``)
loads neither the other writer nor the reader and its layer code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "write_docker_archive": "docker_archive",
    "write_oci_layout": "oci_layout",
    "FORMATS": "reader",
    "ArchiveSource": "reader",
    "open_archive": "reader",
    "missing_archive": "reader",
    "SplitReader": "split",
    "SplitWriter": "split",
    "open_split": "split",
    "parse_size": "split",
}

__all__ = [
    "FORMATS",
    "ArchiveSource",
    "SplitReader",
    "SplitWriter",
    "missing_archive",
    "open_archive",
    "open_split",
    "parse_size",
    "write_docker_archive",
    "write_oci_layout",
]

if TYPE_CHECKING:
    from .docker_archive import write_docker_archive
    from .oci_layout import write_oci_layout
    from .reader import FORMATS, ArchiveSource, missing_archive, open_archive
    from .split import SplitReader, SplitWriter, open_split, parse_size


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
