"""Registry credentials found, stored and erased the way docker does it.

Lookup order for a registry: explicit ``--username``/``--password``; then
``config.json`` (in ``$DOCKER_CONFIG`` or ``~/.docker``): ``credHelpers[host]``,
else ``credsStore``, else the ``auths`` entry (``auth`` is base64 ``user:pass``,
``identitytoken`` is an OAuth2 refresh token). A helper is the real
``docker-credential-<name>`` program, spoken to on stdin/stdout.

Docker Hub is found under any of its names (``docker.io``, ``index.docker.io``,
``registry-1.docker.io``, ``https://index.docker.io/v1/``); other keys may carry
a scheme or a path (``https://host``, ``http://host/v2/``) and still match.

A secret never appears in a repr, an exception message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..image.reference import DOCKER_HUB, normalize_registry_host, server_host

if TYPE_CHECKING:
    import subprocess

__all__ = [
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
_HELPER_TIMEOUT = 60.0
_TOKEN_USERNAME = "<token>"
_NOT_FOUND_MARKERS = ("credentials not found", "not found in native keychain")


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
    if docker_config is not None:
        return docker_config
    environ = os.environ if env is None else env
    configured = environ.get("DOCKER_CONFIG")
    if configured:
        return Path(configured)
    return Path.home() / ".docker"


def load_config(directory: Path) -> dict[str, Any]:
    """The parsed ``config.json`` in ``directory``; an empty dict when there is none."""
    path = directory / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
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


def _lookup(mapping: Any, registry: str) -> tuple[str, Any] | None:
    """The entry of ``mapping`` whose key names ``registry`` (exact key first)."""
    if not isinstance(mapping, dict):
        return None
    want = normalize_registry(registry)
    exact = server_url_for(registry)
    if exact in mapping:
        return exact, mapping[exact]
    for key, value in mapping.items():
        if isinstance(key, str) and normalize_registry(key) == want:
            return key, value
    return None


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


def _helper_program(name: str, env: Mapping[str, str] | None) -> str:
    program = f"docker-credential-{name}"
    path = (env or os.environ).get("PATH")
    found = shutil.which(program, path=path)
    if found is None:
        raise ConfigError(
            f"credential helper {program} not found on PATH",
            hint="install it, or remove credsStore/credHelpers from config.json",
        )
    return found


def _clean(text: str, *secrets: str) -> str:
    out = text.strip().splitlines()[0] if text.strip() else ""
    for secret in secrets:
        if secret:
            out = out.replace(secret, "<redacted>")
    return out[:200]


def _run_helper(
    name: str, verb: str, payload: str, env: Mapping[str, str] | None, *secrets: str
) -> subprocess.CompletedProcess[str]:
    import subprocess  # only a credential helper needs it: most runs never start one

    program = _helper_program(name, env)
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


def _helper_get(name: str, registry: str, env: Mapping[str, str] | None) -> Credential | None:
    server = server_url_for(registry)
    done = _run_helper(name, "get", server, env)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).lower()
        if any(marker in output for marker in _NOT_FOUND_MARKERS):
            return None
        raise ConfigError(
            f"credential helper docker-credential-{name} failed for {server}: "
            f"{_clean(done.stderr or done.stdout) or f'exit status {done.returncode}'}"
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
    source = f"docker-credential-{name}"
    if username == _TOKEN_USERNAME:
        credential = Credential("", "", secret, source=source)
    else:
        credential = Credential(username, secret, "", source=source)
    return None if credential.is_empty else credential


def _helper_for(config: Mapping[str, Any], registry: str) -> str | None:
    found = _lookup(config.get("credHelpers"), registry)
    if found is not None and isinstance(found[1], str) and found[1]:
        return found[1]
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def find_credential(
    registry: str,
    *,
    username: str | None = None,
    password: str | None = None,
    docker_config: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Credential | None:
    """The credential to use for ``registry`` (``docker.io`` or ``host[:port]``), or None.

    An explicit ``username``/``password`` wins over anything configured.
    """
    if username is not None or password is not None:
        return Credential(username or "", password or "", "", source="command line")
    directory = config_dir(docker_config, env)
    config = load_config(directory)
    helper = _helper_for(config, registry)
    if helper is not None:
        return _helper_get(helper, registry, env)
    found = _lookup(config.get("auths"), registry)
    if found is None:
        return None
    return _decode_auth_entry(found[1], directory / "config.json", found[0])


def _write_config(directory: Path, config: Mapping[str, Any]) -> None:
    """Replace ``config.json`` atomically, readable by its owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "config.json"
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(config, out, indent="\t")
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_credential(
    registry: str,
    credential: Credential,
    *,
    docker_config: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Save ``credential`` for ``registry`` where docker would; return where it went."""
    directory = config_dir(docker_config, env)
    config = load_config(directory)
    server = server_url_for(registry)
    helper = _helper_for(config, registry)
    if helper is not None:
        if credential.identity_token:
            user, secret = _TOKEN_USERNAME, credential.identity_token
        else:
            user, secret = credential.username, credential.password
        payload = json.dumps({"ServerURL": server, "Username": user, "Secret": secret})
        done = _run_helper(helper, "store", payload, env, secret)
        if done.returncode != 0:
            raise ConfigError(
                f"credential helper docker-credential-{helper} could not store credentials "
                f"for {server}: {_clean(done.stderr or done.stdout, secret)}"
            )
        return f"docker-credential-{helper}"
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    want = normalize_registry(registry)
    for key in [k for k in auths if isinstance(k, str) and normalize_registry(k) == want]:
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
    config = {**config, "auths": auths}
    _write_config(directory, config)
    return str(directory / "config.json")


def erase_credential(
    registry: str, *, docker_config: Path | None = None, env: Mapping[str, str] | None = None
) -> bool:
    """Forget the credentials for ``registry``; True when there were some."""
    directory = config_dir(docker_config, env)
    config = load_config(directory)
    server = server_url_for(registry)
    removed = False
    helper = _helper_for(config, registry)
    if helper is not None:
        done = _run_helper(helper, "erase", server, env)
        if done.returncode == 0:
            removed = True
        else:
            output = (done.stdout + done.stderr).lower()
            if not any(marker in output for marker in _NOT_FOUND_MARKERS):
                raise ConfigError(
                    f"credential helper docker-credential-{helper} could not erase "
                    f"credentials for {server}: {_clean(done.stderr or done.stdout)}"
                )
    auths = config.get("auths")
    if isinstance(auths, dict):
        want = normalize_registry(registry)
        keys = [k for k in auths if isinstance(k, str) and normalize_registry(k) == want]
        if keys:
            for key in keys:
                del auths[key]
            _write_config(directory, config)
            removed = True
    return removed
