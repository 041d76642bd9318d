"""Credential lookup, store and erase from temp config.json files and a real helper program."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from sneaker.errors import ConfigError
from sneaker.registry.credentials import (
    DOCKER_HUB_SERVER_URL,
    Credential,
    config_dir,
    erase_credential,
    find_credential,
    normalize_registry,
    server_url_for,
    store_credential,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_config(directory: Path, config: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


HELPER = r'''#!{python}
"""A docker-credential helper test double: a JSON file as its store, a log of calls."""
import json, os, sys
store_path = os.environ["FAKE_HELPER_STORE"]
verb = sys.argv[1]
data = sys.stdin.read()
with open(store_path + ".log", "a") as log:
    log.write(verb + " " + (data if verb != "store" else json.loads(data)["ServerURL"]) + "\n")
try:
    with open(store_path) as f:
        store = json.load(f)
except FileNotFoundError:
    store = {{}}
if verb == "get":
    entry = store.get(data.strip())
    if entry is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": data.strip(), "Username": entry[0], "Secret": entry[1]}}))
elif verb == "store":
    item = json.loads(data)
    store[item["ServerURL"]] = [item["Username"], item["Secret"]]
    with open(store_path, "w") as f:
        json.dump(store, f)
elif verb == "erase":
    if store.pop(data.strip(), None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    with open(store_path, "w") as f:
        json.dump(store, f)
else:
    print("unknown verb", file=sys.stderr)
    sys.exit(2)
'''


@pytest.fixture
def helper_env(tmp_path: Path) -> dict[str, str]:
    """PATH with a real ``docker-credential-fake`` program; its store is a JSON file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    program = bindir / "docker-credential-fake"
    program.write_text(HELPER.format(python=sys.executable))
    program.chmod(program.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    broken = bindir / "docker-credential-broken"
    broken.write_text("#!/bin/sh\necho 'boom: keychain locked' >&2\nexit 3\n")
    broken.chmod(0o755)
    return {
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "FAKE_HELPER_STORE": str(tmp_path / "store.json"),
        "HOME": str(tmp_path / "home"),
    }


def helper_store(env: dict[str, str], entries: dict[str, list[str]]) -> None:
    Path(env["FAKE_HELPER_STORE"]).write_text(json.dumps(entries))


def helper_log(env: dict[str, str]) -> list[str]:
    path = Path(env["FAKE_HELPER_STORE"] + ".log")
    return path.read_text().splitlines() if path.exists() else []


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("https://Registry.Example:5000", "registry.example:5000"),
        ("http://host/v2/", "host"),
        ("host:5000/some/path", "host:5000"),
        ("  ghcr.io ", "ghcr.io"),
    ],
)
def test_normalize_registry(key: str, registry: str) -> None:
    assert normalize_registry(key) == registry


def test_server_url_for() -> None:
    assert server_url_for("docker.io") == DOCKER_HUB_SERVER_URL
    assert server_url_for("index.docker.io") == DOCKER_HUB_SERVER_URL
    assert server_url_for("ghcr.io") == "ghcr.io"


def test_config_dir_order(tmp_path: Path) -> None:
    assert config_dir(tmp_path / "x", {"DOCKER_CONFIG": "/nope"}) == tmp_path / "x"
    assert config_dir(None, {"DOCKER_CONFIG": str(tmp_path)}) == tmp_path
    assert config_dir(None, {}) == Path.home() / ".docker"


# -- lookup from config.json ---------------------------------------------------------------


def test_auth_entry(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"reg.example:5000": {"auth": b64("alice:pa:ss")}}})
    cred = find_credential("reg.example:5000", docker_config=tmp_path, env={})
    assert cred is not None
    assert (cred.username, cred.password) == ("alice", "pa:ss")
    assert cred.source == str(tmp_path / "config.json")


def test_identity_token_entry(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"https://reg.example/": {"identitytoken": "refresh-xyz"}}})
    cred = find_credential("reg.example", docker_config=tmp_path, env={})
    assert cred is not None
    assert cred.identity_token == "refresh-xyz"
    assert cred.password == ""


def test_username_password_fields(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"reg": {"username": "bob", "password": "pw"}}})
    cred = find_credential("reg", docker_config=tmp_path, env={})
    assert cred is not None
    assert (cred.username, cred.password) == ("bob", "pw")


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "docker.io"]
)
@pytest.mark.parametrize("asked", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_aliases(tmp_path: Path, key: str, asked: str) -> None:
    write_config(tmp_path, {"auths": {key: {"auth": b64("hub:pw")}}})
    cred = find_credential(asked, docker_config=tmp_path, env={})
    assert cred is not None
    assert cred.username == "hub"


@pytest.mark.parametrize("key", ["https://reg.example:5000", "http://reg.example:5000/v2/"])
def test_keys_with_scheme_and_path(tmp_path: Path, key: str) -> None:
    write_config(tmp_path, {"auths": {key: {"auth": b64("u:p")}}})
    cred = find_credential("reg.example:5000", docker_config=tmp_path, env={})
    assert cred is not None
    assert cred.username == "u"


def test_other_registry_and_missing_config(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"a.example": {"auth": b64("u:p")}}})
    assert find_credential("b.example", docker_config=tmp_path, env={}) is None
    assert find_credential("a.example", docker_config=tmp_path / "none", env={}) is None


def test_docker_config_env(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"r": {"auth": b64("env:pw")}}})
    cred = find_credential("r", env={"DOCKER_CONFIG": str(tmp_path)})
    assert cred is not None
    assert cred.username == "env"


def test_explicit_username_overrides(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"r": {"auth": b64("file:pw")}}})
    cred = find_credential("r", username="cli", password="x", docker_config=tmp_path, env={})
    assert cred is not None
    assert (cred.username, cred.password, cred.source) == ("cli", "x", "command line")


def test_invalid_json_does_not_echo_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"auths": {"r": {"auth": "c2VjcmV0"}} oops')
    with pytest.raises(ConfigError) as info:
        find_credential("r", docker_config=tmp_path, env={})
    assert "not valid JSON" in str(info.value)
    assert "c2VjcmV0" not in str(info.value)


def test_bad_auth_field(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"r": {"auth": b64("no-colon-here")}}})
    with pytest.raises(ConfigError, match="not base64 user:password") as info:
        find_credential("r", docker_config=tmp_path, env={})
    assert "no-colon-here" not in str(info.value)


# -- credential helpers ---------------------------------------------------------------------


def test_cred_helpers_per_registry(tmp_path: Path, helper_env: dict[str, str]) -> None:
    write_config(
        tmp_path,
        {
            "auths": {"reg.example": {"auth": b64("file:pw")}},
            "credHelpers": {"reg.example": "fake"},
        },
    )
    helper_store(helper_env, {"reg.example": ["helper-user", "helper-secret"]})
    cred = find_credential("reg.example", docker_config=tmp_path, env=helper_env)
    assert cred is not None
    assert (cred.username, cred.password) == ("helper-user", "helper-secret")
    assert cred.source == "docker-credential-fake"
    assert helper_log(helper_env) == ["get reg.example"]


def test_creds_store_for_hub_gets_the_v1_url(tmp_path: Path, helper_env: dict[str, str]) -> None:
    write_config(tmp_path, {"credsStore": "fake"})
    helper_store(helper_env, {DOCKER_HUB_SERVER_URL: ["<token>", "identity-abc"]})
    cred = find_credential("docker.io", docker_config=tmp_path, env=helper_env)
    assert cred is not None
    assert cred.identity_token == "identity-abc"
    assert cred.username == ""
    assert helper_log(helper_env) == [f"get {DOCKER_HUB_SERVER_URL}"]


def test_helper_not_found_means_anonymous(tmp_path: Path, helper_env: dict[str, str]) -> None:
    write_config(tmp_path, {"credsStore": "fake"})
    assert find_credential("other.example", docker_config=tmp_path, env=helper_env) is None


def test_cred_helper_wins_over_creds_store(tmp_path: Path, helper_env: dict[str, str]) -> None:
    write_config(tmp_path, {"credsStore": "broken", "credHelpers": {"https://r.example": "fake"}})
    helper_store(helper_env, {"r.example": ["u", "p"]})
    cred = find_credential("r.example", docker_config=tmp_path, env=helper_env)
    assert cred is not None
    assert cred.username == "u"


def test_failing_helper(tmp_path: Path, helper_env: dict[str, str]) -> None:
    write_config(tmp_path, {"credsStore": "broken"})
    with pytest.raises(ConfigError, match=r"docker-credential-broken failed .*keychain locked"):
        find_credential("r.example", docker_config=tmp_path, env=helper_env)


def test_missing_helper(tmp_path: Path, helper_env: dict[str, str]) -> None:
    write_config(tmp_path, {"credsStore": "absent"})
    with pytest.raises(ConfigError, match="docker-credential-absent not found on PATH"):
        find_credential("r.example", docker_config=tmp_path, env=helper_env)


# -- store and erase ------------------------------------------------------------------------


def test_store_into_config_json(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {
            "auths": {"https://reg.example/": {"auth": b64("old:old")}, "keep": {"auth": "x"}},
            "proxies": {"default": {}},
        },
    )
    where = store_credential(
        "reg.example", Credential("new", "s3cret"), docker_config=tmp_path, env={}
    )
    path = tmp_path / "config.json"
    assert where == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = json.loads(path.read_text())
    assert config["proxies"] == {"default": {}}
    assert config["auths"] == {"keep": {"auth": "x"}, "reg.example": {"auth": b64("new:s3cret")}}
    cred = find_credential("reg.example", docker_config=tmp_path, env={})
    assert cred is not None
    assert cred.password == "s3cret"
    assert not list(tmp_path.glob(".config.json.*"))  # no temp file left behind


def test_store_hub_and_identity_token(tmp_path: Path) -> None:
    store_credential(
        "docker.io", Credential("me", "", "idtok"), docker_config=tmp_path / "new", env={}
    )
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    assert config == {
        "auths": {DOCKER_HUB_SERVER_URL: {"identitytoken": "idtok", "username": "me"}}
    }


def test_store_and_erase_through_helper(tmp_path: Path, helper_env: dict[str, str]) -> None:
    write_config(tmp_path, {"credHelpers": {"reg.example": "fake"}})
    where = store_credential(
        "reg.example", Credential("u", "pw"), docker_config=tmp_path, env=helper_env
    )
    assert where == "docker-credential-fake"
    assert json.loads(Path(helper_env["FAKE_HELPER_STORE"]).read_text()) == {
        "reg.example": ["u", "pw"]
    }
    cred = find_credential("reg.example", docker_config=tmp_path, env=helper_env)
    assert cred is not None
    assert cred.password == "pw"
    assert erase_credential("reg.example", docker_config=tmp_path, env=helper_env)
    assert find_credential("reg.example", docker_config=tmp_path, env=helper_env) is None
    assert not erase_credential("reg.example", docker_config=tmp_path, env=helper_env)


def test_failing_store_does_not_leak_the_secret(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    echo = bindir / "docker-credential-echo"
    echo.write_text("#!/bin/sh\ncat >&2\nexit 1\n")  # echoes the secret back, as a bad helper might
    echo.chmod(0o755)
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    write_config(tmp_path, {"credsStore": "echo"})
    with pytest.raises(ConfigError) as info:
        store_credential("r", Credential("u", "topsecret"), docker_config=tmp_path, env=env)
    assert "topsecret" not in str(info.value)
    assert "<redacted>" in str(info.value)


def test_erase_from_config_json(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {"auths": {"https://index.docker.io/v1/": {"auth": "x"}, "docker.io": {}, "o": {}}},
    )
    assert erase_credential("docker.io", docker_config=tmp_path, env={})
    assert json.loads((tmp_path / "config.json").read_text()) == {"auths": {"o": {}}}
    assert not erase_credential("docker.io", docker_config=tmp_path, env={})


# -- secrets never print --------------------------------------------------------------------


def test_credential_repr_hides_secrets() -> None:
    for cred in (Credential("alice", "hunter2"), Credential("", "", "tok-hunter2")):
        for text in (repr(cred), str(cred), f"{cred}", repr([cred])):
            assert "hunter2" not in text
    assert "alice" in repr(Credential("alice", "hunter2"))
