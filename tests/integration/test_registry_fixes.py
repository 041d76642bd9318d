"""Registry transport fixes, against the real fixture registries.

* An insecure registry (``--insecure``, daemon.json ``insecure-registries``,
  registries.conf ``insecure = true``) works for pull, inspect and login, on the
  plain-HTTP ``registry`` and on the HTTPS ``tls_registry`` (whose certificate is
  then not checked), with exactly one ``warning:`` line naming what asked for it.
* A push to a registry that is down reaches it once and stops: one round of
  retries, one error line; a host found unreachable is not retried again by the
  same client.
* ``login`` with no terminal to prompt on says so (exit 2).

Images are small OCI layouts put into the registries by ``skopeo copy``.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sneaker.errors import NetworkError
from sneaker.registry import RegistryClient, RegistryOptions
from sneaker.registry.messages import Request
from sneaker.registry.tls import InsecureWarning
from sneaker.registry.transport import Transport
from sneaker.verbs.push import push
from tests.fixtures.random_images import make_random_layout
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import seed_oci_layout
from tests.helpers import clean_env, sneaker

pytestmark = pytest.mark.integration

REPO = "fixes/app"
TAG = "1"


@dataclass(frozen=True)
class Image:
    registry: RegistryInfo
    digest: str

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def ref(self) -> str:
        return f"{self.registry.host}/{REPO}:{TAG}"

    @property
    def creds(self) -> tuple[str, ...]:
        """``--username U --password-stdin`` for a registry with basic auth, else nothing."""
        if self.registry.username is None:
            return ()
        return ("--username", self.registry.username, "--password-stdin")

    @property
    def stdin(self) -> str | None:
        return self.registry.password


@pytest.fixture(scope="module")
def images(
    registry: RegistryInfo, tls_registry: RegistryInfo, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Image]:
    layout = make_random_layout(tmp_path_factory.mktemp("fixes"), [3000, 2000], seed="fixes")
    return {
        name: Image(
            info, seed_oci_layout(info, layout.path, "img", f"{REPO}:{TAG}", all_images=False)
        )
        for name, info in (("plain", registry), ("tls", tls_registry))
    }


def insecure_warning(host: str, source: str) -> str:
    return f"warning: TLS certificate verification is disabled for {host} (from {source})"


def daemon_json(tmp_path: Path, host: str) -> tuple[Path, str]:
    """A daemon.json listing ``host`` as insecure; (its path, FILE, line N of the key)."""
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"debug": False, "insecure-registries": [host]}, indent=2))
    return path, f"{path}, line 3"


def registries_conf(tmp_path: Path, host: str) -> tuple[Path, str]:
    """A registries.conf marking ``host`` insecure; (its path, FILE, line N of the table)."""
    path = tmp_path / "registries.conf"
    path.write_text(f'# test\n\n[[registry]]\nlocation = "{host}"\ninsecure = true\n')
    return path, f"{path}, line 3"


# -- 1 and 2: insecure registries work, with one warning that says why -----------------------


@pytest.mark.parametrize("kind", ["plain", "tls"])
def test_pull_with_the_insecure_flag(kind: str, images: dict[str, Image], tmp_path: Path) -> None:
    image = images[kind]
    out = tmp_path / "ins.tar"
    result = sneaker(
        "pull", "-q", "--insecure", *image.creds, image.ref, "-o", out,
        input=image.stdin, env=clean_env(tmp_path),
    )  # fmt: skip
    assert image.digest in result.stdout
    assert out.is_file()
    assert result.stderr.splitlines() == [insecure_warning(image.host, "--insecure")]


@pytest.mark.parametrize("kind", ["plain", "tls"])
def test_pull_insecure_from_daemon_json(
    kind: str, images: dict[str, Image], tmp_path: Path
) -> None:
    image = images[kind]
    path, where = daemon_json(tmp_path, image.host)
    out = tmp_path / "d.tar"
    result = sneaker(
        "pull", "-q", *image.creds, image.ref, "-o", out,
        input=image.stdin, env=clean_env(tmp_path, SNEAKER_DAEMON_JSON=str(path)),
    )  # fmt: skip
    assert image.digest in result.stdout
    assert result.stderr.splitlines() == [insecure_warning(image.host, where)]


@pytest.mark.parametrize("kind", ["plain", "tls"])
def test_pull_insecure_from_registries_conf(
    kind: str, images: dict[str, Image], tmp_path: Path
) -> None:
    image = images[kind]
    path, where = registries_conf(tmp_path, image.host)
    out = tmp_path / "r.tar"
    result = sneaker(
        "pull", "-q", *image.creds, image.ref, "-o", out,
        input=image.stdin, env=clean_env(tmp_path, CONTAINERS_REGISTRIES_CONF=str(path)),
    )  # fmt: skip
    assert image.digest in result.stdout
    assert result.stderr.splitlines() == [insecure_warning(image.host, where)]


def test_the_flag_is_named_when_a_file_says_so_too(
    images: dict[str, Image], tmp_path: Path
) -> None:
    image = images["tls"]
    path, _ = daemon_json(tmp_path, image.host)
    result = sneaker(
        "pull", "-q", "--insecure", *image.creds, image.ref, "-o", tmp_path / "x.tar",
        input=image.stdin, env=clean_env(tmp_path, SNEAKER_DAEMON_JSON=str(path)),
    )  # fmt: skip
    assert result.stderr.splitlines() == [insecure_warning(image.host, "--insecure")]


@pytest.mark.parametrize("kind", ["plain", "tls"])
def test_inspect_with_the_insecure_flag(
    kind: str, images: dict[str, Image], tmp_path: Path
) -> None:
    image = images[kind]
    result = sneaker(
        "inspect", "--insecure", *image.creds, image.ref,
        input=image.stdin, env=clean_env(tmp_path),
    )  # fmt: skip
    assert image.digest in result.stdout
    assert result.stderr.splitlines() == [insecure_warning(image.host, "--insecure")]


@pytest.mark.parametrize("route", ["flag", "daemon.json", "registries.conf"])
@pytest.mark.parametrize("kind", ["plain", "tls"])
def test_login_to_an_insecure_registry(
    kind: str, route: str, images: dict[str, Image], tmp_path: Path
) -> None:
    image = images[kind]
    user = image.registry.username or "someone"
    password = image.registry.password or "anything"  # the plain registry has no auth
    args: tuple[str, ...] = ()
    env = clean_env(tmp_path)
    if route == "flag":
        args, source = ("--insecure",), "--insecure"
    elif route == "daemon.json":
        path, source = daemon_json(tmp_path, image.host)
        env["SNEAKER_DAEMON_JSON"] = str(path)
    else:
        path, source = registries_conf(tmp_path, image.host)
        env["CONTAINERS_REGISTRIES_CONF"] = str(path)
    result = sneaker(
        "login", *args, image.host, "-u", user, "--password-stdin", input=password, env=env
    )
    assert result.stdout.startswith(f"Login succeeded: credentials for {image.host} stored in ")
    lines = result.stderr.splitlines()
    assert lines[0] == insecure_warning(image.host, source)
    assert [line for line in lines if "TLS" in line or "Warning" in line] == lines[:1]
    stored = json.loads((tmp_path / "docker-config" / "config.json").read_text())
    assert image.host in stored["auths"]


def test_urllib3_does_not_warn_about_each_unverified_request(images: dict[str, Image]) -> None:
    """sneaker warns once per registry; urllib3's per-request InsecureRequestWarning stays
    out, even where the warning filters are reset after the client was made."""
    info = images["tls"].registry
    options = RegistryOptions(
        insecure=True, insecure_source="a test", username=info.username, password=info.password
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureWarning)
        client = RegistryClient(info.host, options)
    with client, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert client.head_manifest(REPO, TAG) is not None
    assert [str(w.message) for w in seen] == []


# -- 3: a registry that is down is reached once --------------------------------------------


@pytest.fixture
def dead_host() -> Iterator[str]:
    """``127.0.0.1:PORT`` where nothing listens: the port is bound (so nobody takes it), not
    listening, and a connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout of one image with three gzip blobs (none needs compressing first)."""
    return make_random_layout(tmp_path_factory.mktemp("fixes-push"), [3000, 2000]).path


def test_push_to_a_registry_that_is_down_tries_it_once(
    archive: Path,
    dead_host: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in clean_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO, logger="sneaker.registry.transport")
    with pytest.raises(NetworkError) as info:
        push(archive, f"{dead_host}/x/y:1", options=RegistryOptions(retries=2), jobs=4)
    assert str(info.value) == (
        f"cannot connect to {dead_host}: connection refused over https and http (after 3 attempts)"
    )
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2, [r.getMessage() for r in retries]


def test_push_to_a_registry_that_is_down_prints_one_error(
    archive: Path, dead_host: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    result = sneaker(
        "push", "-q", "--retries", "1", archive, f"{dead_host}/x/y:1",
        check=False, env=clean_env(tmp_path),
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == NetworkError.exit_code
    assert result.stderr.splitlines() == [
        f"error: cannot connect to {dead_host}: connection refused over https and http "
        "(after 2 attempts)",
        f"hint: is a registry listening at {dead_host}?",
    ]
    assert elapsed < 20  # one round of (at most 1 s of) backoff, not one per blob


def test_a_host_found_unreachable_is_not_retried_again(dead_host: str) -> None:
    slept: list[float] = []
    transport = Transport(dead_host, RegistryOptions(retries=3), sleep=slept.append)
    request = Request("GET", transport.url("/v2/"))
    with pytest.raises(NetworkError) as first:
        transport.send(request)
    assert len(slept) == 3
    with pytest.raises(NetworkError) as second:
        transport.send(request)
    assert len(slept) == 3  # no new round of retries
    assert (second.value.message, second.value.hint) == (first.value.message, first.value.hint)
    # another client tries again
    again: list[float] = []
    with pytest.raises(NetworkError):
        Transport(dead_host, RegistryOptions(retries=1), sleep=again.append).send(request)
    assert len(again) == 1


# -- 5: login cannot prompt without a terminal -----------------------------------------------


def test_login_without_a_terminal_says_so(tmp_path: Path) -> None:
    # helpers.sneaker() gives the child /dev/null as standard input
    result = sneaker("login", "127.0.0.1:9", check=False, env=clean_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: cannot prompt for credentials: standard input is not a terminal",
        "hint: pass --username USER --password-stdin",
    ]
    assert result.stdout == ""
