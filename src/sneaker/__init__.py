"""sneaker: carry container images across an air gap, without a Docker daemon.

The stable Python API is what this module exports; everything else is internal.

    import sneaker

    result = sneaker.pull(["ubuntu:22.04"], "ubuntu.tar")
    print(result.images[0].digest)

Names are imported on first use, so ``import sneaker`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "pull": "sneaker.verbs.pull",
    "PullResult": "sneaker.verbs.pull",
    "push": "sneaker.verbs.push",
    "PushResult": "sneaker.verbs.push",
    "serve": "sneaker.verbs.serve",
    "inspect": "sneaker.verbs.inspect",
    "verify": "sneaker.verbs.verify",
    "unpack": "sneaker.verbs.unpack",
    "open_archive": "sneaker.archive",
    "plan": "sneaker.verbs.plan",
    "assemble": "sneaker.verbs.assemble",
    "Reference": "sneaker.image.reference",
    "parse_reference": "sneaker.image.reference",
    "Platform": "sneaker.image.platform",
    "parse_platform": "sneaker.image.platform",
    "PlatformRequest": "sneaker.image.selection",
    "RegistryOptions": "sneaker.registry.client",
    "SneakerError": "sneaker.errors",
    "UsageError": "sneaker.errors",
    "AuthError": "sneaker.errors",
    "NotFound": "sneaker.errors",
    "NetworkError": "sneaker.errors",
    "IntegrityError": "sneaker.errors",
    "ArchiveError": "sneaker.errors",
}

__all__ = [
    "ArchiveError",
    "AuthError",
    "IntegrityError",
    "NetworkError",
    "NotFound",
    "Platform",
    "PlatformRequest",
    "PullResult",
    "PushResult",
    "Reference",
    "RegistryOptions",
    "SneakerError",
    "UsageError",
    "__version__",
    "assemble",
    "inspect",
    "open_archive",
    "parse_platform",
    "parse_reference",
    "plan",
    "pull",
    "push",
    "serve",
    "unpack",
    "verify",
]

if TYPE_CHECKING:
    from .archive import open_archive
    from .errors import (
        ArchiveError,
        AuthError,
        IntegrityError,
        NetworkError,
        NotFound,
        SneakerError,
        UsageError,
    )
    from .image.platform import Platform, parse_platform
    from .image.reference import Reference, parse_reference
    from .image.selection import PlatformRequest
    from .registry.client import RegistryOptions
    from .verbs.assemble import assemble
    from .verbs.inspect import inspect
    from .verbs.plan import plan
    from .verbs.pull import PullResult, pull
    from .verbs.push import PushResult, push
    from .verbs.serve import serve
    from .verbs.unpack import unpack
    from .verbs.verify import verify


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sneaker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
