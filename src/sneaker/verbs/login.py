"""``login`` and ``logout``: check credentials against a registry, then store or erase them.

Stored where docker stores them, so docker, podman and skopeo (which read docker's
file after their own) and sneaker share one login: the credential helper that
``config.json`` names (``credHelpers`` for the registry, else ``credsStore``), otherwise
``config.json`` itself (in ``$DOCKER_CONFIG`` or ``~/.docker``, mode 0600, written
atomically, other entries untouched). Docker Hub's names (``docker.io``,
``index.docker.io``, ``https://index.docker.io/v1/``) are one registry, stored under
docker's key ``https://index.docker.io/v1/``. With ``authfile`` (``--authfile``, or
``$REGISTRY_AUTH_FILE``) they go to that containers-auth.json(5) file instead, as podman
and skopeo write it (the host as the key, ``docker.io`` for Docker Hub), or to the
helper its ``credHelpers`` names for the registry.

Nothing is stored unless the registry accepted the credentials. A password is
never printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, UsageError
from ..image.reference import normalize_registry_host, server_host
from ..registry.credentials import Credential, erase_credential, server_url_for, store_credential
from ..settings.endpoints import Endpoint, split_location

if TYPE_CHECKING:
    from ..registry.options import RegistryOptions
    from ..settings import RegistrySettings

__all__ = ["LoginResult", "login", "login_registry", "logout"]


@dataclass(frozen=True)
class LoginResult:
    """Where the credentials for ``registry`` went: a file's path or a helper program."""

    registry: str
    server: str
    stored_in: str
    helper: bool

    @property
    def plaintext(self) -> bool:
        """True when the password sits (base64-encoded, not encrypted) in a file."""
        return not self.helper


def login_registry(text: str) -> str:
    """The registry a ``login``/``logout`` argument names: ``host[:port]`` or ``docker.io``.

    Accepts what docker accepts: a bare host, a URL (``https://host:5000/``,
    ``https://index.docker.io/v1/``) or any of Docker Hub's names.
    """
    host = server_host(text)
    if not host:
        raise UsageError(f"invalid registry {text!r}", hint="name a registry: host[:port]")
    try:
        split_location(host, what="registry", where="login")
    except ConfigError:
        raise UsageError(
            f"invalid registry {text!r}: not a host[:port]",
            hint="e.g. sneaker login registry.example.com:5000",
        ) from None
    return normalize_registry_host(host)


def _endpoint(registry: str, settings: RegistrySettings | None) -> Endpoint:
    """The registry itself (no mirrors, no rewrites), with its insecure flags from the files."""
    if settings is None:
        return Endpoint(registry)
    return settings.target_endpoint(registry)


def login(
    registry: str,
    username: str,
    password: str,
    *,
    options: RegistryOptions | None = None,
    settings: RegistrySettings | None = None,
    docker_config: Path | None = None,
    authfile: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> LoginResult:
    """Check ``username``/``password`` against ``registry``; store them when it accepts them.

    Raises :class:`AuthError` when the registry refuses them (nothing is stored),
    :class:`NetworkError` when it cannot be reached, :class:`ConfigError` when the
    credential store fails.
    """
    # start-up: logout needs no HTTP client; only login loads it (urllib3)
    from ..registry.mirrors import open_endpoint_client, with_settings
    from ..registry.options import DEFAULT_OPTIONS

    host = login_registry(registry)
    if not username:
        raise UsageError("login needs a user name", hint="pass --username or answer the prompt")
    if not password:
        raise UsageError(f"login to {host}: the password is empty")
    base = options or DEFAULT_OPTIONS
    if settings is not None:
        base = with_settings(base, settings)
    config_dir = docker_config or base.docker_config
    target = authfile or base.authfile
    opts = replace(
        base, username=username, password=password, docker_config=config_dir, authfile=target
    )
    with open_endpoint_client(_endpoint(host, settings), opts, host, env) as client:
        client.ping()
    stored_in = store_credential(
        host, Credential(username, password, source="sneaker login"),
        docker_config=config_dir, authfile=target, env=env,
    )  # fmt: skip
    return LoginResult(
        registry=host,
        server=server_url_for(host),
        stored_in=stored_in,
        helper=stored_in.startswith("docker-credential-"),
    )


def logout(
    registry: str,
    *,
    docker_config: Path | None = None,
    authfile: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Erase the stored credentials for ``registry`` where ``login`` stores them; True
    when there were some."""
    return erase_credential(
        login_registry(registry), docker_config=docker_config, authfile=authfile, env=env
    )
