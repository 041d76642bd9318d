"""plan -> fetch.sh (a shell and curl only) -> assemble, against real registries.

fetch.sh runs with a PATH holding nothing but a directory of symlinks to
dash (as ``sh``), curl, sha256sum and the few base tools it names, which
proves it needs nothing else. The token registry's ``public/`` repository
makes it fetch an anonymous bearer token itself; ``private/`` needs
SNEAKER_USER/SNEAKER_PASSWORD.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sneaker.archive import open_archive
from tests.fixtures import faults, shaping
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.images import BuiltImages
from tests.fixtures.multiarch import MultiArch
from tests.fixtures.registry import RegistryInfo, TokenRegistryInfo
from tests.fixtures.seeding import Seeded
from tests.fixtures.tools import skopeo
from tests.helpers import need, run

pytestmark = pytest.mark.integration

fault_proxy = faults.fault_proxy  # the fixture, made visible to this module
shaping_proxy = shaping.shaping_proxy  # the fixture, made visible to this module

#: what fetch.sh may use besides sh and curl (its header says the same)
SCRIPT_TOOLS = ("curl", "sha256sum", "sed", "tr", "wc", "mkdir", "mv", "rm")
HINT = (
    "hint: run fetch.sh in the plan directory again (it fetches what is missing and replaces "
    "what is damaged), or fetch those files from urls.txt"
)


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def curl_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of symlinks: the whole PATH fetch.sh gets."""
    bin_dir = tmp_path_factory.mktemp("curl-only-bin")
    (bin_dir / "sh").symlink_to(need("dash"))
    for tool in SCRIPT_TOOLS:
        (bin_dir / tool).symlink_to(need(tool))
    return bin_dir


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """sneaker with no stored credentials and a private cache."""
    root = tmp_path_factory.mktemp("cli-env")
    (root / "docker").mkdir()
    (root / "docker" / "config.json").write_text("{}")
    return {"DOCKER_CONFIG": str(root / "docker"), "SNEAKER_CACHE_DIR": str(root / "cache")}


def sneaker(
    env: dict[str, str], *args: str | os.PathLike[str], check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "sneaker", *args], env=env, check=check, input=input)


def fetch_sh(
    plan_dir: Path, bin_dir: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``sh fetch.sh`` with PATH = ``bin_dir``, TMPDIR = :func:`tmpdir_of` and nothing else
    in the environment; afterwards no temporary state is left, there or in the plan."""
    tmpdir = tmpdir_of(plan_dir)
    result = subprocess.run(
        [str(bin_dir / "sh"), "fetch.sh"],
        cwd=plan_dir,
        env={"PATH": str(bin_dir), "TMPDIR": str(tmpdir), **(extra or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert list(tmpdir.iterdir()) == [], "fetch.sh removed its private directory"
    assert hidden_files(plan_dir) == [], "fetch.sh left nothing hidden in the plan"
    return result


def tmpdir_of(plan_dir: Path) -> Path:
    """The TMPDIR fetch.sh gets: beside the plan directory."""
    tmpdir = plan_dir.parent / f"{plan_dir.name}-tmpdir"
    tmpdir.mkdir(exist_ok=True)
    return tmpdir


def hidden_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*"))


def wait_group_gone(group: int, seconds: float) -> None:
    """Wait until no process of fetch.sh's group (no job, no curl) is left."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, "processes of fetch.sh outlived it"
        time.sleep(0.05)


def plan_json(plan_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((plan_dir / "plan.json").read_text())
    return data


def blob_files(plan_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in (plan_dir / "blobs" / "sha256").iterdir() if p.is_file()}


def only_manifest(plan_dir: Path) -> dict[str, Any]:
    (image,) = plan_json(plan_dir)["images"]
    doc: dict[str, Any] = json.loads((plan_dir / image["root"]["path"]).read_text())
    return doc


def largest_layer(plan_dir: Path) -> tuple[int, int, str]:
    """(1-based position, number of layers, hex) of the largest layer of the only image."""
    layers = only_manifest(plan_dir)["layers"]
    position = max(range(len(layers)), key=lambda i: int(layers[i]["size"]))
    return position + 1, len(layers), str(layers[position]["digest"]).split(":", 1)[1]


def copy_plan(plan_dir: Path, dest: Path) -> Path:
    shutil.copytree(plan_dir, dest, symlinks=True)
    return dest


# -- the token registry's public repository: anonymous token fetched by fetch.sh ----------


@pytest.fixture(scope="module")
def public_plan(
    seeded: Seeded, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("public") / "plan"
    result = sneaker(cli_env, "plan", seeded.token_public.ref, "-o", out, "--json")
    summary: dict[str, Any] = json.loads(result.stdout)
    return out, summary


@pytest.fixture(scope="module")
def public_fetched(
    public_plan: tuple[Path, dict[str, Any]],
    curl_only: Path,
    token_registry: TokenRegistryInfo,
) -> tuple[Path, subprocess.CompletedProcess[str], list[Any]]:
    plan_dir, _ = public_plan
    token_registry.server.clear_requests()
    result = fetch_sh(plan_dir, curl_only)
    return plan_dir, result, list(token_registry.server.requests)


def test_plan_directory(
    public_plan: tuple[Path, dict[str, Any]], seeded: Seeded, token_registry: TokenRegistryInfo
) -> None:
    plan_dir, summary = public_plan
    host = token_registry.host
    image = seeded.token_public
    assert summary["images"][0]["digest"] == image.digest
    assert summary["plan_digest"].startswith("sha256:")

    doc = plan_json(plan_dir)
    assert doc["format"] == "sneaker-plan"
    assert doc["version"] == 1
    (entry,) = doc["images"]
    assert entry["reference"] == f"{host}/public/app:1"
    assert entry["registry"] == host
    assert entry["api"] == f"http://{host}/v2/"
    assert entry["repository"] == "public/app"
    assert entry["source_digest"] == image.digest
    assert entry["root"]["digest"] == image.digest
    assert entry["root"]["path"] == f"manifests/sha256-{image.digest[7:]}.json"
    raw = (plan_dir / entry["root"]["path"]).read_bytes()
    assert len(raw) == entry["root"]["size"]

    kinds = [b["kind"] for b in entry["blobs"]]
    assert kinds[0] == "config"
    assert set(kinds[1:]) == {"layer"}
    assert entry["blobs"][0]["digest"] == image.config_digest
    base = f"http://{host}/v2/public/app/blobs/"
    assert [b["url"] for b in entry["blobs"]] == [base + b["digest"] for b in entry["blobs"]]
    assert (plan_dir / "urls.txt").read_text().splitlines() == [b["url"] for b in entry["blobs"]]

    sums = (plan_dir / "SHA256SUMS").read_text().splitlines()
    for blob in entry["blobs"]:
        assert f"{blob['digest'][7:]}  blobs/sha256/{blob['digest'][7:]}" in sums
    assert f"{image.digest[7:]}  {entry['root']['path']}" in sums

    # configs come with the plan; layers are left to fetch.sh
    assert set(blob_files(plan_dir)) == {image.config_digest[7:]}
    assert os.access(plan_dir / "fetch.sh", os.X_OK)
    names = [p.name for p in plan_dir.rglob("*")]
    assert not [n for n in names if ":" in n], "file names must be Windows-safe"
    assert sorted(p.name for p in plan_dir.iterdir()) == [
        "README.txt",
        "SHA256SUMS",
        "blobs",
        "fetch.sh",
        "manifests",
        "plan.json",
        "urls.txt",
    ]
    assert not [p for p in plan_dir.parent.iterdir() if p.name.endswith(".tmp")]


def test_fetch_sh_gets_an_anonymous_token_with_curl_only(
    public_fetched: tuple[Path, subprocess.CompletedProcess[str], list[Any]],
) -> None:
    plan_dir, result, requests = public_fetched
    assert result.returncode == 0, result.stdout + result.stderr
    assert "blobs are present and checked" in result.stdout
    token_requests = [r for r in requests if r.path == "/token"]
    assert token_requests, "fetch.sh must ask the token service itself"
    assert all(not r.had_auth for r in token_requests), "anonymous: no credentials sent"
    scopes = [urllib.parse.parse_qs(r.query).get("scope") for r in token_requests]
    assert ["repository:public/app:pull"] in scopes
    entry = plan_json(plan_dir)["images"][0]
    assert set(blob_files(plan_dir)) == {b["digest"][7:] for b in entry["blobs"]}
    run([need("sha256sum"), "--quiet", "-c", "SHA256SUMS"], cwd=plan_dir)


def test_fetch_sh_resumes_and_replaces_damaged_files(
    public_fetched: tuple[Path, subprocess.CompletedProcess[str], list[Any]],
    curl_only: Path,
    tmp_path: Path,
) -> None:
    plan_dir = copy_plan(public_fetched[0], tmp_path / "plan")
    _, _, layer_hex = largest_layer(plan_dir)
    layer = plan_dir / "blobs" / "sha256" / layer_hex
    data = layer.read_bytes()
    half = len(data) // 2
    (layer.parent / f"{layer_hex}.part").write_bytes(data[:half])
    layer.unlink()
    config_hex = plan_json(plan_dir)["images"][0]["blobs"][0]["digest"][7:]
    config = plan_dir / "blobs" / "sha256" / config_hex
    config.write_bytes(b"x" * config.stat().st_size)

    result = fetch_sh(plan_dir, curl_only)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming sha256:{layer_hex} at {half} of {len(data)} bytes" in result.stdout
    assert f"sha256:{config_hex}: the file already there is damaged" in result.stderr
    assert layer.read_bytes() == data
    assert not (layer.parent / f"{layer_hex}.part").exists()
    run([need("sha256sum"), "--quiet", "-c", "SHA256SUMS"], cwd=plan_dir)


def test_assemble_docker_archive_loads_and_runs(
    public_fetched: tuple[Path, subprocess.CompletedProcess[str], list[Any]],
    public_plan: tuple[Path, dict[str, Any]],
    cli_env: dict[str, str],
    docker: DockerDaemon,
    built_images: BuiltImages,
    token_registry: TokenRegistryInfo,
    tmp_path: Path,
) -> None:
    plan_dir = public_fetched[0]
    pin = public_plan[1]["plan_digest"]
    out = tmp_path / "app.tar"
    result = sneaker(cli_env, "assemble", plan_dir, "-o", out, "--plan-digest", pin)
    assert f"wrote {out} (docker archive," in result.stdout
    name = f"{token_registry.host}/public/app:1"
    loaded = docker.run("load", "-i", str(out)).stdout
    assert f"Loaded image: {name}" in loaded
    try:
        ran = docker.run("run", "--rm", "--network", "none", name)
        assert ran.stdout.strip() == built_images.app_output
    finally:
        docker.run("rmi", name, check=False)


def test_assemble_oci_archive(
    public_fetched: tuple[Path, subprocess.CompletedProcess[str], list[Any]],
    cli_env: dict[str, str],
    seeded: Seeded,
    tmp_path: Path,
) -> None:
    out = tmp_path / "app-oci.tar"
    sneaker(cli_env, "assemble", public_fetched[0], "-o", out, "--format", "oci")
    inspected = json.loads(skopeo("inspect", f"oci-archive:{out}").stdout)
    assert inspected["Digest"] == seeded.token_public.digest
    raw_config = json.loads(skopeo("inspect", "--raw", f"oci-archive:{out}").stdout)
    assert raw_config["config"]["digest"] == seeded.token_public.config_digest


def test_assemble_refuses_a_changed_plan_json(
    public_fetched: tuple[Path, subprocess.CompletedProcess[str], list[Any]],
    public_plan: tuple[Path, dict[str, Any]],
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    plan_dir = copy_plan(public_fetched[0], tmp_path / "plan")
    pin = public_plan[1]["plan_digest"]
    with (plan_dir / "plan.json").open("a") as fh:
        fh.write("\n")
    result = sneaker(
        cli_env, "assemble", plan_dir, "-o", tmp_path / "x.tar", "--plan-digest", pin, check=False
    )
    assert result.returncode == 7
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {plan_dir / 'plan.json'} does not match the plan digest {pin}")
    assert not (tmp_path / "x.tar").exists()


# -- a private repository: credentials for plan, and for fetch.sh through the environment --


def test_private_repository_needs_sneaker_user(
    seeded: Seeded,
    token_registry: TokenRegistryInfo,
    cli_env: dict[str, str],
    curl_only: Path,
    tmp_path: Path,
) -> None:
    plan_dir = tmp_path / "plan"
    assert token_registry.username is not None
    assert token_registry.password is not None
    sneaker(
        cli_env,
        "plan",
        seeded.token_private.ref,
        "-o",
        plan_dir,
        "-u",
        token_registry.username,
        "--password-stdin",
        input=token_registry.password + "\n",
    )
    key = f"{token_registry.host}/private/app"
    denied = fetch_sh(plan_dir, curl_only)
    assert denied.returncode == 1
    # said once: the repository's other blobs are not tried again
    assert (
        denied.stderr.count(f"access denied by {key}: set SNEAKER_USER and SNEAKER_PASSWORD") == 1
    )
    assert denied.stderr.splitlines()[-1].startswith("fetch.sh: ")
    assert "blobs are missing or damaged; run fetch.sh again" in denied.stderr

    wrong = fetch_sh(plan_dir, curl_only, {"SNEAKER_USER": "nobody", "SNEAKER_PASSWORD": 'p"w\\'})
    assert wrong.returncode == 1
    assert (
        wrong.stderr.count(
            f"{key}: the token service at {token_registry.realm} answered HTTP 401: "
            "it refused the credentials in SNEAKER_USER and SNEAKER_PASSWORD"
        )
        == 1
    )

    token_registry.server.clear_requests()
    creds = {"SNEAKER_USER": token_registry.username, "SNEAKER_PASSWORD": token_registry.password}
    allowed = fetch_sh(plan_dir, curl_only, creds)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert any(r.had_auth for r in token_registry.server.requests if r.path == "/token")
    assert token_registry.password not in allowed.stdout + allowed.stderr
    run([need("sha256sum"), "--quiet", "-c", "SHA256SUMS"], cwd=plan_dir)


def test_fetch_sh_killed_leaves_no_credential_in_the_plan_directory(
    seeded: Seeded,
    token_registry: TokenRegistryInfo,
    cli_env: dict[str, str],
    curl_only: Path,
    shaping_proxy: Callable[..., shaping.ShapingProxy],
    tmp_path: Path,
) -> None:
    """kill -9 of fetch.sh (every job and curl) fetching a private image with a password:
    nothing in the plan directory holds the password or a token; what the kill left is a
    private directory (0700, files 0600) in TMPDIR, which the next run removes."""
    user, password = token_registry.username, token_registry.password
    assert user is not None
    assert password is not None
    proxy = shaping_proxy(token_registry.url)
    image = seeded.token_private
    plan_dir = tmp_path / "plan"
    ref = f"{proxy.host}/{image.repository}:{image.tag}"
    sneaker(cli_env, "plan", ref, "-o", plan_dir, "-u", user, "--password-stdin", "-q",
            input=password + "\n")  # fmt: skip
    proxy.shape("throttle", path_contains="/blobs/", rate=20_000)
    tmpdir = tmpdir_of(plan_dir)
    creds = {"SNEAKER_USER": user, "SNEAKER_PASSWORD": password}
    process = subprocess.Popen(
        [str(curl_only / "sh"), "fetch.sh"],
        cwd=plan_dir,
        env={"PATH": str(curl_only), "TMPDIR": str(tmpdir), **creds},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _, _, big = largest_layer(plan_dir)
    big_part = plan_dir / "blobs" / "sha256" / f"{big}.part"
    try:
        deadline = time.monotonic() + 60
        while not (big_part.exists() and big_part.stat().st_size > 0):
            assert process.poll() is None, "fetch.sh ended before it was killed"
            assert time.monotonic() < deadline, "the downloads did not start"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        wait_group_gone(process.pid, 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    for path in plan_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert password.encode() not in data, f"{path} holds the password"
            assert not re.search(rb"Bearer [\w.-]{16}", data), f"{path} holds a token"
        assert path.name not in ("auth.conf", "token.conf", "token.json"), path
    assert hidden_files(plan_dir) == []
    (private,) = tmpdir.iterdir()  # SIGKILL runs no trap: the private directory stays
    assert private.name.startswith(f"sneaker-fetch.{process.pid}.")
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    secrets = [p for p in private.rglob("*") if p.name in ("auth.conf", "token.conf")]
    assert secrets
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets)
    assert any(password.encode() in p.read_bytes() for p in secrets)
    tokens = [p for p in secrets if re.search(rb"Bearer [\w.-]{16}", p.read_bytes())]
    assert tokens, "the token check above would have found one"

    proxy.unshape()
    again = fetch_sh(plan_dir, curl_only, creds)  # asserts that nothing temporary is left
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming sha256:{big} at " in again.stdout
    assembled = sneaker(cli_env, "assemble", "-q", plan_dir, "-o", tmp_path / "app.tar")
    assert "warning" not in assembled.stderr


def test_tls_registry_with_basic_auth(
    seeded: Seeded,
    tls_registry: RegistryInfo,
    cli_env: dict[str, str],
    curl_only: Path,
    tmp_path: Path,
) -> None:
    """HTTPS with a private CA (CURL_CA_BUNDLE for curl) and a Basic challenge."""
    assert tls_registry.ca_cert is not None
    assert tls_registry.username is not None
    assert tls_registry.password is not None
    plan_dir = tmp_path / "plan"
    sneaker(
        cli_env,
        "plan",
        seeded.tls.ref,
        "-o",
        plan_dir,
        "--ca-cert",
        tls_registry.ca_cert,
        "-u",
        tls_registry.username,
        "--password-stdin",
        "-q",
        input=tls_registry.password + "\n",
    )
    urls = (plan_dir / "urls.txt").read_text().splitlines()
    assert all(u.startswith(f"https://{tls_registry.host}/v2/test/app/blobs/sha256:") for u in urls)

    ca = {"CURL_CA_BUNDLE": str(tls_registry.ca_cert)}
    denied = fetch_sh(plan_dir, curl_only, ca)
    assert denied.returncode == 1
    assert "asks for a user name and password: set SNEAKER_USER and SNEAKER_PASSWORD" in (
        denied.stderr
    )
    wrong = fetch_sh(plan_dir, curl_only, {**ca, "SNEAKER_USER": "nobody", "SNEAKER_PASSWORD": "x"})
    assert wrong.returncode == 1
    assert "access denied by " in wrong.stderr

    creds = {"SNEAKER_USER": tls_registry.username, "SNEAKER_PASSWORD": tls_registry.password}
    allowed = fetch_sh(plan_dir, curl_only, {**ca, **creds})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert tls_registry.password not in allowed.stdout + allowed.stderr
    run([need("sha256sum"), "--quiet", "-c", "SHA256SUMS"], cwd=plan_dir)


def test_redirects_and_a_cut_download_behind_basic_auth(
    seeded: Seeded,
    registry: RegistryInfo,
    fault_proxy: Any,
    cli_env: dict[str, str],
    curl_only: Path,
    tmp_path: Path,
) -> None:
    """Blobs redirected to another host (which refuses credentials, as S3 does), one cut."""
    user, password = "fetcher", "s3cret-pw"
    proxy = fault_proxy(registry.url, basic_auth=(user, password))
    ref = f"{proxy.host}/{seeded.app.repository}:{seeded.app.tag}"
    plan_dir = tmp_path / "plan"
    sneaker(
        cli_env,
        "plan",
        ref,
        "-o",
        plan_dir,
        "-u",
        user,
        "--password-stdin",
        "-q",
        input=password + "\n",
    )
    _, _, layer_hex = largest_layer(plan_dir)
    size = next(
        b["size"] for b in plan_json(plan_dir)["images"][0]["blobs"] if b["digest"][7:] == layer_hex
    )
    proxy.clear()
    proxy.add_fault("cut", path_contains=layer_hex, method="GET", after_bytes=size // 3)
    proxy.add_fault("redirect", path_contains="/blobs/", method="GET", times=100)

    result = fetch_sh(plan_dir, curl_only, {"SNEAKER_USER": user, "SNEAKER_PASSWORD": password})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming sha256:{layer_hex} at {size // 3} of {size} bytes" in result.stdout
    redirected = proxy.seen("redirect", "/blobs/")
    assert redirected, "blobs were fetched from the redirect target"
    assert not [r for r in redirected if r.had_auth], "no credentials after a host change"
    assert [r.fault for r in proxy.seen("proxy", layer_hex) if r.method == "GET"][:1] == ["cut"]
    run([need("sha256sum"), "--quiet", "-c", "SHA256SUMS"], cwd=plan_dir)


# -- the plain registry: no auth; OCI layout; tampered and missing blobs -------------------


@pytest.fixture(scope="module")
def plain_fetched(
    seeded: Seeded,
    cli_env: dict[str, str],
    curl_only: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    plan_dir = tmp_path_factory.mktemp("plain") / "plan"
    sneaker(cli_env, "plan", seeded.app.ref, "-o", plan_dir, "-q")
    result = fetch_sh(plan_dir, curl_only)
    assert result.returncode == 0, result.stdout + result.stderr
    return plan_dir


def test_plain_registry_to_oci_layout(
    plain_fetched: Path,
    seeded: Seeded,
    registry: RegistryInfo,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    entry = plan_json(plain_fetched)["images"][0]
    assert entry["api"] == f"http://{registry.host}/v2/"
    assert all(
        u.startswith(f"http://{registry.host}/v2/test/app/blobs/sha256:")
        for u in (plain_fetched / "urls.txt").read_text().splitlines()
    )
    out = tmp_path / "layout"
    sneaker(cli_env, "assemble", plain_fetched, "-o", f"{out}/", "--format", "oci")
    index = json.loads((out / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [seeded.app.digest]
    inspected = json.loads(skopeo("inspect", f"oci:{out}").stdout)
    assert inspected["Digest"] == seeded.app.digest


def test_tampered_blob_is_named(
    plain_fetched: Path, registry: RegistryInfo, cli_env: dict[str, str], tmp_path: Path
) -> None:
    plan_dir = copy_plan(plain_fetched, tmp_path / "plan")
    position, count, layer_hex = largest_layer(plan_dir)
    layer = plan_dir / "blobs" / "sha256" / layer_hex
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    import hashlib

    actual = hashlib.sha256(bytes(data)).hexdigest()
    out = tmp_path / "app.tar"
    result = sneaker(cli_env, "assemble", plan_dir, "-o", out, "-q", check=False)
    assert result.returncode == 7
    assert result.stderr.splitlines() == [
        f"error: plan {plan_dir}: blobs/sha256/{layer_hex} (layer {position}/{count} of "
        f"{registry.host}/test/app:1) does not match its digest: content hashes to "
        f"sha256:{actual}",
        HINT,
    ]
    assert not out.exists()


def test_missing_blob_is_named(
    plain_fetched: Path, registry: RegistryInfo, cli_env: dict[str, str], tmp_path: Path
) -> None:
    plan_dir = copy_plan(plain_fetched, tmp_path / "plan")
    position, count, layer_hex = largest_layer(plan_dir)
    (plan_dir / "blobs" / "sha256" / layer_hex).unlink()
    out = tmp_path / "app.tar"
    result = sneaker(cli_env, "assemble", plan_dir, "-o", out, "-q", check=False)
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        f"error: plan {plan_dir}: blobs/sha256/{layer_hex} (layer {position}/{count} of "
        f"{registry.host}/test/app:1) is missing",
        HINT,
    ]
    assert not out.exists()


# -- several platforms: OCI only; the index is kept byte for byte ----------------------------


def test_multi_platform_plan_assembles_to_oci_only(
    multiarch: MultiArch, cli_env: dict[str, str], curl_only: Path, tmp_path: Path
) -> None:
    plan_dir = tmp_path / "plan"
    sneaker(cli_env, "plan", multiarch.ref, "--platform", "all", "-o", plan_dir)
    refused = sneaker(cli_env, "assemble", plan_dir, "-o", tmp_path / "x.tar", check=False)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"error: plan {plan_dir} was made for several platforms; "
        "a docker archive holds one platform per image",
        "hint: assemble it with --format oci",
    ]
    entry = plan_json(plan_dir)["images"][0]
    assert entry["root"]["digest"] == multiarch.index_digest
    assert entry["rewritten"] is False
    assert {c["digest"] for c in entry["children"]} == {
        multiarch.amd64_digest,
        multiarch.arm64_digest,
        multiarch.attestation_digest,
    }

    fetched = fetch_sh(plan_dir, curl_only)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    out = tmp_path / "multi.tar"
    sneaker(cli_env, "assemble", plan_dir, "-o", out, "--format", "oci")
    with tarfile.open(out) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.loads(member.read())
    assert [m["digest"] for m in index["manifests"]] == [multiarch.index_digest]


# -- image lists: -f and --from on plan and pull --------------------------------------------


def test_images_file_and_compose_for_plan_and_pull(
    seeded: Seeded, cli_env: dict[str, str], tmp_path: Path
) -> None:
    images = tmp_path / "images.txt"
    images.write_text(f"# the app\n{seeded.app.ref}\n\n{seeded.app.ref}  # again\n")
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        f"services:\n  small:\n    image: {seeded.small.ref}\n  app:\n    image: {seeded.app.ref}\n"
    )
    plan_dir = tmp_path / "plan"
    sneaker(cli_env, "plan", "-f", images, "--from", compose, "-o", plan_dir, "-q")
    assert [i["reference"] for i in plan_json(plan_dir)["images"]] == [
        seeded.app.ref,
        seeded.small.ref,
    ]

    out = tmp_path / "pulled.tar"
    sneaker(cli_env, "pull", "-f", images, "--from", compose, "-o", out, "-q")
    with open_archive(out) as source:
        assert sorted(str(r.reference) for r in source.records) == sorted(
            [seeded.app.ref, seeded.small.ref]
        )


# -- several blobs at once: SNEAKER_FETCH_JOBS, failures, Ctrl-C ----------------------------


class OverlapProxy(shaping.ShapingProxy):
    """A shaping proxy that notes, as each blob body starts, which blob bodies still stream.

    ``starts`` holds one ``(path, busy)`` pair per blob GET the registry answered, in the
    order the bodies started; ``busy`` are the paths of the blob bodies not finished then.
    """

    def __init__(self, target_url: str) -> None:
        super().__init__(target_url)
        self._starts_lock = threading.Lock()
        self.starts: list[tuple[str, tuple[str, ...]]] = []

    def _log_body(self, entry: shaping.Served) -> None:
        with self._starts_lock:
            if entry.method == "GET" and "/blobs/" in entry.path:
                busy = tuple(b.path for b in self.served("/blobs/") if not b.done)
                self.starts.append((entry.path, busy))
            super()._log_body(entry)

    def clear(self) -> None:
        super().clear()
        with self._starts_lock:
            self.starts.clear()

    def most_at_once(self) -> int:
        """The largest number of blob bodies that streamed at the same time."""
        return max((len(busy) + 1 for _, busy in self.starts), default=0)


@dataclass
class ProxiedPlan:
    """A plan of the app image made through an :class:`OverlapProxy` (configs only fetched)."""

    proxy: OverlapProxy
    plan_dir: Path
    layers: list[tuple[str, int]]  # (hex, size) in plan order


@pytest.fixture(scope="module")
def proxied_plan(
    seeded: Seeded,
    registry: RegistryInfo,
    cli_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProxiedPlan]:
    proxy = OverlapProxy(registry.url)
    proxy.start()
    try:
        plan_dir = tmp_path_factory.mktemp("proxied") / "plan"
        ref = f"{proxy.host}/{seeded.app.repository}:{seeded.app.tag}"
        sneaker(cli_env, "plan", ref, "-o", plan_dir, "-q")
        blobs = plan_json(plan_dir)["images"][0]["blobs"]
        layers = [(b["digest"][7:], int(b["size"])) for b in blobs if b["kind"] == "layer"]
        assert len(layers) >= 3, "the app image must have several layers for these tests"
        yield ProxiedPlan(proxy, plan_dir, layers)
    finally:
        proxy.stop()


def fresh_copy(proxied: ProxiedPlan, dest: Path, *, seconds: float = 0) -> Path:
    """A copy of the plan (no layers yet); every layer is served in ``seconds`` when > 0."""
    proxied.proxy.clear()
    for hex_, size in proxied.layers:
        if seconds > 0:
            rate = max(1, int(size / seconds))
            proxied.proxy.shape("throttle", path_contains=hex_, rate=rate)
    return copy_plan(proxied.plan_dir, dest)


FETCH_LINE = re.compile(
    r"fetching sha256:[0-9a-f]{64} \(\d+ bytes\) from http://\S+"
    r"|resuming sha256:[0-9a-f]{64} at \d+ of \d+ bytes"
    r"|all \d+ blobs are present and checked \(\d+ fetched, \d+ already there\)"
)


def assert_whole_lines(result: subprocess.CompletedProcess[str]) -> None:
    """Jobs writing at once never break a line: each is one of fetch.sh's own."""
    for line in result.stdout.splitlines():
        assert FETCH_LINE.fullmatch(line), f"garbled output line: {line!r}"
    for line in result.stderr.splitlines():
        assert line.startswith("fetch.sh: "), f"garbled error line: {line!r}"


def assert_blobs_verified(plan_dir: Path, hexes: Iterable[str]) -> None:
    store = plan_dir / "blobs" / "sha256"
    for hex_ in hexes:
        assert hashlib.sha256((store / hex_).read_bytes()).hexdigest() == hex_


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [(None, 4), ("2", 2), ("1", 1)],
    ids=["default", "jobs-2", "jobs-1"],
)
def test_fetch_sh_fetches_several_blobs_at_once(
    proxied_plan: ProxiedPlan,
    curl_only: Path,
    tmp_path: Path,
    jobs: str | None,
    expected: int,
) -> None:
    """Each layer takes 1.5 s through the proxy; its log shows how many streamed at once."""
    plan_dir = fresh_copy(proxied_plan, tmp_path / "plan", seconds=1.5)
    proxy = proxied_plan.proxy
    extra = {} if jobs is None else {"SNEAKER_FETCH_JOBS": jobs}

    result = fetch_sh(plan_dir, curl_only, extra)
    assert result.returncode == 0, result.stdout + result.stderr
    layers = [hex_ for hex_, _ in proxied_plan.layers]
    assert f"({len(layers)} fetched, 1 already there)" in result.stdout
    assert_whole_lines(result)
    assert_blobs_verified(plan_dir, layers)
    run([need("sha256sum"), "--quiet", "-c", "SHA256SUMS"], cwd=plan_dir)

    started = [path.rsplit(":", 1)[1] for path, _ in proxy.starts]
    assert sorted(started) == sorted(layers), "every layer is fetched once"
    assert proxy.most_at_once() == min(expected, len(layers))
    if expected == 1:
        assert started == layers, "one job fetches the layers one after another, in order"
    else:
        assert any(busy for _, busy in proxy.starts), "bodies overlapped"


def test_fetch_sh_one_bad_blob_among_several(
    proxied_plan: ProxiedPlan, curl_only: Path, tmp_path: Path
) -> None:
    """A layer that arrives corrupted every time fails the run; the others are kept, checked."""
    plan_dir = fresh_copy(proxied_plan, tmp_path / "plan", seconds=1)
    bad, _ = proxied_plan.layers[1]
    proxied_plan.proxy.shape("corrupt", path_contains=bad, offset=0)

    result = fetch_sh(plan_dir, curl_only)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_whole_lines(result)
    errors = result.stderr.splitlines()
    assert errors == [
        f"fetch.sh: sha256:{bad}: content does not match its digest: deleted, fetching it again",
        f"fetch.sh: sha256:{bad}: content does not match its digest: deleted",
        f"fetch.sh: 1 of {len(proxied_plan.layers) + 1} blobs are missing or damaged; "
        "run fetch.sh again",
    ]
    store = plan_dir / "blobs" / "sha256"
    assert not (store / bad).exists()
    assert not (store / f"{bad}.part").exists()
    good = [hex_ for hex_, _ in proxied_plan.layers if hex_ != bad]
    assert_blobs_verified(plan_dir, good)
    assert proxied_plan.proxy.most_at_once() > 1, "the other layers streamed alongside"
    assert len([p for p, _ in proxied_plan.proxy.starts if bad in p]) == 2


@pytest.mark.parametrize(
    ("whom", "sig", "status"),
    [("group", signal.SIGINT, 130), ("script", signal.SIGTERM, 143)],
    ids=["ctrl-c", "term"],
)
def test_fetch_sh_interrupted_stops_every_download_and_resumes(
    proxied_plan: ProxiedPlan,
    curl_only: Path,
    tmp_path: Path,
    whom: str,
    sig: signal.Signals,
    status: int,
) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or a TERM to the
    script alone: the script exits at once and no curl stays behind; a second run resumes."""
    plan_dir = fresh_copy(proxied_plan, tmp_path / "plan", seconds=60)
    proxy = proxied_plan.proxy
    big, big_size = max(proxied_plan.layers, key=lambda layer: layer[1])
    big_part = plan_dir / "blobs" / "sha256" / f"{big}.part"

    process = subprocess.Popen(
        [str(curl_only / "sh"), "fetch.sh"],
        cwd=plan_dir,
        env={"PATH": str(curl_only), "TMPDIR": str(tmpdir_of(plan_dir))},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a terminal's Ctrl-C reaches a shell whose SIGINT is not ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while not (
            len([p for p, _ in proxy.starts]) >= 2
            and big_part.exists()
            and big_part.stat().st_size > 0
        ):
            assert process.poll() is None, "fetch.sh ended before it was interrupted"
            assert time.monotonic() < deadline, "the downloads did not start"
            time.sleep(0.05)
        assert proxy.most_at_once() >= 2
        interrupted = time.monotonic()
        if whom == "group":
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=15)
        took = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == status, stdout + stderr
    assert took < 10, f"fetch.sh took {took:.1f} s to stop"
    assert "fetch.sh: interrupted: run fetch.sh again to resume" in stderr.splitlines()
    wait_group_gone(process.pid, 5)
    assert list(tmpdir_of(plan_dir).iterdir()) == [], "the private directory is removed"
    assert hidden_files(plan_dir) == []

    partial = {
        p.name[: -len(".part")]: p.stat().st_size
        for p in (plan_dir / "blobs" / "sha256").glob("*.part")
    }
    assert 0 < partial[big] < big_size
    proxy.unshape()
    again = fetch_sh(plan_dir, curl_only)
    assert again.returncode == 0, again.stdout + again.stderr
    for hex_, have in partial.items():
        if have > 0:
            size = dict(proxied_plan.layers)[hex_]
            assert f"resuming sha256:{hex_} at {have} of {size} bytes" in again.stdout
    run([need("sha256sum"), "--quiet", "-c", "SHA256SUMS"], cwd=plan_dir)
