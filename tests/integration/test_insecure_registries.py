"""Insecure registries, against the real fixture registries.

An insecure registry (``--insecure``, daemon.json ``insecure-registries``,
registries.conf ``insecure = true``) works for pull, inspect and login, on the
plain-HTTP ``registry`` and on the HTTPS ``tls_registry`` (whose certificate is
then not checked), with exactly one ``warning:`` line naming what asked for it.

Images are small OCI layouts put into the registries by ``skopeo copy``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from sneaker.registry import RegistryClient, RegistryOptions
from sneaker.registry.tls import InsecureWarning
from tests.fixtures.random_images import make_random_layout
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import seed_oci_layout
from tests.helpers import isolated_env, sneaker

pytestmark = pytest.mark.integration

REPO = "insecure/app"
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
    layout = make_random_layout(tmp_path_factory.mktemp("insecure"), [3000, 2000], seed="fixes")
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


# -- insecure registries work, with one warning that says why -----------------------------


@pytest.mark.parametrize("kind", ["plain", "tls"])
def test_pull_with_the_insecure_flag(kind: str, images: dict[str, Image], tmp_path: Path) -> None:
    image = images[kind]
    out = tmp_path / "ins.tar"
    result = sneaker(
        "pull", "-q", "--insecure", *image.creds, image.ref, "-o", out,
        input=image.stdin, env=isolated_env(tmp_path),
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
        input=image.stdin, env=isolated_env(tmp_path, SNEAKER_DAEMON_JSON=str(path)),
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
        input=image.stdin, env=isolated_env(tmp_path, CONTAINERS_REGISTRIES_CONF=str(path)),
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
        input=image.stdin, env=isolated_env(tmp_path, SNEAKER_DAEMON_JSON=str(path)),
    )  # fmt: skip
    assert result.stderr.splitlines() == [insecure_warning(image.host, "--insecure")]


@pytest.mark.parametrize("kind", ["plain", "tls"])
def test_inspect_with_the_insecure_flag(
    kind: str, images: dict[str, Image], tmp_path: Path
) -> None:
    image = images[kind]
    result = sneaker(
        "inspect", "--insecure", *image.creds, image.ref,
        input=image.stdin, env=isolated_env(tmp_path),
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
    env = isolated_env(tmp_path)
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
