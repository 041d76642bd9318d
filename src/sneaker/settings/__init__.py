"""Registry settings from files that already exist, plus sneaker's own flags for one run.

Sources, merged for each registry (see the modules for where the files are):

* ``registries.conf`` (:mod:`.registries_conf`): per-prefix ``insecure``, ``blocked``,
  ``location`` rewrites and ``[[registry.mirror]]`` lists;
* docker's ``daemon.json`` (:mod:`.daemon_json`): ``registry-mirrors`` (Docker Hub
  only) and ``insecure-registries`` (hosts and CIDR networks);
* ``--mirror`` and ``--plain-http`` on the command line.

``--mirror`` takes ``MIRROR`` (a mirror of Docker Hub, as daemon.json's
``registry-mirrors``) or ``SOURCE=MIRROR`` (a mirror of ``SOURCE``, a registry
host or ``host/namespace`` prefix). ``MIRROR`` is ``host[:port][/path]``; with
``http://`` in front it is spoken to over plain HTTP. Repeatable.

Mirrors are tried in this order: command line, registries.conf, daemon.json; the
origin (or its registries.conf ``location``) comes last. An image keeps its
original name whichever endpoint served it.

Every verb that reads from a registry (pull, plan, inspect, unpack) reads through
:func:`sneaker.registry.mirrors.make_client_factory` (or ``client_factory_for``,
which loads the settings when none are given). Pushing
(:meth:`RegistrySettings.target_endpoint`, ``TargetClientFactory``) goes to the
named registry itself, never to a mirror or a ``location``; ``blocked`` and
``insecure`` apply to it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError, RegistryBlocked, UsageError
from .daemon_json import DaemonJson, default_daemon_json_file, load_daemon_json
from .endpoints import (
    HUB,
    Endpoint,
    ResolvedEndpoints,
    join_location,
    split_location,
    split_name,
)
from .registries_conf import (
    RegistriesConf,
    default_registries_conf_files,
    load_registries_conf,
)

__all__ = [
    "Endpoint",
    "FlagMirror",
    "RegistrySettings",
    "ResolvedEndpoints",
    "load_settings",
    "parse_mirror_flag",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlagMirror:
    """One ``--mirror``: for names under ``source_host``/``source_path``, try ``host``/``path``."""

    source_host: str
    source_path: str
    host: str
    path: str
    plain_http: bool
    text: str

    def matches(self, host: str, path: str) -> bool:
        if host != self.source_host:
            return False
        if not self.source_path:
            return True
        return path == self.source_path or path.startswith(self.source_path + "/")


def _strip_scheme(text: str) -> tuple[str, str | None]:
    lowered = text.lower()
    for scheme in ("http", "https"):
        if lowered.startswith(scheme + "://"):
            return text[len(scheme) + 3 :], scheme
    return text, None


def parse_mirror_flag(text: str) -> FlagMirror:
    """``MIRROR`` (for Docker Hub) or ``SOURCE=MIRROR``; UsageError when malformed."""
    value = text.strip()
    source_text, sep, mirror_text = value.partition("=")
    if not sep:
        source_text, mirror_text = HUB, value
    where = f"--mirror {text!r}"
    source_bare, _ = _strip_scheme(source_text.strip())
    source_bare = source_bare.rstrip("/")
    mirror_bare, scheme = _strip_scheme(mirror_text.strip())
    mirror_bare = mirror_bare.rstrip("/")
    if not source_bare or not mirror_bare:
        raise UsageError(
            f"{where}: expected MIRROR or SOURCE=MIRROR",
            hint="e.g. --mirror mirror.local:5000 (for Docker Hub) or "
            "--mirror ghcr.io=mirror.local:5000/ghcr",
        )
    try:
        source_host, source_path = split_location(source_bare, what="source", where=where)
        host, path = split_location(mirror_bare, what="mirror", where=where)
    except ConfigError as exc:  # the user's flag is at fault, not a file
        raise UsageError(
            exc.message, hint="MIRROR is host[:port][/path], optionally with http://"
        ) from None
    if source_host == HUB and source_path == "v1":
        source_path = ""
    return FlagMirror(source_host, source_path, host, path, scheme == "http", text)


def _dedupe(endpoints: list[Endpoint]) -> tuple[Endpoint, ...]:
    seen: set[tuple[str, str, str]] = set()
    kept: list[Endpoint] = []
    for endpoint in endpoints:
        key = (endpoint.registry, endpoint.path_from, endpoint.path_to)
        if key in seen:
            continue
        seen.add(key)
        kept.append(endpoint)
    return tuple(kept)


@dataclass(frozen=True)
class RegistrySettings:
    """Everything sneaker knows about registries for this run."""

    registries_conf: RegistriesConf = field(default_factory=RegistriesConf)
    daemon_json: DaemonJson = field(default_factory=DaemonJson)
    flag_mirrors: tuple[FlagMirror, ...] = ()
    plain_http: bool = False

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.registries_conf.warnings + self.daemon_json.warnings

    @property
    def notes(self) -> tuple[str, ...]:
        return self.registries_conf.notes

    @property
    def credential_helpers(self) -> tuple[str, ...] | None:
        """registries.conf's ``credential-helpers`` (None: not set)."""
        return self.registries_conf.credential_helpers

    @property
    def files(self) -> tuple[Path, ...]:
        """The settings files that were read."""
        extra = (self.daemon_json.path,) if self.daemon_json.path is not None else ()
        return self.registries_conf.files + extra

    def has_rules_for(self, registry: str) -> bool:
        """Could any repository of ``registry`` use a mirror, a rewrite or a block?"""
        host, _ = split_name(registry)
        if self.registries_conf.mentions(host):
            return True
        if any(m.source_host == host for m in self.flag_mirrors):
            return True
        return host == HUB and bool(self.daemon_json.mirrors)

    def for_registry(self, name: str) -> ResolvedEndpoints:
        """Endpoints for ``name`` (``host`` or ``host/repository``): mirrors, then the origin."""
        host, path = split_name(name)
        entry = self.registries_conf.find(host, path)
        origin = entry.origin(host, insecure=False) if entry else Endpoint(host)
        mirrors: list[Endpoint] = []
        for flag in self.flag_mirrors:
            if flag.matches(host, path):
                mirrors.append(
                    Endpoint(
                        flag.host,
                        plain_http=flag.plain_http,
                        mirror=True,
                        path_from=flag.source_path,
                        path_to=flag.path,
                        source=f"--mirror {flag.text}",
                    )
                )
        if entry is not None:
            mirrors.extend(entry.mirror_endpoints())
        if host == HUB:
            mirrors.extend(
                Endpoint(m.host, plain_http=m.plain_http, mirror=True, source=m.where)
                for m in self.daemon_json.mirrors
            )
        endpoints = [
            replace(self._insecure_by_daemon_json(e), plain_http=e.plain_http or self.plain_http)
            for e in [*mirrors, origin]
        ]
        origin_key = (endpoints[-1].registry, endpoints[-1].path_from, endpoints[-1].path_to)
        mirror_list = [
            e for e in endpoints[:-1] if (e.registry, e.path_from, e.path_to) != origin_key
        ]
        blocked_by = entry.where if entry is not None and entry.blocked else None
        full = join_location(host, path)
        return ResolvedEndpoints(full, (*_dedupe(mirror_list), endpoints[-1]), blocked_by)

    def target_endpoint(self, name: str) -> Endpoint:
        """Where a push to ``name`` (``host`` or ``host/repository``) goes.

        Always ``name``'s own registry: mirrors and ``location`` rewrites are for
        reading. ``insecure`` (registries.conf for the longest matching prefix,
        daemon.json's insecure-registries) and ``--plain-http`` apply. Blocks are
        not checked here: call :meth:`check_blocked` for each repository first.
        """
        host, path = split_name(name)
        entry = self.registries_conf.find(host, path)
        insecure = entry is not None and entry.insecure
        endpoint = Endpoint(
            host,
            insecure=insecure,
            plain_http=self.plain_http,
            source=entry.where if entry is not None else "",
            insecure_source=entry.where if entry is not None and insecure else "",
        )
        return self._insecure_by_daemon_json(endpoint)

    def _insecure_by_daemon_json(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint``, made insecure (saying where) when daemon.json lists its host."""
        if endpoint.insecure or not self.daemon_json.is_insecure(endpoint.registry):
            return endpoint
        return replace(endpoint, insecure=True, insecure_source=self.daemon_json.insecure_where)

    def check_blocked(self, name: str) -> None:
        """Raise :class:`RegistryBlocked` naming the file when a settings file blocks ``name``."""
        resolved = self.for_registry(name)
        if resolved.blocked_by is not None:
            raise RegistryBlocked(
                f"{resolved.name} is blocked by {resolved.blocked_by} (blocked = true)",
                hint="use another registry, or change that setting",
            )


def load_settings(
    *,
    mirrors: Sequence[str] = (),
    plain_http: bool = False,
    registries_conf: Sequence[Path | str] | None = None,
    daemon_json: Sequence[Path | str] | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> RegistrySettings:
    """Read the settings files and the flags.

    ``registries_conf`` and ``daemon_json`` replace the usual file lists (None:
    look where podman and docker look; an empty list: read none). ``env`` and
    ``home`` replace the environment and the home directory for that search.
    Each warning (unknown keys, ...) goes to ``warn`` (default: the log).
    """
    conf_files = (
        default_registries_conf_files(env, home)
        if registries_conf is None
        else [Path(p) for p in registries_conf]
    )
    if daemon_json is None:
        found = default_daemon_json_file(env, home)
        daemon_files = [found] if found is not None else []
    else:
        daemon_files = [Path(p) for p in daemon_json]
    settings = RegistrySettings(
        registries_conf=load_registries_conf(conf_files),
        daemon_json=load_daemon_json(daemon_files),
        flag_mirrors=tuple(parse_mirror_flag(m) for m in mirrors),
        plain_http=plain_http,
    )
    for message in settings.warnings:
        if warn is not None:
            warn(message)
        else:
            log.warning("%s", message)
    for message in settings.notes:
        log.info("%s", message)
    return settings
