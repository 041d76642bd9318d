"""podman's and skopeo's logins are sneaker's, and sneaker's --authfile login is theirs.

The real peers write the credentials (``podman login``, ``skopeo login``: with
``--authfile``, and to their default file under ``$XDG_RUNTIME_DIR``) against the
token-auth registry and the htpasswd TLS registry, then ``sneaker pull`` reads them;
``sneaker login --authfile FILE`` writes a file that ``skopeo inspect --authfile`` and
``podman pull --authfile`` accept. Namespace keys (``host/private``) are written by
podman and chosen over the registry's key; registries.conf's ``credential-helpers``
names a helper program. Every sneaker run has an environment of its own
(``isolated_env``): nothing of this machine's logins is read.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from sneaker.errors import AuthError
from tests.fixtures.podman import Podman
from tests.fixtures.registry import RegistryInfo, TokenRegistryInfo
from tests.fixtures.seeding import Seeded
from tests.fixtures.tools import skopeo
from tests.helpers import isolated_env, sneaker
from tests.integration.test_login import HELPER_NAME, install_helper

pytestmark = pytest.mark.integration


def b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def secrets_of(registry: RegistryInfo) -> tuple[str, str]:
    assert registry.username
    assert registry.password
    return registry.username, registry.password


def tls_of(registry: RegistryInfo) -> tuple[str, str, Path, Path]:
    """(user, password, skopeo's --cert-dir, sneaker's --ca-cert) of the TLS registry."""
    assert registry.cert_dir is not None
    assert registry.ca_cert is not None
    return (*secrets_of(registry), registry.cert_dir, registry.ca_cert)


def pull(
    ref: str, tmp_path: Path, env: dict[str, str], *args: str | Path, check: bool = True
) -> str:
    """``sneaker pull -q ARGS REF``; returns stdout + stderr (failing when ``check``)."""
    out = tmp_path / "out.tar"
    out.unlink(missing_ok=True)
    done = sneaker("pull", "-q", "--retries", "0", *args, ref, "-o", out,
                   env=env, check=check, timeout=300)  # fmt: skip
    if check:
        assert out.is_file()
    return f"{done.returncode}\n{done.stdout}{done.stderr}"


def refused(ref: str, tmp_path: Path, env: dict[str, str], *args: str | Path) -> str:
    text = pull(ref, tmp_path, env, *args, check=False)
    assert text.startswith(f"{AuthError.exit_code}\n"), text
    return text


# -- podman login -> sneaker pull ---------------------------------------------------------------


def test_podman_login_authfile_is_used_by_pull(
    token_registry: TokenRegistryInfo, seeded: Seeded, podman: Podman, tmp_path: Path
) -> None:
    user, password = secrets_of(token_registry)
    authfile = tmp_path / "podman-auth.json"
    podman.run("login", "--authfile", authfile, "--tls-verify=false", "-u", user,
               "--password-stdin", token_registry.host, input=password.encode())  # fmt: skip
    assert json.loads(authfile.read_text())["auths"] == {
        token_registry.host: {"auth": b64(user, password)}
    }
    env = isolated_env(tmp_path, inherit=True)
    ref = seeded.token_private.ref
    assert "authentication required" in refused(ref, tmp_path, env)
    text = pull(ref, tmp_path, env, "--authfile", authfile)
    assert password not in text
    pull(ref, tmp_path, {**env, "REGISTRY_AUTH_FILE": str(authfile)})


def test_podman_login_to_its_default_file_is_used_by_pull(
    token_registry: TokenRegistryInfo, seeded: Seeded, podman: Podman, tmp_path: Path
) -> None:
    user, password = secrets_of(token_registry)
    env = isolated_env(tmp_path, inherit=True)
    runtime = Path(env["XDG_RUNTIME_DIR"])
    runtime.mkdir(mode=0o700)
    podman.run("login", "--tls-verify=false", "-u", user, "--password-stdin",
               token_registry.host, input=password.encode(),
               env={"REGISTRY_AUTH_FILE": "", "XDG_RUNTIME_DIR": str(runtime)})  # fmt: skip
    written = runtime / "containers" / "auth.json"
    assert token_registry.host in json.loads(written.read_text())["auths"]
    pull(seeded.token_private.ref, tmp_path, env)

    # sneaker logout leaves podman's file alone (it erases where docker stores) and says so
    done = sneaker("logout", token_registry.host, env=env)
    assert done.stdout == f"Not logged in to {token_registry.host}\n"
    assert done.stderr == (
        f"note: credentials for {token_registry.host} remain in {written}, which pulls read too\n"
    )
    done = sneaker("logout", "--authfile", written, token_registry.host, env=env)
    assert done.stdout == f"Removed the credentials for {token_registry.host}\n"
    assert done.stderr == ""
    assert json.loads(written.read_text())["auths"] == {}
    assert "authentication required" in refused(seeded.token_private.ref, tmp_path, env)


def test_a_namespace_login_wins_over_the_registry_key(
    token_registry: TokenRegistryInfo, seeded: Seeded, podman: Podman, tmp_path: Path
) -> None:
    user, password = secrets_of(token_registry)
    authfile = tmp_path / "auth.json"
    namespace = f"{token_registry.host}/private"
    podman.run("login", "--authfile", authfile, "--tls-verify=false", "-u", user,
               "--password-stdin", namespace, input=password.encode())  # fmt: skip
    data = json.loads(authfile.read_text())
    assert list(data["auths"]) == [namespace]  # podman wrote a namespace key
    wrong = "not-the-password-of-the-registry-key"
    data["auths"][token_registry.host] = {"auth": b64(user, wrong)}
    authfile.write_text(json.dumps(data))
    env = isolated_env(tmp_path, inherit=True)
    text = pull(seeded.token_private.ref, tmp_path, env, "--authfile", authfile)  # private/app
    assert password not in text

    # the namespace key names another namespace: the registry key (the wrong one) is used
    data["auths"][f"{token_registry.host}/elsewhere"] = data["auths"].pop(namespace)
    authfile.write_text(json.dumps(data))
    text = refused(seeded.token_private.ref, tmp_path, env, "--authfile", authfile)
    assert f"refused the credentials of user {user!r}" in text
    assert f"(from {authfile})" in text
    assert wrong not in text
    assert password not in text


# -- skopeo login (basic auth over TLS) -> sneaker pull -----------------------------------------


def test_skopeo_login_authfile_is_used_by_pull(
    tls_registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    user, password, cert_dir, ca_cert = tls_of(tls_registry)
    authfile = tmp_path / "skopeo-auth.json"
    skopeo("login", "--authfile", authfile, "--cert-dir", cert_dir, "-u", user,
           "--password-stdin", tls_registry.host, input=password.encode())  # fmt: skip
    env = isolated_env(tmp_path, inherit=True)
    ca = ("--ca-cert", ca_cert)
    refused(seeded.tls.ref, tmp_path, env, *ca)
    text = pull(seeded.tls.ref, tmp_path, env, *ca, "--authfile", authfile)
    assert password not in text


def test_skopeo_login_to_its_default_file_is_used_by_pull(
    tls_registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    user, password, cert_dir, ca_cert = tls_of(tls_registry)
    env = isolated_env(tmp_path, inherit=True)
    runtime = Path(env["XDG_RUNTIME_DIR"])
    runtime.mkdir(mode=0o700)
    skopeo("login", "--cert-dir", cert_dir, "-u", user, "--password-stdin",
           tls_registry.host, input=password.encode(),
           env={"REGISTRY_AUTH_FILE": "", "XDG_RUNTIME_DIR": str(runtime)})  # fmt: skip
    assert (runtime / "containers" / "auth.json").is_file()
    pull(seeded.tls.ref, tmp_path, env, "--ca-cert", ca_cert)


# -- sneaker login --authfile -> skopeo and podman ------------------------------------------------


def test_sneaker_login_authfile_is_accepted_by_skopeo_and_podman(
    token_registry: TokenRegistryInfo, seeded: Seeded, podman: Podman, tmp_path: Path
) -> None:
    user, password = secrets_of(token_registry)
    env = isolated_env(tmp_path, inherit=True)
    authfile = tmp_path / "login" / "auth.json"
    done = sneaker("login", "--authfile", authfile, "-u", user, "--password-stdin",
                   token_registry.host, input=password, env=env)  # fmt: skip
    assert done.stdout == (
        f"Login succeeded: credentials for {token_registry.host} stored in {authfile}\n"
    )
    assert password not in done.stdout + done.stderr
    assert f'"credHelpers" for {token_registry.host} in that file' in done.stderr
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
    assert json.loads(authfile.read_text()) == {
        "auths": {token_registry.host: {"auth": b64(user, password)}}
    }
    assert not (Path(env["DOCKER_CONFIG"]) / "config.json").exists()  # docker's: untouched

    ref = seeded.token_private.ref
    raw = skopeo("inspect", "--raw", "--tls-verify=false", "--authfile", authfile,
                 f"docker://{ref}").stdout  # fmt: skip
    assert json.loads(raw)["schemaVersion"] == 2
    podman.run("pull", "--tls-verify=false", "--authfile", authfile, ref)
    assert podman.inspect_image(ref)["Digest"] == seeded.token_private.digest
    got = podman.run("login", "--get-login", "--authfile", authfile, token_registry.host)
    assert got.stdout.strip() == user

    done = sneaker("logout", "--authfile", authfile, token_registry.host, env=env)
    assert done.stdout == f"Removed the credentials for {token_registry.host}\n"
    assert json.loads(authfile.read_text()) == {"auths": {}}


def test_sneaker_login_authfile_over_tls_is_accepted_by_skopeo(
    tls_registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    user, password, cert_dir, ca_cert = tls_of(tls_registry)
    env = isolated_env(tmp_path, inherit=True)
    authfile = tmp_path / "auth.json"
    sneaker("login", "--ca-cert", ca_cert, "-u", user, "--password-stdin",
            tls_registry.host, input=password,
            env={**env, "REGISTRY_AUTH_FILE": str(authfile)})  # fmt: skip
    raw = skopeo("inspect", "--raw", "--cert-dir", cert_dir,
                 "--authfile", authfile, f"docker://{seeded.tls.ref}").stdout  # fmt: skip
    assert json.loads(raw)["schemaVersion"] == 2


# -- registries.conf credential-helpers --------------------------------------------------------


def test_registries_conf_credential_helpers_name_the_helper(
    token_registry: TokenRegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    user, password = secrets_of(token_registry)
    bin_dir, store = install_helper(tmp_path)
    # podman's convention: a helper is asked for the registry's host
    store.write_text(json.dumps({token_registry.host: {"Username": user, "Secret": password}}))
    conf = tmp_path / "registries.conf"
    env = isolated_env(
        tmp_path,
        inherit=True,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        SNEAKERTEST_CRED_FILE=str(store),
        CONTAINERS_REGISTRIES_CONF=str(conf),
    )
    conf.write_text('credential-helpers = ["containers-auth.json"]\n')
    refused(seeded.token_private.ref, tmp_path, env)
    conf.write_text(f'credential-helpers = ["containers-auth.json", "{HELPER_NAME}"]\n')
    text = pull(seeded.token_private.ref, tmp_path, env)
    assert password not in text
