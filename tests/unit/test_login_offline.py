"""login/logout without a registry: names, Docker Hub aliases, usage errors. No sockets."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from sneaker.cli.main import cli, main
from sneaker.errors import UsageError
from sneaker.verbs.login import login, login_registry, logout

HUB_KEY = "https://index.docker.io/v1/"


def auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("Registry.Example.com:5000", "registry.example.com:5000"),
        ("https://registry.example.com:5000/", "registry.example.com:5000"),
        ("http://10.0.0.1:5000/v2/", "10.0.0.1:5000"),
        ("localhost:5000", "localhost:5000"),
    ],
)
def test_login_registry_names(given: str, expected: str) -> None:
    assert login_registry(given) == expected


@pytest.mark.parametrize("bad", ["", "https://", "bad host", "-x.example"])
def test_login_registry_rejects_non_hosts(bad: str) -> None:
    with pytest.raises(UsageError):
        login_registry(bad)


@pytest.mark.parametrize("alias", ["docker.io", "index.docker.io", "https://index.docker.io/v1/"])
def test_logout_of_any_hub_alias_removes_dockers_hub_entry(tmp_path: Path, alias: str) -> None:
    config = {
        "auths": {HUB_KEY: {"auth": auth("hubuser", "hubpass")}, "other.example": {"auth": "eA=="}},
        "HttpHeaders": {"User-Agent": "kept"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert logout(alias, docker_config=tmp_path) is True
    after = json.loads((tmp_path / "config.json").read_text())
    assert after == {
        "auths": {"other.example": {"auth": "eA=="}},
        "HttpHeaders": {"User-Agent": "kept"},
    }
    assert stat.S_IMODE(os.stat(tmp_path / "config.json").st_mode) == 0o600
    assert logout(alias, docker_config=tmp_path) is False


def test_login_checks_its_arguments_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="user name"):
        login("registry.example.com", "", "pw", docker_config=tmp_path)
    with pytest.raises(UsageError, match="password is empty"):
        login("registry.example.com", "me", "", docker_config=tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_cli_password_stdin_needs_username(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    code = main(["login", "registry.example.com", "--password-stdin"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: --password-stdin needs --username"


def test_cli_logout_when_not_logged_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    result = CliRunner().invoke(cli, ["logout", "index.docker.io"])
    assert result.exit_code == 0, result.output
    assert result.output == "Not logged in to docker.io\n"
    assert not (tmp_path / "config.json").exists()


def test_cli_help_lists_login_and_logout() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "login" in result.output
    assert "logout" in result.output
    login_help = CliRunner().invoke(cli, ["login", "--help"])
    assert "--password-stdin" in login_help.output
    assert "--password " not in login_help.output  # no password on the command line


PROMPT_HOST = "reg.example:5000"

# -- login with no terminal to prompt on ---------------------------------------------------


@pytest.mark.parametrize("args", [[], ["-u", "me"]])
def test_login_without_a_terminal_cannot_prompt(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["login", PROMPT_HOST, *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "error: cannot prompt for credentials: standard input is not a terminal",
        "hint: pass --username USER --password-stdin",
    ]
    assert captured.out == ""
    assert not (tmp_path / "config.json").exists()
