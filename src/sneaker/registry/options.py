"""How to reach a registry: TLS, plain HTTP, credentials, timeouts, retries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__

__all__ = ["DEFAULT_OPTIONS", "RegistryOptions"]


@dataclass(frozen=True)
class RegistryOptions:
    """Settings for one :class:`~sneaker.registry.RegistryClient`.

    ``plain_http`` lets a non-loopback registry be spoken to over http (loopback
    registries fall back to http by themselves when https fails to connect).
    ``docker_config`` is the directory holding ``config.json``; ``certs_dir``
    replaces docker's ``certs.d`` base directories. The password never prints.
    """

    ca_cert: Path | None = None
    insecure: bool = False
    plain_http: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    docker_config: Path | None = None
    certs_dir: Path | None = None
    timeout: float = 60.0
    retries: int = 5
    user_agent: str = f"sneaker/{__version__}"


#: ``RegistryOptions()``, shared as a default argument (it is frozen).
DEFAULT_OPTIONS = RegistryOptions()
