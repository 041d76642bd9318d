"""The files credentials are stored in: containers-auth.json(5) files and docker's config.json.

Read in this order (:func:`auth_files`), the first that holds credentials for a
repository winning, as podman and skopeo read them:

1. ``--authfile FILE``, else ``$REGISTRY_AUTH_FILE``, else the primary file podman and
   skopeo write (``login``): ``$XDG_RUNTIME_DIR/containers/auth.json`` on Linux
   (``/run/containers/UID/auth.json`` when the variable is unset), and
   ``~/.config/containers/auth.json`` on macOS and Windows;
2. ``$XDG_CONFIG_HOME/containers/auth.json`` (``~/.config/containers/auth.json``);
3. docker's ``config.json``: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``.

Every file has the same format: ``auths`` maps a key to ``{"auth": base64("user:pass")}``
(or ``identitytoken``, or ``username``/``password``), and ``credHelpers`` maps a registry
to the helper that holds its credentials; docker's ``config.json`` may also name one
helper for every registry (``credsStore``). A key is a registry (``host[:port]``, with or
without a scheme and a path such as ``https://index.docker.io/v1/``: those name the host)
or, without a scheme, a namespace or repository in it (``registry.example/team`` or
``registry.example/team/app``): the most specific key that contains the repository wins.

Files are written atomically, readable by their owner only; a message about a file
never quotes its content (it holds secrets).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..image.reference import normalize_registry_host, server_host

__all__ = [
    "ENV_AUTH_FILE",
    "AuthFile",
    "auth_files",
    "docker_config_dir",
    "find_entry",
    "read_auth_file",
    "registry_keys",
    "write_auth_file",
]

#: podman's and skopeo's variable for the credentials file (as --authfile)
ENV_AUTH_FILE = "REGISTRY_AUTH_FILE"


@dataclass(frozen=True)
class AuthFile:
    """One credentials file; ``docker`` for docker's config.json (``credsStore``, and
    the keys docker writes: ``https://index.docker.io/v1/`` for Docker Hub)."""

    path: Path
    docker: bool = False


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME")
    return Path(home) if home else Path.home()


def docker_config_dir(docker_config: Path | None, env: Mapping[str, str] | None) -> Path:
    """``docker_config``, else ``$DOCKER_CONFIG``, else ``~/.docker``."""
    if docker_config is not None:
        return docker_config
    environ = _environ(env)
    configured = environ.get("DOCKER_CONFIG")
    return Path(configured) if configured else _home(environ) / ".docker"


def _primary(environ: Mapping[str, str]) -> Path:
    """The file podman and skopeo ``login`` write by default."""
    if not sys.platform.startswith("linux"):
        return _home(environ) / ".config" / "containers" / "auth.json"
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "containers" / "auth.json"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(f"/run/containers/{uid}/auth.json")


def auth_files(
    *,
    authfile: Path | None = None,
    docker_config: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[AuthFile]:
    """The files read for credentials, in order (see the module docstring)."""
    environ = _environ(env)
    chosen = authfile or environ.get(ENV_AUTH_FILE)
    config_home = environ.get("XDG_CONFIG_HOME") or str(_home(environ) / ".config")
    candidates = [
        AuthFile(Path(chosen) if chosen else _primary(environ)),
        AuthFile(Path(config_home) / "containers" / "auth.json"),
        AuthFile(docker_config_dir(docker_config, env) / "config.json", docker=True),
    ]
    files: list[AuthFile] = []
    for candidate in candidates:
        if all(candidate.path != seen.path for seen in files):
            files.append(candidate)
    return files


def read_auth_file(path: Path) -> dict[str, Any]:
    """The parsed file; an empty dict when there is none (or it is empty)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # The message names the position only: the file holds secrets.
        raise ConfigError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def write_auth_file(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` atomically, readable by its owner only (a new directory: 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600 on POSIX
    try:
        if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent="\t")
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def split_key(key: str) -> tuple[str, str]:
    """(registry, namespace) of an ``auths`` key: a key with a scheme names a host only."""
    text = key.strip()
    if "://" in text:
        return normalize_registry_host(server_host(text)), ""
    host, _, path = text.partition("/")
    return normalize_registry_host(server_host(host)), path.strip("/")


def find_entry(
    auths: Any, registry: str, repository: str | None, preferred: str
) -> tuple[str, Any] | None:
    """The ``(key, entry)`` of ``auths`` for ``repository`` on ``registry``: the most
    specific namespace key containing it, else a registry key (``preferred`` first)."""
    if not isinstance(auths, dict):
        return None
    best: tuple[tuple[int, bool], str, Any] | None = None
    for key, value in auths.items():
        if not isinstance(key, str):
            continue
        host, path = split_key(key)
        if host != registry:
            continue
        if path and not (repository and (repository == path or repository.startswith(path + "/"))):
            continue
        rank = (path.count("/") + 1 if path else 0, key == preferred)
        if best is None or rank > best[0]:
            best = (rank, key, value)
    return (best[1], best[2]) if best is not None else None


def registry_keys(mapping: Any, registry: str) -> list[str]:
    """The keys of ``mapping`` that name ``registry`` itself (no namespace)."""
    if not isinstance(mapping, dict):
        return []
    return [k for k in mapping if isinstance(k, str) and split_key(k) == (registry, "")]
