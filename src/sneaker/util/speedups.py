"""Optional accelerators. sneaker works without every one of them; ``--version`` names them.

Today they are zstd modules: a zstd layer needs one (gzip, xz and bzip2 are in every
Python). ``pip install sneaker[speedups]`` installs ``backports.zstd`` where the standard
library has no ``compression.zstd`` (before Python 3.14); ``zstandard`` is used when it is
there already. :data:`ZSTD_MODULES` is the order :mod:`sneaker.layers.zstd` tries them in.
"""

from __future__ import annotations

import importlib.util

__all__ = ["OPTIONAL", "ZSTD_MODULES", "describe_speedups", "installed"]

#: the modules a zstd layer is read with, best first (the first comes with Python 3.14)
ZSTD_MODULES = ("compression.zstd", "backports.zstd", "zstandard")
#: the accelerators installed from the package index (the ``speedups`` extra)
OPTIONAL = ("backports.zstd", "zstandard")


def installed(name: str) -> bool:
    """Is module ``name`` importable (without importing it)?"""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a dotted name whose parent package is missing
        return False


def describe_speedups() -> str:
    found = [name for name in OPTIONAL if installed(name)]
    zstd = next((name for name in ZSTD_MODULES if installed(name)), None)
    return (
        "speed-ups: "
        + (", ".join(found) if found else "none (pure Python)")
        + (f"; zstd: {zstd}" if zstd else "; zstd: none (pip install backports.zstd)")
    )
