"""Registry settings honoured by every verb that reads (inspect, plan, unpack) and by push;
plan's summary and assemble suggestions; inspect's messages for paths, tags and archives.

Each reading verb is run through the CLI against an origin nothing listens on, with a
mirror (a second registry seeded with skopeo) named by registries.conf or ``--mirror``:
only the mirror can answer. Archives for push are written by skopeo or docker save.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sneaker.errors import NotFound, RegistryBlocked, UsageError
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.images import BuiltImages
from tests.fixtures.multiarch import MultiArch
from tests.fixtures.process import remove_tree, short_tempdir
from tests.fixtures.registry import RegistryInfo, start_plain_registry
from tests.fixtures.seeding import Seeded, inspect_args, src_args
from tests.fixtures.tools import skopeo
from tests.helpers import free_port, need

pytestmark = pytest.mark.integration


# -- helpers --------------------------------------------------------------------------------


def sneaker(
    home: Path, *args: str | os.PathLike[str], input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process: no settings files but those ``env`` names, no credentials."""
    (home / "docker").mkdir(parents=True, exist_ok=True)
    if not (home / "docker" / "config.json").exists():
        (home / "docker" / "config.json").write_text("{}")
    full_env = {
        **os.environ,
        "HOME": str(home),
        "CONTAINERS_REGISTRIES_CONF": str(home / "none.conf"),
        "SNEAKER_DAEMON_JSON": "",
        "DOCKER_CONFIG": str(home / "docker"),
        "SNEAKER_CACHE_DIR": str(home / "cache"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "sneaker", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        timeout=300,
        check=False,
        cwd=home,
    )


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith(("error: ", "hint: "))]


def copy_image(
    source: RegistryInfo, source_ref: str, target: RegistryInfo, target_ref: str
) -> None:
    skopeo(
        "copy", "--preserve-digests", *src_args(source), "--dest-tls-verify=false",
        f"docker://{source.host}/{source_ref}", f"docker://{target.host}/{target_ref}",
    )  # fmt: skip


def repo_tags(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest: list[dict[str, Any]] = json.load(member)
    return [tag for entry in manifest for tag in entry["RepoTags"]]


def fetch_sh(plan_dir: Path) -> None:
    """``sh fetch.sh`` (curl and the base tools from PATH)."""
    need("curl")
    done = subprocess.run(
        [need("sh"), "fetch.sh"], cwd=plan_dir, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@dataclass(frozen=True)
class Mirrored:
    """``ref`` names an origin nothing listens on; ``mirror`` holds the image at the same path."""

    origin: str
    mirror: RegistryInfo
    ref: str
    digest: str
    conf: Path

    def flag(self) -> str:
        return f"{self.origin}={self.mirror.host}"


@pytest.fixture(scope="module")
def mirrored(
    registry: RegistryInfo, seeded: Seeded, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mirrored]:
    workdir = short_tempdir("snkm-")
    try:
        proc = start_plain_registry(workdir)
        try:
            copy_image(registry, "test/small:1", proc.info, "test/small:1")
            origin = f"127.0.0.1:{free_port()}"  # connections refused: only the mirror answers
            conf = tmp_path_factory.mktemp("conf") / "registries.conf"
            conf.write_text(
                f'[[registry]]\nlocation = "{origin}"\n\n'
                f'[[registry.mirror]]\nlocation = "{proc.info.host}"\n'
            )
            yield Mirrored(origin, proc.info, f"{origin}/test/small:1", seeded.small.digest, conf)
        finally:
            proc.stop()
    finally:
        remove_tree(workdir)


def through(mirrored: Mirrored, how: str) -> tuple[list[str], dict[str, str]]:
    """(extra CLI arguments, environment) that send reads of the origin to the mirror."""
    if how == "registries.conf":
        return [], {"CONTAINERS_REGISTRIES_CONF": str(mirrored.conf)}
    return ["--mirror", mirrored.flag()], {}


# -- 1. every reading verb goes through the mirror ------------------------------------------


@pytest.mark.parametrize("how", ["registries.conf", "--mirror"])
def test_inspect_reads_through_the_mirror(mirrored: Mirrored, how: str, tmp_path: Path) -> None:
    args, env = through(mirrored, how)
    done = ok(sneaker(tmp_path, "inspect", mirrored.ref, "--json", *args, **env))
    report = json.loads(done.stdout)
    assert report["kind"] == "remote"
    assert report["source"] == mirrored.ref
    assert report["images"][0]["digest"] == mirrored.digest


@pytest.mark.parametrize("how", ["registries.conf", "--mirror"])
def test_unpack_reads_through_the_mirror(mirrored: Mirrored, how: str, tmp_path: Path) -> None:
    args, env = through(mirrored, how)
    dest = tmp_path / "root"
    ok(sneaker(tmp_path, "unpack", "-q", mirrored.ref, dest, *args, **env))
    assert (dest / "bin" / "busybox").is_file()


@pytest.mark.parametrize("how", ["registries.conf", "--mirror"])
def test_plan_through_a_mirror_writes_the_mirrors_urls_and_the_original_name(
    mirrored: Mirrored, how: str, tmp_path: Path
) -> None:
    args, env = through(mirrored, how)
    plan_dir = tmp_path / "pl"
    done = ok(sneaker(tmp_path, "plan", "-q", mirrored.ref, "-o", plan_dir, *args, **env))
    doc = json.loads((plan_dir / "plan.json").read_text())
    (image,) = doc["images"]
    assert image["reference"] == mirrored.ref
    assert image["registry"] == mirrored.origin
    assert image["repository"] == "test/small"
    assert image["fetch_from"] == f"{mirrored.mirror.host}/test/small"
    assert image["api"] == f"http://{mirrored.mirror.host}/v2/"
    base = f"http://{mirrored.mirror.host}/v2/test/small/blobs/"
    assert [b["url"] for b in image["blobs"]] == [base + b["digest"] for b in image["blobs"]]
    assert (plan_dir / "urls.txt").read_text().splitlines() == [b["url"] for b in image["blobs"]]
    assert mirrored.origin not in (plan_dir / "fetch.sh").read_text()
    readme = (plan_dir / "README.txt").read_text()
    assert f"  {mirrored.ref}: from {mirrored.mirror.host}/test/small\n" in readme

    # the small image: a config (fetched into the plan now) and one layer
    digest = re.search(r"^plan digest: (sha256:[0-9a-f]{64})$", done.stdout, re.M)
    assert digest is not None, done.stdout
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        rf"wrote plan {re.escape(str(plan_dir))}: 1 image, 1 blob \(.+\) to fetch "
        r"\(1 already in the plan\)",
        lines[0],
    ), lines[0]
    assert f"  {mirrored.ref} " in done.stdout
    assert f"(from {mirrored.mirror.host}/test/small)" in done.stdout
    command = f"sneaker assemble {plan_dir} -o images.tar --plan-digest {digest[1]}"
    assert lines[-1] == f"      {command}"
    assert f"  sneaker assemble THIS_DIR -o images.tar --plan-digest {digest[1]}\n" in readme

    # the download team reaches the mirror; the archive names the image as asked for
    fetch_sh(plan_dir)
    ok(sneaker(tmp_path, *shlex.split(command)[1:]))
    assert repo_tags(tmp_path / "images.tar") == [mirrored.ref]


def test_reading_verbs_refuse_a_blocked_registry_naming_the_file(
    registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    conf = tmp_path / "blocked.conf"
    conf.write_text(f'[[registry]]\nlocation = "{registry.host}"\nblocked = true\n')
    env = {"CONTAINERS_REGISTRIES_CONF": str(conf)}
    expected = f"error: {registry.host}/test/small is blocked by {conf}, line 1 (blocked = true)"
    ref = seeded.small.ref
    for args in (
        ["inspect", ref],
        ["plan", "-q", ref, "-o", tmp_path / "pl"],
        ["unpack", "-q", ref, tmp_path / "root"],
    ):
        done = sneaker(tmp_path, *args, **env)
        assert done.returncode == RegistryBlocked.exit_code, (args, done.stderr)
        assert error_lines(done)[0] == expected, args
    assert not (tmp_path / "pl").exists()
    assert not (tmp_path / "root").exists()


# -- 2. push: blocked targets refused, insecure targets honoured -----------------------------


def tags_status(info: RegistryInfo, repository: str) -> int:
    try:
        with urllib.request.urlopen(f"{info.url}/v2/{repository}/tags/list", timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_push_refuses_a_blocked_registry_naming_the_file(
    registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    archive = tmp_path / "small.tar"
    skopeo(
        "copy", *src_args(registry), f"docker://{seeded.small.ref}",
        f"docker-archive:{archive}:{seeded.small.ref}",
    )  # fmt: skip
    conf = tmp_path / "blocked.conf"
    conf.write_text(
        f'[[registry]]\nlocation = "example.org"\n\n'
        f'[[registry]]\nprefix = "{registry.host}/blocked"\nlocation = "{registry.host}/blocked"\n'
        "blocked = true\n"
    )
    target = f"{registry.host}/blocked/small:1"
    done = sneaker(tmp_path, "push", "-q", archive, target, CONTAINERS_REGISTRIES_CONF=str(conf))
    assert done.returncode == RegistryBlocked.exit_code, done.stderr
    assert error_lines(done)[0] == (
        f"error: {registry.host}/blocked/small is blocked by {conf}, line 4 (blocked = true)"
    )
    assert tags_status(registry, "blocked/small") == 404  # nothing was pushed


@pytest.mark.parametrize("how", ["registries.conf", "daemon.json"])
def test_push_and_inspect_honour_insecure_settings(
    tls_registry: RegistryInfo, seeded: Seeded, registry: RegistryInfo, tmp_path: Path, how: str
) -> None:
    """The TLS registry's certificate is not trusted (no --ca-cert): only 'insecure' helps."""
    archive = tmp_path / "small.tar"
    skopeo(
        "copy", *src_args(registry), f"docker://{seeded.small.ref}",
        f"docker-archive:{archive}:{seeded.small.ref}",
    )  # fmt: skip
    host = tls_registry.host
    if how == "registries.conf":
        settings = tmp_path / "registries.conf"
        settings.write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n')
        env = {"CONTAINERS_REGISTRIES_CONF": str(settings)}
    else:
        settings = tmp_path / "daemon.json"
        settings.write_text(json.dumps({"insecure-registries": [host]}))
        env = {"SNEAKER_DAEMON_JSON": str(settings)}
    assert tls_registry.username is not None
    assert tls_registry.password is not None
    login = ["-u", tls_registry.username, "--password-stdin"]
    target = f"{host}/insecure-{how.replace('.', '-')}/small:1"
    pushed = sneaker(
        tmp_path, "push", "-q", archive, target, *login, input=tls_registry.password + "\n", **env
    )
    ok(pushed)
    stored = skopeo("inspect", "--raw", *inspect_args(tls_registry), f"docker://{target}").stdout
    assert json.loads(stored)["config"]["digest"] == seeded.small.config_digest

    inspected = sneaker(
        tmp_path, "inspect", target, "--json", *login, input=tls_registry.password + "\n", **env
    )
    assert json.loads(ok(inspected).stdout)["images"][0]["manifests"][0]["config"] == (
        seeded.small.config_digest
    )


# -- 4. several platforms: the suggested assemble line is OCI, and it works -----------------


def test_multi_platform_plan_suggests_oci_and_the_suggestion_works(
    multiarch: MultiArch, tmp_path: Path
) -> None:
    plan_dir = tmp_path / "pm"
    done = ok(sneaker(tmp_path, "plan", "-q", multiarch.ref, "--platform", "all", "-o", plan_dir))
    doc = json.loads((plan_dir / "plan.json").read_text())
    (image,) = doc["images"]
    configs = {b["digest"] for b in image["blobs"] if b["kind"] == "config"}
    every = {b["digest"] for b in image["blobs"]}
    assert {p.name for p in (plan_dir / "blobs" / "sha256").iterdir()} == {
        d.split(":", 1)[1] for d in configs
    }
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        rf"wrote plan {re.escape(str(plan_dir))}: 1 image, {len(every) - len(configs)} "
        rf"blobs \(.+\) to fetch \({len(configs)} already in the plan\)",
        lines[0],
    ), lines[0]
    digest = re.search(r"^plan digest: (sha256:[0-9a-f]{64})$", done.stdout, re.M)
    assert digest is not None
    command = f"sneaker assemble {plan_dir} -o images.tar --format oci --plan-digest {digest[1]}"
    assert lines[-1] == f"      {command}"
    readme = (plan_dir / "README.txt").read_text()
    assert (
        f"  sneaker assemble THIS_DIR -o images.tar --format oci --plan-digest {digest[1]}\n"
        in readme
    )
    assert f"Blobs to fetch: {len(every) - len(configs)} of {len(every)} " in readme

    fetch_sh(plan_dir)
    ok(sneaker(tmp_path, *shlex.split(command)[1:]))
    with tarfile.open(tmp_path / "images.tar") as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.loads(member.read())
    assert [m["digest"] for m in index["manifests"]] == [multiarch.index_digest]


# -- 5. inspect: paths, missing tags, legacy and delta archives ------------------------------


@pytest.mark.parametrize("target", ["./a_1", "../a_1", "/nonexistent/a_1", "~/a_1", "a_1.tar"])
def test_inspect_a_missing_path_says_so(target: str, tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    done = sneaker(tmp_path / "work", "inspect", target, HOME=str(tmp_path))
    assert done.returncode == UsageError.exit_code  # a path that does not exist
    assert error_lines(done)[0] == f"error: {target}: no such file or directory"


def test_inspect_a_missing_tag_lists_the_repositorys_tags(
    registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    tags = [f"t{n:02d}" for n in range(11)]
    for tag in tags:
        copy_image(registry, "test/small:1", registry, f"everywhere/tagged:{tag}")
    done = sneaker(tmp_path, "inspect", f"{registry.host}/everywhere/tagged")
    assert done.returncode == NotFound.exit_code
    errors = error_lines(done)
    assert errors[0].startswith("error: ")
    assert "latest" in errors[0]
    assert errors[1] == f"hint: the repository's tags: {', '.join(tags[:10])} (11 in all)"
    # a repository that does not exist gets no tag list
    done = sneaker(tmp_path, "inspect", f"{registry.host}/everywhere/nothing")
    assert done.returncode == NotFound.exit_code
    assert not [line for line in error_lines(done) if "tags:" in line]


def test_inspect_notes_a_legacy_archive_and_a_delta(
    docker: DockerDaemon, built_images: BuiltImages, seeded: Seeded, tmp_path: Path
) -> None:
    legacy = docker.save(tmp_path / "legacy.tar", built_images.small)
    report = json.loads(ok(sneaker(tmp_path, "inspect", legacy, "--json")).stdout)
    assert report["kind"] == "docker-legacy"
    assert "push gzips them" in report["note"]
    assert "digest will differ" in report["note"]
    assert report["delta"] is None
    human = ok(sneaker(tmp_path, "inspect", legacy)).stdout
    assert f"note: {report['note']}" in human.splitlines()

    full, delta = tmp_path / "full.tar", tmp_path / "delta.tar"
    ok(sneaker(tmp_path, "pull", "-q", seeded.small.ref, "-o", full))
    ok(sneaker(tmp_path, "pull", "-q", seeded.small.ref, "--since", full, "-o", delta))
    report = json.loads(ok(sneaker(tmp_path, "inspect", delta, "--json")).stdout)
    assert report["note"] is None
    assert report["delta"]["omitted"] == 1
    human = ok(sneaker(tmp_path, "inspect", delta)).stdout
    assert human.splitlines()[1].startswith("a delta: 1 layer (")
