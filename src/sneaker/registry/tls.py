"""TLS settings for a registry: trust store, ``--ca-cert``, ``certs.d``, ``--insecure``.

The trust store is the operating system's (``truststore``), to which ``SSL_CERT_FILE``,
``SSL_CERT_DIR``, ``--ca-cert`` and ``certs.d`` add (:func:`build_ssl_context`).

The ``certs.d`` convention, docker's and containers-certs.d(5)'s alike: a directory
``HOST[:PORT]`` under a base directory holds ``*.crt`` CA certificates to trust and
``NAME.cert`` + ``NAME.key`` client certificate pairs for mutual TLS. The base
directories (:func:`default_certs_dirs`), in order: ``~/.config/containers/certs.d``,
``~/.docker/certs.d``, ``/etc/containers/certs.d``, ``/etc/docker/certs.d``
(``$SNEAKER_CERTS_D``, a list like PATH, replaces them). The CAs of every one that has
a directory for the host are trusted; the first client certificate pair found is the
one presented.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ConfigError

__all__ = [
    "ENV_CERTS_DIRS",
    "InsecureWarning",
    "build_ssl_context",
    "certs_dirs_for",
    "default_certs_dirs",
    "warn_insecure",
]

log = logging.getLogger(__name__)

#: the certs.d base directories, separated as PATH is, replacing the defaults
ENV_CERTS_DIRS = "SNEAKER_CERTS_D"

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


def default_certs_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """The ``certs.d`` base directories of podman, skopeo and docker, the user's first."""
    environ = os.environ if env is None else env
    if ENV_CERTS_DIRS in environ:
        return [Path(p) for p in environ[ENV_CERTS_DIRS].split(os.pathsep) if p]
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return [
        home / ".config" / "containers" / "certs.d",
        home / ".docker" / "certs.d",
        Path("/etc/containers/certs.d"),
        Path("/etc/docker/certs.d"),
    ]


def certs_dirs_for(
    host: str, base_dirs: Sequence[Path] | None = None, env: Mapping[str, str] | None = None
) -> list[Path]:
    """The existing ``certs.d/HOST[:PORT]`` directories for ``host``, in order."""
    bases = default_certs_dirs(env) if base_dirs is None else tuple(base_dirs)
    found: list[Path] = []
    # certs.d names use ":" for the port; Windows-style "host-port" is not needed here.
    for base in bases:
        candidate = base / host
        if candidate.is_dir():
            found.append(candidate)
    return found


def _openssl_defaults() -> ssl.SSLContext:
    """OpenSSL's default paths (which ``SSL_CERT_FILE``/``SSL_CERT_DIR`` redirect), or
    certifi's bundle when they hold nothing."""
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


def _load_pem_files(context: ssl.SSLContext, directory: str) -> None:
    """Every certificate file in ``directory`` (an OpenSSL hashed directory, or any
    directory of PEM files) as a CA, loaded now: the OS verifier sees only those."""
    for entry in sorted(Path(directory).iterdir()):
        if entry.is_file():
            try:
                context.load_verify_locations(cafile=str(entry))
            except (OSError, ssl.SSLError, ValueError):
                log.debug("SSL_CERT_DIR: %s holds no certificate", entry)


def _add_ssl_cert_variables(context: ssl.SSLContext, environ: Mapping[str, str]) -> None:
    """``SSL_CERT_FILE`` and ``SSL_CERT_DIR``, added to the OS trust store."""
    cafile = environ.get("SSL_CERT_FILE")
    if cafile and os.path.isfile(cafile):
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load SSL_CERT_FILE {cafile}: {exc}") from None
    capath = environ.get("SSL_CERT_DIR")
    if capath and os.path.isdir(capath):
        if sys.platform in ("darwin", "win32"):
            _load_pem_files(context, capath)  # the OS verifier never reads a hashed directory
        else:
            context.load_verify_locations(capath=capath)  # OpenSSL verifies, as it reads it


def _system_context(env: Mapping[str, str] | None, insecure: bool) -> ssl.SSLContext:
    """The trust sneaker starts from (see :func:`build_ssl_context`)."""
    if insecure:
        return _openssl_defaults()
    try:
        import truststore  # the OS verifier; imported here: most commands need no TLS
    except ImportError:
        log.debug("truststore is not installed: OpenSSL's default paths are the trust store")
        return _openssl_defaults()
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _add_ssl_cert_variables(context, os.environ if env is None else env)
    return context


def build_ssl_context(
    host: str,
    *,
    ca_cert: Path | None = None,
    certs_dirs: Sequence[Path] | None = None,
    insecure: bool = False,
    env: Mapping[str, str] | None = None,
) -> ssl.SSLContext:
    """An SSL context for ``host``: system trust plus ``ca_cert`` plus ``certs.d``.

    Trusted, all together (each adds; none narrows the others): the OS trust store
    through ``truststore`` (the OS verifier on macOS and Windows, whose stores hold what
    IT departments install; on Linux OpenSSL with the system bundle, found where the
    distribution keeps it); ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``; ``ca_cert``; the CAs
    of every ``certs.d`` directory for ``host``. Without truststore the first is
    OpenSSL's default paths (which the two variables redirect), or certifi's bundle when
    the system has none. ``certs_dirs`` replaces the default ``certs.d`` base
    directories. With ``insecure`` the server certificate is not checked (client
    certificates are still presented).
    """
    context = _system_context(env, insecure)
    if ca_cert is not None:
        try:
            context.load_verify_locations(cafile=str(ca_cert))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load CA certificate {ca_cert}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
    presenting: Path | None = None
    for directory in certs_dirs_for(host, certs_dirs, env):
        presenting = _load_certs_dir(context, directory, presenting)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _load_certs_dir(
    context: ssl.SSLContext, directory: Path, presenting: Path | None
) -> Path | None:
    """Trust the CAs of ``directory``; present its client certificate unless one is
    (``presenting``) already. Returns the client certificate presented now."""
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
                    hint="certs.d needs NAME.cert and NAME.key side by side",
                )
            if presenting is not None:
                log.debug("not presenting %s: %s comes first", entry, presenting)
                continue
            try:
                context.load_cert_chain(certfile=str(entry), keyfile=str(key))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load client certificate {entry}: {exc}") from None
            log.debug("presenting client certificate %s", entry)
            presenting = entry
        elif entry.suffix == ".key" and not entry.with_suffix(".cert").is_file():
            raise ConfigError(
                f"client key {entry} has no matching certificate {entry.with_suffix('.cert').name}"
            )
    return presenting
