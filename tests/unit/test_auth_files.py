"""Credentials in the containers-auth.json(5) order and format, beside docker's config.json.

Files written here by hand, in the layout podman and skopeo use (the integration tests in
test_containers_auth.py have podman and skopeo write them); a real helper program
(``docker-credential-fake`` from test_registry_credentials) for ``credHelpers`` and
registries.conf's ``credential-helpers``.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from sneaker.errors import ConfigError
from sneaker.registry.auth_files import AuthFile, auth_files, split_key
from sneaker.registry.credentials import (
    Credential,
    erase_credential,
    find_credential,
    store_credential,
)
from sneaker.registry.mirrors import ClientFactory, TargetClientFactory
from sneaker.registry.options import RegistryOptions
from sneaker.settings import load_settings
from tests.unit.test_registry_credentials import helper_env, helper_log, helper_store

__all__ = ["helper_env"]  # the fixture, used by name below


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Every location the lookup reads, inside tmp_path."""
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
    }


@pytest.fixture
def full(env: dict[str, str], helper_env: dict[str, str]) -> dict[str, str]:
    """``env`` with the fake helper programs on PATH."""
    return {**env, **helper_env, "HOME": env["HOME"]}


def user_of(registry: str, **kwargs: Any) -> str | None:
    """The user name :func:`find_credential` finds, or None."""
    found = find_credential(registry, **kwargs)
    return found.username if found is not None else None


def runtime_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"


def config_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "containers" / "auth.json"


def docker_file(env: dict[str, str]) -> Path:
    return Path(env["DOCKER_CONFIG"]) / "config.json"


def auths(entries: dict[str, str]) -> dict[str, object]:
    """``{"auths": {key: {"auth": base64(user:pass)}}}`` from ``{key: "user:pass"}``."""
    return {"auths": {key: {"auth": b64(value)} for key, value in entries.items()}}


# -- which files, in which order --------------------------------------------------------------


def test_the_files_in_the_man_page_order(env: dict[str, str], tmp_path: Path) -> None:
    assert auth_files(env=env) == [
        AuthFile(runtime_file(env)),
        AuthFile(config_file(env)),
        AuthFile(docker_file(env), docker=True),
    ]
    named = {**env, "REGISTRY_AUTH_FILE": str(tmp_path / "env.json")}
    assert auth_files(env=named)[0] == AuthFile(tmp_path / "env.json")
    given = auth_files(authfile=tmp_path / "flag.json", env=named)
    assert [f.path for f in given] == [tmp_path / "flag.json", config_file(env), docker_file(env)]


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the per-user /run path is Linux's"
)
def test_without_xdg_variables(tmp_path: Path) -> None:
    home = tmp_path / "home"
    files = auth_files(env={"HOME": str(home)})
    assert [f.path for f in files] == [
        Path(f"/run/containers/{os.getuid()}/auth.json"),
        home / ".config" / "containers" / "auth.json",
        home / ".docker" / "config.json",
    ]


def test_a_file_named_twice_is_read_once(env: dict[str, str]) -> None:
    files = auth_files(authfile=config_file(env), env=env)
    assert [f.path for f in files] == [config_file(env), docker_file(env)]


@pytest.mark.parametrize(
    ("key", "split"),
    [
        ("reg.example", ("reg.example", "")),
        ("reg.example:5000/team/app", ("reg.example:5000", "team/app")),
        ("https://reg.example/team", ("reg.example", "")),  # a scheme: docker's URL form
        ("https://index.docker.io/v1/", ("docker.io", "")),
        ("index.docker.io/library/busybox", ("docker.io", "library/busybox")),
        ("REG.example/Team/", ("reg.example", "Team")),
    ],
)
def test_split_key(key: str, split: tuple[str, str]) -> None:
    assert split_key(key) == split


def test_the_first_file_with_credentials_wins(env: dict[str, str]) -> None:
    write_json(docker_file(env), auths({"reg.example": "docker:pw"}))
    found = find_credential("reg.example", env=env)
    assert found is not None
    assert (found.username, found.source) == ("docker", str(docker_file(env)))

    write_json(config_file(env), auths({"reg.example": "config:pw"}))
    found = find_credential("reg.example", env=env)
    assert found is not None
    assert (found.username, found.source) == ("config", str(config_file(env)))

    write_json(runtime_file(env), auths({"reg.example": "podman:pw", "other.example": "x:y"}))
    found = find_credential("reg.example", env=env)
    assert found is not None
    assert (found.username, found.password) == ("podman", "pw")
    assert find_credential("nothing.example", env=env) is None


def test_authfile_is_read_first_and_the_others_after(env: dict[str, str], tmp_path: Path) -> None:
    flag = write_json(tmp_path / "flag.json", auths({"a.example": "flag:pw"}))
    write_json(runtime_file(env), auths({"a.example": "podman:pw", "b.example": "podman:pw"}))
    write_json(docker_file(env), auths({"c.example": "docker:pw"}))
    for given in ({"authfile": flag}, {"env": {**env, "REGISTRY_AUTH_FILE": str(flag)}}):
        kwargs: dict[str, object] = {"env": env, **given}
        found = find_credential("a.example", **kwargs)  # type: ignore[arg-type]
        assert found is not None
        assert found.username == "flag"
        # the file named replaces podman's primary file; docker's is still read after it
        assert find_credential("b.example", **kwargs) is None  # type: ignore[arg-type]
        found = find_credential("c.example", **kwargs)  # type: ignore[arg-type]
        assert found is not None
        assert found.username == "docker"


# -- namespaces ---------------------------------------------------------------------------------


def test_the_most_specific_namespace_key_wins(env: dict[str, str]) -> None:
    write_json(
        runtime_file(env),
        auths(
            {
                "reg.example": "registry:pw",
                "reg.example/team": "team:pw",
                "reg.example/team/app": "app:pw",
                "reg.example/teamwork": "teamwork:pw",
            }
        ),
    )

    def user(repository: str | None) -> str:
        found = find_credential("reg.example", repository=repository, env=env)
        assert found is not None
        return found.username

    assert user("team/app") == "app"
    assert user("team/app/sub") == "app"
    assert user("team/other") == "team"
    assert user("teamwork/x") == "teamwork"
    assert user("other/app") == "registry"
    assert user(None) == "registry"


def test_a_namespace_key_alone_does_not_open_the_rest_of_the_registry(env: dict[str, str]) -> None:
    write_json(docker_file(env), auths({"reg.example/team": "team:pw"}))
    assert find_credential("reg.example", repository="other/app", env=env) is None
    assert find_credential("reg.example", env=env) is None
    found = find_credential("reg.example", repository="team/app", env=env)
    assert found is not None
    assert found.username == "team"


def test_docker_hub_namespace_keys(env: dict[str, str]) -> None:
    write_json(
        runtime_file(env),
        auths({"docker.io": "hub:pw", "docker.io/library/busybox": "busybox:pw"}),
    )
    assert user_of("index.docker.io", repository="library/busybox", env=env) == "busybox"
    assert user_of("docker.io", repository="library/alpine", env=env) == "hub"


# -- helpers named in the files ------------------------------------------------------------------


def test_cred_helpers_in_auth_json_get_the_host(
    env: dict[str, str], helper_env: dict[str, str], full: dict[str, str]
) -> None:
    write_json(
        runtime_file(env),
        {"auths": {"docker.io": {"auth": b64("file:pw")}}, "credHelpers": {"docker.io": "fake"}},
    )
    helper_store(helper_env, {"docker.io": ["helper-user", "helper-pw"]})
    found = find_credential("docker.io", env=full)
    assert found is not None
    assert (found.username, found.source) == ("helper-user", "docker-credential-fake")
    assert helper_log(helper_env) == ["get docker.io"]  # podman's key, not docker's URL


def test_creds_store_is_docker_config_json_only(
    env: dict[str, str], helper_env: dict[str, str], full: dict[str, str]
) -> None:
    write_json(runtime_file(env), {**auths({"r.example": "file:pw"}), "credsStore": "broken"})
    assert user_of("r.example", env=full) == "file"


def test_a_helper_with_nothing_lets_the_next_file_answer(
    env: dict[str, str], helper_env: dict[str, str], full: dict[str, str]
) -> None:
    write_json(runtime_file(env), {"credHelpers": {"r.example": "fake"}})
    write_json(docker_file(env), auths({"r.example": "docker:pw"}))
    assert user_of("r.example", env=full) == "docker"


# -- registries.conf credential-helpers -----------------------------------------------------


def test_credential_helpers_are_asked_in_order(
    env: dict[str, str], helper_env: dict[str, str], full: dict[str, str]
) -> None:
    write_json(runtime_file(env), auths({"r.example": "file:pw"}))
    helper_store(helper_env, {"r.example": ["helper", "pw"]})

    def user(helpers: list[str]) -> str | None:
        return user_of("r.example", helpers=helpers, env=full)

    assert user(["fake", "containers-auth.json"]) == "helper"
    assert user(["containers-auth.json", "fake"]) == "file"
    assert user(["fake"]) == "helper"
    assert user([]) == "file"  # empty: the files, as when registries.conf says nothing
    helper_store(helper_env, {})
    assert user(["fake", "containers-auth.json"]) == "file"
    assert user(["fake"]) is None


def test_a_failing_helper_is_an_error_only_when_nothing_else_answers(
    env: dict[str, str], helper_env: dict[str, str], full: dict[str, str]
) -> None:
    write_json(runtime_file(env), auths({"r.example": "file:pw"}))
    assert user_of("r.example", helpers=["broken", "containers-auth.json"], env=full) == "file"
    with pytest.raises(ConfigError, match=r"docker-credential-broken failed .*keychain locked"):
        find_credential("other.example", helpers=["broken", "containers-auth.json"], env=full)
    with pytest.raises(ConfigError, match="docker-credential-absent not found on PATH"):
        find_credential("r.example", helpers=["absent"], env=full)


def test_a_helper_name_is_never_a_path(env: dict[str, str]) -> None:
    write_json(docker_file(env), {"credsStore": "../../bin/sh"})
    with pytest.raises(ConfigError, match="invalid credential helper name"):
        find_credential("r.example", env=env)


def test_registries_conf_credential_helpers(tmp_path: Path) -> None:
    main = tmp_path / "registries.conf"
    main.write_text('credential-helpers = ["secretservice", "containers-auth.json"]\n')
    settings = load_settings(registries_conf=[main], daemon_json=[])
    assert settings.credential_helpers == ("secretservice", "containers-auth.json")
    assert not [n for n in settings.notes if "credential-helpers" in n]
    dropin = tmp_path / "override.conf"
    dropin.write_text('credential-helpers = ["pass"]\n')
    later = load_settings(registries_conf=[main, dropin], daemon_json=[])
    assert later.credential_helpers == ("pass",)  # the last file that sets it
    silent = tmp_path / "silent.conf"
    silent.write_text('[[registry]]\nlocation = "r.example"\n')
    assert load_settings(registries_conf=[main, silent], daemon_json=[]).credential_helpers == (
        "secretservice",
        "containers-auth.json",
    )
    assert load_settings(registries_conf=[], daemon_json=[]).credential_helpers is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('credential-helpers = "pass"', "must be an array of strings"),
        ('credential-helpers = ["pass", 3]', "must be an array of strings"),
        ('credential-helpers = ["/usr/bin/evil"]', "is not a helper name"),
    ],
)
def test_bad_credential_helpers_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text(f"# credentials\n{text}\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(registries_conf=[conf], daemon_json=[])
    assert str(info.value).startswith(f"{conf}, line 2: credential-helpers")


def test_client_factories_take_the_helpers_from_the_settings(tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text('credential-helpers = ["pass"]\n')
    settings = load_settings(registries_conf=[conf], daemon_json=[])
    for factory in (ClientFactory(settings), TargetClientFactory(settings)):
        assert factory.options.credential_helpers == ("pass",)
    given = RegistryOptions(credential_helpers=("containers-auth.json",))
    assert ClientFactory(settings, given).options.credential_helpers == ("containers-auth.json",)


# -- login --authfile writes podman's format; logout erases there ----------------------------


def test_store_into_an_authfile(env: dict[str, str], tmp_path: Path) -> None:
    target = write_json(
        tmp_path / "auth" / "auth.json",
        {
            **auths({"https://reg.example": "old:old", "reg.example/team": "team:pw"}),
            "kept": {"x": 1},
        },
    )
    where = store_credential("reg.example", Credential("new", "s3cret"), authfile=target, env=env)
    assert where == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    data = json.loads(target.read_text())
    assert data == {
        "auths": {
            "reg.example/team": {"auth": b64("team:pw")},  # namespace keys stay
            "reg.example": {"auth": b64("new:s3cret")},
        },
        "kept": {"x": 1},
    }
    assert not docker_file(env).exists()  # docker's config.json untouched
    assert erase_credential("reg.example", authfile=target, env=env)
    assert json.loads(target.read_text())["auths"] == {"reg.example/team": {"auth": b64("team:pw")}}
    assert not erase_credential("reg.example", authfile=target, env=env)


def test_store_for_docker_hub_uses_podmans_key(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "new-dir" / "auth.json"
    named = {**env, "REGISTRY_AUTH_FILE": str(target)}
    assert store_credential("index.docker.io", Credential("me", "pw"), env=named) == str(target)
    assert json.loads(target.read_text()) == {"auths": {"docker.io": {"auth": b64("me:pw")}}}
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


def test_store_through_the_authfile_helper(
    helper_env: dict[str, str], full: dict[str, str], tmp_path: Path
) -> None:
    target = write_json(tmp_path / "auth.json", {"credHelpers": {"reg.example": "fake"}})
    before = target.read_bytes()
    where = store_credential("reg.example", Credential("u", "pw"), authfile=target, env=full)
    assert where == "docker-credential-fake"
    assert json.loads(Path(helper_env["FAKE_HELPER_STORE"]).read_text()) == {
        "reg.example": ["u", "pw"]
    }
    assert target.read_bytes() == before
    assert erase_credential("reg.example", authfile=target, env=full)


def test_bad_json_in_an_auth_file_names_it_without_its_content(env: dict[str, str]) -> None:
    runtime_file(env).parent.mkdir(parents=True)
    runtime_file(env).write_text('{"auths": {"r": {"auth": "c2VjcmV0OnNlY3JldA=="}} oops')
    with pytest.raises(ConfigError) as info:
        find_credential("r", env=env)
    assert str(info.value).startswith(f"{runtime_file(env)} is not valid JSON (line 1")
    assert "c2VjcmV0" not in str(info.value)
