"""``sneaker pull IMAGE -o -`` piped into the real ``docker load``, ``podman load`` and ``tar``.

Each pipeline is two processes joined by an OS pipe, as a shell makes it. The
registry is seeded by skopeo (tests/fixtures/seeding.py); a failure midway comes
from the fault proxy in front of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import faults
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.podman import Podman
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import Seeded
from tests.fixtures.tools import skopeo
from tests.helpers import need, sneaker

pytestmark = pytest.mark.integration

fault_proxy = faults.fault_proxy


@dataclass
class Pipeline:
    code: int  # sneaker's exit status
    err: str  # sneaker's standard error
    reader: subprocess.CompletedProcess[bytes]


def _pipe(
    args: Sequence[str],
    reader: Sequence[str],
    env: Mapping[str, str],
    workdir: Path,
    reader_env: Mapping[str, str] | None = None,
) -> Pipeline:
    """``sneaker ARGS | READER`` in ``workdir``: sneaker's standard output is the reader's
    standard input."""
    err_file = workdir / "sneaker.err"
    with open(err_file, "wb") as err:
        producer = subprocess.Popen(
            [sys.executable, "-m", "sneaker", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=dict(env),
            cwd=workdir,
        )  # fmt: skip
        assert producer.stdout is not None
        try:
            consumer = subprocess.run(
                list(reader), stdin=producer.stdout, capture_output=True, timeout=600,
                env={**os.environ, **(reader_env or {})},
            )  # fmt: skip
        finally:
            producer.stdout.close()
            code = producer.wait(timeout=600)
    return Pipeline(code, err_file.read_text(), consumer)


def _into_docker_load(
    args: Sequence[str], env: Mapping[str, str], workdir: Path, docker: DockerDaemon
) -> Pipeline:
    """``sneaker ARGS | docker load`` (the test daemon)."""
    return _pipe(args, [docker.client, "-H", docker.host, "load"], env, workdir, docker.env)


def test_pull_into_docker_load(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded, docker: DockerDaemon
) -> None:
    ref = seeded.app.ref
    docker.run("rmi", "-f", ref, check=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    piped = _into_docker_load(["pull", ref, "-o", "-"], env, workdir, docker)
    assert piped.code == 0, piped.err
    assert piped.reader.returncode == 0, piped.reader.stderr
    assert f"Loaded image: {ref}" in piped.reader.stdout.decode()
    assert docker.image_id(ref) == seeded.app.config_digest
    # the summary went to standard error, nothing else but the archive to standard output
    assert "wrote the docker archive to standard output" in piped.err
    assert f"{ref} linux/amd64 {seeded.app.digest}" in piped.err
    assert sorted(p.name for p in workdir.iterdir()) == ["sneaker.err"]  # no file written


def test_pull_into_podman_load(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded, podman: Podman
) -> None:
    ref = seeded.small.ref
    podman.run("rmi", "-f", ref, check=False)
    piped = _pipe(
        ["pull", "-q", ref, "-o", "-"],
        [podman.binary, *podman.global_args, "load"],
        env,
        tmp_path,
        podman.env,
    )
    assert piped.code == 0, piped.err
    assert piped.reader.returncode == 0, piped.reader.stderr
    assert f"Loaded image: {ref}" in piped.reader.stdout.decode()
    image = podman.inspect_image(ref)
    assert f"sha256:{image['Id']}" == seeded.small.config_digest
    podman.run("rmi", ref)


def test_oci_archive_to_stdout_is_the_file_byte_for_byte(
    tmp_path: Path, env: Mapping[str, str], seeded: Seeded
) -> None:
    ref = seeded.app.ref
    piped = _pipe(["pull", "-q", "--format", "oci", ref, "-o", "-"], [need("tar"), "-tf", "-"],
                  env, tmp_path)  # fmt: skip
    assert piped.code == 0, piped.err
    assert piped.reader.returncode == 0, piped.reader.stderr
    listed = [name.rstrip("/") for name in piped.reader.stdout.decode().split()]
    assert {"index.json", "oci-layout", f"blobs/sha256/{seeded.app.digest[7:]}"} <= set(listed)

    # redirected to a file (the kernel copies into it), the same bytes as -o FILE
    reference = tmp_path / "app-oci.tar"
    sneaker("pull", "-q", "--format", "oci", ref, "-o", reference, env=env)
    redirected = tmp_path / "redirected.tar"
    with open(redirected, "wb") as out:
        subprocess.run(
            [sys.executable, "-m", "sneaker", "pull", "-q", "--format", "oci", ref, "-o", "-"],
            stdout=out, stdin=subprocess.DEVNULL, env=dict(env), check=True, timeout=600,
        )  # fmt: skip
    assert redirected.read_bytes() == reference.read_bytes()
    with tarfile.open(reference) as tar:
        assert tar.getnames() == listed


def test_a_failure_midway_exits_non_zero_and_docker_loads_nothing(
    tmp_path: Path,
    env: Mapping[str, str],
    registry: RegistryInfo,
    seeded: Seeded,
    docker: DockerDaemon,
    fault_proxy: Callable[..., faults.FaultProxy],
) -> None:
    manifest = json.loads(
        skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{seeded.app.ref}").stdout
    )
    largest = max(manifest["layers"], key=lambda layer: int(layer["size"]))
    proxy = fault_proxy(registry.url)
    # the largest layer, written last, is missing: its download fails after the
    # archive has begun
    proxy.add_fault("status", path_contains=largest["digest"], status=404, times=100)
    ref = f"{proxy.host}/{seeded.app.repository}:{seeded.app.tag}"
    args = ["pull", "-q", "--cache-dir", str(tmp_path / "cache"), ref, "-o", "-"]
    piped = _into_docker_load(args, env, tmp_path, docker)
    assert piped.code == 5, piped.err  # not found
    assert piped.err.startswith("error: "), piped.err
    assert piped.reader.returncode != 0  # docker load saw the archive end early
    assert docker.run("image", "inspect", ref, check=False).returncode != 0
