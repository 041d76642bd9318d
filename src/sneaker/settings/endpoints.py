"""Where an image's bytes may come from: mirror endpoints first, then the origin. Pure logic.

A registry name (``docker.io``, ``host:port``) or a repository name
(``host/ns/repo``) resolves to :class:`ResolvedEndpoints`. Each
:class:`Endpoint` says which registry to connect to, how the repository path
maps there (a mirror or a ``location`` may live under another path), and
whether TLS verification may be skipped or plain HTTP used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ..image.reference import DOCKER_HUB as HUB
from ..image.reference import is_path_component, is_registry_host
from ..image.reference import normalize_registry_host as normalize_host

__all__ = [
    "HUB",
    "PULL_FROM",
    "Endpoint",
    "PullFrom",
    "ResolvedEndpoints",
    "is_digest",
    "join_location",
    "normalize_host",
    "split_location",
    "split_name",
]

PullFrom = Literal["all", "digest-only", "tag-only"]
PULL_FROM: tuple[PullFrom, ...] = ("all", "digest-only", "tag-only")


def split_name(name: str) -> tuple[str, str]:
    """``host/ns/repo`` -> (``host``, ``ns/repo``); a bare host gives an empty path."""
    host, _, path = name.strip().partition("/")
    return normalize_host(host), path.strip("/")


def split_location(text: str, *, what: str, where: str) -> tuple[str, str]:
    """Check a ``host[:port][/path]`` location and split it; ConfigError names ``where``."""
    value = text.strip()
    if not value:
        raise ConfigError(f"{where}: {what} is empty")
    if "://" in value:
        raise ConfigError(
            f"{where}: {what} {text!r} must not contain a scheme",
            hint="write host[:port][/path]; mark a plain-HTTP registry with insecure = true",
        )
    host, path = split_name(value)
    if not is_registry_host(host):
        raise ConfigError(f"{where}: {what} {text!r} does not start with a valid registry host")
    for component in path.split("/") if path else ():
        if not is_path_component(component):
            raise ConfigError(
                f"{where}: {what} {text!r} has an invalid repository component {component!r}"
            )
    return host, path


def join_location(host: str, path: str) -> str:
    return f"{host}/{path}" if path else host


def is_digest(identifier: str | None) -> bool:
    """A tag never contains ``:``, a digest always does."""
    return identifier is not None and ":" in identifier


@dataclass(frozen=True)
class Endpoint:
    """One place to read from.

    ``registry`` is the host to connect to. A repository ``R`` of the original
    name maps to ``repository_for(R)`` here: the leading ``path_from`` (the
    matched prefix's path) is replaced by ``path_to`` (the location's path).
    ``insecure`` allows TLS without verification and plain HTTP (registries.conf
    and daemon.json ``insecure``); ``plain_http`` allows plain HTTP only.
    ``source`` says which file or flag configured it, for messages;
    ``insecure_source`` which file (and line) made it ``insecure``.
    """

    registry: str
    insecure: bool = False
    plain_http: bool = False
    mirror: bool = False
    path_from: str = ""
    path_to: str = ""
    pull_from: PullFrom = "all"
    source: str = ""
    insecure_source: str = ""

    def repository_for(self, repository: str) -> str:
        if self.path_from:
            if repository != self.path_from and not repository.startswith(self.path_from + "/"):
                return repository
            rest = repository[len(self.path_from) :]
        else:
            rest = "/" + repository if repository else ""
        return (self.path_to + rest).strip("/")

    def serves(self, identifier: str | None) -> bool:
        """Is this endpoint used for a manifest asked for by ``identifier`` (tag or digest)?

        ``pull-from-mirror`` restricts mirrors to digest or tag pulls; blobs
        (``identifier`` None) are content-addressed and may come from any mirror.
        """
        if identifier is None or self.pull_from == "all":
            return True
        if self.pull_from == "digest-only":
            return is_digest(identifier)
        return not is_digest(identifier)

    def describe(self, repository: str | None = None) -> str:
        target = self.repository_for(repository) if repository is not None else self.path_to
        return join_location(self.registry, target)


@dataclass(frozen=True)
class ResolvedEndpoints:
    """The endpoints for ``name`` in the order to try them: mirrors, then the origin.

    ``blocked_by`` names the file (and line) that blocks ``name``, when one does.
    """

    name: str
    endpoints: tuple[Endpoint, ...]
    blocked_by: str | None = None

    @property
    def origin(self) -> Endpoint:
        return self.endpoints[-1]

    @property
    def mirrors(self) -> tuple[Endpoint, ...]:
        return self.endpoints[:-1]

    def for_identifier(self, identifier: str | None) -> tuple[Endpoint, ...]:
        """The endpoints to try for a manifest ``identifier`` (None: a blob)."""
        return (*(e for e in self.mirrors if e.serves(identifier)), self.origin)
