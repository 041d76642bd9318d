"""Image references, parsed and normalised exactly as docker does.

``ubuntu`` is ``docker.io/library/ubuntu:latest``; the first path component
is a registry host only when it contains ``.`` or ``:``, is ``localhost``, or
has an uppercase letter; ``index.docker.io`` is ``docker.io``; a digest wins
over a tag when both are given. Pure logic, no I/O.

This module owns the grammar and Docker Hub's names: settings, credentials,
serve's routes and the verbs that tell a registry from a repository ask it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..errors import InvalidDigest, InvalidReference
from .digest import Digest

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API_HOST",
    "HUB_ALIASES",
    "PATH_COMPONENT",
    "REPOSITORY_PATH",
    "Reference",
    "bare_registry_host",
    "is_path_component",
    "is_registry_host",
    "names_registry_host",
    "normalize_registry_host",
    "parse_reference",
    "server_host",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
#: every name of Docker Hub; each means ``docker.io``.
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_MAX_NAME = 255

#: one component of a repository path (``library``, ``my-app``), as a regex.
PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
#: a repository path: components joined by ``/``, as a regex.
REPOSITORY_PATH = rf"{PATH_COMPONENT}(?:/{PATH_COMPONENT})*"
_COMPONENT = re.compile(rf"^{PATH_COMPONENT}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_HOST = re.compile(
    r"^(?:"
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[a-fA-F0-9:]+\]"
    r")(?::[0-9]+)?$"
)


@dataclass(frozen=True)
class Reference:
    """A fully qualified reference: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def api_host(self) -> str:
        """The host the registry API is reached at (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest) -> Reference:
        return replace(self, digest=digest)

    def without_digest(self) -> Reference:
        return replace(self, digest=None)

    @property
    def tagged(self) -> str | None:
        """``registry/repository:tag`` when a tag is known, else None."""
        return f"{self.name}:{self.tag}" if self.tag else None

    @property
    def familiar(self) -> str:
        """The short form docker prints: ``ubuntu:22.04``, ``ghcr.io/o/r:t``."""
        if self.registry == DOCKER_HUB:
            base = self.repository
            short = base.removeprefix("library/")
            if "/" not in short:
                base = short
        else:
            base = self.name
        return self._with_identifiers(base)

    @property
    def brief(self) -> str:
        """The familiar name for a progress row: ``ubuntu:22.04`` (the tag when there is
        one, the digest left out), else ``ubuntu@sha256:3f2a9b0c1d2e`` (the digest cut)."""
        name = replace(self, digest=None).familiar
        if self.tag or self.digest is None:
            return name
        return f"{name}@{self.digest.algorithm}:{self.digest.short}"

    def _with_identifiers(self, name: str) -> str:
        if self.tag:
            name += f":{self.tag}"
        if self.digest is not None:
            name += f"@{self.digest}"
        return name

    def __str__(self) -> str:
        return self._with_identifiers(self.name)


def normalize_registry_host(host: str) -> str:
    """``host[:port]`` in lower case; Docker Hub's names become ``docker.io``."""
    lowered = host.strip().lower()
    return DOCKER_HUB if lowered in HUB_ALIASES else lowered


def server_host(address: str) -> str:
    """The ``host[:port]`` of a server address as docker takes one (a config key, a
    ``login`` argument): a leading ``https://`` or ``http://`` and any path dropped
    (``https://index.docker.io/v1/`` -> ``index.docker.io``). Not normalised."""
    text = address.strip()
    lowered = text.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    return text.split("/", 1)[0]


def is_registry_host(text: str) -> bool:
    """Is ``text`` a valid ``host[:port]`` (a DNS name, an IPv4 or a bracketed IPv6 address)?"""
    return _HOST.match(text) is not None


def is_path_component(text: str) -> bool:
    """Is ``text`` one valid component of a repository path?"""
    return _COMPONENT.match(text) is not None


def names_registry_host(first: str) -> bool:
    """Docker's rule: the first component of a name is a registry host when it has a
    ``.`` or a ``:`` or is ``localhost`` (:func:`parse_reference` also takes one with an
    uppercase letter, which no repository path may have)."""
    return "." in first or ":" in first or first == "localhost"


def bare_registry_host(text: str) -> str | None:
    """The normalised registry when ``text`` is a bare registry host (no path), else None."""
    if not names_registry_host(text):
        return None
    try:
        return parse_reference(f"{text}/x", default_tag=None).registry
    except InvalidReference:
        return None


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and (names_registry_host(first) or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DOCKER_HUB, name
    if domain in HUB_ALIASES:
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = f"library/{remainder}"
    return domain, remainder


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse ``text`` as docker would; raise :class:`InvalidReference` naming the fault.

    ``default_tag`` is applied when neither tag nor digest is given; pass None
    to keep such a reference untagged (for a ``registry/prefix`` target, say).
    """
    original = text
    if not text or not text.strip():
        raise InvalidReference("invalid reference: empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReference(f"invalid reference {original!r}: contains white space")

    digest: Digest | None = None
    if "@" in text:
        text, _, digest_text = text.partition("@")
        try:
            digest = Digest.parse(digest_text)
        except InvalidDigest as exc:
            raise InvalidReference(f"invalid reference {original!r}: {exc.message}") from None

    tag: str | None = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(
                f"invalid reference {original!r}: invalid tag {tag!r}",
                hint="a tag is 1-128 letters, digits, '_', '.', '-', not starting with '.' or '-'",
            )
    if not text:
        raise InvalidReference(f"invalid reference {original!r}: missing repository name")

    domain, path = _split_domain(text)
    if domain != DOCKER_HUB and not is_registry_host(domain):
        raise InvalidReference(f"invalid reference {original!r}: invalid registry host {domain!r}")
    if not path:
        raise InvalidReference(f"invalid reference {original!r}: missing repository name")
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            if component.lower() != component and _COMPONENT.match(component.lower()):
                raise InvalidReference(
                    f"invalid reference {original!r}: repository name must be lowercase"
                )
            raise InvalidReference(
                f"invalid reference {original!r}: invalid repository component {component!r}"
            )
    if len(domain) + 1 + len(path) > _MAX_NAME:
        raise InvalidReference(
            f"invalid reference {original!r}: repository name longer than {_MAX_NAME} characters"
        )
    if tag is None and digest is None and default_tag is not None:
        tag = default_tag
    return Reference(domain, path, tag, digest)
