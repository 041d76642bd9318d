"""Registry credentials found, stored and erased the way podman, skopeo and docker do it.

Lookup for a repository on a registry: explicit ``--username``/``--password`` first;
then the credential helpers registries.conf lists (``credential-helpers``; the default,
and the name ``containers-auth.json``, mean the credentials files), each in turn until
one has credentials. The files (:mod:`sneaker.registry.auth_files`) are read in the
containers-auth.json(5) order: ``--authfile`` or ``$REGISTRY_AUTH_FILE`` (else podman's
and skopeo's primary file), ``~/.config/containers/auth.json``, then docker's
``config.json``. In each file: ``credHelpers[registry]``, else (docker's file only)
``credsStore``, else the ``auths`` entry, the most specific namespace key first
(``registry.example/team/app`` before ``registry.example/team`` before
``registry.example``). ``auth`` is base64 ``user:pass``, ``identitytoken`` an OAuth2
refresh token. A helper is the real ``docker-credential-<name>`` program.

``login`` stores where docker does (the helper config.json names, else config.json
itself) unless it is given ``--authfile`` (or ``$REGISTRY_AUTH_FILE`` is set): then it
writes that file in podman's format (``docker.io`` as Docker Hub's key), or the helper
its ``credHelpers`` names for the registry.

Docker Hub is found under any of its names (``docker.io``, ``index.docker.io``,
``registry-1.docker.io``, ``https://index.docker.io/v1/``); other keys may carry
a scheme or a path (``https://host``, ``http://host/v2/``) and still match.

A secret never appears in a repr, an exception message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..image.reference import DOCKER_HUB, normalize_registry_host, server_host
from .auth_files import (
    ENV_AUTH_FILE,
    AuthFile,
    auth_files,
    docker_config_dir,
    find_entry,
    read_auth_file,
    registry_keys,
    write_auth_file,
)
from .credential_helper import TOKEN_USERNAME, helper_erase, helper_get, helper_store

__all__ = [
    "CONTAINERS_AUTH_FILES",
    "DOCKER_HUB_SERVER_URL",
    "Credential",
    "config_dir",
    "erase_credential",
    "find_credential",
    "load_config",
    "normalize_registry",
    "server_url_for",
    "store_credential",
]

log = logging.getLogger(__name__)

#: The key docker writes Hub credentials under, and the ServerURL it gives helpers.
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
#: registries.conf's name, in ``credential-helpers``, for the credentials files
CONTAINERS_AUTH_FILES = "containers-auth.json"


@dataclass(frozen=True)
class Credential:
    """A user name with a password or an identity (refresh) token.

    ``source`` says where it came from (for messages); the secrets never print.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)

    def __repr__(self) -> str:
        secret = "<hidden>" if (self.password or self.identity_token) else "<none>"
        kind = "identity_token" if self.identity_token else "password"
        return f"Credential(username={self.username!r}, {kind}={secret}, source={self.source!r})"

    __str__ = __repr__


def normalize_registry(server: str) -> str:
    """The registry a config key or server address names: ``host[:port]``, lower case.

    ``https://index.docker.io/v1/`` and the other Hub names become ``docker.io``.
    """
    return normalize_registry_host(server_host(server))


def server_url_for(registry: str) -> str:
    """What docker hands a credential helper (and uses as the ``auths`` key) for ``registry``."""
    host = normalize_registry(registry)
    return DOCKER_HUB_SERVER_URL if host == DOCKER_HUB else host


def config_dir(docker_config: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``docker_config``, else ``$DOCKER_CONFIG``, else ``~/.docker``."""
    return docker_config_dir(docker_config, env)


def load_config(directory: Path) -> dict[str, Any]:
    """The parsed ``config.json`` in ``directory``; an empty dict when there is none."""
    return read_auth_file(directory / "config.json")


# -- lookup -----------------------------------------------------------------------------


def _decode_auth_entry(entry: Any, path: Path, key: str) -> Credential | None:
    if not isinstance(entry, dict):
        return None
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    token = str(entry.get("identitytoken") or "")
    encoded = entry.get("auth")
    if encoded:
        try:
            decoded = base64.b64decode(str(encoded), validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ConfigError(
                f"{path}: the 'auth' of {key!r} is not base64 user:password"
            ) from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise ConfigError(f"{path}: the 'auth' of {key!r} is not base64 user:password")
        username, password = user, secret
    credential = Credential(username, password, token, source=str(path))
    return None if credential.is_empty else credential


def _from_helper(name: str, server: str, env: Mapping[str, str] | None) -> Credential | None:
    found = helper_get(name, server, env)
    if found is None:
        return None
    username, secret = found
    source = f"docker-credential-{name}"
    if username == TOKEN_USERNAME:
        return Credential("", "", secret, source=source)
    return Credential(username, secret, "", source=source)


def _named_helper(mapping: Any, registry: str) -> str | None:
    """The helper a ``credHelpers`` mapping names for ``registry`` (any key spelling)."""
    if not isinstance(mapping, dict):
        return None
    exact = server_url_for(registry)
    keys = [exact] if isinstance(mapping.get(exact), str) else registry_keys(mapping, registry)
    for key in keys:
        value = mapping[key]
        if isinstance(value, str) and value:
            return value
    return None


def _helper_for(config: Mapping[str, Any], registry: str, docker: bool) -> str | None:
    """``credHelpers[registry]``, else (docker's config.json) ``credsStore``."""
    named = _named_helper(config.get("credHelpers"), registry)
    if named is not None or not docker:
        return named
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def _server_key(registry: str, docker: bool) -> str:
    """The key (and helper ServerURL) for ``registry``: docker's, or podman's (the host)."""
    return server_url_for(registry) if docker else registry


def _from_file(
    file: AuthFile, registry: str, repository: str | None, env: Mapping[str, str] | None
) -> Credential | None:
    config = read_auth_file(file.path)
    helper = _helper_for(config, registry, file.docker)
    if helper is not None:
        return _from_helper(helper, _server_key(registry, file.docker), env)
    found = find_entry(config.get("auths"), registry, repository, server_url_for(registry))
    if found is None:
        return None
    return _decode_auth_entry(found[1], file.path, found[0])


def _from_files(
    registry: str,
    repository: str | None,
    files: Sequence[AuthFile],
    env: Mapping[str, str] | None,
) -> Credential | None:
    for file in files:
        found = _from_file(file, registry, repository, env)
        if found is not None:
            return found
    return None


def find_credential(
    registry: str,
    *,
    repository: str | None = None,
    username: str | None = None,
    password: str | None = None,
    docker_config: Path | None = None,
    authfile: Path | None = None,
    helpers: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Credential | None:
    """The credential to use for ``repository`` on ``registry``, or None (anonymous).

    ``registry`` is ``docker.io`` or ``host[:port]``; ``repository`` (``team/app``) picks
    a namespace key when a file has one. An explicit ``username``/``password`` wins over
    anything configured. ``helpers`` is registries.conf's ``credential-helpers`` (None:
    the files only). A helper that fails is an error only when no later one answers.
    """
    if username is not None or password is not None:
        return Credential(username or "", password or "", "", source="command line")
    host = normalize_registry(registry)
    problem: ConfigError | None = None
    for helper in helpers or (CONTAINERS_AUTH_FILES,):
        try:
            if helper == CONTAINERS_AUTH_FILES:
                files = auth_files(authfile=authfile, docker_config=docker_config, env=env)
                found = _from_files(host, repository, files, env)
            else:
                found = _from_helper(helper, host, env)
        except ConfigError as exc:
            problem = problem or exc
            continue
        if found is not None:
            log.debug("credentials for %s from %s", host, found.source)
            return found
    if problem is not None:
        raise problem
    return None


# -- store and erase --------------------------------------------------------------------


def _chosen_auth_file(authfile: Path | None, env: Mapping[str, str] | None) -> AuthFile | None:
    """The file ``login`` writes when one is named: ``authfile``, else ``$REGISTRY_AUTH_FILE``."""
    named = authfile or (os.environ if env is None else env).get(ENV_AUTH_FILE)
    return AuthFile(Path(named)) if named else None


def store_credential(
    registry: str,
    credential: Credential,
    *,
    docker_config: Path | None = None,
    authfile: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Save ``credential`` for ``registry``; return where it went (a file or a helper).

    Into ``authfile`` (else ``$REGISTRY_AUTH_FILE``) when one is named, else where docker
    would: the helper config.json names, else config.json.
    """
    host = normalize_registry(registry)
    chosen = _chosen_auth_file(authfile, env)
    file = chosen or AuthFile(config_dir(docker_config, env) / "config.json", docker=True)
    config = read_auth_file(file.path)
    server = _server_key(host, file.docker)
    helper = _helper_for(config, host, file.docker)
    if helper is not None:
        if credential.identity_token:
            helper_store(helper, server, TOKEN_USERNAME, credential.identity_token, env)
        else:
            helper_store(helper, server, credential.username, credential.password, env)
        return f"docker-credential-{helper}"
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    for key in registry_keys(auths, host):
        del auths[key]
    entry: dict[str, str] = {}
    if credential.identity_token:
        entry["identitytoken"] = credential.identity_token
        if credential.username:
            entry["username"] = credential.username
    else:
        raw = f"{credential.username}:{credential.password}".encode()
        entry["auth"] = base64.b64encode(raw).decode("ascii")
    auths[server] = entry
    write_auth_file(file.path, {**config, "auths": auths})
    return str(file.path)


def erase_credential(
    registry: str,
    *,
    docker_config: Path | None = None,
    authfile: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Forget the credentials for ``registry`` where :func:`store_credential` puts them
    (its helper and its file); True when there were some. Namespace keys stay."""
    host = normalize_registry(registry)
    chosen = _chosen_auth_file(authfile, env)
    file = chosen or AuthFile(config_dir(docker_config, env) / "config.json", docker=True)
    config = read_auth_file(file.path)
    removed = False
    helper = _helper_for(config, host, file.docker)
    if helper is not None:
        removed = helper_erase(helper, _server_key(host, file.docker), env)
    auths = config.get("auths")
    keys = registry_keys(auths, host)
    if isinstance(auths, dict) and keys:
        for key in keys:
            del auths[key]
        write_auth_file(file.path, config)
        removed = True
    return removed
