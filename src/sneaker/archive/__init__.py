"""Archive formats: docker-loadable archives, OCI layouts and archives, split parts, a reader.

Sinks (:func:`write_docker_archive`, :func:`write_oci_layout`) take image
records and a :class:`~sneaker.imageset.BlobSource`; the source
(:func:`open_archive`) gives both back. Writers and reader share only the tar
helpers and the layout conventions, never each other.
"""

from __future__ import annotations

from .docker_archive import write_docker_archive
from .oci_layout import write_oci_layout
from .reader import DOCKER_LAYER_TAR, FORMATS, ArchiveSource, open_archive
from .split import SplitReader, SplitWriter, open_split, parse_size

__all__ = [
    "DOCKER_LAYER_TAR",
    "FORMATS",
    "ArchiveSource",
    "SplitReader",
    "SplitWriter",
    "open_archive",
    "open_split",
    "parse_size",
    "write_docker_archive",
    "write_oci_layout",
]
