"""Image references, parsed and normalised exactly as docker does.

``ubuntu`` is ``docker.io/library/ubuntu:latest``; the first path component
is a registry host only when it contains ``.`` or ``:``, is ``localhost``, or
has an uppercase letter; ``index.docker.io`` is ``docker.io``; a digest wins
over a tag when both are given. Pure logic, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..errors import InvalidDigest, InvalidReference
from .digest import Digest

__all__ = ["DOCKER_HUB", "DOCKER_HUB_API_HOST", "Reference", "parse_reference"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_MAX_NAME = 255

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
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
        if self.tag:
            base += f":{self.tag}"
        if self.digest is not None:
            base += f"@{self.digest}"
        return base

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DOCKER_HUB, name
    if domain in _HUB_ALIASES:
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
    if domain != DOCKER_HUB and not _HOST.match(domain):
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
