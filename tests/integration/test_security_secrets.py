"""Secrets stay secret and go only where they belong (see docs/security.md).

* Failing pulls run with ``--debug`` (full traces) against the token registry
  (through the loopback fault proxy, which records every ``Authorization`` it
  relays, so the bearer tokens sneaker used are known) and against the htpasswd
  TLS registry: the password (given, or from config.json or a containers auth.json),
  its Basic encoding, the identity token and every bearer token are absent from
  stdout and stderr.
* Credentials never reach a mirror or another registry named in the same
  command (a hostile registry records the headers it gets).
* The password is never in a running sneaker's command line or environment.

Redirect targets never receive ``Authorization``: proved in test_download_engine.py
(``test_blob_redirect_to_another_host_never_carries_authorization``) and in
test_registry_faults.py (``test_redirect_to_another_host_drops_authorization``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sneaker.errors import AuthError, NotFound
from tests.fixtures import faults, hostile
from tests.fixtures.faults import FaultProxy
from tests.fixtures.hostile import HostileRegistry, Reply
from tests.fixtures.registry import RegistryInfo, TokenRegistryInfo
from tests.helpers import sneaker, wait_until

pytestmark = pytest.mark.integration

fault_proxy = faults.fault_proxy  # the fixtures, made visible to this module
hostile_registry = hostile.hostile_registry

MakeProxy = Callable[..., FaultProxy]


def clean_env(tmp_path: Path, config: dict[str, object] | None = None) -> dict[str, str]:
    """A docker config of our own (``config`` as its config.json) and nothing of the machine's
    (no podman or skopeo login either)."""
    directory = tmp_path / "docker-config"
    directory.mkdir(exist_ok=True)
    if config is not None:
        (directory / "config.json").write_text(json.dumps(config))
    return {
        "DOCKER_CONFIG": str(directory),
        "XDG_RUNTIME_DIR": str(tmp_path / "xdg-run"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "REGISTRY_AUTH_FILE": "",
        "SNEAKER_CACHE_DIR": str(tmp_path / "cache"),
        "CONTAINERS_REGISTRIES_CONF": str(tmp_path / "no-registries.conf"),
        "SNEAKER_DAEMON_JSON": "",
    }


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_hidden(output: str, secrets: list[str]) -> None:
    """None of ``secrets`` (nor a long piece of one) appears in ``output``."""
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        assert secret not in output
        if len(secret) > 24:
            assert secret[8:24] not in output


def failing_debug_pull(
    ref: str, tmp_path: Path, code: int, *args: str, env: dict[str, str], stdin: str | None = None
) -> str:
    """``sneaker --debug pull``, which fails with ``code``; returns stdout + stderr."""
    result = sneaker(
        "--debug", "pull", "-q", "--retries", "0", "-o", tmp_path / "out.tar", *args, ref,
        env=env, input=stdin, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == code, result.stderr
    assert "Traceback (most recent call last)" in result.stderr  # --debug did print the trace
    assert result.stderr.splitlines()[-1].startswith(("error: ", "hint: "))
    assert not (tmp_path / "out.tar").exists()
    return result.stdout + result.stderr


@pytest.fixture
def tokened(token_registry: TokenRegistryInfo, fault_proxy: MakeProxy) -> FaultProxy:
    """The token registry behind a recording proxy; the token server's log starts empty."""
    token_registry.server.clear_requests()
    return fault_proxy(token_registry.url)


def bearer_tokens(proxy: FaultProxy) -> list[str]:
    tokens = {
        r.headers["Authorization"].split(" ", 1)[1]
        for r in proxy.seen()
        if r.headers.get("Authorization", "").startswith("Bearer ")
    }
    return sorted(tokens)


# -- passwords and tokens never printed --------------------------------------------------------


def test_debug_trace_of_a_failing_pull_shows_no_password_and_no_token(
    token_registry: TokenRegistryInfo, tokened: FaultProxy, tmp_path: Path
) -> None:
    user, password = token_registry.username, token_registry.password
    assert user
    assert password
    output = failing_debug_pull(
        f"{tokened.host}/private/no-such-image:1", tmp_path, NotFound.exit_code,
        "--username", user, "--password-stdin",
        env=clean_env(tmp_path), stdin=password + "\n",
    )  # fmt: skip
    tokens = bearer_tokens(tokened)
    assert tokens  # the registry was asked with a real token, which then stayed hidden
    assert_hidden(output, [password, basic(user, password), *tokens])
    assert any(r.had_auth for r in token_registry.server.requests)


def test_debug_trace_of_a_refused_password_does_not_show_it(
    token_registry: TokenRegistryInfo, tokened: FaultProxy, tmp_path: Path
) -> None:
    user = token_registry.username
    assert user
    wrong = "not-the-password-but-a-secret-all-the-same"
    output = failing_debug_pull(
        f"{tokened.host}/private/app:1", tmp_path, AuthError.exit_code,
        "--username", user, "--password-stdin",
        env=clean_env(tmp_path), stdin=wrong + "\n",
    )  # fmt: skip
    assert_hidden(output, [wrong, basic(user, wrong)])


def test_debug_trace_of_a_refused_password_from_an_auth_json_does_not_show_it(
    token_registry: TokenRegistryInfo, tokened: FaultProxy, tmp_path: Path
) -> None:
    """Credentials from podman's files (here --authfile, with a namespace key and the
    registry's key): the error names the file, never the password or its encoding."""
    user = token_registry.username
    assert user
    wrong = "a-wrong-password-kept-in-an-auth-json"
    other = "the-registry-key-password-never-used-here"
    authfile = tmp_path / "auth.json"
    entries = {f"{tokened.host}/private": basic(user, wrong), tokened.host: basic(user, other)}
    authfile.write_text(json.dumps({"auths": {k: {"auth": v} for k, v in entries.items()}}))
    output = failing_debug_pull(
        f"{tokened.host}/private/app:1", tmp_path, AuthError.exit_code,
        "--authfile", str(authfile), env=clean_env(tmp_path),
    )  # fmt: skip
    assert f"(from {authfile})" in output
    assert_hidden(output, [wrong, basic(user, wrong), other, basic(user, other)])


def test_identity_token_from_config_json_is_used_and_never_shown(
    token_registry: TokenRegistryInfo, tokened: FaultProxy, tmp_path: Path
) -> None:
    assert token_registry.username
    identity = token_registry.server.new_refresh_token(token_registry.username)
    config = {"auths": {tokened.host: {"identitytoken": identity}}}
    output = failing_debug_pull(
        f"{tokened.host}/private/no-such-image:1", tmp_path, NotFound.exit_code,
        env=clean_env(tmp_path, config),
    )  # fmt: skip
    posts = [r for r in token_registry.server.requests if r.method == "POST"]
    assert posts
    assert all("grant_type=refresh_token" in r.query for r in posts)
    assert_hidden(output, [identity, *bearer_tokens(tokened)])


def test_basic_auth_password_never_shown(tls_registry: RegistryInfo, tmp_path: Path) -> None:
    user, password, ca = tls_registry.username, tls_registry.password, tls_registry.ca_cert
    assert user
    assert password
    assert ca is not None
    env = clean_env(tmp_path)
    creds = ("--ca-cert", str(ca), "--username", user, "--password-stdin")
    missing = failing_debug_pull(
        f"{tls_registry.host}/no/such:1", tmp_path, NotFound.exit_code, *creds,
        env=env, stdin=password + "\n",
    )  # fmt: skip
    refused = failing_debug_pull(
        f"{tls_registry.host}/no/such:1", tmp_path, AuthError.exit_code, *creds,
        env=env, stdin="wrong-" + password + "\n",
    )  # fmt: skip
    assert_hidden(missing + refused, [password, basic(user, password), "wrong-" + password])


# -- credentials go only to their own host -------------------------------------------------------


def test_credentials_never_reach_a_mirror_or_another_registry(
    token_registry: TokenRegistryInfo,
    tokened: FaultProxy,
    hostile_registry: hostile.MakeHostile,
    tmp_path: Path,
) -> None:
    user, password = token_registry.username, token_registry.password
    assert user
    assert password
    mirror = hostile_registry()  # answers 404 to every manifest: sneaker falls back
    other = hostile_registry()  # resolved first (its blobs are never asked for)
    # it asks for credentials, as a registry that would like the user's would
    other.put("/v2/", Reply(b"{}", status=401, headers={"WWW-Authenticate": 'Basic realm="x"'}))
    blob = {"mediaType": "application/octet-stream", "digest": "sha256:" + "0" * 64, "size": 1}
    other.manifest(
        "x/y",
        "1",
        json.dumps({"schemaVersion": 2, "config": blob, "layers": [blob]}).encode(),
    )
    config = {
        "auths": {
            tokened.host: {"auth": basic(user, password)},
            "registry.example.com": {"auth": basic("someone", "else")},
        }
    }
    env = clean_env(tmp_path, config)
    origin_ref = f"{tokened.host}/private/no-such-image:1"
    mirror_flag = ("--mirror", f"{tokened.host}=http://{mirror.host}")
    # the origin has no such image: what matters is who got which header on the way
    for args, refs, stdin in (
        # explicit credentials: for the one registry named (a mirror is not it)
        (("--username", user, "--password-stdin"), (origin_ref,), password + "\n"),
        # stored credentials: each registry gets its own, the other registry none
        ((), (f"{other.host}/x/y:1", origin_ref), None),
    ):
        result = sneaker(
            "pull", "-q", "--retries", "0", "-o", tmp_path / "x.tar", *mirror_flag, *args, *refs,
            env=env, input=stdin, check=False, timeout=120,
        )  # fmt: skip
        assert result.returncode == NotFound.exit_code, result.stderr
    assert len(mirror.seen("/manifests/")) >= 2  # the mirror was asked first, both times ...
    assert bearer_tokens(tokened)  # ... then the origin, with its token
    assert other.seen("/manifests/")
    assert other.seen("/v2/")  # challenged, and still sent nothing
    for server in (mirror, other):
        assert not [r for r in server.requests if "Authorization" in r.headers]


# -- process titles ----------------------------------------------------------------------------


def test_password_is_not_in_the_command_line_or_environment_of_a_running_sneaker(
    hostile_registry: hostile.MakeHostile, tmp_path: Path
) -> None:
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("no /proc on this system")  # Linux always has it: CI never skips
    server: HostileRegistry = hostile_registry()
    server.put("/v2/slow/app/manifests/1", Reply(b"{}", status=404, delay=2.0))
    password = "a-password-only-stdin-ever-carries"
    env = {**os.environ, **clean_env(tmp_path)}
    argv = [
        sys.executable, "-m", "sneaker", "pull", "-q", "--retries", "0",
        "--username", "someone", "--password-stdin",
        "-o", str(tmp_path / "x.tar"), f"{server.host}/slow/app:1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(password.encode() + b"\n")
        proc.stdin.close()
        wait_until(lambda: bool(server.seen("/manifests/")), timeout=60, what="the pull")
        proc_dir = Path(f"/proc/{proc.pid}")
        seen = {name: (proc_dir / name).read_bytes() for name in ("cmdline", "environ", "comm")}
        assert proc.poll() is None  # still running: these were a live process's
        for name, data in seen.items():
            assert password.encode() not in data, name
        proc.wait(timeout=60)
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == NotFound.exit_code
    assert password.encode() not in stderr
