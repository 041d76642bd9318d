"""Image configs: the sanity checks every verb applies, and what they say about the platform.

Pure logic on bytes, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import InvalidDigest, ManifestInvalid, NoMatchingPlatform
from .artifacts import is_artifact
from .digest import Digest
from .model import Manifest
from .platform import Platform
from .records import ImageRecord
from .selection import PlatformRequest

__all__ = [
    "MAX_CONFIG_BYTES",
    "ImageConfig",
    "check_config",
    "check_record_configs",
    "image_config_digests",
    "parse_config",
]

#: larger configs are refused, as containers/image (skopeo, podman) refuses them; real
#: ones are a few kB. The same bound as manifests (distribution's 4 MiB).
MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ImageConfig:
    """What sneaker reads from an image config."""

    platform: Platform | None
    diff_ids: tuple[Digest, ...]


def parse_config(manifest: Manifest, data: bytes, name: str) -> ImageConfig:
    """Check ``data`` is ``manifest``'s config: a JSON object with one valid diff ID per
    layer; return the platform it declares (``os``/``architecture``/``variant``, None
    when it declares none) and the diff IDs. ``name`` is the image, for messages.
    """
    if manifest.config.size > MAX_CONFIG_BYTES or len(data) > MAX_CONFIG_BYTES:
        raise ManifestInvalid(f"{name}: config of {manifest.config.size} bytes is too large")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ManifestInvalid(f"{name}: image config is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ManifestInvalid(f"{name}: image config is not a JSON object")
    rootfs = doc.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest.layers):
        count = len(diff_ids) if isinstance(diff_ids, list) else 0
        raise ManifestInvalid(
            f"{name}: image config lists {count} layer diff IDs "
            f"but the manifest has {len(manifest.layers)} layers"
        )
    try:
        parsed = tuple(Digest.parse(str(d)) for d in diff_ids)
    except InvalidDigest as exc:
        raise ManifestInvalid(f"{name}: image config: {exc}") from None
    platform = None
    os_name, arch = doc.get("os"), doc.get("architecture")
    if isinstance(os_name, str) and isinstance(arch, str):
        platform = Platform(os_name, arch, str(doc.get("variant") or ""))
    return ImageConfig(platform, parsed)


def check_config(manifest: Manifest, data: bytes, name: str) -> Platform | None:
    """:func:`parse_config`'s checks; the platform the config declares, or None."""
    return parse_config(manifest, data, name).platform


def check_record_configs(
    record: ImageRecord,
    read_config: Callable[[Manifest], bytes],
    name: str,
    request: PlatformRequest,
) -> Platform | None:
    """Check the config of every image manifest in ``record``; return a lone manifest's platform.

    For a single-manifest image asked for by an explicit single platform, the
    config must declare a matching platform (``NoMatchingPlatform`` otherwise).
    Artifacts (a Helm chart, a signature: :func:`sneaker.image.artifacts.is_artifact`)
    have no image config and no platform: they are not checked, and ``read_config``
    is not called for them.
    """
    found: Platform | None = None
    for manifest in record.manifests():
        if is_artifact(manifest):
            continue
        platform = check_config(manifest, read_config(manifest), name)
        if manifest is record.root:
            found = platform
    if found is not None and request.explicit and request.single:
        wanted = request.wanted()[0]
        if not wanted.matches(found):
            raise NoMatchingPlatform(
                f"{name} is a single-platform image for {found}, not {wanted}",
                hint=f"ask for it with --platform {found}",
            )
    return found


def image_config_digests(records: Iterable[ImageRecord]) -> set[Digest]:
    """The configs of the image manifests of ``records`` (those :func:`check_record_configs`
    reads), not those of artifacts, whose configs are any blob of any size."""
    return {m.config.digest for r in records for m in r.manifests() if not is_artifact(m)}
