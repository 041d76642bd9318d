"""Credential helper programs (``docker-credential-NAME``), as docker, podman and skopeo run them.

A helper is a program on PATH spoken to with one verb as its argument and a payload on
standard input: ``get`` (the server, answered by ``{"Username": ..., "Secret": ...}``;
the user name ``<token>`` marks an identity token), ``store`` (``{"ServerURL": ...,
"Username": ..., "Secret": ...}``) and ``erase`` (the server). "credentials not found"
in its output means it holds nothing for that server.

Nothing a helper prints reaches a message unredacted: only its first line, at most 200
characters, with the secret it was handed replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import subprocess

__all__ = ["TOKEN_USERNAME", "helper_erase", "helper_get", "helper_store"]

#: the user name a helper stores an identity (refresh) token under
TOKEN_USERNAME = "<token>"
_HELPER_TIMEOUT = 60.0
_NOT_FOUND_MARKERS = ("credentials not found", "not found in native keychain")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _program(name: str, env: Mapping[str, str] | None) -> str:
    program = f"docker-credential-{name}"
    if not _NAME.fullmatch(name):
        raise ConfigError(f"invalid credential helper name {name!r}: expected a program suffix")
    found = shutil.which(program, path=(env or os.environ).get("PATH"))
    if found is None:
        raise ConfigError(
            f"credential helper {program} not found on PATH",
            hint="install it, or remove it from config.json (credsStore, credHelpers), "
            "auth.json (credHelpers) or registries.conf (credential-helpers)",
        )
    return found


def _first_line(text: str, *secrets: str) -> str:
    out = text.strip().splitlines()[0] if text.strip() else ""
    for secret in secrets:
        if secret:
            out = out.replace(secret, "<redacted>")
    return out[:200]


def _not_found(done: subprocess.CompletedProcess[str]) -> bool:
    output = (done.stdout + done.stderr).lower()
    return any(marker in output for marker in _NOT_FOUND_MARKERS)


def _run(
    name: str, verb: str, payload: str, env: Mapping[str, str] | None
) -> subprocess.CompletedProcess[str]:
    import subprocess  # only a credential helper needs it: most runs never start one

    program = _program(name, env)
    try:
        return subprocess.run(
            [program, verb],
            input=payload,
            capture_output=True,
            text=True,
            timeout=_HELPER_TIMEOUT,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"credential helper docker-credential-{name} {verb} did not answer "
            f"within {_HELPER_TIMEOUT:.0f} s"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot run credential helper docker-credential-{name}: {exc.strerror or exc}"
        ) from None


def helper_get(name: str, server: str, env: Mapping[str, str] | None) -> tuple[str, str] | None:
    """(user name, secret) that helper ``name`` holds for ``server``; None when it has none."""
    done = _run(name, "get", server, env)
    if done.returncode != 0:
        if _not_found(done):
            return None
        raise ConfigError(
            f"credential helper docker-credential-{name} failed for {server}: "
            f"{_first_line(done.stderr or done.stdout) or f'exit status {done.returncode}'}"
        )
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise ConfigError(
            f"credential helper docker-credential-{name} answered something that is not JSON"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"credential helper docker-credential-{name}: expected a JSON object")
    username = str(data.get("Username") or "")
    secret = str(data.get("Secret") or "")
    return (username, secret) if username or secret else None


def helper_store(
    name: str, server: str, username: str, secret: str, env: Mapping[str, str] | None
) -> None:
    """Hand ``username``/``secret`` for ``server`` to helper ``name``."""
    payload = json.dumps({"ServerURL": server, "Username": username, "Secret": secret})
    done = _run(name, "store", payload, env)
    if done.returncode != 0:
        raise ConfigError(
            f"credential helper docker-credential-{name} could not store credentials "
            f"for {server}: {_first_line(done.stderr or done.stdout, secret)}"
        )


def helper_erase(name: str, server: str, env: Mapping[str, str] | None) -> bool:
    """Have helper ``name`` forget ``server``; True when it held something."""
    done = _run(name, "erase", server, env)
    if done.returncode == 0:
        return True
    if _not_found(done):
        return False
    raise ConfigError(
        f"credential helper docker-credential-{name} could not erase "
        f"credentials for {server}: {_first_line(done.stderr or done.stdout)}"
    )
