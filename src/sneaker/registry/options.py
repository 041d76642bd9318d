"""How to reach a registry: TLS, plain HTTP, credentials, timeouts, retries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import UsageError, summarize
from .lowspeed import DEFAULT_LOW_SPEED, LowSpeedLimit

__all__ = ["DEFAULT_OPTIONS", "RegistryOptions", "check_explicit_credentials"]


@dataclass(frozen=True)
class RegistryOptions:
    """Settings for one :class:`~sneaker.registry.RegistryClient`.

    ``plain_http`` lets a non-loopback registry be spoken to over http (loopback
    registries fall back to http by themselves when https fails to connect).
    ``docker_config`` is the directory holding ``config.json``; ``authfile`` the
    credentials file read first (``--authfile``; None: ``$REGISTRY_AUTH_FILE``, else
    podman's); ``credential_helpers`` registries.conf's ``credential-helpers`` (None:
    the credentials files; see :mod:`sneaker.registry.credentials`). ``certs_dir``
    replaces the ``certs.d`` base directories. The password never prints.
    ``insecure_source`` says what asked for ``insecure`` (``--insecure``, or the
    settings file and line), for the warning that verification is off.
    ``low_speed`` is the low-speed limit (:mod:`sneaker.registry.lowspeed`).
    """

    ca_cert: Path | None = None
    insecure: bool = False
    plain_http: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    docker_config: Path | None = None
    authfile: Path | None = None
    credential_helpers: tuple[str, ...] | None = None
    certs_dir: Path | None = None
    timeout: float = 60.0
    retries: int = 5
    #: a body slower than this is abandoned (and, for a blob, continued by a new request)
    low_speed: LowSpeedLimit = DEFAULT_LOW_SPEED
    user_agent: str = f"sneaker/{__version__}"
    insecure_source: str = ""


#: ``RegistryOptions()``, shared as a default argument (it is frozen).
DEFAULT_OPTIONS = RegistryOptions()


def check_explicit_credentials(options: RegistryOptions | None, registries: Iterable[str]) -> None:
    """Refuse ``--username``/``--password`` for a command that names several registries.

    Explicit credentials would otherwise go to each of them: a password belongs to one
    registry. Stored credentials (``sneaker login``, config.json) are per registry already.
    """
    if options is None or (options.username is None and options.password is None):
        return
    named = sorted(set(registries))
    if len(named) > 1:
        raise UsageError(
            f"--username names one registry's account, and these images come from "
            f"{len(named)}: {summarize(named)}",
            hint="pull from one registry at a time, or store each registry's credentials "
            "with 'sneaker login REGISTRY'",
        )
