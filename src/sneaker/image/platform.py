"""Platforms (``os/arch[/variant]``): parsing, normalising like containerd, matching.

Pure logic, no I/O.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidPlatform, summarize

__all__ = [
    "Platform",
    "host_platform",
    "is_attestation",
    "normalize_arch",
    "parse_platform",
    "parse_platform_list",
]

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "386": ("386", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "armv5": ("arm", "v5"),
    "arm": ("arm", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}

_OS_ALIASES = {"darwin": "darwin", "macos": "darwin", "win32": "windows", "windows": "windows"}


def normalize_arch(arch: str, variant: str = "") -> tuple[str, str]:
    """containerd's normalisation: ``x86_64`` is amd64, ``aarch64`` is arm64 (v8 = no variant)."""
    arch = arch.lower()
    variant = variant.lower()
    norm_arch, implied = _ARCH_ALIASES.get(arch, (arch, ""))
    if not variant:
        variant = implied
    if norm_arch == "arm64" and variant in ("v8", "8"):
        variant = ""
    if norm_arch == "arm":
        variant = variant or "v7"
        if not variant.startswith("v"):
            variant = f"v{variant}"
    if norm_arch == "amd64" and variant == "v1":
        variant = ""
    return norm_arch, variant


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default=())

    def normalized(self) -> Platform:
        arch, variant = normalize_arch(self.architecture, self.variant)
        os_name = _OS_ALIASES.get(self.os.lower(), self.os.lower())
        return Platform(os_name, arch, variant, self.os_version, self.os_features)

    def matches(self, other: Platform) -> bool:
        """Does an image built for ``other`` satisfy a request for ``self``?

        os and architecture must agree after normalisation; a requested variant
        must agree too (an ``arm`` image with no variant counts as v7, as in containerd).
        """
        want, have = self.normalized(), other.normalized()
        if want.os != have.os or want.architecture != have.architecture:
            return False
        return not self.variant or want.variant == have.variant

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "")),
            architecture=str(data.get("architecture", "")),
            variant=str(data.get("variant", "") or ""),
            os_version=str(data.get("os.version", "") or ""),
            os_features=tuple(str(f) for f in data.get("os.features", []) or []),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def parse_platform(text: str) -> Platform:
    """Parse ``os/arch[/variant]`` (``linux/arm64``, ``linux/arm/v7``)."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidPlatform(
            f"invalid platform {text!r}",
            hint="use os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm/v7",
        )
    return Platform(parts[0].lower(), parts[1].lower(), parts[2].lower() if len(parts) == 3 else "")


def parse_platform_list(text: str) -> list[Platform]:
    """Parse a comma-separated list of platforms."""
    return [parse_platform(item) for item in text.split(",") if item.strip()]


def _machine() -> str:
    """``uname -m``; the stdlib's platform module only where there is no uname (on
    Python 3.10 it imports subprocess, which start-up should not pay for)."""
    if hasattr(os, "uname"):
        return os.uname().machine
    import platform

    return platform.machine()


def host_platform() -> Platform:
    """The platform of this machine; images for Linux are what a Linux or macOS host runs."""
    machine = _machine() or "amd64"
    os_name = "windows" if sys.platform.startswith("win") else "linux"
    arch, variant = normalize_arch(machine)
    return Platform(os_name, arch, variant)


def is_attestation(platform: Platform | None, annotations: Mapping[str, str]) -> bool:
    """buildx attestation manifests: ``unknown/unknown`` or a reference-type annotation."""
    if "vnd.docker.reference.type" in annotations:
        return True
    return platform is not None and platform.os == "unknown" and platform.architecture == "unknown"


def describe(platforms: Iterable[Platform]) -> str:
    return summarize(sorted({str(p) for p in platforms})) or "none"
