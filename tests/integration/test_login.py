"""``sneaker login``/``logout`` against real registries, then pulls that use what was stored.

Token auth (``token_registry``) and basic auth over TLS (``tls_registry``); a
credential helper program written for the tests; a temp ``DOCKER_CONFIG``.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sneaker.cli.main import cli
from sneaker.errors import AuthError, NetworkError
from sneaker.registry.options import RegistryOptions
from sneaker.settings import RegistrySettings, load_settings
from sneaker.verbs.pull import pull
from tests import helpers
from tests.fixtures.registry import RegistryInfo, TokenRegistryInfo
from tests.fixtures.seeding import Seeded

OTHER_ENTRIES: dict[str, Any] = {
    "auths": {"other.example:5000": {"auth": base64.b64encode(b"someone:else").decode()}},
    "HttpHeaders": {"X-Kept": "yes"},
    "detachKeys": "ctrl-e,e",
}

HELPER_NAME = "sneakertest"
HELPER_SCRIPT = '''#!{python}
"""docker-credential-sneakertest: a credential helper keeping secrets in a JSON file."""
import json, os, sys

path = os.environ["SNEAKERTEST_CRED_FILE"]


def load():
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {{}}


def save(data):
    with open(path + ".tmp", "w") as fh:
        json.dump(data, fh)
    os.replace(path + ".tmp", path)


verb = sys.argv[1]
payload = sys.stdin.read()
data = load()
if verb == "store":
    entry = json.loads(payload)
    data[entry["ServerURL"]] = {{"Username": entry["Username"], "Secret": entry["Secret"]}}
    save(data)
elif verb in ("get", "erase"):
    server = payload.strip()
    if server not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    if verb == "get":
        print(json.dumps({{"ServerURL": server, **data[server]}}))
    else:
        del data[server]
        save(data)
elif verb == "list":
    print(json.dumps({{k: v["Username"] for k, v in data.items()}}))
else:
    sys.exit(2)
'''


def _b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DOCKER_CONFIG directory whose config.json already holds unrelated entries (and no
    podman or skopeo login of the machine's: their files are looked for in tmp_path)."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(OTHER_ENTRIES, indent=2))
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg-run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    return directory


@pytest.fixture
def no_settings_files() -> RegistrySettings:
    return load_settings(registries_conf=[], daemon_json=[])


def sneaker(
    *args: str | os.PathLike[str], stdin: str = "", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process (environment: ours, plus ``env``)."""
    full_env = {**os.environ, "SNEAKER_DAEMON_JSON": "", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "sneaker", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


def config(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "config.json").read_text())
    return data


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_token_registry_stores_then_pull_uses_it_then_logout(
    token_registry: TokenRegistryInfo,
    seeded: Seeded,
    docker_config: Path,
    tmp_path: Path,
    no_settings_files: RegistrySettings,
) -> None:
    host, user, password = token_registry.host, token_registry.username, token_registry.password
    assert user
    assert password
    done = sneaker("login", host, "-u", user, "--password-stdin", stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    path = docker_config / "config.json"
    assert done.stdout == f"Login succeeded: credentials for {host} stored in {path}\n"
    assert f"warning: the password is stored unencrypted (base64) in {path}" in done.stderr
    assert mode(path) == 0o600
    expected_auths = {**OTHER_ENTRIES["auths"], host: {"auth": _b64(user, password)}}
    assert config(docker_config) == {**OTHER_ENTRIES, "auths": expected_auths}
    assert not [p for p in docker_config.iterdir() if p.name != "config.json"]  # no temp left

    # the stored credentials open the private repository: no username given here
    result = pull(
        [seeded.token_private.ref],
        tmp_path / "private.tar",
        cache_dir=tmp_path / "cache",
        settings=no_settings_files,
    )
    assert result.images[0].digest == seeded.token_private.digest

    out = sneaker("logout", host)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"Removed the credentials for {host}\n"
    assert config(docker_config) == OTHER_ENTRIES
    assert mode(path) == 0o600
    with pytest.raises(AuthError, match="authentication required"):
        pull(
            [seeded.token_private.ref],
            tmp_path / "again.tar",
            use_cache=False,
            settings=no_settings_files,
        )
    again = sneaker("logout", host)
    assert (again.returncode, again.stdout) == (0, f"Not logged in to {host}\n")


def test_wrong_password_is_refused_and_nothing_is_stored(
    token_registry: TokenRegistryInfo, docker_config: Path
) -> None:
    before = (docker_config / "config.json").read_bytes()
    done = sneaker(
        "login", token_registry.host, "-u", "sneaker", "--password-stdin",
        stdin="not-the-password\n",
    )  # fmt: skip
    assert done.returncode == AuthError.exit_code, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"error: access denied: the token service at {token_registry.realm} refused the "
        f"credentials of user 'sneaker' for {token_registry.host} (from command line)"
    )
    assert "not-the-password" not in done.stdout + done.stderr
    assert done.stdout == ""
    assert (docker_config / "config.json").read_bytes() == before


def test_login_tls_basic_auth_then_pull(
    tls_registry: RegistryInfo,
    seeded: Seeded,
    docker_config: Path,
    tmp_path: Path,
    no_settings_files: RegistrySettings,
) -> None:
    host, user, password = tls_registry.host, tls_registry.username, tls_registry.password
    assert user
    assert password
    assert tls_registry.ca_cert
    before = (docker_config / "config.json").read_bytes()
    wrong = sneaker(
        "login", host, "-u", user, "--password-stdin", "--ca-cert", tls_registry.ca_cert,
        stdin="wrong\n",
    )  # fmt: skip
    assert wrong.returncode == AuthError.exit_code
    assert wrong.stderr.splitlines()[0] == f"error: access denied to {host} for user {user!r}"
    assert (docker_config / "config.json").read_bytes() == before

    done = sneaker(
        "login", f"https://{host}/", "-u", user, "--password-stdin",
        "--ca-cert", tls_registry.ca_cert, stdin=password,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    assert config(docker_config)["auths"] == {  # the key is the host, as docker writes it
        **OTHER_ENTRIES["auths"],
        host: {"auth": _b64(user, password)},
    }
    assert mode(docker_config / "config.json") == 0o600
    result = pull(
        [seeded.tls.ref],
        tmp_path / "tls.tar",
        options=RegistryOptions(ca_cert=tls_registry.ca_cert),
        cache_dir=tmp_path / "cache",
        settings=no_settings_files,
    )
    assert result.images[0].digest == seeded.tls.digest


def test_login_prompts_when_no_password_stdin(
    token_registry: TokenRegistryInfo, docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, password = token_registry.username, token_registry.password
    assert user
    assert password
    # CliRunner's input is no terminal; login prompts only on one (else: exit 2)
    monkeypatch.setattr("sneaker.cli.login._interactive", lambda: True)
    result = CliRunner().invoke(cli, ["login", token_registry.host], input=f"{user}\n{password}\n")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Username" in result.output
    assert "Password" in result.output
    assert password not in result.output
    assert config(docker_config)["auths"][token_registry.host] == {"auth": _b64(user, password)}


def install_helper(directory: Path) -> tuple[Path, Path]:
    """``docker-credential-sneakertest`` in ``directory/bin``; returns (that PATH entry,
    the store file it keeps its secrets in: ``SNEAKERTEST_CRED_FILE``)."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    program = bin_dir / f"docker-credential-{HELPER_NAME}"
    program.write_text(HELPER_SCRIPT.format(python=sys.executable))
    program.chmod(0o755)
    return bin_dir, directory / "helper-store.json"


@pytest.fixture
def credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_config: Path) -> Path:
    """``docker-credential-sneakertest`` on PATH, named by config.json's credsStore."""
    bin_dir, store = install_helper(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("SNEAKERTEST_CRED_FILE", str(store))
    (docker_config / "config.json").write_text(
        json.dumps({**OTHER_ENTRIES, "credsStore": HELPER_NAME}, indent=2)
    )
    return store


def test_credential_helper_stores_gets_and_erases(
    token_registry: TokenRegistryInfo,
    seeded: Seeded,
    docker_config: Path,
    credential_helper: Path,
    tmp_path: Path,
    no_settings_files: RegistrySettings,
) -> None:
    host, user, password = token_registry.host, token_registry.username, token_registry.password
    assert user
    assert password
    before = (docker_config / "config.json").read_bytes()
    done = sneaker("login", host, "-u", user, "--password-stdin", stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"Login succeeded: credentials for {host} stored in docker-credential-{HELPER_NAME}\n"
    )
    assert "unencrypted" not in done.stderr
    assert password not in done.stdout + done.stderr
    assert json.loads(credential_helper.read_text()) == {
        host: {"Username": user, "Secret": password}
    }
    assert (docker_config / "config.json").read_bytes() == before  # the helper holds it all

    # pull asks the helper (``get``) for the credentials
    result = pull(
        [seeded.token_private.ref],
        tmp_path / "private.tar",
        cache_dir=tmp_path / "cache",
        settings=no_settings_files,
    )
    assert result.images[0].digest == seeded.token_private.digest

    out = sneaker("logout", host)
    assert (out.returncode, out.stdout) == (0, f"Removed the credentials for {host}\n")
    assert json.loads(credential_helper.read_text()) == {}
    assert (docker_config / "config.json").read_bytes() == before


def test_login_honours_insecure_from_registries_conf(
    tls_registry: RegistryInfo, docker_config: Path, tmp_path: Path
) -> None:
    host, user, password = tls_registry.host, tls_registry.username, tls_registry.password
    assert user
    assert password
    args = ("login", host, "-u", user, "--password-stdin")
    # no CA given and nothing configured: the certificate cannot be verified
    refused = sneaker(*args, stdin=password, env={"CONTAINERS_REGISTRIES_CONF": "/nonexistent"})
    assert refused.returncode == NetworkError.exit_code, refused.stderr
    assert refused.stderr.startswith("error: TLS"), refused.stderr
    conf = tmp_path / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n')
    done = sneaker(*args, stdin=password, env={"CONTAINERS_REGISTRIES_CONF": str(conf)})
    assert done.returncode == 0, done.stderr
    assert config(docker_config)["auths"][host] == {"auth": _b64(user, password)}


# -- login cannot prompt without a terminal ---------------------------------------------------


def test_login_without_a_terminal_says_so(tmp_path: Path) -> None:
    # helpers.sneaker() gives the child /dev/null as standard input
    result = helpers.sneaker(
        "login", "127.0.0.1:9", check=False, env=helpers.isolated_env(tmp_path)
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: cannot prompt for credentials: standard input is not a terminal",
        "hint: pass --username USER --password-stdin",
    ]
    assert result.stdout == ""
