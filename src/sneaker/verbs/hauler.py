"""Hauler manifests as lists of what to carry: its ``Images`` and its OCI ``Charts``.

Hauler (hauler.dev) describes content in YAML documents of the group
``content.hauler.cattle.io`` (versions ``v1`` and ``v1alpha1``), one ``kind`` a
document. sneaker reads two kinds from a ``--from`` file:

``Images``
    ``spec.images[].name``: a reference, by tag or digest. An entry's ``platform``
    (``linux/amd64``) is kept with it, so the caller can say when the run's
    ``--platform`` does not cover it; Hauler's signature-checking fields (``key``,
    ``certificate-identity``, ...) are Hauler's business: ``--referrers`` carries the
    signatures themselves.
``Charts``
    ``spec.charts[]`` with ``repoURL: oci://HOST/PATH``, ``name`` and ``version``:
    the Helm chart stored as an OCI artifact at ``HOST/PATH/NAME:VERSION`` (Hauler
    and Helm join them so; a ``+`` in the version is ``_`` in the tag, as Helm tags
    it). A chart needs its version: Helm would pick the newest, and sneaker does
    not guess.

Everything else is refused, naming the file and line, rather than left out of the
archive unnoticed: ``Files``, charts from ``http(s)://`` repositories (an
``index.yaml`` repository is no registry), ``collection.hauler.cattle.io`` kinds.
Pure logic over PyYAML's node tree (for line numbers); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, UnsupportedError

__all__ = ["HAULER_GROUPS", "HaulerImage", "hauler_images", "is_hauler"]

#: the API groups of Hauler's manifests (``apiVersion: <group>/<version>``)
HAULER_GROUPS = ("content.hauler.cattle.io", "collection.hauler.cattle.io")
_CONTENT = "content.hauler.cattle.io"
_HINT = (
    "sneaker carries what registries serve: Images, and Charts stored in OCI registries "
    "(repoURL: oci://...); fetch the rest with hauler or helm"
)


@dataclass(frozen=True)
class HaulerImage:
    """One image or chart of a Hauler manifest: its reference, platform, and line."""

    reference: str
    platform: str | None
    line: int


def _value(node: Any, key: str) -> Any:
    """The value node of ``key`` in a mapping node, or None."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value
    return None


def _text(node: Any) -> str | None:
    import yaml

    if isinstance(node, yaml.ScalarNode) and node.value.strip():
        return str(node.value).strip()
    return None


def _entries(document: Any, field: str) -> list[Any]:
    import yaml

    entries = _value(_value(document, "spec"), field)
    return list(entries.value) if isinstance(entries, yaml.SequenceNode) else []


def is_hauler(document: Any) -> bool:
    """Is this YAML document (a node) one of Hauler's manifests?"""
    api = _text(_value(document, "apiVersion")) or ""
    return api.split("/", 1)[0] in HAULER_GROUPS


def hauler_images(document: Any, name: str) -> list[HaulerImage]:
    """The images and OCI charts a Hauler document names (``name`` is the file, for
    messages); raises for content sneaker cannot carry (see the module doc)."""
    api = _text(_value(document, "apiVersion")) or ""
    kind = _text(_value(document, "kind")) or ""
    where = f"{name} line {document.start_mark.line + 1}"
    if api.split("/", 1)[0] != _CONTENT or kind not in ("Images", "Charts"):
        raise UnsupportedError(f"{where}: a Hauler {kind or 'document'} ({api})", hint=_HINT)
    if kind == "Images":
        found = []
        for entry in _entries(document, "images"):
            reference = _text(_value(entry, "name"))
            line = entry.start_mark.line + 1
            if reference is None:
                raise ConfigError(f"{name} line {line}: a Hauler image without a name")
            found.append(HaulerImage(reference, _text(_value(entry, "platform")), line))
        return found
    return [_chart(entry, name) for entry in _entries(document, "charts")]


def _chart(entry: Any, name: str) -> HaulerImage:
    line = entry.start_mark.line + 1
    where = f"{name} line {line}"
    chart = _text(_value(entry, "name"))
    repo = _text(_value(entry, "repoURL")) or ""
    version = _text(_value(entry, "version"))
    if chart is None:
        raise ConfigError(f"{where}: a Hauler chart without a name")
    if not repo.startswith("oci://"):
        raise UnsupportedError(
            f"{where}: chart {chart} comes from {repo or 'no repoURL'}, not from an OCI registry",
            hint=_HINT,
        )
    if version is None:
        raise ConfigError(
            f"{where}: chart {chart} has no version",
            hint="give its version: Helm would pick the newest, sneaker does not guess",
        )
    base = repo.removeprefix("oci://").rstrip("/")
    return HaulerImage(f"{base}/{chart}:{version.replace('+', '_')}", None, line)
