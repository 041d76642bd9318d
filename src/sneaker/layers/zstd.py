"""zstd decompression from whichever implementation this Python has.

Tried in order (:data:`sneaker.util.speedups.ZSTD_MODULES`):

* ``compression.zstd``: the standard library's, from Python 3.14 (PEP 784);
* ``backports.zstd``: the same module for Python 3.10 to 3.13 (a compiled wheel);
* ``zstandard``: the older C binding, still common.

The first two read through ``ZstdFile``, the third through its ``stream_reader``; each
reads every frame of a stream and skips skippable frames. None of them is needed for
gzip, xz, bzip2 or plain layers. A zstd layer with none of them installed is an
:class:`~sneaker.errors.UnsupportedError` naming what to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from ..errors import UnsupportedError
from ..util.speedups import ZSTD_MODULES

__all__ = ["ZstdBackend", "find_zstd", "load_zstd"]


@dataclass(frozen=True)
class ZstdBackend:
    """A zstd implementation: ``open(raw)`` is a reader of the decompressed bytes; a
    damaged or cut stream raises one of ``errors`` while it is read."""

    name: str
    open: Callable[[IO[bytes]], Any]
    errors: tuple[type[BaseException], ...]


def _from_module(name: str, module: Any) -> ZstdBackend:
    if name == "zstandard":
        decompressor = module.ZstdDecompressor()
        return ZstdBackend(
            name,
            lambda raw: decompressor.stream_reader(raw, read_across_frames=True),
            (module.ZstdError,),
        )
    # compression.zstd and its backport: a file object; a cut stream is an EOFError
    return ZstdBackend(
        name, lambda raw: module.ZstdFile(raw, mode="rb"), (module.ZstdError, EOFError)
    )


def find_zstd(names: Sequence[str] | None = None) -> ZstdBackend | None:
    """The first of ``names`` (default: ``ZSTD_MODULES``) that imports, or None."""
    for name in ZSTD_MODULES if names is None else names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return _from_module(name, module)
    return None


def load_zstd(what: str, names: Sequence[str] | None = None) -> ZstdBackend:
    """:func:`find_zstd`, or UnsupportedError saying ``what`` needs one."""
    backend = find_zstd(names)
    if backend is None:
        raise UnsupportedError(
            f"{what} is zstd-compressed and this Python has no zstd module "
            f"(compression.zstd comes with Python 3.14; before it, backports.zstd or zstandard)",
            hint="pip install backports.zstd (or sneaker[speedups]), or use Python 3.14",
        )
    return backend
