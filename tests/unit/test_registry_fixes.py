"""Registry transport fixes without a network: the insecure warning and where it comes from,
the login hint, and ``login`` with no terminal to prompt on."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from sneaker.cli.main import cli, main
from sneaker.cli.options import build_registry_options
from sneaker.errors import AuthError
from sneaker.registry import RegistryOptions
from sneaker.registry.messages import Headers
from sneaker.registry.mirrors import endpoint_options
from sneaker.registry.problems import Subject, raise_for_status
from sneaker.registry.tls import InsecureWarning, warn_insecure
from sneaker.settings import load_settings
from sneaker.verbs.login import _endpoint as login_endpoint

HOST = "reg.example:5000"

# -- 2: the insecure warning names what asked for it, once per host --------------------------


def test_insecure_warning_names_its_source_once_per_host() -> None:
    with pytest.warns(InsecureWarning) as seen:
        warn_insecure("unit-fixes.example:1", "--insecure")
    assert [str(w.message) for w in seen] == [
        "TLS certificate verification is disabled for unit-fixes.example:1 (from --insecure)"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_insecure("unit-fixes.example:1", "/etc/docker/daemon.json, line 2")  # not again


def test_the_flag_is_the_source_and_the_cli_does_not_warn_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = build_registry_options(None, True, False, None, False)
    assert (options.insecure, options.insecure_source) == (True, "--insecure")
    assert build_registry_options(None, False, False, None, False).insecure_source == ""
    assert capsys.readouterr().err == ""  # the transport warns, once per registry


def _daemon_json(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"debug": True, "insecure-registries": [HOST]}, indent=2))
    return path, f"{path}, line 3"


def _registries_conf(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "registries.conf"
    path.write_text(f'\n[[registry]]\nlocation = "{HOST}"\ninsecure = true\n')
    return path, f"{path}, line 2"


@pytest.mark.parametrize("kind", ["daemon.json", "registries.conf"])
def test_insecure_from_a_settings_file_names_the_file(kind: str, tmp_path: Path) -> None:
    if kind == "daemon.json":
        path, where = _daemon_json(tmp_path)
        settings = load_settings(registries_conf=[], daemon_json=[path])
    else:
        path, where = _registries_conf(tmp_path)
        settings = load_settings(registries_conf=[path], daemon_json=[])
    for endpoint in (
        settings.for_registry(f"{HOST}/team/app").origin,  # pull, inspect
        settings.target_endpoint(f"{HOST}/team/app"),  # push
        login_endpoint(HOST, settings),  # login
    ):
        options = endpoint_options(endpoint, RegistryOptions(), HOST)
        assert (options.insecure, options.insecure_source) == (True, where)
        # --insecure given as well: the flag is what the user asked for
        flagged = RegistryOptions(insecure=True, insecure_source="--insecure")
        assert endpoint_options(endpoint, flagged, HOST).insecure_source == "--insecure"
    other = settings.for_registry("other.example/team/app").origin
    assert endpoint_options(other, RegistryOptions(), "other.example").insecure is False


# -- 4: the login hint names options that exist ---------------------------------------------


def test_auth_hint_names_username_and_password_stdin() -> None:
    with pytest.raises(AuthError) as info:
        raise_for_status(
            401,
            Headers(),
            b"",
            subject=Subject(HOST, "team/app", "manifest", "1"),
            method="GET",
            url=f"https://{HOST}/v2/team/app/manifests/1",
        )
    assert info.value.hint == (
        f"run 'sneaker login {HOST}' or pass --username with --password-stdin "
        "(or the repository does not exist)"
    )
    pull_help = CliRunner().invoke(cli, ["pull", "--help"]).output
    assert "--username" in pull_help
    assert "--password-stdin" in pull_help


# -- 5: login with no terminal to prompt on ---------------------------------------------------


@pytest.mark.parametrize("args", [[], ["-u", "me"]])
def test_login_without_a_terminal_cannot_prompt(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["login", HOST, *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "error: cannot prompt for credentials: standard input is not a terminal",
        "hint: pass --username USER --password-stdin",
    ]
    assert captured.out == ""
    assert not (tmp_path / "config.json").exists()
