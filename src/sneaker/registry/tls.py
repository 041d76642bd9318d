"""TLS settings for a registry: trust store, ``--ca-cert``, docker's ``certs.d``, ``--insecure``.

docker's convention: ``/etc/docker/certs.d/HOST[:PORT]/`` (and the same under
``~/.docker/certs.d``) holds ``*.crt`` CA certificates to trust and
``NAME.cert`` + ``NAME.key`` client certificate pairs for mutual TLS.
"""

from __future__ import annotations

import logging
import os
import ssl
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError

__all__ = [
    "DEFAULT_CERTS_DIRS",
    "InsecureWarning",
    "build_ssl_context",
    "certs_dirs_for",
    "warn_insecure",
]

log = logging.getLogger(__name__)

#: Where docker looks for per-registry certificates.
DEFAULT_CERTS_DIRS = (Path("/etc/docker/certs.d"), Path.home() / ".docker" / "certs.d")

_warned: set[str] = set()


class InsecureWarning(UserWarning):
    """TLS verification is off for a registry."""


def warn_insecure(host: str, source: str = "") -> None:
    """Warn once per host and process that certificates are not verified.

    ``source`` says what asked for it (``--insecure``, ``FILE, line N``). The CLI
    shows the warning as one ``warning:`` line (:mod:`sneaker.cli.render`).
    """
    if host in _warned:
        return
    _warned.add(host)
    warnings.warn(
        f"TLS certificate verification is disabled for {host}"
        + (f" (from {source})" if source else ""),
        InsecureWarning,
        stacklevel=3,
    )


def certs_dirs_for(host: str, base_dirs: Sequence[Path] | None = None) -> list[Path]:
    """The existing ``certs.d/HOST[:PORT]`` directories for ``host`` (as in the reference)."""
    bases = DEFAULT_CERTS_DIRS if base_dirs is None else tuple(base_dirs)
    found: list[Path] = []
    # certs.d names use ":" for the port; Windows-style "host-port" is not needed here.
    for base in bases:
        candidate = base / host
        if candidate.is_dir():
            found.append(candidate)
    return found


def _system_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    paths = ssl.get_default_verify_paths()
    has_system = any(
        p and os.path.exists(p) for p in (paths.cafile, paths.capath, paths.openssl_cafile)
    )
    if not has_system:
        try:
            import certifi
        except ImportError:  # pragma: no cover - certifi comes with most installs
            log.debug("no system trust store and no certifi")
        else:
            context.load_verify_locations(cafile=certifi.where())
    return context


def build_ssl_context(
    host: str,
    *,
    ca_cert: Path | None = None,
    certs_dirs: Sequence[Path] | None = None,
    insecure: bool = False,
) -> ssl.SSLContext:
    """An SSL context for ``host``: system trust plus ``ca_cert`` plus ``certs.d``.

    ``certs_dirs`` replaces docker's default ``certs.d`` base directories.
    With ``insecure`` the server certificate is not checked (client
    certificates are still presented).
    """
    context = _system_context()
    if ca_cert is not None:
        try:
            context.load_verify_locations(cafile=str(ca_cert))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load CA certificate {ca_cert}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
    for directory in certs_dirs_for(host, certs_dirs):
        _load_certs_dir(context, directory)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _load_certs_dir(context: ssl.SSLContext, directory: Path) -> None:
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise ConfigError(f"cannot read {directory}: {exc.strerror or exc}") from None
    for entry in entries:
        if entry.suffix == ".crt":
            try:
                context.load_verify_locations(cafile=str(entry))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load CA certificate {entry}: {exc}") from None
            log.debug("trusting CA %s", entry)
        elif entry.suffix == ".cert":
            key = entry.with_suffix(".key")
            if not key.is_file():
                raise ConfigError(
                    f"client certificate {entry} has no matching key {key.name}",
                    hint="docker's certs.d needs NAME.cert and NAME.key side by side",
                )
            try:
                context.load_cert_chain(certfile=str(entry), keyfile=str(key))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load client certificate {entry}: {exc}") from None
            log.debug("presenting client certificate %s", entry)
        elif entry.suffix == ".key" and not entry.with_suffix(".cert").is_file():
            raise ConfigError(
                f"client key {entry} has no matching certificate {entry.with_suffix('.cert').name}"
            )
