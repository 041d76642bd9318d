"""Optional accelerators. sneaker works without every one of them; ``--version`` names them."""

from __future__ import annotations

import importlib.util

__all__ = ["describe_speedups"]

_OPTIONAL = ("zstandard",)


def describe_speedups() -> str:
    found = [name for name in _OPTIONAL if importlib.util.find_spec(name) is not None]
    return "speed-ups: " + (", ".join(found) if found else "none (pure Python)")
